"""Update kernels for integer weights: how an SGD step lands in an int8 weight or int32 bias.

An SGD step in integer units is mostly far below one unit (QAS makes it fp32's step, and fp32
steps are ~1e-3 of a weight), so *how* it is stored decides whether int8 training learns at
all. Three ways, all saturating, chosen by `TrainConfig.int8_update` and compared by
benchmarks/int8_training.py:

- "master": a float32 copy of the trained rows (optimizer state, 4 B per element, counted in
  the memory report as trainable SRAM) takes the step; the integer weight is its rounding.
  Small steps accumulate: the master is the paper's original float parameter.
- "round": w ← sat(w − rint(step)): no extra memory; steps under half a unit vanish.
- "stochastic": w ← sat(w − floor(step + u)), u uniform in [0, 1) from a counter-based hash
  of (element, step counter, weight): unbiased in expectation, no extra memory but a 4-byte
  counter; identical on host and device (integer arithmetic only).

int32 biases follow the same scheme: their unit s_x·s_W is small, but so is a bias step
(measured on the paper's MobileNetV2: often below half a unit), so rounding loses them too.
The subtraction is exact (int64) and saturates to the weight's type. All kernels cover the
leading `rows` output channels (partial-channel update) and copy the rest, so each is
element-wise in the weight and may run in place.
"""

from __future__ import annotations

import functools

from tvm import te, tirx
from tvm.script import tirx as T

from .qops import ConvGeometry

INT8_MIN, INT8_MAX = -128, 127
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
STEP_LIMIT = 2**40  # float -> int64 casts clamp here first (beyond any int32 step or value)
ROUNDINGS = ("master", "round", "stochastic")


LIMITS = {"int8": (INT8_MIN, INT8_MAX), "int32": (INT32_MIN, INT32_MAX)}


def _f(v) -> tirx.PrimExpr:
    return tirx.const(float(v), "float32")


def _as_int64(value: tirx.PrimExpr) -> tirx.PrimExpr:
    """An integral float32 as int64, clamped first so the cast is defined."""
    return tirx.max(tirx.min(value, _f(STEP_LIMIT)), _f(-STEP_LIMIT)).astype("int64")


def _saturate(value: tirx.PrimExpr, dtype: str) -> tirx.PrimExpr:
    """An int64 value saturated to int8 / int32."""
    low, high = (tirx.const(v, "int64") for v in LIMITS[dtype])
    return tirx.max(tirx.min(value, high), low).astype(dtype)


def _rows_update(weight_shape, rows: int, dtype: str, inputs, new_value, op: str):
    """``(w, *inputs) -> w_new``: ``new_value(w, o, *r)`` on rows ``o < rows``, ``w`` elsewhere."""
    if dtype not in LIMITS:
        raise ValueError(f"integer updates are for int8 / int32 weights, not {dtype}")
    w = te.placeholder(weight_shape, dtype, "w")
    out = te.compute(weight_shape, lambda o, *r: tirx.if_then_else(
        o < rows, new_value(w, o, *r), w[(o, *r)]), name="w_new")
    return te.create_prim_func([w, *inputs, out]).with_attr("tt.op", op)


def _rows_input(weight_shape, rows: int, name: str):
    return te.placeholder((rows, *weight_shape[1:]), "float32", name)


@functools.cache
def requantize_rows(weight_shape: tuple[int, ...], rows: int, dtype: str = "int8"
                    ) -> tirx.PrimFunc:
    """``(w, master f32 (rows, ...)) -> w_new``: the rounded, saturated master."""
    master = _rows_input(weight_shape, rows, "master")
    return _rows_update(weight_shape, rows, dtype, [master], lambda w, o, *r: _saturate(
        _as_int64(tirx.nearbyint(master[(o, *r)])), dtype), "requantize_rows")


