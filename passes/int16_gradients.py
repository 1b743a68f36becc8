"""Int16PointwiseGradients: wide pointwise convs pass a 16-bit input gradient back.

Requires: `train_step` from Autodiff over an int8 graph (tinytvm.quant kernels, "tt.op").
Guarantees: the input gradient (`qconv2d_data_grad`) of every 1x1, stride-1, unpadded,
groups=1 conv with at least `min_in_channels` input and `min_out_channels` output channels and
a frozen weight reads `q = rint(g_acc · qmax / max|g_acc|)`, int16, instead of the float32
`g_acc`: right before it, one `grad16_scale` and one `grad16_quantize` of `g_acc`; the data
gradient becomes
`qconv2d_data_grad16` (an exact int32 sum, rescaled once per element). The conv's own weight
and bias gradients still read the float32 `g_acc`; every other kernel is untouched. Numerics:
tinytvm/quant/qgrad16.py.

Why the thresholds: the quantization costs ~10.5 instructions per g_acc element on a Cortex-M7
(a max and a rounding), shared by the C input channels that each element feeds, and the
integer sum pays its setup per O-long dot product; below ~48 input or ~32 output channels the
float32 kernel is as fast (`python benchmarks/kernels.py --only backward` measures both).
Why frozen weights only: a trained conv's float32 g_acc must outlive its input gradient (the
in-place update comes after every reader of the old weight), so the int16 copy would add its
bytes to the arena there (measured: +23 KB on MCUNet's sparse scheme); a frozen conv's g_acc
dies at the quantization (its bias gradient runs first), so the input gradient then holds 2
bytes per element instead of 4.
"""

from __future__ import annotations

import tvm
from tvm import relax

from tinytvm.ir import FunctionView, call_tir_kernel, rewrite_function, shape_of
from tinytvm.quant import qgrad16
from tinytvm.quant.qops import ConvGeometry, tt_op

MIN_IN_CHANNELS, MIN_OUT_CHANNELS = 48, 32
WEIGHT_GRADIENT_OPS = ("qconv2d_weight_grad", "weight_grad_update")


def _covered(prim, g_acc, dx, weight, min_in: int, min_out: int) -> ConvGeometry | None:
    geom = ConvGeometry.of_kernel(prim.attrs, shape_of(dx), shape_of(weight))
    if not qgrad16.is_pointwise(geom) or str(g_acc.ty.dtype) != "float32":
        return None
    if geom.in_channels < min_in or geom.out_channels < min_out:
        return None
    return geom


def _weight_trained_from(mod, view: FunctionView) -> set:
    """The g_acc variables a weight gradient reads: that conv's weight is updated in place
    after its input gradient (which reads the old weight), so its float32 g_acc lives across
    the input gradient whatever the order, and an int16 copy would only add bytes there."""
    return {b.value.args[1].fields[1] for b in view.bindings  # (x, g_acc, ...)
            if (prim := call_tir_kernel(mod, b.value)) is not None
            and tt_op(prim) in WEIGHT_GRADIENT_OPS}


def int16_pointwise_gradients(mod: tvm.IRModule, bb: relax.BlockBuilder, min_in: int,
                              min_out: int) -> relax.Function:
    view = FunctionView.of(mod["train_step"])
    trained = _weight_trained_from(mod, view)
    bindings, changed = [], False
    for b in view.bindings:
        prim = call_tir_kernel(mod, b.value)
        if prim is not None and tt_op(prim) == "qconv2d_data_grad":
            g_acc, weight = b.value.args[1].fields
            geom = _covered(prim, g_acc, b.var, weight, min_in, min_out)
            if geom is not None and g_acc not in trained:
                bindings += _quantized_data_grad(bb, b.var, g_acc, weight, geom)
                changed = True
                continue
        bindings.append(b)
    if not changed:
        return mod["train_step"]
    view.bindings = bindings
    return view.to_function()


def _quantized_data_grad(bb, dx, g_acc, weight, geom: ConvGeometry) -> list[relax.VarBinding]:
    o, hw = geom.out_channels, geom.out_hw
    scale_ty = relax.TensorType([2], "float32")
    q_ty = relax.TensorType(list(qgrad16.packed_shape(o, hw[0] * hw[1])), "int16")
    scale = relax.Var(f"{dx.name}_scale16", scale_ty)
    q = relax.Var(f"{dx.name}_q16", q_ty)
    scale_gv = bb.add_func(qgrad16.grad_scale(o, hw, qgrad16.qmax_for(o)), "grad16_scale")
    quantize_gv = bb.add_func(qgrad16.quantize(o, hw), "grad16_quantize")
    data_gv = bb.add_func(qgrad16.data_grad(geom), "qconv2d_data_grad16")
    return [relax.VarBinding(scale, relax.call_tir(scale_gv, [g_acc], scale_ty)),
            relax.VarBinding(q, relax.call_tir(quantize_gv, [g_acc, scale], q_ty)),
            relax.VarBinding(dx, relax.call_tir(data_gv, [q, scale, weight], dx.ty))]


@tvm.transform.module_pass(opt_level=0, name="Int16PointwiseGradients")
class Int16PointwiseGradients:
    """int8 graphs: wide pointwise convs' input gradients from an int16-quantized g_acc."""

    def __init__(self, min_in_channels: int = MIN_IN_CHANNELS,
                 min_out_channels: int = MIN_OUT_CHANNELS):
        self.min_in, self.min_out = min_in_channels, min_out_channels

    def transform_module(self, mod, ctx):
        return rewrite_function(mod, "train_step", lambda m, bb: int16_pointwise_gradients(
            m, bb, self.min_in, self.min_out))
