"""fp32 kernels for the frozen prefix: a MobileNet block's 1x1 expansion fused with its
depthwise conv, and the in-place depthwise — the int8 tricks (tinytvm/quant/fuse_expand.py,
tinytvm/quant/inplace.py) for float32 graphs.

Each computes ``clip(conv(x, W) + b, lo, hi)`` per layer exactly as the legalized Relax ops do
(TOPI's conv2d sums over (in channel, ky, kx) from 0.0 and multiplies padded taps as 0.0; then
the bias add; then ``max(min(v, hi), lo)``), so the results are bit-identical; the clip bounds
are float32 immediates that TVM's C printer writes the same way in both. Channel by channel
through a one-plane float32 scratch: the expanded tensor never exists, and the depthwise output
may overwrite its input (attribute ``"tt.inplace_input"``).
"""

from __future__ import annotations

import functools

from tvm import tirx
from tvm.script import tirx as T

from .quant.inplace import INPLACE_ATTR
from .quant.qops import ConvGeometry

Clip = tuple[float, float] | None


def _clip(value, bounds: Clip):
    if bounds is None:
        return value
    lo, hi = bounds
    return tirx.max(tirx.min(value, tirx.const(hi, "float32")), tirx.const(lo, "float32"))


def _tap(x, g: ConvGeometry, c, row, col):
    h, w = g.in_hw
    inside = tirx.all(row >= 0, row < h, col >= 0, col < w)
    return tirx.if_then_else(inside, x[0, c, row, col], tirx.const(0.0, "float32"))


@functools.cache
def expand_depthwise_fp32(expand: ConvGeometry, depthwise: ConvGeometry, clip1: Clip,
                          clip2: Clip) -> tirx.PrimFunc:
    """``(x, w1, b1, w2, b2) -> y``: ``clip2(dw(clip1(x * w1 + b1)) + b2)`` per channel."""
    cin, e = expand.in_channels, expand.out_channels
    h, w = expand.in_hw
    (kh, kw), (ph, pw), s = depthwise.kernel, depthwise.padding, depthwise.stride
    ho, wo = depthwise.out_hw
    attrs = {"tt.op": "expand_depthwise_fp32"}

    def plane_tap(plane, row, col):
        inside = tirx.all(row >= 0, row < h, col >= 0, col < w)
        return tirx.if_then_else(inside, plane[row, col], tirx.const(0.0, "float32"))

    @T.prim_func(private=True, s_tir=True)
    def kernel(x: T.Buffer(expand.x_shape, "float32"), w1: T.Buffer(expand.w_shape, "float32"),
               b1: T.Buffer((e,), "float32"), w2: T.Buffer(depthwise.w_shape, "float32"),
               b2: T.Buffer((e,), "float32"), y: T.Buffer(depthwise.y_shape, "float32")):
        T.func_attr(attrs)
        plane = T.alloc_buffer((h, w), "float32")
        for c in range(e):
            for i, j in T.grid(h, w):
                with T.sblock("expand"):
                    vc, vi, vj = T.axis.remap("SSS", [c, i, j])
                    acc = T.sblock_alloc_buffer((1,), "float32")
                    acc[0] = T.float32(0)
                    for rc in range(cin):
                        acc[0] = acc[0] + x[0, rc, vi, vj] * w1[vc, rc, 0, 0]
                    plane[vi, vj] = _clip(acc[0] + b1[vc], clip1)
            for i, j in T.grid(ho, wo):
                with T.sblock("depthwise"):
                    vc, vi, vj = T.axis.remap("SSS", [c, i, j])
                    acc2 = T.sblock_alloc_buffer((1,), "float32")
                    acc2[0] = T.float32(0)
                    for ry, rx in T.grid(kh, kw):
                        acc2[0] = acc2[0] + plane_tap(plane, vi * s + ry - ph, vj * s + rx - pw) * (
                            w2[vc, 0, ry, rx])
                    y[0, vc, vi, vj] = _clip(acc2[0] + b2[vc], clip2)

    return kernel


@functools.cache
def depthwise_inplace_fp32(g: ConvGeometry, clip: Clip) -> tirx.PrimFunc:
    """``(x, w, b) -> y = clip(dw(x) + b)``, channel by channel; y may overwrite x."""
    c_count = g.in_channels
    (kh, kw), (ph, pw), s = g.kernel, g.padding, g.stride
    ho, wo = g.out_hw
    attrs = {"tt.op": "depthwise_fp32", INPLACE_ATTR: 0}

    @T.prim_func(private=True, s_tir=True)
    def kernel(x: T.Buffer(g.x_shape, "float32"), weight: T.Buffer(g.w_shape, "float32"),
               bias: T.Buffer((c_count,), "float32"), y: T.Buffer(g.y_shape, "float32")):
        T.func_attr(attrs)
        plane = T.alloc_buffer((ho, wo), "float32")
        for c in range(c_count):
            for i, j in T.grid(ho, wo):
                with T.sblock("plane"):
                    vc, vi, vj = T.axis.remap("SSS", [c, i, j])
                    acc = T.sblock_alloc_buffer((1,), "float32")
                    acc[0] = T.float32(0)
                    for ry, rx in T.grid(kh, kw):
                        acc[0] = acc[0] + _tap(x, g, vc, vi * s + ry - ph, vj * s + rx - pw) * (
                            weight[vc, 0, ry, rx])
                    plane[vi, vj] = _clip(acc[0] + bias[vc], clip)
            for i, j in T.grid(ho, wo):
                with T.sblock("store"):
                    vc, vi, vj = T.axis.remap("SSS", [c, i, j])
                    y[0, vc, vi, vj] = plane[vi, vj]

    return kernel