@functools.cache
def subtract_round(weight_shape: tuple[int, ...], rows: int, dtype: str) -> tirx.PrimFunc:
    """``(w, step f32 (rows, ...)) -> w_new = sat(w - rint(step))``."""
    step = _rows_input(weight_shape, rows, "step")
    return _rows_update(weight_shape, rows, dtype, [step], lambda w, o, *r: _saturate(
        w[(o, *r)].astype("int64") - _as_int64(tirx.nearbyint(step[(o, *r)])), dtype),
        "subtract_round")


def _hash(index: tirx.PrimExpr, counter: tirx.PrimExpr, salt: int) -> tirx.PrimExpr:
    """A uint32 mix of (element, step, weight) (murmur3's finalizer): cheap and good enough to
    drive rounding; integer-only, so host and device agree bit for bit."""
    u32 = "uint32"
    h = (index.astype(u32) * tirx.const(0x9E3779B1, u32)
         + counter.astype(u32) * tirx.const(0x85EBCA77, u32) + tirx.const(salt & 0xFFFFFFFF, u32))
    for shift, mult in ((16, 0x85EBCA6B), (13, 0xC2B2AE35)):
        h = tirx.bitwise_xor(h, tirx.shift_right(h, tirx.const(shift, u32)))
        h = h * tirx.const(mult, u32)
    return tirx.bitwise_xor(h, tirx.shift_right(h, tirx.const(16, u32)))


@functools.cache
def subtract_stochastic(weight_shape: tuple[int, ...], rows: int, dtype: str,
                        salt: int) -> tirx.PrimFunc:
    """``(w, step f32 (rows, ...), counter int32 (1,)) -> sat(w - floor(step + u))``."""
    step = _rows_input(weight_shape, rows, "step")
    counter = te.placeholder((1,), "int32", "counter")

    def new_value(w, o, *r):
        flat = o
        for axis, size in zip(r, weight_shape[1:]):
            flat = flat * int(size) + axis
        bits = tirx.shift_right(_hash(flat, counter[0], salt), tirx.const(8, "uint32"))
        u = tirx.ldexp(bits.astype("float32"), tirx.const(-24, "int32"))  # exact: 24 bits
        rounded = _as_int64(tirx.floor(step[(o, *r)] + u))
        return _saturate(w[(o, *r)].astype("int64") - rounded, dtype)

    prim = _rows_update(weight_shape, rows, dtype, [step, counter], new_value,
                        "subtract_stochastic")
    return prim.with_attr("tt.salt", int(salt))  # FuseGradientUpdate keeps the same stream


# --- in-place gradient application: weight gradient and update in one kernel ----------------


