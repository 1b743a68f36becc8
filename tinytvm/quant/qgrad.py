"""Backward kernels of the int8 ops, as TIR PrimFuncs (the rules in passes/int8_gradients.py
call them).

Gradients are float32 and taken with respect to the *integer* tensors (int8 activations and
weights, int32 biases), as the paper's training graph does: with ``W = s_W·W̄`` the gradient
of ``W̄`` is ``s_W·G_W``, which Quantization-Aware Scaling (passes/qas.py) corrects later.
Rounding is a straight-through estimator (gradient 1) and the int8 output clamp passes the
gradient only where the output is strictly inside (-128, 127): an output at a bound was (or
may have been) saturated, and for a ReLU output (``y_zero = -128``) -128 is the inactive side.

A conv's backward goes through ``g_acc``, the gradient of its int32 accumulator:
``g_acc = mask(y) · g_y · scale[o]`` (``scale`` = the float32 rescale ``M``). From it,
weight gradient ``Σ g_acc · (x - x_zero)``, bias gradient ``Σ g_acc``, input gradient the
transposed conv of ``g_acc`` with the int8 weight. Kernels read int8 tensors directly (the
padding and the ``x - x_zero`` shift are conditional reads), so no float copy of a saved
activation ever exists. Non-integer float constants are never baked in (TVM prints them with 7
digits); the pool divides by its element count, an exact integer.
"""

from __future__ import annotations

import functools

from tvm import te, tirx

from .qops import INT8_MAX, INT8_MIN, ConvGeometry


def _prim(tensors, op: str, geometry: ConvGeometry | None = None, **attrs) -> tirx.PrimFunc:
    """The PrimFunc with its "tt.op" and, for the conv kernels, the static parameters a
    replacement kernel needs (tinytvm.quant.fast): "tt.stride", "tt.padding", "tt.groups"."""
    func = te.create_prim_func(tensors).with_attr("tt.op", op)
    if geometry is not None:
        attrs = {"stride": geometry.stride, "padding": list(geometry.padding),
                 "groups": geometry.groups, **attrs}
    for key, value in attrs.items():
        func = func.with_attr(f"tt.{key}", value)
    return func


def _fixed_scale(multiplier: tirx.PrimExpr, shift: tirx.PrimExpr, extra: int = 0):
    """float32 ``multiplier * 2**(-31 - shift + extra)``: the real scale of a fixed-point
    (multiplier, shift) pair (``qops.real_scale``), for a gradient (the multiplier rounded to
    24 bits is plenty there)."""
    exponent = tirx.const(extra - 31, "int32") - shift
    return tirx.ldexp(multiplier.astype("float32"), exponent)


def _inside(value) -> tirx.PrimExpr:
    """An int8 output that did not saturate (its gradient passes)."""
    return tirx.all(value > tirx.const(INT8_MIN, "int8"), value < tirx.const(INT8_MAX, "int8"))


def _packed_bytes(shape) -> int:
    count = 1
    for s in shape:
        count *= int(s)
    return (count + 7) // 8


@functools.cache
def pack_mask(shape: tuple[int, ...]) -> tirx.PrimFunc:
    """``y int8 -> mask uint8 ((N + 7) / 8,)``: bit k of the flattened ``y`` is set where the
    output did not saturate — all the backward of a layer whose weight is frozen needs of its
    output, at one eighth of the bytes (passes/pack_saved_masks.py)."""
    n = 1
    for s_ in shape:
        n *= int(s_)
    y = te.placeholder(shape, "int8", "y")

    def element(k):
        idx, rest = [], k
        for size in reversed(shape):
            idx.append(tirx.floormod(rest, int(size)))
            rest = tirx.floordiv(rest, int(size))
        return y[tuple(reversed(idx))]

    def byte(i):
        total = tirx.const(0, "int32")
        for bit in range(8):
            k = i * 8 + bit
            hit = tirx.all(k < n, _inside(element(tirx.min(k, n - 1))))
            total = total + tirx.if_then_else(hit, tirx.const(1 << bit, "int32"), 0)
        return total.astype("uint8")

    mask = te.compute((_packed_bytes(shape),), byte, name="mask")
    return _prim([y, mask], "pack_mask")


def _elementwise_in(func: tirx.PrimFunc) -> tirx.PrimFunc:
    """Mark a masked kernel element-wise in its gradient input (TVM's op pattern kBroadcast,
    which the bit-extracting mask index hides from AnnotateTIROpPattern): its output may be
    written over ``g_y`` when ``g_y`` dies there (tinytvm.aot reuses only a same-shaped,
    same-dtype input, and ``g_y`` is the only one)."""
    return func.with_attr("op_pattern", 1)


