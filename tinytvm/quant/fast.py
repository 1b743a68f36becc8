"""Fast int8 conv kernels: ``qops`` PrimFuncs whose body calls a hand-written C micro-kernel.

The micro-kernels live in ``runtime_c/kernels/tt_qconv.h`` (header only, static inline; a DSP
path for the Cortex-M4/M7 and a portable path for the host, bit-identical). Each builder here
returns a PrimFunc with exactly the buffer signature and the ``"tt.*"`` attributes of the
``qops`` kernel it replaces, plus ``"tt.fast"`` = the C function's name; its body is one
``T.call_extern`` (buffers as pointers, shapes and zero points as integer arguments) and, when
the micro-kernel needs scratch, one int32 buffer of ``TT_QCONV_*_SCRATCH`` bytes allocated at the
PrimFunc's root, which ``lower.prepare_kernels`` lifts to a parameter: the AOT planner places it
in the arena for the call's duration, never on the C stack.

Coverage (everything else keeps its naive ``qops`` kernel):

- ``qconv2d`` with groups = 1, any kernel, stride and padding -> ``tt_qconv_im2col``
  (1x1 pointwise convs take a 4x4 SIMD transpose fast path);
- ``qconv2d`` depthwise (groups = C = O) 3x3, stride 1 or 2, any padding -> ``tt_qconv_dw3x3``;
  5x5 and 7x7 -> ``tt_qconv_dwk``;
- ``qclassifier`` with int8 logits -> ``tt_qconv_im2col`` over a 1x1 input;
- ``qexpand_depthwise`` (fuse_expand.py), depthwise k x k with k <= 7 -> ``tt_qconv_expand_dw``;
- ``weight_grad_update`` (qupdate.py), groups = 1 or depthwise 3x3 / 5x5 / 7x7 ->
  ``tt_qgrad_update_*``;
- the ``qgrad`` backward kernels -> ``tt_qgrad.h`` (see below);
- the 16-bit input gradient of pointwise convs (``qgrad16``) -> ``tt_qgrad16.h``;
- ``pack_mask``, the masked accumulator gradient and the ``qadd`` gradients (masked or not)
  -> ``tt_qmask.h`` (``tt_qmask_*``);
- the in-place depthwise kernels (inplace.py): forward 3x3 / 5x5 / 7x7 -> ``tt_qconv_dw3x3`` /
  ``tt_qconv_dwk`` (in place as they are), stride-1 data gradient ->
  ``tt_qgrad_data_dw3x3_inplace`` / ``tt_qgrad_data_dwk_inplace`` (5x5 / 7x7).

Requires: a module whose conv kernels come from ``qops`` (``"tt.op"`` attributes).
Guarantees: every ``call_tir`` computes the same bits as before (tests/test_fast_kernels.py);
``lower.kernels_to_c`` includes ``tt_qconv.h`` when any kernel carries ``"tt.fast"``.
"""

from __future__ import annotations

import functools
import math

import tvm
from tvm import relax, s_tir, tirx
from tvm.script import tirx as T

from . import qgrad
from .inplace import INPLACE_ATTR
from .qops import ConvGeometry, qclassifier, qconv2d, tt_op