@functools.cache
def weight_grad_update(g: ConvGeometry, x_zero: int, rows: int, rounding: str, dtype: str,
                       lr: float, salt: int = 0) -> tirx.PrimFunc:
    """The weight gradient of a conv (``qgrad.weight_grad``), its QAS factor, the learning
    rate and the update, per weight element, in one kernel: the gradient never exists as a
    tensor (each element's sum lives in a one-element accumulator and is applied at once).

    rounding "round" / "stochastic": ``(x, g_acc, w, factor[, counter]) -> w_new`` (int8,
    element-wise in ``w``: runs in place); "master": ``(x, g_acc, master, factor) ->
    master_new`` (float32, in place; the int8 weight is then ``requantize_rows`` of it).
    ``factor`` float32 (rows, 1, 1, 1) is the QAS scale (ones without QAS); the step is
    ``(grad * factor[o]) * lr``, the same two products, in the same order, as the unfused
    graph computes."""
    from .qgrad import _x_shifted

    cin, opg = g.in_channels // g.groups, g.out_channels // g.groups
    (kh, kw), s, (ph, pw) = g.kernel, g.stride, g.padding
    ho, wo = g.out_hw
    w_shape = (g.out_channels, cin, kh, kw)
    rows_shape = (rows, cin, kh, kw)
    target_shape, target_dtype = (rows_shape, "float32") if rounding == "master" else (
        w_shape, dtype)
    rate = tirx.const(float(lr), "float32")
    attrs = {"tt.op": "weight_grad_update", "tt.rounding": rounding,
             # what tinytvm.quant.fast needs to call the same computation in C
             "tt.stride": s, "tt.padding": [ph, pw], "tt.groups": g.groups,
             "tt.x_zero": int(x_zero), "tt.lr": float(lr), "tt.salt": int(salt)}

    def channel(o, c):
        return o // opg * cin + c if g.groups > 1 else c

    def new_value(old, step, counter, flat):
        if rounding == "master":
            return old - step
        if rounding == "round":
            rounded = _as_int64(tirx.nearbyint(step))
        else:
            bits = tirx.shift_right(_hash(flat, counter[0], salt), tirx.const(8, "uint32"))
            u = tirx.ldexp(bits.astype("float32"), tirx.const(-24, "int32"))
            rounded = _as_int64(tirx.floor(step + u))
        return _saturate(old.astype("int64") - rounded, dtype)

    def shifted(x, vo, vc, vy, vx, i, j):
        return _x_shifted(x, g, x_zero, channel(vo, vc), i * s + vy - ph, j * s + vx - pw)

    def update(w, vo, vc, vy, vx, total, factor, counter):
        flat = ((vo * cin + vc) * kh + vy) * kw + vx
        return new_value(w[vo, vc, vy, vx], total * factor[vo, 0, 0, 0] * rate, counter, flat)

    factor_shape = (rows, 1, 1, 1)
    # Two signatures (with / without the rounding counter); TVMScript cannot share the loops.
    if rounding == "stochastic":
        @T.prim_func(private=True, s_tir=True)
        def kernel(x: T.Buffer(g.x_shape, "int8"), g_acc: T.Buffer(g.y_shape, "float32"),
                   w: T.Buffer(target_shape, target_dtype),
                   factor: T.Buffer(factor_shape, "float32"), counter: T.Buffer((1,), "int32"),
                   w_new: T.Buffer(target_shape, target_dtype)):
            T.func_attr(attrs)
            for o, c, ky, kx in T.grid(target_shape[0], cin, kh, kw):
                with T.sblock("w_new"):
                    vo, vc, vy, vx = T.axis.remap("SSSS", [o, c, ky, kx])
                    acc = T.sblock_alloc_buffer((1,), "float32")
                    if vo < rows:
                        acc[0] = T.float32(0)
                        for i, j in T.grid(ho, wo):
                            acc[0] = acc[0] + g_acc[0, vo, i, j] * shifted(x, vo, vc, vy, vx, i,
                                                                           j)
                        w_new[vo, vc, vy, vx] = update(w, vo, vc, vy, vx, acc[0], factor, counter)
                    else:
                        w_new[vo, vc, vy, vx] = w[vo, vc, vy, vx]
        return kernel

    @T.prim_func(private=True, s_tir=True)
    def kernel(x: T.Buffer(g.x_shape, "int8"), g_acc: T.Buffer(g.y_shape, "float32"),
               w: T.Buffer(target_shape, target_dtype),
               factor: T.Buffer(factor_shape, "float32"),
               w_new: T.Buffer(target_shape, target_dtype)):
        T.func_attr(attrs)
        for o, c, ky, kx in T.grid(target_shape[0], cin, kh, kw):
            with T.sblock("w_new"):
                vo, vc, vy, vx = T.axis.remap("SSSS", [o, c, ky, kx])
                acc = T.sblock_alloc_buffer((1,), "float32")
                if vo < rows:
                    acc[0] = T.float32(0)
                    for i, j in T.grid(ho, wo):
                        acc[0] = acc[0] + g_acc[0, vo, i, j] * shifted(x, vo, vc, vy, vx, i, j)
                    w_new[vo, vc, vy, vx] = update(w, vo, vc, vy, vx, acc[0], factor, None)
                else:
                    w_new[vo, vc, vy, vx] = w[vo, vc, vy, vx]
    return kernel
