"""Gradient rules of the int8 kernels (tinytvm.quant.qops), keyed on their "tt.op".

Each rule answers for the kernel's inputs in order with float32 gradients with respect to the
integer tensors, built as `call_tir`s to the backward kernels of tinytvm.quant.qgrad (semantics
there: straight-through rounding, the output clamp masks the gradient). The requantization
scales (`scale`, the add's `scales`) are never trained: their gradient is None.
"""

from __future__ import annotations

from tvm import relax

from tinytvm.errors import UnsupportedModelError
from tinytvm.ir import shape_of
from tinytvm.quant import qgrad
from tinytvm.quant.qops import ConvGeometry

from .gradients import register_gradient


def _kernel(bb, call):
    """The PrimFunc a call_tir calls: the rules need its static parameters (tt.* attributes)."""
    return bb.get()[call.args[0]]


def _call(bb, prim, args, shape, name: str):
    gv = bb.add_func(prim, name)
    return relax.call_tir(gv, list(args), relax.TensorType(list(shape), "float32"))


def _requant(kernel, var) -> str:
    requant = str(kernel.attrs.get("tt.requant", "float32"))
    if requant not in ("float32", "fixed"):
        raise UnsupportedModelError(f"no gradient for '{var.name}': unknown requantization "
                                    f"'{requant}'")
    return requant


def _conv_gradient(var, call, grad, bb, rows=None):
    kernel = _kernel(bb, call)
    attrs = kernel.attrs
    requant = _requant(kernel, var)
    x, weight, _bias, *scale = call.args[1].fields  # scale, or multiplier and shift
    geom = ConvGeometry.of_kernel(attrs, shape_of(x), shape_of(weight))
    flat = len(shape_of(var)) == 2
    acc_kernel = qgrad.accumulator_grad(geom.out_channels, geom.out_hw, str(var.ty.dtype), flat,
                                        requant)
    g_acc = bb.emit(_call(bb, acc_kernel, [var, grad, *scale], geom.y_shape, "qconv_acc_grad"),
                    name_hint=f"d_{var.name}_acc")
    k = (rows or {}).get(1, geom.out_channels)
    d_x = _call(bb, qgrad.data_grad(geom), [g_acc, weight], geom.x_shape, "qconv_data_grad")
    d_w = _call(bb, qgrad.weight_grad(geom, int(attrs["tt.x_zero"]), k), [x, g_acc],
                (k, *geom.w_shape[1:]), "qconv_weight_grad")
    d_b = _call(bb, qgrad.bias_grad(geom.out_channels, geom.out_hw), [g_acc],
                (geom.out_channels,), "qconv_bias_grad")
    return [d_x, d_w, d_b] + [None] * len(scale)


_conv_gradient.partial_rows = True  # the weight gradient of the leading rows only: rows={1: k}
register_gradient("tt.qconv2d")(_conv_gradient)
register_gradient("tt.qclassifier")(_conv_gradient)


@register_gradient("tt.qadd")
def _qadd_gradient(var, call, grad, bb):
    scales = call.args[1].fields[2]
    shape = shape_of(var)
    requant = _requant(_kernel(bb, call), var)
    return [_call(bb, qgrad.add_grad(shape, operand, requant), [var, grad, scales], shape,
                  "qadd_grad") for operand in (0, 1)] + [None]


@register_gradient("tt.qavgpool")
def _qavgpool_gradient(var, call, grad, bb):
    (x,) = call.args[1].fields
    _, c, h, w = shape_of(x)
    return [_call(bb, qgrad.avgpool_grad(c, (h, w)), [grad], shape_of(x), "qavgpool_grad")]