HEADER = "tt_qconv.h"
IM2COL, DW3X3, DWK = "tt_qconv_im2col", "tt_qconv_dw3x3", "tt_qconv_dwk"
DWK_SIZES = (5, 7)  # the depthwise kernel sizes of tt_qconv_dwk (3x3: tt_qconv_dw3x3)
GRAD_HEADER = "tt_qgrad.h"
ACC_S8, ACC_F32, BIAS = "tt_qgrad_acc_s8", "tt_qgrad_acc_f32", "tt_qgrad_bias"
# tt_qmask.h: the mask-testing element-wise kernels (pack_mask and the masked / qadd gradients)
PACK_MASK, ACC_MASKED = "tt_qmask_pack", "tt_qmask_acc"
ADD_MASKED, ADD_S8 = "tt_qmask_add", "tt_qmask_add_s8"
WEIGHT, WEIGHT_DW3X3 = "tt_qgrad_weight", "tt_qgrad_weight_dw3x3"
DATA, DATA_DW3X3 = "tt_qgrad_data", "tt_qgrad_data_dw3x3"
DATA_DW3X3_INPLACE = "tt_qgrad_data_dw3x3_inplace"
# depthwise k x k backward, k = 5, 7 (tt_qgrad_dw.h, generated)
WEIGHT_DWK, DATA_DWK = "tt_qgrad_weight_dwk", "tt_qgrad_data_dwk"
DATA_DWK_INPLACE = "tt_qgrad_data_dwk_inplace"
DWK_KERNELS = (5, 7)
DATA_1X1, DATA_1X1_OCH = "tt_qgrad_data_1x1", 120  # TT_QGRAD_D1X1_OCH
DATA_1X1_GT_MAXP = 16  # TT_QGRAD_D1X1_GT_MAXP: planes whose g is copied in pixel tiles
WEIGHT_PIX = 64  # TT_QGRAD_WG_PIX: TT_QGRAD_WEIGHT_SCRATCH(P) = 4 * 8 * min(P, 64) bytes
# tt_qgrad16.h: the 16-bit input gradient of pointwise convs (qgrad16.py)
GRAD16_SCALE, GRAD16_QUANTIZE = "tt_qgrad16_scale", "tt_qgrad16_quantize"
GRAD16_DATA_1X1 = "tt_qgrad16_data_1x1"
EXPAND_DW = "tt_qconv_expand_dw"
EXPAND_GROUP, EXPAND_RING_BYTES = 16, 8192  # TT_Q_EXPAND_GROUP, TT_Q_EXPAND_RING_BYTES
UPDATES = {"round": "tt_qgrad_update_round", "stochastic": "tt_qgrad_update_stochastic",
           "master": "tt_qgrad_update_master"}
UPDATE_PIX = 64  # TT_QGRAD_WU_PIX
# relax's OpPatternKind.kOpaque: a call_extern body looks element-wise to AnnotateTIROpPattern,
# which would let aot write the output over a same-shaped input (tinytvm.aot._reuse_dying_inputs)
OPAQUE = 8
# kBroadcast: what lower.elementwise_kernels (<= kBroadcast) lets tinytvm.aot run in place. Not
# kElemWise = 0: AnnotateTIROpPattern keeps only a nonzero pattern, it re-analyses a 0.
IN_PLACE_OK = 1