def _saturation_test(shape, masked: bool):
    """(placeholder, inside(idx)): the forward output ``y`` itself, or its packed mask."""
    if not masked:
        y = te.placeholder(shape, "int8", "y")
        return y, lambda idx: _inside(y[idx])
    mask = te.placeholder((_packed_bytes(shape),), "uint8", "mask")

    def inside(idx):
        flat = 0
        for axis, size in zip(idx, shape):
            flat = flat * int(size) + axis
        bits = mask[tirx.shift_right(flat, 3)].astype("int32")
        return tirx.bitwise_and(tirx.shift_right(bits, tirx.bitwise_and(flat, 7)), 1) != 0

    return mask, inside


@functools.cache
def accumulator_grad(out_channels: int, out_hw: tuple[int, int], y_dtype: str,
                     flat: bool, requant: str = "float32", masked: bool = False
                     ) -> tirx.PrimFunc:
    """``(y, g_y, scale) -> g_acc`` (1, O, Ho, Wo) float32; ``flat``: y and g_y are (1, O).

    ``y_dtype`` float32 (dequantized logits) has no clamp, so no mask. ``requant="fixed"``:
    ``(y, g_y, multiplier, shift) -> g_acc``, the scale being ``qops.real_scale``'s.
    ``masked``: the first input is ``pack_mask(y)`` instead of ``y``."""
    ho, wo = out_hw
    y_shape = (1, out_channels) if flat else (1, out_channels, ho, wo)
    if y_dtype == "float32":
        y = te.placeholder(y_shape, y_dtype, "y")
    else:
        y, inside = _saturation_test(y_shape, masked)
    g = te.placeholder(y_shape, "float32", "g_y")
    if requant == "fixed":
        multiplier = te.placeholder((out_channels,), "int32", "multiplier")
        shift = te.placeholder((out_channels,), "int32", "shift")
        scale_params = [multiplier, shift]

        def scale_of(o):
            return _fixed_scale(multiplier[o], shift[o])
    else:
        scale = te.placeholder((out_channels,), "float32", "scale")
        scale_params = [scale]

        def scale_of(o):
            return scale[o]

    def at(t, n, o, i, j):
        return t[n, o] if flat else t[n, o, i, j]

    def body(n, o, i, j):
        value = at(g, n, o, i, j) * scale_of(o)
        if y_dtype == "float32":
            return value
        idx = (n, o) if flat else (n, o, i, j)
        return tirx.if_then_else(inside(idx), value, tirx.const(0.0, "float32"))

    g_acc = te.compute((1, out_channels, ho, wo), body, name="g_acc")
    op = "qconv2d_acc_grad_masked" if masked else "qconv2d_acc_grad"
    func = _prim([y, g, *scale_params, g_acc], op, flat=int(flat), requant=requant)
    return _elementwise_in(func) if masked else func


def _x_shifted(x, g: ConvGeometry, x_zero: int, c, row, col):
    """``x - x_zero`` as float32 at an input position, 0 in the padding."""
    h, w = g.in_hw
    value = x[0, c, row, col].astype("int32") - x_zero
    inside = tirx.all(row >= 0, row < h, col >= 0, col < w)
    return tirx.if_then_else(inside, value, 0).astype("float32")


@functools.cache
def weight_grad(g: ConvGeometry, x_zero: int, rows: int | None = None) -> tirx.PrimFunc:
    """``(x int8, g_acc) -> dW`` float32 (rows, C/groups, kh, kw): the first ``rows`` output
    channels only (default all): a partial-channel update never computes the rest."""
    rows = g.out_channels if rows is None else rows
    cin, opg = g.in_channels // g.groups, g.out_channels // g.groups
    (kh, kw), s, (ph, pw) = g.kernel, g.stride, g.padding
    ho, wo = g.out_hw
    x = te.placeholder(g.x_shape, "int8", "x")
    g_acc = te.placeholder(g.y_shape, "float32", "g_acc")
    i = te.reduce_axis((0, ho), "i")
    j = te.reduce_axis((0, wo), "j")

    def body(o, c, ky, kx):
        channel = o // opg * cin + c if g.groups > 1 else c
        shifted = _x_shifted(x, g, x_zero, channel, i * s + ky - ph, j * s + kx - pw)
        return te.sum(g_acc[0, o, i, j] * shifted, axis=[i, j])

    dw = te.compute((rows, cin, kh, kw), body, name="d_weight")
    return _prim([x, g_acc, dw], "qconv2d_weight_grad", g, x_zero=x_zero)


