"""int8 inference kernels as TIR PrimFuncs, with the paper models' exact semantics.

Each builder returns a private PrimFunc whose buffer parameters are the kernel's inputs then
its output (the order `relax.call_tir` passes them), with the attribute ``"tt.op"`` naming the
op (gradient rules key on it) and ``"tt.*"`` attributes holding its static parameters. The
semantics are those of ``tinytvm.models.paper`` (see its docstring), bit for bit:

- ``qconv2d``: ``acc = conv(x - x_zero, weight)`` in int32, the padding read as ``x_zero``
  (a conditional read: no padded copy); ``y = clamp(rint((f32(acc) + f32(bias[o])) *
  scale[o]) + y_zero, -128, 127)``, the sum and the product in float32.
- ``qclassifier``: the same 1x1 conv over a pooled (1, C, 1, 1) input, written as (1, O).
- ``qadd``: ``clamp(rint(((f32(b) - zb) * sb + (f32(a) - za) * sa) / so) + zo)``, float32,
  a true division; ``(sa, sb, so)`` come in a float32[3] tensor.
- ``qavgpool``: global average, round half to even of ``sum / (H*W)`` in exact integers.

How the C comes out (checked by the tests on the generated source): ``rint`` is TIR's
``nearbyint``, documented as rounding in the current rounding mode (nearest even by default),
which TVM 0.27's C backend prints as ``nearbyintf`` (``tirx.round`` happens to print the same;
``roundf``, half away from zero, never appears). arm-none-eabi-gcc -O2 for the Cortex-M7
(fpv5) inlines it as ``VRINTR``, which rounds by FPSCR: nearest even after reset. Float
immediates are printed with 7 significant digits (``1.234568e-01f``), so every non-integer
float (``scale``, the add's scales) is a tensor read, never a constant; the only float
constants are zero points and clamp bounds, which are small integers and exact. Each output
element sums into a one-element local accumulator, so no kernel has a temporary larger than
4 bytes on the stack.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import tvm
from tvm import tirx
from tvm.script import tirx as T

from ..models import paper

INT8_MIN, INT8_MAX = -128, 127
ROUNDING_INTRINSIC = "nearbyintf"  # what tirx.nearbyint prints as in TVM's C output


@dataclass(frozen=True)
class ConvGeometry:
    """Static shape of an int8 conv: NCHW input (batch 1), OIHW weight (I = C / groups)."""

    in_channels: int
    in_hw: tuple[int, int]
    out_channels: int
    kernel: tuple[int, int]
    stride: int = 1
    padding: tuple[int, int] = (0, 0)
    groups: int = 1

    def __post_init__(self):
        c, o, g = self.in_channels, self.out_channels, self.groups
        if g < 1 or c % g or o % g:
            raise ValueError(f"groups {g} must divide in_channels {c} and out_channels {o}")
        if self.stride < 1 or min(self.padding) < 0 or min(self.kernel) < 1:
            raise ValueError(f"bad stride {self.stride} / padding {self.padding} / kernel "
                             f"{self.kernel}")
        if min(self.out_hw) < 1:
            raise ValueError(f"input {self.in_hw} is smaller than the kernel {self.kernel}")

    @classmethod
    def of(cls, x_shape, w_shape, stride=1, padding=(0, 0), groups=1) -> ConvGeometry:
        """From an int8 input shape (1, C, H, W) and a weight shape (O, C / groups, kh, kw)."""
        n, c, h, w = (int(s) for s in x_shape)
        o, i, kh, kw = (int(s) for s in w_shape)
        if n != 1:
            raise ValueError(f"batch must be 1, got input shape {tuple(x_shape)}")
        if i * groups != c:
            raise ValueError(f"weight {tuple(w_shape)} with groups {groups} does not take "
                             f"{c} input channels")
        return cls(c, (h, w), o, (kh, kw), int(stride), _pair(padding), int(groups))

    @classmethod
    def of_kernel(cls, attrs, x_shape, w_shape) -> ConvGeometry:
        """From a conv kernel's ``"tt.stride"`` / ``"tt.padding"`` / ``"tt.groups"`` attributes
        (what the kernels of this package and their gradients carry) and its buffer shapes."""
        return cls.of(x_shape, w_shape, int(attrs["tt.stride"]),
                      tuple(int(p) for p in attrs["tt.padding"]), int(attrs["tt.groups"]))

    @property
    def out_hw(self) -> tuple[int, int]:
        return tuple((s + 2 * p - k) // self.stride + 1
                     for s, k, p in zip(self.in_hw, self.kernel, self.padding))

    @property
    def x_shape(self) -> tuple[int, ...]:
        return (1, self.in_channels, *self.in_hw)

    @property
    def w_shape(self) -> tuple[int, ...]:
        return (self.out_channels, self.in_channels // self.groups, *self.kernel)

    @property
    def y_shape(self) -> tuple[int, ...]:
        return (1, self.out_channels, *self.out_hw)


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _f32(v) -> tirx.PrimExpr:
    """A float32 immediate; only for small integers (zero points, bounds), which C prints exactly."""
    if float(v) != int(v) or abs(int(v)) > 2**20:
        raise ValueError(f"{v} would not survive TVM's 7-digit float printing; pass it as a tensor")
    return tirx.const(float(v), "float32")


def _requantize(value: tirx.PrimExpr, zero: int) -> tirx.PrimExpr:
    """int8 ``clamp(rint(value) + zero)``; the sum and the clamp in float32 (exact: below
    2**24 the sum is exact, beyond it the clamp gives the same bound either way)."""
    shifted = tirx.nearbyint(value) + _f32(zero)
    clamped = tirx.max(tirx.min(shifted, _f32(INT8_MAX)), _f32(INT8_MIN))
    return clamped.astype("int8")


@functools.cache  # PrimFuncs are immutable; parsing TVMScript costs ~40 ms a kernel
def _conv(g: ConvGeometry, x_zero: int, y_zero: int, op: str, flat: bool,
          out_dtype: str = "int8", requant: str = "float32") -> tirx.PrimFunc:
    """The one conv kernel behind ``qconv2d`` and ``qclassifier`` (``flat``: y is (1, O)).

    ``out_dtype`` float32: no requantization, ``y = (f32(acc) + f32(bias[o])) * scale[o]``
    (the real value when ``scale = x_scale * w_scale``): dequantized logits for the loss.
    ``requant`` "fixed" (int8 output only): params ``(x, weight, bias, multiplier, shift, y)``
    and the integer requantization of ``_fixed_conv`` (see the fixed-point section)."""
    (h, w), (kh, kw), (ph, pw), s = g.in_hw, g.kernel, g.padding, g.stride
    cin, opg = g.in_channels // g.groups, g.out_channels // g.groups
    ho, wo = g.out_hw
    o_count = g.out_channels
    y_shape = (1, o_count) if flat else g.y_shape
    attrs = {"tt.op": op, "tt.stride": s, "tt.padding": [ph, pw], "tt.groups": g.groups,
             "tt.x_zero": int(x_zero), "tt.y_zero": int(y_zero), "tt.requant": requant}

    def channel(o, rc):
        if g.groups == 1:
            return rc
        return o // opg * cin + rc if cin > 1 or opg > 1 else o

    def tap(x, o, rc, row, col):
        """``x - x_zero`` as int32, 0 in the padding (the input padded with x_zero)."""
        value = x[0, channel(o, rc), row, col].astype("int32") - x_zero
        if ph == 0 and pw == 0:
            return value
        inside = tirx.all(row >= 0, row < h, col >= 0, col < w)
        return tirx.if_then_else(inside, value, 0)

    def out(n, o, i, j):
        return (n, o) if flat else (n, o, i, j)

    def rescale(acc, bias, scale, o):
        total = acc.astype("float32") + bias[o].astype("float32")
        if out_dtype == "float32":
            return total * scale[o]
        return _requantize(total * scale[o], y_zero)

    if requant not in ("float32", "fixed"):
        raise ValueError(f"requant must be 'float32' or 'fixed', not {requant!r}")
    if requant == "fixed" and out_dtype != "int8":
        raise ValueError("fixed-point requantization writes int8 outputs only")
    if requant == "fixed":
        return _fixed_conv(g, y_zero, y_shape, attrs, tap, out)

    @T.prim_func(private=True, s_tir=True)
    def kernel(x: T.Buffer(g.x_shape, "int8"), weight: T.Buffer(g.w_shape, "int8"),
               bias: T.Buffer((o_count,), "int32"), scale: T.Buffer((o_count,), "float32"),
               y: T.Buffer(y_shape, out_dtype)):
        T.func_attr(attrs)
        for n, o, i, j in T.grid(1, o_count, ho, wo):
            with T.sblock("y"):
                vn, vo, vi, vj = T.axis.remap("SSSS", [n, o, i, j])
                acc = T.sblock_alloc_buffer((1,), "int32")
                acc[0] = 0
                for rc, ry, rx in T.grid(cin, kh, kw):
                    acc[0] = acc[0] + tap(x, vo, rc, vi * s + ry - ph, vj * s + rx - pw) * T.Cast(
                        "int32", weight[vo, rc, ry, rx])
                y[out(vn, vo, vi, vj)] = rescale(acc[0], bias, scale, vo)

    return kernel


def _fixed_conv(g: ConvGeometry, y_zero: int, y_shape, attrs, tap, out):
    """``_conv``'s kernel with integer requantization: ``y = clamp(saturate_int32(acc + bias)
    * M + y_zero)``, the product by ``_fixed_multiply`` (same loops as ``_conv``)."""
    (kh, kw), (ph, pw), s = g.kernel, g.padding, g.stride
    cin, o_count = g.in_channels // g.groups, g.out_channels
    ho, wo = g.out_hw

    @T.prim_func(private=True, s_tir=True)
    def fixed_kernel(x: T.Buffer(g.x_shape, "int8"), weight: T.Buffer(g.w_shape, "int8"),
                     bias: T.Buffer((o_count,), "int32"),
                     multiplier: T.Buffer((o_count,), "int32"),
                     shift: T.Buffer((o_count,), "int32"), y: T.Buffer(y_shape, "int8")):
        T.func_attr(attrs)
        for n, o, i, j in T.grid(1, o_count, ho, wo):
            with T.sblock("y"):
                vn, vo, vi, vj = T.axis.remap("SSSS", [n, o, i, j])
                acc = T.sblock_alloc_buffer((1,), "int32")
                acc[0] = 0
                for rc, ry, rx in T.grid(cin, kh, kw):
                    acc[0] = acc[0] + tap(x, vo, rc, vi * s + ry - ph, vj * s + rx - pw) * T.Cast(
                        "int32", weight[vo, rc, ry, rx])
                t = T.sblock_alloc_buffer((1,), "int64")
                t[0] = _saturate_int32(T.Cast("int64", acc[0]) + T.Cast("int64", bias[vo]))
                _fixed_multiply(t, multiplier[vo], shift[vo])
                y[out(vn, vo, vi, vj)] = _clamp_int8(t[0] + _i64(y_zero))

    return fixed_kernel


def qconv2d(x_shape, w_shape, *, stride: int = 1, padding=0, groups: int = 1,
            x_zero: int = 0, y_zero: int = 0) -> tirx.PrimFunc:
    """int8 conv, per-channel float32 rescale: ``(x, weight, bias, scale) -> y``.

    x int8 (1, C, H, W), weight int8 (O, C / groups, kh, kw) (zero point 0), bias int32 (O,),
    scale float32 (O,) = ``x_scale * w_scales / y_scale``, y int8 (1, O, Ho, Wo). ``padding``
    is an int or (ph, pw), filled with ``x_zero``; ``groups`` = C = O is depthwise.
    """
    g = ConvGeometry.of(x_shape, w_shape, stride, padding, groups)
    return _conv(g, int(x_zero), int(y_zero), "qconv2d", False)


def qclassifier(x_shape, w_shape, *, x_zero: int = 0, y_zero: int = 0,
                out_dtype: str = "int8") -> tirx.PrimFunc:
    """The classifier: a 1x1 ``qconv2d`` over a pooled (1, C, 1, 1) input, y int8 (1, O).

    ``out_dtype="float32"``: dequantized logits ``(acc + bias) * scale`` with ``scale =
    x_scale * w_scales`` (``y_zero`` unused) — what a training step's loss reads, so the
    logits never saturate and their gradient is that of the real-valued logits."""
    g = ConvGeometry.of(x_shape, w_shape)
    if g.in_hw != (1, 1) or g.kernel != (1, 1):
        raise ValueError(f"qclassifier takes (1, C, 1, 1) and a 1x1 weight, got {tuple(x_shape)}"
                         f" and {tuple(w_shape)}")
    if out_dtype not in ("int8", "float32"):
        raise ValueError(f"qclassifier writes int8 or float32 logits, not {out_dtype}")
    return _conv(g, int(x_zero), int(y_zero), "qclassifier", True, out_dtype)


def qadd(shape, *, a_zero: int, b_zero: int, out_zero: int) -> tirx.PrimFunc:
    """Residual int8 add: ``(a, b, scales) -> y``, all int8 ``shape`` but scales float32 (3,).

    ``scales = (sa, sb, so)``; ``a`` is the block's last conv output, ``b`` the block input:
    ``y = clamp(rint(((f32(b) - b_zero) * sb + (f32(a) - a_zero) * sa) / so) + out_zero)``.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) != 4:
        raise ValueError(f"qadd takes NCHW tensors, got shape {shape}")
    return _qadd(shape, int(a_zero), int(b_zero), int(out_zero))


