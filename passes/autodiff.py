"""Autodiff: append a softmax cross-entropy loss and its gradients to the model function.

Requires: `main` in tinytvm's convention (inputs, then weights with values in `params`),
returning logits of shape (1, classes); every op between a trainable weight and the loss has a
rule in `tinytvm.passes.gradients`.
Guarantees: a new function `train_step(input, label, *weights) -> (loss, *grads)` where grads
follow the order of `trainable`; only gradients on a path from a trainable weight to the loss
are computed (frozen branches get no backward op at all). `main` is left as it is.
"""

from __future__ import annotations

import tvm
from tvm import relax

from tinytvm.errors import UnsupportedModelError
from tinytvm.ir import FunctionView, op_name, shape_of

from .gradients import gradient_rule


def _depends_on(bindings, sources) -> set:
    """Variables whose value depends on any of `sources` (forward reachability)."""
    reached = set(sources)
    for binding in bindings:
        if any(v in reached for v in relax.analysis.free_vars(binding.value)):
            reached.add(binding.var)
    return reached


def _accumulate(bb, adjoints, var, grad):
    grad_var = bb.emit(grad, name_hint=f"d_{var.name}")
    if var in adjoints:
        grad_var = bb.emit(relax.op.add(adjoints[var], grad_var), name_hint=f"d_{var.name}")
    adjoints[var] = grad_var


def _leading_channel_gradient(bb, var, call, grad, rule, channels: int):
    """Weight gradient of a conv for its first `channels` output channels only.

    Output channels [0, k) of a (groups=1) conv depend on weight rows [0, k) alone, so the rule is
    applied to the conv restricted to those rows: its output gradient is sliced, and the sliced
    weight never needs to exist (the weight-gradient expression reads data and gradient only).
    """
    data, weight = call.args
    if int(call.attrs.groups) != 1:
        raise UnsupportedModelError(f"partial-channel update of '{weight.name}': only for convs "
                                    "with groups=1 (pointwise or full convs)")
    rows = (channels, *shape_of(weight)[1:])
    weight_k = relax.Var(f"{weight.name}_rows", relax.TensorType(rows, weight.ty.dtype))
    out_shape = shape_of(var)
    out_k = relax.Var(f"{var.name}_rows", relax.TensorType((out_shape[0], channels, *out_shape[2:]),
                                                           var.ty.dtype))
    grad_k = bb.emit(relax.op.strided_slice(grad, axes=[1], begin=[0], end=[channels]),
                     name_hint=f"d_{var.name}_rows")
    call_k = relax.Call(call.op, [data, weight_k], call.attrs)
    weight_grad = rule(out_k, call_k, grad_k, bb)[1]
    if weight_k in relax.analysis.free_vars(weight_grad):
        raise UnsupportedModelError(f"the gradient rule of {call.op.name} reads the weight for its "
                                    "weight gradient: partial-channel update is not possible")
    return weight_grad


def rule_key(call, module=None) -> str | None:
    """The rule-table key of a call: the op name ('relax.nn.conv2d'), or for a `call_tir` to a
    kernel that declares what it computes (PrimFunc attribute "tt.op", e.g. the int8 kernels of
    tinytvm.quant) 'tt.<op>' — so gradient rules can be registered for hand-written kernels.
    Such a rule returns one gradient per kernel input (the fields of the call's argument tuple)."""
    name = op_name(call)
    if name and name.startswith("call_tir:") and module is not None:
        callee = module[call.args[0]]
        if callee.attrs is not None and "tt.op" in callee.attrs:
            return f"tt.{callee.attrs['tt.op']}"
    return name


def backpropagate(bb, bindings, loss, wanted: set, channels: dict | None = None,
                  module=None) -> dict:
    """Emit the backward pass of `bindings` from the scalar `loss`; return var -> gradient var.

    `channels` maps a weight variable to the number of leading output channels to train; its
    gradient then has that many rows.
    """
    channels = channels or {}
    needed = _depends_on(bindings, wanted)
    adjoints = {loss: bb.emit(relax.op.ones((), loss.ty.dtype), name_hint="d_loss")}
    for binding in reversed(bindings):
        var, call = binding.var, binding.value
        if var not in adjoints:
            continue
        if isinstance(call, relax.Var):  # an alias: its gradient is the alias's gradient
            if call in needed:
                _accumulate(bb, adjoints, call, adjoints[var])
            continue
        name = rule_key(call, module)
        rule = gradient_rule(name) if name else None
        if rule is None:
            raise UnsupportedModelError(
                f"no gradient rule for op '{name or type(call).__name__}' (binding '{var.name}'); "
                "register one with tinytvm.passes.gradients.register_gradient")
        # a call_tir's rule answers for the kernel's inputs, the fields of its argument tuple
        inputs = call.args[1].fields if name.startswith(("call_tir:", "tt.")) else call.args
        rows = {i: channels[arg] for i, arg in enumerate(inputs)
                if isinstance(arg, relax.Var) and arg in channels}
        if rows and getattr(rule, "partial_rows", False):  # the rule restricts rows itself
            grads = list(rule(var, call, adjoints[var], bb, rows=rows))
        else:
            grads = list(rule(var, call, adjoints[var], bb))
            for i, k in rows.items():
                if grads[i] is not None:
                    grads[i] = _leading_channel_gradient(bb, var, call, adjoints[var], rule, k)
        for arg, grad in zip(inputs, grads):
            if isinstance(arg, relax.Var) and arg in needed and grad is not None:
                _accumulate(bb, adjoints, arg, grad)
    return adjoints


