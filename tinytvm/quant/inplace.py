"""In-place depthwise kernels: the output overwrites the input it is computed from.

A depthwise conv's output channel c reads input channel c alone. Computed channel by channel
into a one-plane scratch, then stored at output channel c — which in memory lies within input
channels 0..c when the output starts where the input starts and is no larger per channel
(stride ≥ 1) — it never overwrites an input value still to be read. So the output can take
over the input's storage when the input dies at this kernel: the paper's in-place depthwise
(MobileNetV2-w0.35's block 0: two 64 KB tensors become one). The kernels are correct with or
without that aliasing; the PrimFunc attribute ``"tt.inplace_input"`` tells the AOT planner
which input it may alias (tinytvm.aot), and the kernel's C is emitted without ``restrict``
and without inlining its scratch away (tinytvm.lower).

- ``qdepthwise_inplace``: the forward ``qops.qconv2d`` depthwise (float32 requantization),
  same signature and bits; scratch Ho x Wo int8.
- ``depthwise_data_grad_inplace``: ``qgrad.data_grad`` of a stride-1 depthwise conv (its
  ``dx`` has ``g_acc``'s shape), same terms in the same order; scratch H x W float32.
"""

from __future__ import annotations

import functools

from tvm import tirx
from tvm.script import tirx as T

from .qops import ConvGeometry, _requantize

INPLACE_ATTR = "tt.inplace_input"


def is_depthwise(g: ConvGeometry) -> bool:
    return g.groups == g.in_channels == g.out_channels > 1


@functools.cache
def qdepthwise_inplace(g: ConvGeometry, x_zero: int, y_zero: int) -> tirx.PrimFunc:
    """``(x, weight, bias, scale) -> y`` like ``qops.qconv2d`` (depthwise), channel by channel."""
    if not is_depthwise(g):
        raise ValueError(f"{g} is not a depthwise conv")
    (h, w), (kh, kw), (ph, pw), s = g.in_hw, g.kernel, g.padding, g.stride
    ho, wo = g.out_hw
    c_count = g.in_channels
    attrs = {"tt.op": "qconv2d", "tt.stride": s, "tt.padding": [ph, pw], "tt.groups": g.groups,
             "tt.x_zero": int(x_zero), "tt.y_zero": int(y_zero), "tt.requant": "float32",
             INPLACE_ATTR: 0}

    def tap(x, c, row, col):
        value = x[0, c, row, col].astype("int32") - x_zero
        inside = tirx.all(row >= 0, row < h, col >= 0, col < w)
        return tirx.if_then_else(inside, value, 0)

    def requant(acc, bias, scale, c):
        total = acc.astype("float32") + bias[c].astype("float32")
        return _requantize(total * scale[c], y_zero)

    @T.prim_func(private=True, s_tir=True)
    def kernel(x: T.Buffer(g.x_shape, "int8"), weight: T.Buffer(g.w_shape, "int8"),
               bias: T.Buffer((c_count,), "int32"), scale: T.Buffer((c_count,), "float32"),
               y: T.Buffer(g.y_shape, "int8")):
        T.func_attr(attrs)
        plane = T.alloc_buffer((ho, wo), "int8")
        for c in range(c_count):
            for i, j in T.grid(ho, wo):
                with T.sblock("plane"):
                    vc, vi, vj = T.axis.remap("SSS", [c, i, j])
                    acc = T.sblock_alloc_buffer((1,), "int32")
                    acc[0] = 0
                    for ry, rx in T.grid(kh, kw):
                        acc[0] = acc[0] + tap(x, vc, vi * s + ry - ph, vj * s + rx - pw) * T.Cast(
                            "int32", weight[vc, 0, ry, rx])
                    plane[vi, vj] = requant(acc[0], bias, scale, vc)
            for i, j in T.grid(ho, wo):
                with T.sblock("store"):
                    vc, vi, vj = T.axis.remap("SSS", [c, i, j])
                    y[0, vc, vi, vj] = plane[vi, vj]

    return kernel


@functools.cache
def depthwise_data_grad_inplace(g: ConvGeometry) -> tirx.PrimFunc:
    """``(g_acc, weight int8) -> dx`` float32 of a stride-1 depthwise conv, channel by
    channel (``qgrad.data_grad``'s gather: terms over (ky, kx) in order, +0.0 where none)."""
    if not is_depthwise(g) or g.stride != 1 or g.out_hw != g.in_hw:
        raise ValueError(f"{g}: in-place data gradient only for stride-1, same-size depthwise")
    (h, w), (kh, kw), (ph, pw) = g.in_hw, g.kernel, g.padding
    c_count = g.in_channels
    attrs = {"tt.op": "qconv2d_data_grad", "tt.stride": 1, "tt.padding": [ph, pw],
             "tt.groups": g.groups, INPLACE_ATTR: 0}

    def term(g_acc, weight, c, row, col, ky, kx):
        hit = tirx.all(row >= 0, col >= 0, row < h, col < w)
        value = g_acc[0, c, row, col] * weight[c, 0, ky, kx].astype("float32")
        return tirx.if_then_else(hit, value, tirx.const(0.0, "float32"))

    @T.prim_func(private=True, s_tir=True)
    def kernel(g_acc: T.Buffer(g.y_shape, "float32"), weight: T.Buffer(g.w_shape, "int8"),
               dx: T.Buffer(g.x_shape, "float32")):
        T.func_attr(attrs)
        plane = T.alloc_buffer((h, w), "float32")
        for c in range(c_count):
            for i, j in T.grid(h, w):
                with T.sblock("plane"):
                    vc, vi, vj = T.axis.remap("SSS", [c, i, j])
                    acc = T.sblock_alloc_buffer((1,), "float32")
                    acc[0] = T.float32(0)
                    for ky, kx in T.grid(kh, kw):
                        acc[0] = acc[0] + term(g_acc, weight, vc, vi + ph - ky, vj + pw - kx,
                                               ky, kx)
                    plane[vi, vj] = acc[0]
            for i, j in T.grid(h, w):
                with T.sblock("store"):
                    vc, vi, vj = T.axis.remap("SSS", [c, i, j])
                    dx[0, vc, vi, vj] = plane[vi, vj]

    return kernel