def im2col_scratch_bytes(g: ConvGeometry) -> int:
    """TT_QCONV_IM2COL_SCRATCH(K, pointwise): 4 pixel columns of int16, K = C*kh*kw rounded up
    to 4; other than 1x1 stride-1 unpadded convs also a tap table (int32 offset, int16 slot)."""
    k = g.in_channels * g.kernel[0] * g.kernel[1]
    pointwise = g.kernel == (1, 1) and g.stride == 1 and g.padding == (0, 0)
    return (8 if pointwise else 14) * ((k + 3) // 4 * 4)


def dw3x3_scratch_bytes(g: ConvGeometry) -> int:
    """TT_QCONV_DW3X3_SCRATCH(W, pad_w): 3 padded int16 rows of (W + 2 pad_w + 3) // 2 * 2."""
    return 6 * ((g.in_hw[1] + 2 * g.padding[1] + 3) // 2 * 2)


def dwk_scratch_bytes(g: ConvGeometry) -> int:
    """TT_QCONV_DWK_SCRATCH(W, k, pad_w): one channel's packed weights (2 k (k + 1) / 2 words)
    and a ring of k padded int16 rows of (W + 2 pad_w + 8) // 2 * 2 (slack for a last group of
    4 outputs)."""
    k = g.kernel[0]
    return 8 * k * ((k + 1) // 2) + 2 * k * ((g.in_hw[1] + 2 * g.padding[1] + 8) // 2 * 2)


def fast_kernel_name(g: ConvGeometry) -> str | None:
    """The micro-kernel that computes this conv, or None if none does."""
    if g.groups == 1:
        return IM2COL
    if g.groups == g.in_channels == g.out_channels and g.stride in (1, 2):
        if g.kernel == (3, 3):
            return DW3X3
        if g.kernel[0] == g.kernel[1] and g.kernel[0] in DWK_SIZES:
            return DWK
    return None


def qconv2d_fast(x_shape, w_shape, *, stride: int = 1, padding=0, groups: int = 1,
                 x_zero: int = 0, y_zero: int = 0) -> tirx.PrimFunc:
    """``qops.qconv2d`` with the same signature and attributes, computed by a C micro-kernel.
    Raises ValueError for a conv no micro-kernel covers (see ``fast_kernel_name``)."""
    g = ConvGeometry.of(x_shape, w_shape, stride, padding, groups)
    if fast_kernel_name(g) is None:
        raise ValueError(f"no fast kernel for {g}: groups=1 convs and 3x3 / 5x5 / 7x7 "
                         "depthwise only")
    naive = qconv2d(x_shape, w_shape, stride=stride, padding=padding, groups=groups,
                    x_zero=x_zero, y_zero=y_zero)
    return _fast(g, int(x_zero), int(y_zero), False, naive)


def qclassifier_fast(x_shape, w_shape, *, x_zero: int = 0, y_zero: int = 0) -> tirx.PrimFunc:
    """``qops.qclassifier`` (int8 logits) computed by ``tt_qconv_im2col``."""
    naive = qclassifier(x_shape, w_shape, x_zero=x_zero, y_zero=y_zero)
    return _fast(ConvGeometry.of(x_shape, w_shape), int(x_zero), int(y_zero), True, naive)


@functools.cache
def _fast(g: ConvGeometry, x_zero: int, y_zero: int, flat: bool,
          naive: tirx.PrimFunc) -> tirx.PrimFunc:
    name = fast_kernel_name(g)
    (h, w), (kh, kw), (ph, pw), s = g.in_hw, g.kernel, g.padding, g.stride
    c, o = g.in_channels, g.out_channels
    y_shape = (1, o) if flat else g.y_shape
    if name == IM2COL:
        words = im2col_scratch_bytes(g) // 4
        shape_args = (c, h, w, o, kh, kw, s, ph, pw, x_zero, y_zero)
    elif name == DWK:
        words = dwk_scratch_bytes(g) // 4
        shape_args = (c, h, w, kh, s, ph, pw, x_zero, y_zero)
    else:
        words = dw3x3_scratch_bytes(g) // 4
        shape_args = (c, h, w, s, ph, pw, x_zero, y_zero)
    attrs = {**dict(naive.attrs), "tt.fast": name}
    # What tinytvm.aot may do (AnnotateTIROpPattern cannot see through the extern call): a 1x1
    # or depthwise conv may write its output over a same-shaped input that dies there (the
    # micro-kernels read a block of pixels / buffer the input rows before writing over them);
    # other convs read rows above a pixel after writing it: no in-place.
    pointwise = kh == kw == s == 1 and ph == pw == 0
    attrs["op_pattern"] = IN_PLACE_OK if name != IM2COL or pointwise else OPAQUE

    @T.prim_func(private=True, s_tir=True)
    def kernel(x: T.Buffer(g.x_shape, "int8"), weight: T.Buffer(g.w_shape, "int8"),
               bias: T.Buffer((o,), "int32"), scale: T.Buffer((o,), "float32"),
               y: T.Buffer(y_shape, "int8")):
        T.func_attr(attrs)
        scratch = T.alloc_buffer((words,), "int32")  # at the root: lower lifts it to the arena
        with T.sblock("call"):
            T.reads(x[0, 0:c, 0:h, 0:w], weight[0:o, 0:g.w_shape[1], 0:kh, 0:kw],
                    bias[0:o], scale[0:o])
            T.writes(y[0, 0:o] if flat else y[0, 0:o, 0:g.out_hw[0], 0:g.out_hw[1]])
            T.evaluate(T.call_extern("int32", name, x.data, weight.data, bias.data, scale.data,
                                     y.data, *shape_args, scratch.data))

    _check_same_signature(kernel, naive)
    return kernel


def _check_same_signature(fast: tirx.PrimFunc, naive: tirx.PrimFunc) -> None:
    def signature(f):
        return [(tuple(int(d) for d in b.shape), str(b.dtype)) for b in f.params]

    if signature(fast) != signature(naive):
        raise AssertionError(f"fast kernel signature {signature(fast)} != {signature(naive)}")


def fast_version(func: tirx.PrimFunc) -> tirx.PrimFunc | None:
    """The fast PrimFunc computing what the ``qops`` conv or ``qgrad`` kernel ``func``
    computes, or None."""
    op = tt_op(func)
    if str(func.attrs.get("tt.requant", "float32")) != "float32":
        return None  # the micro-kernels rescale in float32; fixed-point kernels stay TIR
    if INPLACE_ATTR in func.attrs:
        return _fast_inplace(func) if "tt.fast" not in func.attrs else None
    if op in _GRADIENTS and "tt.fast" not in func.attrs:
        return _GRADIENTS[op](func)
    if op in _FUSED and "tt.fast" not in func.attrs:
        return _FUSED[op](func)
    if op not in ("qconv2d", "qclassifier") or "tt.fast" in func.attrs:
        return None
    x, w, *_, y = func.params  # Buffers: (x, weight, bias, scale, y)
    if str(y.dtype) != "int8":
        return None  # the float32-logits classifier of a training step
    a = func.attrs
    zeros = {"x_zero": int(a["tt.x_zero"]), "y_zero": int(a["tt.y_zero"])}
    xs, ws = [int(d) for d in x.shape], [int(d) for d in w.shape]
    if op == "qclassifier":
        return qclassifier_fast(xs, ws, **zeros)
    g = ConvGeometry.of_kernel(a, xs, ws)
    if fast_kernel_name(g) is None:
        return None
    return qconv2d_fast(xs, ws, stride=g.stride, padding=g.padding, groups=g.groups, **zeros)


def _fast_inplace(func: tirx.PrimFunc) -> tirx.PrimFunc | None:
    """An in-place depthwise kernel (inplace.py) by a micro-kernel that may run in place too.
    ``tt_qconv_dw3x3`` / ``tt_qconv_dwk`` (k x k, k = 3 / 5, 7) copy each input row into their
    ring of k int16 rows before they write the output row that lands on it, so they need no
    plane: output row oy ends (oy + 1) Wo bytes into the channel, the rows not yet copied start
    at row oy stride + k - pad_h, and with padding <= (k - 1) / 2, rows out <= rows in and
    Wo <= W (tt_qconv.h, above tt_qconv_dwk); the data gradient goes through the one-channel
    plane (``tt_qgrad_data_dw3x3_inplace``), 5x5 / 7x7 through the ring of padded g rows of
    ``tt_qgrad_data_dwk`` (``tt_qgrad_data_dwk_inplace``: each g row copied before the dx
    row over it is written)."""
    a = func.attrs
    if tt_op(func) == "qconv2d":
        x, w, *_ = func.params
        g = ConvGeometry.of_kernel(a, _shape(x), _shape(w))
        if fast_kernel_name(g) not in (DW3X3, DWK) or max(g.padding) > (g.kernel[0] - 1) // 2:
            return None  # a larger padding could write an output row over a row not yet copied
        return _fast(g, int(a["tt.x_zero"]), int(a["tt.y_zero"]), False, func)
    if tt_op(func) == "qconv2d_data_grad":
        g_acc, weight, dx = func.params
        g = _geometry(func, _shape(dx), _shape(g_acc)[1], _shape(weight)[1:])
        (h, w), (ph, pw) = g.in_hw, g.padding
        if _dwk(g) and g.stride == 1 and g.out_hw == g.in_hw:
            # k x k: no plane, the ring of padded g rows of tt_qgrad_data_dwk (in place as is)
            args = (g.in_channels, h, w, g.kernel[0], ph, pw)
            return _extern(func, DATA_DWK_INPLACE, args, data_dwk_scratch_bytes(g))
        if not _dw3x3(g) or g.stride != 1:
            return None
        return _extern(func, DATA_DW3X3_INPLACE, (g.in_channels, h, w, ph, pw), 4 * h * w)
    return None


# ---- backward kernels (tinytvm.quant.qgrad) -> runtime_c/kernels/tt_qgrad.h ------------------


def _dw3x3(g: ConvGeometry) -> bool:
    return (g.groups == g.in_channels == g.out_channels and g.kernel == (3, 3)
            and g.stride in (1, 2))


def _dwk(g: ConvGeometry) -> bool:
    """Depthwise k x k, k = 5 or 7, stride 1 or 2, padding <= (k - 1) / 2."""
    k = g.kernel[0]
    return (g.groups == g.in_channels == g.out_channels and g.kernel == (k, k)
            and k in DWK_KERNELS and g.stride in (1, 2) and max(g.padding) <= (k - 1) // 2)


def grad_kernel_name(g: ConvGeometry, op: str) -> str | None:
    """The tt_qgrad.h function computing the weight or data gradient of this conv, or None."""
    if g.groups == 1:
        return WEIGHT if op == "qconv2d_weight_grad" else DATA
    if _dw3x3(g):
        return WEIGHT_DW3X3 if op == "qconv2d_weight_grad" else DATA_DW3X3
    if _dwk(g):
        return WEIGHT_DWK if op == "qconv2d_weight_grad" else DATA_DWK
    return None


def weight_dw3x3_scratch_bytes(g: ConvGeometry) -> int:
    """TT_QGRAD_WEIGHT_DW3X3_SCRATCH(W, pad_w): 3 float rows of W + 2 pad_w."""
    return 12 * (g.in_hw[1] + 2 * g.padding[1])


def weight_dwk_scratch_bytes(g: ConvGeometry) -> int:
    """TT_QGRAD_WEIGHT_DWK_SCRATCH(W, k, pad_w): k float rows of W + 2 pad_w."""
    return 4 * g.kernel[1] * (g.in_hw[1] + 2 * g.padding[1])


def data_1x1_scratch_bytes(out_channels: int, pixels: int) -> int:
    """TT_QGRAD_DATA_1X1_SCRATCH(O, P): 16 zero floats, a chunk's converted weights and, for
    planes of <= 16 pixels, the chunk's g in pixel tiles."""
    chunk = min(out_channels, DATA_1X1_OCH)
    tiles = 4 * chunk * (pixels & ~3) if pixels <= DATA_1X1_GT_MAXP else 0
    return 64 + 16 * chunk + tiles


def data_dwk_scratch_bytes(g: ConvGeometry) -> int:
    """TT_QGRAD_DATA_DWK_SCRATCH(W, k, stride, pad_w): k zero-padded float g rows."""
    w, k, pw = g.in_hw[1], g.kernel[1], g.padding[1]
    length = w + k - 1 if g.stride == 1 else (w + pw) // 2 + 1 + (k - 1) // 2
    return 4 * k * length


def _shape(buffer) -> tuple[int, ...]:
    return tuple(int(d) for d in buffer.shape)


def _geometry(func: tirx.PrimFunc, x_shape, o: int, w_tail) -> ConvGeometry:
    a = func.attrs
    return ConvGeometry.of_kernel(a, x_shape, (o, *w_tail))


def weight_grad_fast(g: ConvGeometry, x_zero: int, rows: int | None = None) -> tirx.PrimFunc:
    """``qgrad.weight_grad`` computed by ``tt_qgrad_weight`` / ``tt_qgrad_weight_dw3x3`` /
    ``tt_qgrad_weight_dwk``."""
    rows = g.out_channels if rows is None else rows
    naive = qgrad.weight_grad(g, x_zero, rows)
    name = grad_kernel_name(g, "qconv2d_weight_grad")
    if name is None:
        raise ValueError(f"no fast weight gradient for {g}: groups=1 and 3x3 / 5x5 / 7x7 "
                         "depthwise only")
    (h, w), (kh, kw), (ph, pw), s = g.in_hw, g.kernel, g.padding, g.stride
    if name == WEIGHT:
        args = (g.in_channels, h, w, rows, kh, kw, s, ph, pw, x_zero)
        scratch = 4 * 8 * min(g.out_hw[0] * g.out_hw[1], WEIGHT_PIX)
    elif name == WEIGHT_DWK:
        args, scratch = (rows, h, w, kh, s, ph, pw, x_zero), weight_dwk_scratch_bytes(g)
    else:
        args, scratch = (rows, h, w, s, ph, pw, x_zero), weight_dw3x3_scratch_bytes(g)
    return _extern(naive, name, args, scratch)


def data_grad_fast(g: ConvGeometry) -> tirx.PrimFunc:
    """``qgrad.data_grad`` computed by ``tt_qgrad_data`` (``tt_qgrad_data_1x1`` for a 1x1
    stride-1 unpadded conv) / ``tt_qgrad_data_dw3x3`` / ``tt_qgrad_data_dwk``."""
    naive = qgrad.data_grad(g)
    name = grad_kernel_name(g, "qconv2d_data_grad")
    if name is None:
        raise ValueError(f"no fast data gradient for {g}: groups=1 and 3x3 / 5x5 / 7x7 "
                         "depthwise only")
    (h, w), (kh, kw), (ph, pw), s = g.in_hw, g.kernel, g.padding, g.stride
    if name == DATA and kh == kw == s == 1 and ph == pw == 0:  # the register-blocked gather
        return _extern(naive, DATA_1X1, (g.in_channels, h * w, g.out_channels),
                       data_1x1_scratch_bytes(g.out_channels, h * w))
    if name == DATA_DWK:
        return _extern(naive, name, (g.in_channels, h, w, kh, s, ph, pw),
                       data_dwk_scratch_bytes(g))
    if name == DATA:
        args = (g.in_channels, h, w, g.out_channels, kh, kw, s, ph, pw)
    else:
        args = (g.in_channels, h, w, s, ph, pw)
    return _extern(naive, name, args, 0)


def accumulator_grad_fast(out_channels: int, out_hw: tuple[int, int], y_dtype: str,
                          flat: bool) -> tirx.PrimFunc:
    """``qgrad.accumulator_grad`` computed by ``tt_qgrad_acc_s8`` / ``tt_qgrad_acc_f32``."""
    naive = qgrad.accumulator_grad(out_channels, tuple(out_hw), y_dtype, flat)
    name = {"int8": ACC_S8, "float32": ACC_F32}.get(y_dtype)
    if name is None:
        raise ValueError(f"no fast accumulator gradient for a {y_dtype} output")
    return _extern(naive, name, (out_channels, out_hw[0] * out_hw[1]), 0)


def bias_grad_fast(out_channels: int, out_hw: tuple[int, int]) -> tirx.PrimFunc:
    """``qgrad.bias_grad`` computed by ``tt_qgrad_bias``."""
    naive = qgrad.bias_grad(out_channels, tuple(out_hw))
    return _extern(naive, BIAS, (out_channels, out_hw[0] * out_hw[1]), 0)


def _fast_weight_grad(func):
    x, g_acc, dw = func.params
    geom = _geometry(func, _shape(x), _shape(g_acc)[1], _shape(dw)[1:])
    if grad_kernel_name(geom, "qconv2d_weight_grad") is None:
        return None
    return weight_grad_fast(geom, int(func.attrs["tt.x_zero"]), _shape(dw)[0])


def _fast_data_grad(func):
    g_acc, weight, dx = func.params
    geom = _geometry(func, _shape(dx), _shape(g_acc)[1], _shape(weight)[1:])
    return data_grad_fast(geom) if grad_kernel_name(geom, "qconv2d_data_grad") else None


def _fast_accumulator_grad(func):
    y, _, _, g_acc = func.params
    _, o, h, w = _shape(g_acc)
    if str(y.dtype) not in ("int8", "float32"):
        return None
    return accumulator_grad_fast(o, (h, w), str(y.dtype), len(y.shape) == 2)


def _fast_bias_grad(func):
    g_acc, _ = func.params
    _, o, h, w = _shape(g_acc)
    return bias_grad_fast(o, (h, w))


def _fast_masked_accumulator_grad(func):
    """``accumulator_grad(..., masked=True)`` -> ``tt_qmask_acc`` (in place over g_y as the
    naive kernel: op_pattern kept)."""
    *_, g_acc = func.params
    _, o, h, w = _shape(g_acc)
    return _extern(func, ACC_MASKED, (o, h * w), 0)


def _fast_add_grad(func):
    """``add_grad`` (masked or not) -> ``tt_qmask_add`` / ``tt_qmask_add_s8``."""
    y, _, scales, d = func.params
    if str(y.dtype) not in ("int8", "uint8") or str(scales.dtype) != "float32":
        return None
    name = ADD_MASKED if tt_op(func) == "qadd_grad_masked" else ADD_S8
    return _extern(func, name, (math.prod(_shape(d)), int(func.attrs["tt.operand"])), 0)


def _fast_pack_mask(func):
    """``pack_mask`` -> ``tt_qmask_pack``."""
    y, _ = func.params
    return _extern(func, PACK_MASK, (math.prod(_shape(y)),), 0)


def _fast_grad16_scale(func):
    """``qgrad16.grad_scale`` -> ``tt_qgrad16_scale``."""
    g_acc, _ = func.params
    return _extern(func, GRAD16_SCALE, (math.prod(_shape(g_acc)), float(func.attrs["tt.qmax"])),
                   0)


def _fast_grad16_quantize(func):
    """``qgrad16.quantize`` -> ``tt_qgrad16_quantize``."""
    g_acc, *_ = func.params
    _, o, h, w = _shape(g_acc)
    return _extern(func, GRAD16_QUANTIZE, (o, h * w), 0)


def data_1x1_16_scratch_bytes(out_channels: int) -> int:
    """TT_QGRAD16_DATA_1X1_SCRATCH(O): 4 transposed weight rows of O rounded up to 4, as int16
    pairs."""
    return 32 * ((out_channels + 3) // 4)


def _fast_data_grad16(func):
    """``qgrad16.data_grad`` -> ``tt_qgrad16_data_1x1``."""
    _, _, weight, dx = func.params
    o, c = _shape(weight)[:2]
    _, _, h, w = _shape(dx)
    return _extern(func, GRAD16_DATA_1X1, (c, h * w, o), data_1x1_16_scratch_bytes(o))


_GRADIENTS = {"qconv2d_weight_grad": _fast_weight_grad, "qconv2d_data_grad": _fast_data_grad,
              "qconv2d_acc_grad": _fast_accumulator_grad, "qconv2d_bias_grad": _fast_bias_grad,
              "qconv2d_acc_grad_masked": _fast_masked_accumulator_grad,
              "qadd_grad": _fast_add_grad, "qadd_grad_masked": _fast_add_grad,
              "pack_mask": _fast_pack_mask,
              "grad16_scale": _fast_grad16_scale, "grad16_quantize": _fast_grad16_quantize,
              "qconv2d_data_grad16": _fast_data_grad16}
# element-wise in g_y and correct with the output over it: these keep the naive kernel's
# op_pattern (tinytvm.aot may then write the output over a dying g_y); every other fast
# kernel is marked OPAQUE. (The unmasked qadd gradient is kInjective for TVM, so not in-place
# either way.)
_IN_PLACE_SAFE = (ACC_S8, ACC_F32, ACC_MASKED, ADD_MASKED)


def _op_pattern(func: tirx.PrimFunc) -> int:
    """The op pattern TVM gives ``func`` (its attribute, else AnnotateTIROpPattern's verdict).
    A fast kernel states its pattern explicitly: the analysis cannot see through call_extern."""
    if func.attrs is not None and "op_pattern" in func.attrs:
        return int(func.attrs["op_pattern"])
    annotated = relax.transform.AnnotateTIROpPattern()(tvm.IRModule({"f": func}))
    return int(annotated["f"].attrs["op_pattern"])


@functools.cache
def _extern(naive: tirx.PrimFunc, name: str, args: tuple[int | float, ...],
            scratch_bytes: int, extra_attrs: tuple[tuple[str, int], ...] = ()) -> tirx.PrimFunc:
    """``naive``'s signature and attributes (+ "tt.fast", + ``extra_attrs``), the body one call
    of the C function ``name(buffers..., *args[, scratch])``; the scratch is an int32 buffer
    allocated at the root (an arena tensor once ``lower.prepare_kernels`` lifts it). A float in ``args`` is passed as a float32 immediate, printed by TVM's C codegen
    exactly as the naive kernel prints the same constant."""
    buffers = list(naive.params)
    scratch = []
    if scratch_bytes:
        scratch = [tirx.decl_buffer(((scratch_bytes + 3) // 4,), "int32", "scratch")]
    values = [tirx.const(a, "float32") if isinstance(a, float) else a for a in args]
    call = tirx.call_extern("int32", name, *[b.data for b in buffers], *values,
                            *[b.data for b in scratch])
    regions = [tirx.BufferRegion(b, [tvm.ir.Range(0, d) for d in b.shape]) for b in buffers]
    call_block = s_tir.stmt.SBlock([], regions[:-1], regions[-1:], "call", tirx.Evaluate(call))
    body = s_tir.stmt.SBlockRealize([], True, call_block)
    if scratch:  # allocated at the root, where lower.prepare_kernels lifts it to the arena
        body = tirx.SeqStmt([tirx.AllocBuffer(scratch[0]), body])
    body = s_tir.stmt.SBlockRealize([], True, s_tir.stmt.SBlock([], [], [], "root", body))
    attrs = {**dict(naive.attrs), "tt.fast": name, **dict(extra_attrs)}
    # the element-wise ones may run in place as the naive kernel may, no other (weight_grad_update
    # still writes over its weight: tinytvm.aot keys that on the kernel's name, which
    # use_fast_kernels keeps)
    in_place = name in _IN_PLACE_SAFE and _op_pattern(naive) <= IN_PLACE_OK
    attrs["op_pattern"] = IN_PLACE_OK if in_place else OPAQUE
    fast = tirx.PrimFunc(buffers, body, ret_type=naive.ret_type,
                         attrs=tvm.ir.make_node("ir.DictAttrs", **attrs))
    _check_same_signature(fast, naive)
    return fast


# ---- fused kernels: expansion + depthwise (fuse_expand.py), gradient + update (qupdate.py) ---


def expand_dw_scratch_bytes(channels: int, width: int, expanded: int, kernel: int,
                            pad_w: int) -> int:
    """TT_QCONV_EXPAND_DW_SCRATCH(C, W, E, k, pad_w): for a group of channels (at most E, 16
    and what fits 8 KB of rings) their packed expansion and depthwise weights and rings of k
    padded int16 rows, and one packed input row (the naive H x W int8 plane is not needed)."""
    row = (width + 2 * pad_w + 3) // 2 * 2  # TT_Q_EXPAND_LEN
    group = max(1, min(EXPAND_GROUP, expanded, EXPAND_RING_BYTES // (2 * kernel * row)))
    pairs = (channels + 1) // 2
    dw_words = 2 * kernel * ((kernel + 1) // 2)  # TT_Q_DWK_WORDS(k)
    return (4 * group * (pairs + dw_words) + 4 * pairs * ((width + 3) & ~3)
            + 2 * group * kernel * row)


def _fast_expand_depthwise(func):
    x, _, w2, *_ = func.params
    _, c, h, w = _shape(x)
    e, _, kh, kw = _shape(w2)
    if kh != kw or not 1 <= kh <= 7:
        return None
    a = func.attrs
    ph, pw = (int(p) for p in a["tt.padding"])
    zeros = [int(a[k]) for k in ("tt.x_zero", "tt.expand_y_zero", "tt.depthwise_x_zero",
                                 "tt.y_zero")]
    args = (c, h, w, e, kh, int(a["tt.stride"]), ph, pw, *zeros)
    scratch = expand_dw_scratch_bytes(c, w, e, kh, pw)
    return _extern(func, EXPAND_DW, args, scratch, (("tt.scratch_bytes", scratch),))


def update_scratch_bytes(g: ConvGeometry) -> int:
    """TT_QGRAD_UPDATE_SCRATCH(P) (groups = 1), TT_QGRAD_UPDATE_DW3X3_SCRATCH(W, pad_w) or
    TT_QGRAD_UPDATE_DWK_SCRATCH(W, k, pad_w) (depthwise 5x5 / 7x7)."""
    if g.groups == 1:
        return 4 * 8 * min(g.out_hw[0] * g.out_hw[1], UPDATE_PIX)
    return weight_dwk_scratch_bytes(g) if _dwk(g) else weight_dw3x3_scratch_bytes(g)


def _fast_weight_grad_update(func):
    a = func.attrs
    if "tt.lr" not in a:
        return None
    x, g_acc, target, factor, *_ = func.params
    rows = _shape(factor)[0]
    o = _shape(g_acc)[1]
    geom = _geometry(func, _shape(x), o, _shape(target)[1:])
    if geom.groups != 1 and not _dw3x3(geom) and not _dwk(geom):
        return None
    (h, w), (kh, kw), (ph, pw) = geom.in_hw, geom.kernel, geom.padding
    rounding = str(a["tt.rounding"])
    salt = int(a["tt.salt"]) & 0xFFFFFFFF
    salt = (salt - 2**32 if salt >= 2**31 else salt,) if rounding == "stochastic" else ()
    args = (geom.in_channels, h, w, o, rows, kh, kw, geom.stride, ph, pw, geom.groups,
            int(a["tt.x_zero"]), float(a["tt.lr"]), *salt)
    return _extern(func, UPDATES[rounding], args, update_scratch_bytes(geom))


_FUSED = {"qexpand_depthwise": _fast_expand_depthwise,
          "weight_grad_update": _fast_weight_grad_update}


def use_fast_kernels(mod: tvm.IRModule) -> tvm.IRModule:
    """Every ``qops`` conv PrimFunc of ``mod`` that a micro-kernel covers, replaced by its fast
    version (same GlobalVar, so the ``call_tir``s are untouched); the rest unchanged."""
    replaced = {gv: fast_version(f) for gv, f in mod.functions.items()
                 if isinstance(f, tirx.PrimFunc)}
    replaced = {gv: f for gv, f in replaced.items() if f is not None}
    if not replaced:
        return mod
    out = mod.clone()
    for gv, fast in replaced.items():
        out.update_func(gv, fast)
    return out


@tvm.transform.module_pass(opt_level=0, name="UseFastKernels")
class UseFastKernels:
    """Module pass form of ``use_fast_kernels``."""

    def transform_module(self, mod: tvm.IRModule, ctx) -> tvm.IRModule:
        return use_fast_kernels(mod)