@functools.cache
def _qadd(shape: tuple[int, ...], a_zero: int, b_zero: int, out_zero: int) -> tirx.PrimFunc:
    attrs = {"tt.op": "qadd", "tt.a_zero": int(a_zero), "tt.b_zero": int(b_zero),
             "tt.out_zero": int(out_zero)}

    def value(a, b, scales, idx):
        x1 = (b[idx].astype("float32") - _f32(b_zero)) * scales[1]
        x2 = (a[idx].astype("float32") - _f32(a_zero)) * scales[0]
        return _requantize((x1 + x2) / scales[2], out_zero)

    @T.prim_func(private=True, s_tir=True)
    def kernel(a: T.Buffer(shape, "int8"), b: T.Buffer(shape, "int8"),
               scales: T.Buffer((3,), "float32"), y: T.Buffer(shape, "int8")):
        T.func_attr(attrs)
        for n, c, i, j in T.grid(*shape):
            with T.sblock("y"):
                vn, vc, vi, vj = T.axis.remap("SSSS", [n, c, i, j])
                y[vn, vc, vi, vj] = value(a, b, scales, (vn, vc, vi, vj))

    return kernel


def qavgpool(x_shape) -> tirx.PrimFunc:
    """Global int8 average pool (1, C, H, W) -> (1, C, 1, 1): ``sum / (H*W)`` rounded half to
    even, in integers (the mean of int8 values stays in int8: no clamp)."""
    n_, c, h, w = (int(s) for s in x_shape)
    if n_ != 1 or h * w < 1:
        raise ValueError(f"qavgpool takes (1, C, H, W), got {tuple(x_shape)}")
    return _qavgpool(c, h, w)


