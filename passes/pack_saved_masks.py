"""PackSavedMasks: keep one bit, not one byte, of an int8 output the backward only masks with.

Requires: `train_step` from Autodiff over an int8 graph (tinytvm.quant kernels): the backward
reads a layer's int8 output `y` in `qconv2d_acc_grad` / `qadd_grad` only to test whether it
saturated (the straight-through clamp mask).
Guarantees: each int8 forward output whose every backward reader is such a mask test is
packed right after it is computed (`pack_mask`: bit k = y[k] inside (-128, 127)), and those
readers read the packed bits instead (the `_masked` kernels). `y` itself then dies as soon as
the forward is done with it: a layer trained for its bias only, or a frozen layer the
gradient passes through, saves N/8 bytes instead of N. Outputs the backward reads whole (the
input of a trained weight's gradient) are left alone. Gradients are unchanged bit for bit.
"""

from __future__ import annotations

import tvm
from tvm import relax

from tinytvm.ir import FunctionView, call_tir_kernel, rewrite_function, shape_of
from tinytvm.quant import qgrad
from tinytvm.quant.qops import tt_op

MASK_READERS = ("qconv2d_acc_grad", "qadd_grad")


def _masked_kernel(prim, var_shape):
    """The `_masked` twin of a mask-reading kernel, from its parameters and attributes."""
    attrs = prim.attrs
    requant = str(attrs["tt.requant"])
    if tt_op(prim) == "qadd_grad":
        return qgrad.add_grad(var_shape, int(attrs["tt.operand"]), requant, masked=True)
    _, o, ho, wo = (int(s) for s in prim.params[-1].shape)  # g_acc (1, O, Ho, Wo)
    return qgrad.accumulator_grad(o, (ho, wo), "int8", bool(int(attrs["tt.flat"])), requant,
                                  masked=True)


def pack_saved_masks(mod: tvm.IRModule, bb: relax.BlockBuilder) -> relax.Function:
    view = FunctionView.of(mod["train_step"])
    index = {b.var: i for i, b in enumerate(view.bindings)}
    loss = view.bindings[-1].value.fields[0]
    backward_from = index[loss] if loss in index else len(view.bindings)
    readers: dict = {}
    for i, b in enumerate(view.bindings):
        for v in relax.analysis.free_vars(b.value):
            readers.setdefault(v, []).append(i)
    packed = {}  # y var -> its mask var
    for y, at in index.items():
        if at >= backward_from or str(y.ty.dtype) != "int8" or not isinstance(
                y.ty, relax.TensorType):
            continue
        late = [i for i in readers.get(y, []) if i > backward_from]
        if not late or not all(_reads_mask(mod, view.bindings[i].value, y) for i in late):
            continue
        mask_type = relax.TensorType([(int(_count(y)) + 7) // 8], "uint8")
        gv = bb.add_func(qgrad.pack_mask(shape_of(y)), "pack_mask")
        packed[y] = relax.Var(f"{y.name}_mask", mask_type), relax.call_tir(gv, [y], mask_type)
    if not packed:
        return mod["train_step"]
    bindings = []
    for b in view.bindings:
        value = b.value
        prim = call_tir_kernel(mod, value)
        if prim is not None and tt_op(prim) in MASK_READERS and value.args[1].fields[0] in packed:
            y, *rest = value.args[1].fields
            gv = bb.add_func(_masked_kernel(prim, shape_of(y)), f"{tt_op(prim)}_masked")
            value = relax.call_tir(gv, [packed[y][0], *rest], b.var.ty)
        bindings.append(relax.VarBinding(b.var, value))
        if b.var in packed:
            mask_var, pack_call = packed[b.var]
            bindings.append(relax.VarBinding(mask_var, pack_call))
    view.bindings = bindings
    return view.to_function()


def _reads_mask(mod, value, y) -> bool:
    """`value` is a mask-reading kernel that reads `y` as its mask input, and only there."""
    prim = call_tir_kernel(mod, value)
    if prim is None or tt_op(prim) not in MASK_READERS:
        return False
    fields = list(value.args[1].fields)
    return fields[0].same_as(y) and not any(f.same_as(y) for f in fields[1:])


def _count(var) -> int:
    n = 1
    for s in shape_of(var):
        n *= s
    return n


@tvm.transform.module_pass(opt_level=0, name="PackSavedMasks")
class PackSavedMasks:
    """Saved int8 outputs the backward only masks with become 1-bit masks."""

    def transform_module(self, mod, ctx):
        return rewrite_function(mod, "train_step", pack_saved_masks)
