"""FoldBatchNorm: inference BatchNorm after a conv is folded into the conv's weight and bias.

Guarantees: no `nn.batch_norm` whose input is a conv used only by it; that conv becomes
`conv2d(x, W·s) + reshape(b')` with s = γ/√(σ²+ε) per output channel and b' = (b−μ)·s + β.
The folded weight keeps the conv weight's name; the folded bias keeps the conv bias's name,
or takes the BatchNorm's β name when the conv had no bias. A BatchNorm that cannot be folded
(shared conv output, no conv before it) is left for the caller to reject.
"""

from __future__ import annotations

import numpy as np
from tvm import relax

from tinytvm.errors import UnsupportedModelError
from tinytvm.ir import FunctionView, bind, drop_unused_weights, op_name, tensor_var


CONVS = ("relax.nn.conv2d", "relax.nn.conv1d")


def _conv_and_bias(z, defs, uses):
    """(conv binding value, conv var, bias weight var | None, vars to drop) behind z."""
    value = defs.get(z)
    if op_name(value) in CONVS:
        return value, z, None, [z]
    if op_name(value) == "relax.add":
        conv_var, reshape_var = value.args
        conv, reshape = defs.get(conv_var), defs.get(reshape_var)
        if (op_name(conv) in CONVS and op_name(reshape) == "relax.reshape"
                and uses.get(conv_var) == 1 and uses.get(reshape_var) == 1):
            return conv, conv_var, reshape.args[0], [z, conv_var, reshape_var]
    return None


def _fold_one(view, bn, defs, uses):
    """New bindings replacing `y = bn_tuple[0]`, plus the bindings to drop; None if unfoldable."""
    z, gamma, beta, mean, var = bn.args
    found = _conv_and_bias(z, defs, uses) if uses.get(z) == 1 else None
    if found is None:
        return None
    conv, conv_var, bias_var, dropped = found
    weight = conv.args[1]
    if weight.name not in view.values or (bias_var is not None and bias_var.name not in view.values):
        return None
    v = view.values
    scale = v[gamma.name] / np.sqrt(v[var.name] + float(bn.attrs.epsilon))
    spatial = v[weight.name].ndim - 2
    w_new = v[weight.name] * scale.reshape(-1, *[1] * (spatial + 1))
    b_old = v[bias_var.name] if bias_var is not None else np.zeros_like(scale)
    b_new = (b_old - v[mean.name]) * scale + v[beta.name]
    w_var = tensor_var(weight.name if uses.get(weight) == 1 else f"{weight.name}.folded", w_new.shape)
    b_name = bias_var.name if bias_var is not None else beta.name
    b_var = tensor_var(b_name, b_new.shape)
    view.values[w_var.name] = w_new.astype(np.float32)
    view.values[b_var.name] = b_new.astype(np.float32)
    view.weights.extend([w_var, b_var])
    out_channels = w_new.shape[0]
    conv_b = bind(conv_var.name, relax.Call(conv.op, [conv.args[0], w_var], conv.attrs))
    bias_b = bind(f"{b_name}.reshaped", relax.op.reshape(b_var, (1, out_channels, *[1] * spatial)))
    return [conv_b, bias_b], conv_b.var, bias_b.var, dropped


def fold_batchnorm(func: relax.Function) -> relax.Function:
    view = FunctionView.of(func)
    defs, uses = view.var_to_value(), view.use_counts()
    dropped: set = set()
    out = []
    for binding in view.bindings:
        value = binding.value
        if isinstance(value, relax.TupleGetItem) and value.index == 0:
            bn = defs.get(value.tuple_value)
            if op_name(bn) == "relax.nn.batch_norm" and not bn.attrs.training and int(bn.attrs.axis) == 1:
                folded = _fold_one(view, bn, defs, uses)
                if folded is not None:
                    new_bindings, conv_out, bias_out, gone = folded
                    dropped.update(gone)
                    dropped.add(value.tuple_value)
                    out.extend(new_bindings)
                    out.append(relax.VarBinding(binding.var, relax.op.add(conv_out, bias_out)))
                    continue
        out.append(binding)
    view.bindings = [b for b in out if b.var not in dropped]
    # A folded weight keeps its old name: the later (folded) variable replaces the old one.
    view.weights = list({w.name: w for w in view.weights}.values())
    func = drop_unused_weights(view.to_function())
    left = [b for b in FunctionView.of(func).bindings if op_name(b.value) == "relax.nn.batch_norm"]
    if left:
        raise UnsupportedModelError(
            f"BatchNormalization at '{left[0].var.name}' does not follow a conv used only by it; "
            "tinytvm folds BatchNorm into convs and does not train it on its own")
    return func


@relax.transform.function_pass(opt_level=0, name="FoldBatchNorm")
class FoldBatchNorm:
    def transform_function(self, func, mod, ctx):
        return fold_batchnorm(func)