def append_training_step(func: relax.Function, trainable: list[str],
                         channels: dict[str, int] | None = None, module=None,
                         bb: relax.BlockBuilder | None = None) -> relax.Function:
    """`bb` (a BlockBuilder over `module`) receives any kernels the gradient rules add."""
    view = FunctionView.of(relax.utils.copy_with_new_vars(func))
    by_name = {w.name: w for w in view.weights}
    unknown = [n for n in trainable if n not in by_name]
    if unknown:
        raise UnsupportedModelError(f"trainable weights not in the model: {', '.join(unknown)}; "
                                    f"it has: {', '.join(by_name)}")
    units = view.attrs.get("tt.quant_units")
    fixed = [n for n in trainable if units is not None and n not in units]
    if fixed:
        raise UnsupportedModelError(
            f"cannot train {', '.join(fixed)}: in an int8 graph only the weights and biases "
            f"(those with quantization units) are trainable, not requantization parameters")
    logits = view.output
    if not isinstance(logits, relax.Var) or len(shape_of(logits)) != 2 or shape_of(logits)[0] != 1:
        raise UnsupportedModelError("the model must return one logits tensor of shape (1, classes)")
    label = relax.Var("label", relax.TensorType((1,), "int32"))
    attrs = {k: v for k, v in view.attrs.items() if k not in ("global_symbol",)}
    unknown = [n for n in (channels or {}) if n not in trainable]
    if unknown:
        raise UnsupportedModelError(f"channel counts given for weights that are not trainable: "
                                    f"{', '.join(unknown)}")
    attrs.update({"num_input": 2, "trainable": list(trainable)})
    bb = bb if bb is not None else relax.BlockBuilder(module)
    with bb.function("train_step", [*view.inputs, label, *view.weights], attrs=attrs):
        with bb.dataflow():
            for binding in view.bindings:
                bb.emit_normalized(binding)
            log_probs = bb.emit(relax.op.nn.log_softmax(logits), name_hint="log_probs")
            loss = bb.emit(relax.op.nn.nll_loss(log_probs, label), name_hint="loss")
            forward = [*view.bindings, *_bindings_of(bb, [log_probs, loss])]
            wanted = {by_name[n] for n in trainable}
            partial = {by_name[n]: k for n, k in (channels or {}).items()}
            adjoints = backpropagate(bb, forward, loss, wanted, partial, module)
            grads = []
            for name in trainable:
                w = by_name[name]
                grad = adjoints.get(w)
                if grad is None:  # the weight does not reach the loss
                    rows = (channels or {}).get(name, shape_of(w)[0])
                    grad = bb.emit(relax.op.zeros((rows, *shape_of(w)[1:]), "float32"))
                grads.append(grad)
            out = bb.emit_output(relax.Tuple([loss, *grads]))
        bb.emit_func_output(out)
    return bb.get()["train_step"]


def _bindings_of(bb, vars_):
    return [relax.VarBinding(v, bb.lookup_binding(v)) for v in vars_]


@tvm.transform.module_pass(opt_level=0, name="Autodiff")
class Autodiff:
    """Adds `train_step` next to `main` for the given trainable weight names.

    `channels` optionally limits a conv weight to its first k output channels
    ({name: k}); its gradient (and update) then covers those rows only.
    """

    def __init__(self, trainable: list[str] | None = None, channels: dict[str, int] | None = None,
                 scheme=None):
        self.trainable = trainable
        self.channels = dict(channels or {})
        self.scheme = scheme  # a tinytvm.sparse.UpdateScheme, resolved on the canonical model

    def transform_module(self, mod, ctx):
        main = mod["main"]
        view = FunctionView.of(main)
        if self.trainable is not None:
            trainable = self.trainable
        elif "tt.quant_units" in view.attrs:  # int8 graph: its weights and biases, not its scales
            units = view.attrs["tt.quant_units"]
            trainable = [w.name for w in view.weights if w.name in units]
        else:
            trainable = [w.name for w in view.weights]
        if self.scheme is not None:
            from tinytvm.sparse import trainable_layers

            trainable, self.channels = self.scheme.resolve(trainable_layers(mod))
        bb = relax.BlockBuilder(mod)  # gradient rules may add backward kernels to it
        step = append_training_step(main, list(trainable), self.channels, mod, bb)
        mod = bb.get()
        mod["train_step"] = step
        return mod
