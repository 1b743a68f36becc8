"""AppendSGD: turn `train_step`'s gradients into updated weights (SGD, optional momentum).

Requires: `train_step` returning `(loss, *grads)` in the order of its `trainable` attribute.
Guarantees: `train_step` returns `(loss, *new_weights, *new_momenta)`; the attribute `updates`
names, for each returned tensor after the loss, the weight or state buffer it overwrites.
With momentum, each trainable weight gets a state input `<name>.momentum` (zeros at start):
m ← μ·m + g, w ← w − lr·m (PyTorch's SGD convention). Gradients are consumed here, so the
update can later be scheduled right after its gradient and run in place.
"""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax

from tinytvm.ir import FunctionView, bind, shape_of, tensor_var


def update_rows_kernel(weight_shape, rows: int, dtype: str = "float32") -> tvm.tirx.PrimFunc:
    """w_new[o] = w[o] - step[o] for o < rows, else w[o]: an update of the leading output
    channels that is element-wise in `w`, so it can run in place (rows ≥ `rows` are rewritten
    with their own value)."""
    from tvm import te, tirx

    w = te.placeholder(weight_shape, dtype, "w")
    step = te.placeholder((rows, *weight_shape[1:]), dtype, "step")
    out = te.compute(weight_shape, lambda o, *r: tirx.if_then_else(
        o < rows, w[(o, *r)] - step[(o, *r)], w[(o, *r)]), name="w_new")
    return te.create_prim_func([w, step, out])


def append_sgd(func: relax.Function, lr: float, momentum: float = 0.0,
               add_kernel=None) -> relax.Function:
    """`add_kernel(prim_func) -> GlobalVar` adds the kernel of a partial update to the module."""
    view = FunctionView.of(func)
    trainable = [str(n) for n in view.attrs["trainable"]]
    out_binding = view.bindings[-1]
    loss, *grads = out_binding.value.fields
    by_name = {w.name: w for w in view.weights}
    dtype = "float32"
    new_bindings, new_weights, new_states = [], [], []
    for name, grad in zip(trainable, grads):
        weight = by_name[name]
        step = grad
        if momentum:
            state = tensor_var(f"{name}.momentum", shape_of(grad))  # partial: its rows only
            view.weights.append(state)
            view.values[state.name] = np.zeros(shape_of(grad), np.float32)
            decayed = bind(f"{name}.m_decay", relax.op.multiply(state, relax.const(momentum, dtype)))
            updated = bind(f"{name}.m_new", relax.op.add(decayed.var, grad))
            new_bindings += [decayed, updated]
            new_states.append((state.name, updated.var))
            step = updated.var
        scaled = bind(f"{name}.lr_step", relax.op.multiply(step, relax.const(lr, dtype)))
        if shape_of(grad) == shape_of(weight):
            new_w = bind(f"{name}.new", relax.op.subtract(weight, scaled.var))
        else:  # only the leading output channels are trained
            rows = shape_of(grad)[0]
            gv = add_kernel(update_rows_kernel(shape_of(weight), rows, dtype))
            new_w = bind(f"{name}.new", relax.call_tir(gv, [weight, scaled.var], weight.ty))
        new_bindings += [scaled, new_w]
        new_weights.append((name, new_w.var))
    outputs = new_weights + new_states
    result = relax.BlockBuilder().normalize(relax.Tuple([loss, *[v for _, v in outputs]]))
    out_var = relax.Var(out_binding.var.name, result.ty)
    view.bindings = view.bindings[:-1] + new_bindings + [relax.VarBinding(out_var, result)]
    view.output = out_var
    view.attrs["updates"] = [name for name, _ in outputs]
    view.attrs["optimizer"] = f"sgd(lr={lr}, momentum={momentum})"
    return view.to_function()


@tvm.transform.module_pass(opt_level=0, name="AppendSGD")
class AppendSGD:
    def __init__(self, lr: float, momentum: float = 0.0):
        self.lr, self.momentum = lr, momentum

    def transform_module(self, mod, ctx):
        bb = relax.BlockBuilder(mod)
        step = append_sgd(mod["train_step"], self.lr, self.momentum,
                          lambda prim: bb.add_func(prim, "subtract_rows"))
        mod = bb.get()
        mod["train_step"] = step
        return mod