@functools.cache
def _qavgpool(c: int, h: int, w: int) -> tirx.PrimFunc:
    count = h * w

    def rounded_mean(total):
        q, r = tirx.floordiv(total, count), tirx.floormod(total, count)
        up = tirx.any(r * 2 > count, tirx.all(r * 2 == count, tirx.floormod(q, 2) == 1))
        return (q + up.astype("int32")).astype("int8")

    @T.prim_func(private=True, s_tir=True)
    def kernel(x: T.Buffer((1, c, h, w), "int8"), y: T.Buffer((1, c, 1, 1), "int8")):
        T.func_attr({"tt.op": "qavgpool"})
        for n, ch in T.grid(1, c):
            with T.sblock("y"):
                vn, vc = T.axis.remap("SS", [n, ch])
                total = T.sblock_alloc_buffer((1,), "int32")
                total[0] = 0
                for i, j in T.grid(h, w):
                    total[0] = total[0] + T.Cast("int32", x[vn, vc, i, j])
                y[vn, vc, 0, 0] = rounded_mean(total[0])

    return kernel


def tt_op(func: tvm.tirx.PrimFunc) -> str | None:
    """The ``"tt.op"`` attribute of a PrimFunc (None for kernels not built here)."""
    attrs = func.attrs
    return str(attrs["tt.op"]) if attrs is not None and "tt.op" in attrs else None