@functools.cache
def bias_grad(out_channels: int, out_hw: tuple[int, int]) -> tirx.PrimFunc:
    """``g_acc -> db`` float32 (O,)."""
    ho, wo = out_hw
    g_acc = te.placeholder((1, out_channels, ho, wo), "float32", "g_acc")
    i = te.reduce_axis((0, ho), "i")
    j = te.reduce_axis((0, wo), "j")
    db = te.compute((out_channels,), lambda o: te.sum(g_acc[0, o, i, j], axis=[i, j]),
                    name="d_bias")
    return _prim([g_acc, db], "qconv2d_bias_grad")


@functools.cache
def data_grad(g: ConvGeometry) -> tirx.PrimFunc:
    """``(g_acc, weight int8) -> dx`` float32 (1, C, H, W): the transposed conv, as a gather
    (each input position sums the outputs it fed), so nothing is dilated or padded."""
    cin, opg = g.in_channels // g.groups, g.out_channels // g.groups
    (kh, kw), s, (ph, pw) = g.kernel, g.stride, g.padding
    ho, wo = g.out_hw
    g_acc = te.placeholder(g.y_shape, "float32", "g_acc")
    weight = te.placeholder(g.w_shape, "int8", "weight")
    r = te.reduce_axis((0, opg), "r")
    ky = te.reduce_axis((0, kh), "ky")
    kx = te.reduce_axis((0, kw), "kx")

    def body(n, c, h, w):
        o = c // cin * opg + r if g.groups > 1 else r
        row, col = h + ph - ky, w + pw - kx
        hit = tirx.all(row >= 0, col >= 0, row < ho * s, col < wo * s)
        if s > 1:
            hit = tirx.all(hit, tirx.floormod(row, s) == 0, tirx.floormod(col, s) == 0)
        i, j = tirx.floordiv(row, s), tirx.floordiv(col, s)
        term = g_acc[0, o, i, j] * weight[o, c % cin, ky, kx].astype("float32")
        return te.sum(tirx.if_then_else(hit, term, tirx.const(0.0, "float32")), axis=[r, ky, kx])

    dx = te.compute(g.x_shape, body, name="d_x")
    return _prim([g_acc, weight, dx], "qconv2d_data_grad", g)


@functools.cache
def add_grad(shape: tuple[int, ...], operand: int, requant: str = "float32",
             masked: bool = False) -> tirx.PrimFunc:
    """``(y int8, g_y, scales) -> d_operand`` float32: ``mask(y) · g_y · s_operand / s_out``
    for operand 0 (a, scale ``scales[0]``) or 1 (b, ``scales[1]``); see ``qops.qadd``.
    ``requant="fixed"``: ``scales`` is ``qadd_fixed``'s int32 qparams and the factor
    ``2**20 · M_operand · M_out`` (its left shift and two multipliers)."""
    y, inside = _saturation_test(shape, masked)
    g = te.placeholder(shape, "float32", "g_y")
    fixed = requant == "fixed"
    scales = te.placeholder((6,) if fixed else (3,), "int32" if fixed else "float32", "scales")

    def body(*idx):
        if fixed:
            m_in = _fixed_scale(scales[2 * operand], scales[2 * operand + 1])
            value = g[idx] * (m_in * _fixed_scale(scales[4], scales[5], extra=20))
        else:
            value = g[idx] * scales[operand] / scales[2]
        return tirx.if_then_else(inside(idx), value, tirx.const(0.0, "float32"))

    d = te.compute(shape, body, name="d_operand")
    op = "qadd_grad_masked" if masked else "qadd_grad"
    func = _prim([y, g, scales, d], op, operand=operand, requant=requant)
    return _elementwise_in(func) if masked else func


@functools.cache
def avgpool_grad(channels: int, hw: tuple[int, int]) -> tirx.PrimFunc:
    """``g_y (1, C, 1, 1) -> dx`` (1, C, H, W) float32: ``g_y / (H·W)`` everywhere."""
    h, w = hw
    g = te.placeholder((1, channels, 1, 1), "float32", "g_y")
    count = tirx.const(float(h * w), "float32")  # an integer: printed exactly
    dx = te.compute((1, channels, h, w), lambda n, c, i, j: g[n, c, 0, 0] / count, name="d_x")
    return _prim([g, dx], "qavgpool_grad")
