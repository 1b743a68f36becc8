"""InplaceDepthwise: depthwise convs (and their stride-1 input gradients) that can overwrite
their input.

Requires: int8 graphs of tinytvm.quant kernels (fp32 graphs pass unchanged).
Guarantees: in every Relax function, a float32-requantized depthwise `qconv2d` whose input has
no other reader, and every stride-1 depthwise `qconv2d_data_grad`, calls the channel-by-channel
kernel of tinytvm/quant/inplace.py instead (same bits); the AOT planner then lets the output
take over the input's storage when the input dies there. A frozen depthwise conv thus needs one
activation buffer, not two (MobileNetV2-w0.35's block 0 at 64x64: 64 KB instead of 128 KB),
and so does its input gradient in the backward.
"""

from __future__ import annotations

import tvm
from tvm import relax

from tinytvm.ir import FunctionView, call_tir_kernel, rewrite_functions, shape_of
from tinytvm.quant.inplace import (
    depthwise_data_grad_inplace,
    is_depthwise,
    qdepthwise_inplace,
)
from tinytvm.quant.qops import ConvGeometry, tt_op


def _replacement(prim, args):
    """The in-place kernel for this call, or None."""
    if prim.attrs is None or "tt.inplace_input" in prim.attrs or "tt.fast" in prim.attrs:
        return None
    op = tt_op(prim)
    if op == "qconv2d" and str(prim.attrs.get("tt.requant", "float32")) == "float32":
        g = ConvGeometry.of_kernel(prim.attrs, shape_of(args[0]), shape_of(args[1]))
        if is_depthwise(g):
            return qdepthwise_inplace(g, int(prim.attrs["tt.x_zero"]), int(prim.attrs["tt.y_zero"]))
    if op == "qconv2d_data_grad" and "tt.stride" in prim.attrs:
        weight = args[1]  # (g_acc, weight)
        x_shape = tuple(int(s) for s in prim.params[-1].shape)
        g = ConvGeometry.of_kernel(prim.attrs, x_shape, shape_of(weight))
        if is_depthwise(g) and g.stride == 1 and g.out_hw == g.in_hw:
            return depthwise_data_grad_inplace(g)
    return None


def inplace_depthwise(mod: tvm.IRModule, name: str, bb: relax.BlockBuilder) -> relax.Function:
    view = FunctionView.of(mod[name])
    uses = view.use_counts()
    bindings = []
    for b in view.bindings:
        value = b.value
        prim = call_tir_kernel(mod, value)
        if prim is not None:
            args = list(value.args[1].fields)
            kernel = _replacement(prim, args)
            forward_ok = tt_op(prim) != "qconv2d" or uses.get(args[0], 0) == 1
            if kernel is not None and forward_ok:
                gv = bb.add_func(kernel, f"{tt_op(prim)}_inplace")
                value = relax.call_tir(gv, args, b.var.ty)
        bindings.append(relax.VarBinding(b.var, value))
    view.bindings = bindings
    return view.to_function()


@tvm.transform.module_pass(opt_level=0, name="InplaceDepthwise")
class InplaceDepthwise:
    """Depthwise convs and their stride-1 data gradients become channel-by-channel kernels."""

    def transform_module(self, mod, ctx):
        return rewrite_functions(mod, inplace_depthwise)
