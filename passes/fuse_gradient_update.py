"""FuseGradientUpdate: apply an int8 conv's weight gradient while computing it.

Requires: `train_step` after QuantizationAwareScaling / AppendSGD, where an int8 weight's
update is the chain `g = weight_grad(x, g_acc)` → (`g * qas`) → `· lr` → update
(`subtract_round`, `subtract_stochastic`, or `master − step` then `requantize_rows`), every
intermediate read once (no momentum: its state needs the gradient itself).
Guarantees: each such chain becomes one `weight_grad_update` kernel (tinytvm/quant/qupdate.py)
that sums one weight element's gradient in a register, scales it and writes the updated element
in place: the weight gradient never exists as a tensor (the paper's in-place gradient
application, taken down to the element). The arithmetic is the chain's, in the same order.
"""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax

from tinytvm.ir import (
    FunctionView,
    call_tir_kernel,
    const_array,
    op_name,
    rewrite_function,
    shape_of,
)
from tinytvm.quant.qops import ConvGeometry, tt_op
from tinytvm.quant.qupdate import weight_grad_update

UPDATES = {"subtract_round": "round", "subtract_stochastic": "stochastic"}


class _Chain:
    """Reads one update chain back from the bindings (None where the pattern does not hold)."""

    def __init__(self, mod, view: FunctionView):
        self.mod = mod
        self.defs = view.var_to_value()
        self.uses = view.use_counts()

    def single(self, var):
        """The value bound to `var` if nothing else reads `var`."""
        if not isinstance(var, relax.Var) or self.uses.get(var, 0) != 1:
            return None
        return self.defs.get(var)

    def kernel(self, call):
        prim = call_tir_kernel(self.mod, call)
        return (prim, list(call.args[1].fields)) if prim is not None else (None, [])

    def step(self, step_var):
        """(weight-grad call, qas factor or None, lr) from the `lr_step` variable."""
        scaled = self.single(step_var)
        if op_name(scaled) != "relax.multiply" or const_array(scaled.args[1]) is None:
            return None
        lr = float(const_array(scaled.args[1]))
        grad, factor = scaled.args[0], None
        qas = self.single(grad)
        if op_name(qas) == "relax.multiply" and const_array(qas.args[1]) is not None:
            grad, factor = qas.args[0], const_array(qas.args[1])
        call = self.single(grad)
        prim, _ = self.kernel(call) if call is not None else (None, [])
        if prim is None or tt_op(prim) != "qconv2d_weight_grad" or "tt.x_zero" not in prim.attrs:
            return None
        return call, factor, lr


def _fused_call(bb, chain: _Chain, grad_call, factor, lr, target, counter, rounding, dtype, salt):
    prim, (x, g_acc) = chain.kernel(grad_call)
    attrs = prim.attrs
    rows = shape_of(grad_call)[0]
    w_shape = (shape_of(g_acc)[1], *shape_of(grad_call)[1:])
    geom = ConvGeometry.of_kernel(attrs, shape_of(x), w_shape)
    if factor is None:
        factor = np.ones(rows, np.float32)
    factor = np.asarray(factor, np.float32).reshape(rows, 1, 1, 1)
    kernel = weight_grad_update(geom, int(attrs["tt.x_zero"]), rows, rounding, dtype, lr, salt)
    gv = bb.add_func(kernel, "weight_grad_update")
    args = [x, g_acc, target, relax.const(factor)] + ([counter] if counter is not None else [])
    return relax.call_tir(gv, args, target.ty)


def fuse_gradient_updates(mod: tvm.IRModule, bb: relax.BlockBuilder) -> relax.Function:
    view = FunctionView.of(mod["train_step"])
    chain = _Chain(mod, view)
    replace, drop = {}, set()
    for salt, binding in enumerate(view.bindings):
        var, value = binding.var, binding.value
        prim, args = chain.kernel(value)
        if prim is not None and tt_op(prim) in UPDATES and str(var.ty.dtype) == "int8":
            weight, step, *counter = args
            found = chain.step(step)
            if found is None:
                continue
            rounding = UPDATES[tt_op(prim)]
            salt_value = int(prim.attrs["tt.salt"]) if "tt.salt" in prim.attrs else 0
            target, dtype = weight, "int8"
        elif op_name(value) == "relax.subtract" and str(var.ty.dtype) == "float32":
            master, step = value.args  # an fp32 master copy: master − step
            found = chain.step(step)
            if found is None or not any(master.same_as(w) for w in view.weights):
                continue
            rounding, target, dtype, counter, salt_value = "master", master, "int8", [], 0
        else:
            continue
        grad_call, factor, lr = found
        replace[var] = _fused_call(bb, chain, grad_call, factor, lr, target,
                                   counter[0] if counter else None, rounding, dtype, salt_value)
        drop |= _chain_vars(chain, step)
    if not replace:
        return mod["train_step"]
    view.bindings = [relax.VarBinding(b.var, replace.get(b.var, b.value))
                     for b in view.bindings if b.var not in drop]
    return view.to_function()


def _chain_vars(chain: _Chain, step) -> set:
    """The bindings a fused chain no longer needs: lr step, qas product, weight gradient."""
    out, var = set(), step
    while isinstance(var, relax.Var) and var in chain.defs:
        out.add(var)
        value = chain.defs[var]
        var = value.args[0] if op_name(value) == "relax.multiply" else None
    return out


@tvm.transform.module_pass(opt_level=0, name="FuseGradientUpdate")
class FuseGradientUpdate:
    """int8 weights: weight gradient, QAS, lr and update in one element-wise-in-place kernel."""

    def transform_module(self, mod, ctx):
        return rewrite_function(mod, "train_step", fuse_gradient_updates)