# --- fixed-point requantization (TFLite / CMSIS-NN) ----------------------------------------
#
# Integer-only variants: no float anywhere in the kernel. A real multiplier M > 0 is stored as
# ``(multiplier, shift)`` int32 with ``M = multiplier * 2**-31 * 2**-shift`` (``shift`` counted
# to the right, ``paper.quantize_multiplier``; CMSIS-NN's and TFLite's ``shift`` argument is
# ``-shift``). ``x * M`` is TFLite's ``MultiplyByQuantizedMultiplier`` / CMSIS-NN's default
# (double rounding) ``arm_nn_requantize``, evaluated in int64 so that nothing overflows:
#
#     left, right = max(-shift, 0), max(shift, 0)
#     v = saturate_int32(x * 2**left)          # TFLite: x * (1 << left), in int32
#     h = SaturatingRoundingDoublingHighMul(v, multiplier)   # (v*m + nudge) / 2**31, truncated
#     result = RoundingDivideByPOT(h, right)   # half away from zero
#
# The saturation of ``x * 2**left`` (only reachable when M >= 1) replaces TFLite's int32
# wrap-around (undefined behaviour in C): wherever it bites, ``|x * M| >= 2**30`` and the int8
# clamp gives the same output as the exact product. Equal to ``paper.
# multiply_by_quantized_multiplier`` (the numpy model) whenever its int64 product does not
# overflow. ``shift`` must lie in [-31, 31] (``check_fixed_params``).

