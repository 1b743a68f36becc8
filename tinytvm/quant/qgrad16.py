"""16-bit input gradients of pointwise convs: the accumulator gradient quantized per tensor.

The input gradient of a 1x1 conv, ``dx = W^T g_acc``, is a matrix product of int8 weights with
a float32 gradient: one VMLA.F32 per MAC on a Cortex-M7 at best, about twice the int8 forward
(two MACs per SMLAD). Quantizing ``g_acc`` to int16 with one scale per tensor makes it an
integer product, summed exactly in int32 by the same SMLAD loop as the forward conv:

    m      = max |g_acc|                       (over the tensor, float32)
    scale  = [m / qmax, qmax / m]              ([0, 0] when m = 0)
    q      = rint(g_acc * scale[1])            int16, |q| <= qmax
    dx     = f32(sum_o q[o, p] * W[o, c]) * scale[0]

Only the propagated gradient changes: the layer's own weight and bias gradients still read the
float32 ``g_acc``. The relative error of an element is at most 2^-16 m / |element| before the
sum (``rint`` of values up to qmax = 32767); ``qmax`` is lowered for layers with so many output
channels that ``O * 128 * qmax`` would overflow int32, so the integer sum is always exact and
the kernels may add its terms in any order (``tinytvm.quant.fast``'s SMLAD kernel does).

``q`` is laid out for the SMLAD loop (``tt_q_dot4``, the forward conv's): shape
``(ceil(P / 4), ceil(O / 4), 4, 2, 2)`` where element ``[pg, og, k, j, h]`` is
``q[o = 4 og + j + 2 h, p = 4 pg + k]`` (0 past O or P): for each group of 4 pixels, each
group of 4 channels is 8 words, one (o, o + 2) pair and one (o + 1, o + 3) pair per pixel.
"""

from __future__ import annotations

import functools

from tvm import te, tirx
from tvm.script import tirx as T

from .qgrad import _prim
from .qops import ConvGeometry

INT32_MAX = 2**31 - 1
INT16_QMAX = 32767
INT8_ABS_MAX = 128


def qmax_for(out_channels: int) -> int:
    """The largest |q| whose sum over ``out_channels`` int8 weights fits int32."""
    return min(INT16_QMAX, INT32_MAX // (INT8_ABS_MAX * out_channels))


def packed_shape(out_channels: int, pixels: int) -> tuple[int, ...]:
    return ((pixels + 3) // 4, (out_channels + 3) // 4, 4, 2, 2)


def is_pointwise(g: ConvGeometry) -> bool:
    """What the 16-bit input gradient covers: 1x1, stride 1, unpadded, groups = 1, >= 4
    pixels (a pooled 1x1 input would fill a quarter of each pixel group)."""
    return (g.kernel == (1, 1) and g.stride == 1 and g.padding == (0, 0) and g.groups == 1
            and g.out_hw[0] * g.out_hw[1] >= 4)


def _f(v) -> tirx.PrimExpr:
    return tirx.const(float(v), "float32")


@functools.cache
def grad_scale(out_channels: int, out_hw: tuple[int, int], qmax: int) -> tirx.PrimFunc:
    """``g_acc (1, O, H, W) f32 -> scale f32 (2,)``: ``[m / qmax, qmax / m]``, m = max |g_acc|
    (``[0, 0]`` for an all-zero gradient)."""
    shape = (1, out_channels, *out_hw)
    q = _f(qmax)  # an integer: printed exactly
    zero = _f(0)

    @T.prim_func(private=True, s_tir=True)
    def kernel(g_acc: T.Buffer(shape, "float32"), scale: T.Buffer((2,), "float32")):
        T.func_attr({"tt.op": "grad16_scale", "tt.qmax": qmax})
        for _ in range(1):  # a block under the root, as the schedule passes expect
            with T.sblock("scale"):
                m = T.sblock_alloc_buffer((1,), "float32")
                m[0] = zero
                for o, i, j in T.grid(*shape[1:]):
                    # |v| as max(v, -v): TVM's C backend has no lowering for fabs
                    m[0] = T.max(m[0], T.max(g_acc[0, o, i, j], -g_acc[0, o, i, j]))
                scale[0] = T.if_then_else(m[0] > zero, m[0] / q, zero)
                scale[1] = T.if_then_else(m[0] > zero, q / m[0], zero)
    return kernel


@functools.cache
def quantize(out_channels: int, out_hw: tuple[int, int]) -> tirx.PrimFunc:
    """``(g_acc (1, O, H, W) f32, scale) -> q`` int16 in the packed layout (module docstring):
    ``rint(g_acc * scale[1])``, 0 in the padding."""
    ho, wo = out_hw
    p_total = ho * wo
    g = te.placeholder((1, out_channels, ho, wo), "float32", "g_acc")
    scale = te.placeholder((2,), "float32", "scale")

    def body(pg, og, k, j, h):
        o, p = og * 4 + j + h * 2, pg * 4 + k
        inside = tirx.all(o < out_channels, p < p_total)
        oc, pc = tirx.min(o, out_channels - 1), tirx.min(p, p_total - 1)
        value = tirx.nearbyint(g[0, oc, pc // wo, pc % wo] * scale[1]).astype("int16")
        return tirx.if_then_else(inside, value, tirx.const(0, "int16"))

    q = te.compute(packed_shape(out_channels, p_total), body, name="q")
    return _prim([g, scale, q], "grad16_quantize")


@functools.cache
def data_grad(g: ConvGeometry) -> tirx.PrimFunc:
    """``(q int16 packed, scale, weight int8 (O, C, 1, 1)) -> dx`` float32 (1, C, H, W):
    ``f32(sum_o q[o, p] * W[o, c]) * scale[0]``, the sum exact in a one-element int32."""
    if not is_pointwise(g):
        raise ValueError(f"the 16-bit input gradient is for pointwise convs, not {g}")
    (ho, wo), o_total, c_total = g.out_hw, g.out_channels, g.in_channels
    q_shape = packed_shape(o_total, ho * wo)
    attrs = {"tt.op": "qconv2d_data_grad16", "tt.stride": 1, "tt.padding": [0, 0],
             "tt.groups": 1}

    def term(q, weight, c, i, j, r):
        p = i * wo + j
        return (q[p // 4, r // 4, p % 4, r % 2, r % 4 // 2].astype("int32")
                * weight[r, c, 0, 0].astype("int32"))

    @T.prim_func(private=True, s_tir=True)
    def kernel(q: T.Buffer(q_shape, "int16"), scale: T.Buffer((2,), "float32"),
               weight: T.Buffer(g.w_shape, "int8"), dx: T.Buffer(g.x_shape, "float32")):
        T.func_attr(attrs)
        for c, i, j in T.grid(c_total, ho, wo):
            with T.sblock("d_x"):
                vc, vi, vj = T.axis.remap("SSS", [c, i, j])
                acc = T.sblock_alloc_buffer((1,), "int32")
                acc[0] = 0
                for r in range(o_total):
                    acc[0] = acc[0] + term(q, weight, vc, vi, vj, r)
                dx[0, vc, vi, vj] = T.Cast("float32", acc[0]) * scale[0]
    return kernel
