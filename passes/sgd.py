"""AppendSGD: turn `train_step`'s gradients into updated weights (SGD, optional momentum).

Requires: `train_step` returning `(loss, *grads)` in the order of its `trainable` attribute.
Guarantees: `train_step` returns `(loss, *new_weights, *new_momenta)`; the attribute `updates`
names, for each returned tensor after the loss, the weight or state buffer it overwrites.
With momentum, each trainable weight gets a state input `<name>.momentum` (zeros at start):
m ← μ·m + g, w ← w − lr·m (PyTorch's SGD convention). Gradients are consumed here, so the
update can later be scheduled right after its gradient and run in place.

Integer weights (int8 graphs) take the same step in integer units — QAS, if it ran, has made
it fp32's step — and store it as `int8_update` says (tinytvm.quant.qupdate: "master" keeps a
float32 copy `<name>.master` of the trained rows as state, "round" rounds each step,
"stochastic" rounds at random with a step counter `sgd.rounding_step` as state); int32 biases
the same way, exactly and saturating.
"""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax

from tinytvm.ir import FunctionView, bind, rewrite_function, shape_of, tensor_var
from tinytvm.quant import qupdate

ROUNDING_STEP = "sgd.rounding_step"  # stochastic rounding's step counter (int32 state)


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
               add_kernel=None, int8_update: str = "master") -> relax.Function:
    """`add_kernel(prim_func, name) -> GlobalVar` adds an update kernel to the module."""
    if int8_update not in qupdate.ROUNDINGS:
        raise ValueError(f"int8_update must be one of {qupdate.ROUNDINGS}, not {int8_update!r}")
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
        if str(weight.ty.dtype) != "float32":
            bindings, new_w, states = _integer_update(view, weight, scaled.var, int8_update,
                                                      add_kernel, len(new_weights))
            new_bindings += [scaled, *bindings]
            new_weights.append((name, new_w))
            new_states += states
            continue
        if shape_of(grad) == shape_of(weight):
            new_w = bind(f"{name}.new", relax.op.subtract(weight, scaled.var))
        else:  # only the leading output channels are trained
            rows = shape_of(grad)[0]
            gv = add_kernel(update_rows_kernel(shape_of(weight), rows, dtype), "subtract_rows")
            new_w = bind(f"{name}.new", relax.call_tir(gv, [weight, scaled.var], weight.ty))
        new_bindings += [scaled, new_w]
        new_weights.append((name, new_w.var))
    outputs = new_weights + new_states
    if ROUNDING_STEP in view.values:  # stochastic rounding: a new random stream every step
        state = next(w for w in view.weights if w.name == ROUNDING_STEP)
        tick = bind("sgd.next_rounding_step", relax.op.add(state, relax.const(1, "int32")))
        new_bindings.append(tick)
        outputs.append((ROUNDING_STEP, tick.var))
    result = relax.BlockBuilder().normalize(relax.Tuple([loss, *[v for _, v in outputs]]))
    out_var = relax.Var(out_binding.var.name, result.ty)
    view.bindings = view.bindings[:-1] + new_bindings + [relax.VarBinding(out_var, result)]
    view.output = out_var
    view.attrs["updates"] = [name for name, _ in outputs]
    view.attrs["optimizer"] = f"sgd(lr={lr}, momentum={momentum})"
    return view.to_function()


def _integer_update(view, weight, lr_step, int8_update: str, add_kernel, salt: int):
    """Bindings that apply `lr_step` (float32, integer units) to an int8 / int32 weight:
    (bindings, new weight var, [(state name, new state var)])."""
    name, shape = weight.name, shape_of(weight)
    rows = shape_of(lr_step)[0]
    dtype = str(weight.ty.dtype)
    if dtype not in ("int8", "int32"):
        raise ValueError(f"cannot train weight '{name}' of dtype {dtype}")
    if int8_update == "round":
        gv = add_kernel(qupdate.subtract_round(shape, rows, dtype), "subtract_round")
        new_w = bind(f"{name}.new", relax.call_tir(gv, [weight, lr_step], weight.ty))
        return [new_w], new_w.var, []
    if int8_update == "master":
        master = tensor_var(f"{name}.master", shape_of(lr_step))
        view.weights.append(master)
        view.values[master.name] = view.values[name][:rows].astype(np.float32)
        moved = bind(f"{name}.master_new", relax.op.subtract(master, lr_step))
        gv = add_kernel(qupdate.requantize_rows(shape, rows, dtype), "requantize_rows")
        new_w = bind(f"{name}.new", relax.call_tir(gv, [weight, moved.var], weight.ty))
        return [moved, new_w], new_w.var, [(master.name, moved.var)]
    if ROUNDING_STEP not in view.values:
        view.weights.append(tensor_var(ROUNDING_STEP, (1,), "int32"))
        view.values[ROUNDING_STEP] = np.zeros(1, np.int32)
    counter = next(w for w in view.weights if w.name == ROUNDING_STEP)
    gv = add_kernel(qupdate.subtract_stochastic(shape, rows, dtype, salt), "subtract_stochastic")
    new_w = bind(f"{name}.new", relax.call_tir(gv, [weight, lr_step, counter], weight.ty))
    return [new_w], new_w.var, []


@tvm.transform.module_pass(opt_level=0, name="AppendSGD")
class AppendSGD:
    def __init__(self, lr: float, momentum: float = 0.0, int8_update: str = "master"):
        self.lr, self.momentum, self.int8_update = lr, momentum, int8_update

    def transform_module(self, mod, ctx):
        return rewrite_function(mod, "train_step", lambda m, bb: append_sgd(
            m["train_step"], self.lr, self.momentum, bb.add_func, self.int8_update))