FIXED_ADD_LEFT_SHIFT = 20  # TFLite's int8 ADD: inputs shifted left by 20 before rescaling
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def _i64(v: int) -> tirx.PrimExpr:
    return tirx.const(int(v), "int64")


def _saturate_int32(v: tirx.PrimExpr) -> tirx.PrimExpr:
    return tirx.max(tirx.min(v, _i64(INT32_MAX)), _i64(INT32_MIN))


def _shifted_left(x: tirx.PrimExpr, shift: tirx.PrimExpr) -> tirx.PrimExpr:
    """``saturate_int32(x * 2**max(-shift, 0))`` (the left shift happens only for M >= 1)."""
    left = tirx.max(_i64(0) - shift.astype("int64"), _i64(0))
    return _saturate_int32(x * tirx.shift_left(_i64(1), left))


def _high_mul(v: tirx.PrimExpr, multiplier: tirx.PrimExpr) -> tirx.PrimExpr:
    """gemmlowp ``SaturatingRoundingDoublingHighMul(v, multiplier)`` in int64."""
    m = multiplier.astype("int64")
    product = v * m
    nudge = tirx.Select(product >= _i64(0), _i64(1 << 30), _i64(1 - (1 << 30)))
    high = tirx.truncdiv(product + nudge, _i64(1 << 31))
    overflow = tirx.all(v == _i64(INT32_MIN), m == _i64(INT32_MIN))
    return tirx.Select(overflow, _i64(INT32_MAX), high)


def _divide_by_pot(h: tirx.PrimExpr, shift: tirx.PrimExpr) -> tirx.PrimExpr:
    """gemmlowp ``RoundingDivideByPOT(h, max(shift, 0))``: half away from zero."""
    right = tirx.max(shift.astype("int64"), _i64(0))
    mask = tirx.shift_left(_i64(1), right) - _i64(1)
    threshold = tirx.shift_right(mask, _i64(1)) + (h < _i64(0)).astype("int64")
    up = (tirx.bitwise_and(h, mask) > threshold).astype("int64")
    return tirx.shift_right(h, right) + up


@T.macro
def _fixed_multiply(t, multiplier, shift):
    """``t[0] = t[0] * M`` (int64 one-element buffer ``t``), TFLite's double rounding: three
    statements so that the C reads each intermediate from ``t`` instead of repeating it."""
    t[0] = _shifted_left(t[0], shift)
    t[0] = _high_mul(t[0], multiplier)
    t[0] = _divide_by_pot(t[0], shift)


def _clamp_int8(value: tirx.PrimExpr) -> tirx.PrimExpr:
    return tirx.max(tirx.min(value, _i64(INT8_MAX)), _i64(INT8_MIN)).astype("int8")


def qconv2d_fixed(x_shape, w_shape, *, stride: int = 1, padding=0, groups: int = 1,
                  x_zero: int = 0, y_zero: int = 0) -> tirx.PrimFunc:
    """int8 conv, integer-only requantization: ``(x, weight, bias, multiplier, shift) -> y``.

    Shapes and padding as ``qconv2d``; ``multiplier``, ``shift`` int32 (O,) encode
    ``M[o] = x_scale * w_scales[o] / y_scale`` (``paper.quantize_multiplier``). Per output:
    ``acc = sum((x - x_zero) * w)`` in int32 (padding reads ``x_zero``), ``t =
    saturate_int32(acc + bias[o])``, ``y = clamp(t * M[o] + y_zero, -128, 127)`` with the
    product in TFLite's fixed point (section comment above). ``"tt.requant"`` is "fixed".
    """
    g = ConvGeometry.of(x_shape, w_shape, stride, padding, groups)
    return _conv(g, int(x_zero), int(y_zero), "qconv2d", False, "int8", "fixed")


def qclassifier_fixed(x_shape, w_shape, *, x_zero: int = 0, y_zero: int = 0) -> tirx.PrimFunc:
    """``qclassifier`` with int8 logits and ``qconv2d_fixed``'s parameters and arithmetic:
    ``(x (1, C, 1, 1), weight (O, C, 1, 1), bias, multiplier, shift) -> y int8 (1, O)``.
    (float32 logits keep ``qclassifier(..., out_dtype="float32")``: no requantization.)"""
    g = ConvGeometry.of(x_shape, w_shape)
    if g.in_hw != (1, 1) or g.kernel != (1, 1):
        raise ValueError(f"qclassifier takes (1, C, 1, 1) and a 1x1 weight, got {tuple(x_shape)}"
                         f" and {tuple(w_shape)}")
    return _conv(g, int(x_zero), int(y_zero), "qclassifier", True, "int8", "fixed")


def qadd_fixed(shape, *, a_zero: int, b_zero: int, out_zero: int) -> tirx.PrimFunc:
    """TFLite's int8 ADD (CMSIS-NN ``arm_elementwise_add_s8``): ``(a, b, qparams) -> y``.

    a, b, y int8 NCHW ``shape``; ``qparams`` int32 (6,) = ``(a_mult, a_shift, b_mult, b_shift,
    out_mult, out_shift)`` as ``fixed_add_params(sa, sb, so)`` makes them (``2m = 2 *
    max(sa, sb)``: ``M_a = sa / 2m``, ``M_b = sb / 2m``, ``M_out = 2m / (2**20 * so)``)::

        ta = ((a - a_zero) << 20) * M_a        # each with the fixed-point multiply above
        tb = ((b - b_zero) << 20) * M_b
        y  = clamp((ta + tb) * M_out + out_zero, -128, 127)

    Attributes ``tt.a_zero``, ``tt.b_zero``, ``tt.out_zero`` as ``qadd``; ``"tt.requant"`` is
    "fixed". Equal to ``paper._residual_add_fixed`` (``a`` = pointwise2's output, ``b`` = the
    block input) bit for bit.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) != 4:
        raise ValueError(f"qadd takes NCHW tensors, got shape {shape}")
    return _qadd_fixed(shape, int(a_zero), int(b_zero), int(out_zero))


@functools.cache
def _qadd_fixed(shape: tuple[int, ...], a_zero: int, b_zero: int,
                out_zero: int) -> tirx.PrimFunc:
    attrs = {"tt.op": "qadd", "tt.a_zero": a_zero, "tt.b_zero": b_zero,
             "tt.out_zero": out_zero, "tt.requant": "fixed"}

    def shifted(v, zero):
        return (v.astype("int64") - _i64(zero)) * _i64(1 << FIXED_ADD_LEFT_SHIFT)

    @T.prim_func(private=True, s_tir=True)
    def kernel(a: T.Buffer(shape, "int8"), b: T.Buffer(shape, "int8"),
               qparams: T.Buffer((6,), "int32"), y: T.Buffer(shape, "int8")):
        T.func_attr(attrs)
        for n, c, i, j in T.grid(*shape):
            with T.sblock("y"):
                vn, vc, vi, vj = T.axis.remap("SSSS", [n, c, i, j])
                ta = T.sblock_alloc_buffer((1,), "int64")
                tb = T.sblock_alloc_buffer((1,), "int64")
                ta[0] = shifted(a[vn, vc, vi, vj], a_zero)
                _fixed_multiply(ta, qparams[0], qparams[1])
                tb[0] = shifted(b[vn, vc, vi, vj], b_zero)
                _fixed_multiply(tb, qparams[2], qparams[3])
                ta[0] = ta[0] + tb[0]
                _fixed_multiply(ta, qparams[4], qparams[5])
                y[vn, vc, vi, vj] = _clamp_int8(ta[0] + _i64(out_zero))

    return kernel


def quantize_multiplier(real):
    """``(multiplier int32, shift int32)`` with ``real ≈ multiplier * 2**-31 * 2**-shift``
    (``paper.quantize_multiplier``, TFLite's ``QuantizeMultiplier``; shift to the right)."""
    multiplier, shift = paper.quantize_multiplier(real)
    check_fixed_params(multiplier, shift)
    return multiplier, shift


def check_fixed_params(multiplier, shift) -> None:
    """Refuse multipliers the kernels cannot apply exactly (negative, or |shift| > 31)."""
    multiplier, shift = np.asarray(multiplier), np.asarray(shift)
    if np.any(multiplier < 0) or np.any(np.abs(shift) > 31):
        raise ValueError("fixed-point scales must be >= 0 with shift in [-31, 31] "
                         f"(M in [2**-62, 2**31)); got multiplier {multiplier}, shift {shift}")


def fixed_add_params(sa: float, sb: float, so: float):
    """int32[6] ``(a_mult, a_shift, b_mult, b_shift, out_mult, out_shift)`` for
    ``qadd_fixed`` from the real scales of ``a``, ``b`` and the output (TFLite's
    ``PrepareGeneralSubOp`` / ``paper._residual_add_fixed``: ``left_shift = 20``)."""
    twice_max = 2.0 * max(float(sa), float(sb))
    parts = [quantize_multiplier(float(sa) / twice_max),
             quantize_multiplier(float(sb) / twice_max),
             quantize_multiplier(twice_max / ((1 << FIXED_ADD_LEFT_SHIFT) * float(so)))]
    return np.array([int(v) for pair in parts for v in pair], np.int32)


def real_scale(multiplier, shift):
    """float64 ``M = multiplier * 2**-31 * 2**-shift`` (elementwise): the real scale a
    ``(multiplier, shift)`` pair stands for, e.g. for gradient rules."""
    m = np.asarray(multiplier, np.float64)
    return np.ldexp(m, -31 - np.asarray(shift, np.int64))
