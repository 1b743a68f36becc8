"""The paper's three pretrained int8 models, and an exact numpy integer reference for them.

"On-Device Training Under 256KB Memory" trains MobileNetV2-w0.35, ProxylessNAS-w0.3 and
MCUNet-5fps, int8, pretrained on ImageNet. Their weights and quantization parameters live
outside the repository (``shared/data/paper-models/``, see its README; overridable with
``TINYTVM_PAPER_MODELS``); this module loads them into typed dataclasses (checking that
every op consumes the shape and quantization its producer makes) and runs them.

Semantics: those of the original code that built these models from its ``.pkl`` files
(mit-han-lab/tiny-training ``build_quantized_network_from_cfg``, which uses the ``*Diff``
ops: float32 tensors, ``torch.round``); the tests check this module against a PyTorch
re-statement of them bit for bit, on a synthetic image and a real photo.

- conv: ``acc = conv(x - x_zero, W)``, exact (zero padding *after* the shift: the int8
  input is padded with ``x_zero``); ``|acc| < 2**24`` for any input (``acc_bound``), so it
  is exact in float32 too. ``M[c] = x_scale * w_scales[c] / y_scale`` in float64, stored as
  float32. ``y = clamp(rint((f32(acc) + f32(bias[c])) * M[c]) + y_zero, -128, 127)``, the
  sum and the product in float32. ``f32(bias)`` is not exact for the few biases beyond
  2**24 (``saturated_bias_channels``: up to ±2**31 in dead channels), and it matters there.
- residual add: ``y = clamp(rint(((b - zb) * sb + (a - za) * sa) / s_out) + z_out)``, all in
  float32 (a true division, not a multiplication by the reciprocal); ``b`` is the block
  input (residual ``x_scale/x_zero``), ``a`` pointwise2's output.
- global average pool: ``rint(sum / (H*W))``, here in exact integers (the original's
  float32 mean of 16 int8 values is exact).
- classifier: a 1x1 conv like the others, clamped to int8: the logits are int8.
- input: ``quantize_input`` (the original's ToTensor + Normalize(0.5, 1/255) in float32).

Rounding decision: ``rint`` is round half to even, as ``torch.round`` in the original and
``numpy.rint``; not half away from zero. Evidence: the original rounds with
``Tensor.round()`` everywhere, and ties occur in these data: the pool divides a sum of 16
values by 16, so about 1 pooled value in 16 is an exact .5 (synthetic test image: 10 of 112
channels in mbv2-w0.35, 3 of 96 in proxyless-w0.3, 8 of 160 in mcunet-5fps); convs tie
rarely (2, 2 and 3 outputs: float32 products landing exactly on .5); the original's input
normalisation of uint8 pixels hits 80 exact ties among the 256 values (the other 176 are
off .5 by float32 noise, so uint8 0 becomes -127, not -128), and half-away-from-zero would
change 40 of them. Half to even reproduces the PyTorch re-statement bit for bit.

Fixed-point requantization (``requant_params``, ``forward_int8_fixed_point``): TFLite /
CMSIS-NN style, ``M = multiplier * 2**-31 * 2**-shift``, double rounding (gemmlowp; CMSIS-NN's
default ``arm_nn_requantize``), TFLite's int8 add (``left_shift = 20``) for residuals. It is
NOT bit-exact with the original: each conv fed the original's input gets ~0.4% of its
outputs off by 1 (the high multiply rounds to a value ending exactly in .5 for the shift;
the adds match), and these spread to ~20% of all activations and 50-60% of the logits,
sometimes changing the top-1 class (``compare_rescale``; counts in
tests/test_paper_models.py). Single rounding (``CMSIS_NN_USE_SINGLE_ROUNDING``) or float64
rescaling differ only where a float32 product lies within an ulp of .5 (0-2 outputs per
image), but one such difference in an early layer still reaches thousands of activations.
So generated C that must match the original needs the float32 rescale as written above;
the Cortex-M7's single-precision FPU does it natively: ``(float)acc + (float)bias[c]``,
``* M[c]``, round to nearest even (``lrintf`` / ``VCVTR`` in the default FPSCR mode, never
``(int)(v + 0.5f)``), ``-ffp-contract=off``; never ``int32 acc + bias``, which can overflow
in the channels whose bias is near ±2**31.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..errors import UnsupportedModelError

PAPER_MODELS = ("mbv2-w0.35", "proxyless-w0.3", "mcunet-5fps")
ENV_VAR = "TINYTVM_PAPER_MODELS"
# rescale arithmetic of convs and adds: the original's, double, and integer fixed point
# (TFLite / CMSIS-NN default double rounding, or CMSIS-NN's single rounding)
RESCALES = ("float32", "float64", "fixed", "fixed-single")
FIXED_ROUNDING = {"fixed": "double", "fixed-single": "single"}
INT8_MIN, INT8_MAX = -128, 127
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
FLOAT32_EXACT_INT = 2**24  # |integers| below this are exact in float32


def paper_models_dir() -> Path:
    """``$TINYTVM_PAPER_MODELS`` if set, else ``shared/data/paper-models`` beside the repo."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    return Path(__file__).resolve().parents[2].parent / "shared" / "data" / "paper-models"


def paper_models_available() -> bool:
    """Whether the JSON and the npz of all three models are present."""
    root = paper_models_dir()
    return all((root / f"{n}.json").is_file() and (root / f"{n}.npz").is_file()
               for n in PAPER_MODELS)


# --- the model, typed ----------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class QConv:
    """One int8 conv; its ReLU/ReLU6 is the output clamp (``y_zero``, ``y_scale``).

    ``in_shape``/``out_shape`` are (H, W) at the model's native resolution; padding is
    ``(k - 1) // 2`` with the value ``x_zero``.
    """

    name: str
    in_channels: int
    out_channels: int
    kernel: tuple[int, int]
    stride: int
    groups: int
    padding: tuple[int, int]
    in_shape: tuple[int, int]
    out_shape: tuple[int, int]
    weight: np.ndarray  # int8 [O, I/groups, kh, kw], zero point 0
    bias: np.ndarray  # int32 [O]
    w_scales: np.ndarray  # float32 [O]
    x_scale: float
    x_zero: int
    y_scale: float
    y_zero: int

    @property
    def kind(self) -> str:
        """'depthwise', 'pointwise' (1x1, groups 1) or 'full'."""
        if self.groups > 1 and self.groups == self.in_channels == self.out_channels:
            return "depthwise"
        return "pointwise" if self.kernel == (1, 1) and self.groups == 1 else "full"

    @property
    def macs(self) -> int:
        kh, kw = self.kernel
        per_output = self.in_channels // self.groups * kh * kw
        return self.out_shape[0] * self.out_shape[1] * self.out_channels * per_output

    @property
    def effective_scale(self) -> np.ndarray:
        """float64 ``x_scale * w_scales / y_scale`` per output channel (as the original)."""
        return self.x_scale * self.w_scales.astype(np.float64) / self.y_scale


@dataclass(frozen=True, eq=False)
class QResidual:
    """The int8 add closing a block: block input ``b`` (``in_*``) plus pointwise2's output."""

    name: str
    in_scale: float
    in_zero: int
    out_scale: float
    out_zero: int


@dataclass(frozen=True, eq=False)
class QBlock:
    name: str
    pointwise1: QConv | None
    depthwise: QConv
    pointwise2: QConv
    residual: QResidual | None

    @property
    def convs(self) -> list[QConv]:
        return [c for c in (self.pointwise1, self.depthwise, self.pointwise2) if c is not None]


@dataclass(frozen=True, eq=False)
class PaperModel:
    name: str
    first_conv: QConv
    blocks: tuple[QBlock, ...]
    feature_mix: QConv | None
    classifier: QConv
    input_shape: tuple[int, int, int]  # (C, H, W)


def conv_list(model: PaperModel) -> list[QConv]:
    """Every conv in execution order (index 0 = first conv, as the paper counts)."""
    convs = [model.first_conv]
    for block in model.blocks:
        convs += block.convs
    if model.feature_mix is not None:
        convs.append(model.feature_mix)
    return convs + [model.classifier]


# --- loading -------------------------------------------------------------------------------


def load_paper_model(name: str) -> PaperModel:
    """Load one of ``PAPER_MODELS`` from the data directory, checking its consistency."""
    if name not in PAPER_MODELS:
        raise UnsupportedModelError(f"unknown paper model {name!r}; known: {PAPER_MODELS}")
    root = paper_models_dir()
    spec_path, arrays_path = root / f"{name}.json", root / f"{name}.npz"
    for path in (spec_path, arrays_path):
        if not path.is_file():
            raise UnsupportedModelError(
                f"paper model file {path} not found (data directory {root}; "
                f"set {ENV_VAR} to the directory holding NAME.json and NAME.npz)"
            ) from FileNotFoundError(str(path))
    spec = json.loads(spec_path.read_text())
    with np.load(arrays_path) as npz:
        arrays = {key: npz[key] for key in npz.files}
    model = _model_from_spec(name, spec, arrays)
    _check_model(model)
    return model


def _model_from_spec(name: str, spec: dict, arrays: dict) -> PaperModel:
    first = _conv("first_conv", spec["first_conv"], arrays)
    blocks = tuple(_block(f"blocks.{i}", b, arrays) for i, b in enumerate(spec["blocks"]))
    mix = spec.get("feature_mix")
    feature_mix = _conv("feature_mix", mix, arrays) if mix is not None else None
    classifier = _conv("classifier", spec["classifier"], arrays, spatial=1)
    size = first.in_shape
    return PaperModel(name, first, blocks, feature_mix, classifier,
                      (first.in_channels, size[0], size[1]))


def _block(name: str, spec: dict, arrays: dict) -> QBlock:
    if spec.get("se") is not None:
        raise UnsupportedModelError(f"{name}: squeeze-excitation is not supported")
    pw1 = _conv(f"{name}.pointwise1", spec["pointwise1"], arrays) if spec["pointwise1"] else None
    dw = _conv(f"{name}.depthwise", spec["depthwise"], arrays)
    pw2 = _conv(f"{name}.pointwise2", spec["pointwise2"], arrays)
    residual = None
    if spec["residual"] is not None:
        if "kernel_size" in spec["residual"]:
            raise UnsupportedModelError(f"{name}: a residual with a conv is not supported")
        p = spec["residual"]["params"]
        residual = QResidual(f"{name}.residual", float(p["x_scale"]), int(p["x_zero"]),
                             float(p["y_scale"]), int(p["y_zero"]))
    return QBlock(name, pw1, dw, pw2, residual)


def _array(ref: dict, arrays: dict, dtype, what: str) -> np.ndarray:
    value = arrays[ref["array"]]
    if value.dtype != dtype or list(value.shape) != list(ref["shape"]):
        raise UnsupportedModelError(
            f"{what}: expected {np.dtype(dtype)} {ref['shape']}, got {value.dtype} {value.shape}")
    value.setflags(write=False)
    return value


def _conv(name: str, spec: dict, arrays: dict, spatial: int | None = None) -> QConv:
    p = spec["params"]
    kernel = tuple(int(k) for k in spec["kernel_size"])
    in_size = int(spec.get("in_shape", spatial))
    out_size = int(spec.get("out_shape", spatial))
    return QConv(
        name=name, in_channels=int(spec["in_channel"]), out_channels=int(spec["out_channel"]),
        kernel=kernel, stride=int(spec["stride"]), groups=int(spec["groups"]),
        padding=((kernel[0] - 1) // 2, (kernel[1] - 1) // 2),
        in_shape=(in_size, in_size), out_shape=(out_size, out_size),
        weight=_array(p["weight"], arrays, np.int8, f"{name}.weight"),
        bias=_array(p["bias"], arrays, np.int32, f"{name}.bias"),
        w_scales=_array(p["w_scales"], arrays, np.float32, f"{name}.w_scales"),
        x_scale=float(p["x_scale"]), x_zero=int(p["x_zero"]),
        y_scale=float(p["y_scale"]), y_zero=int(p["y_zero"]),
    )


def _check_conv(conv: QConv, channels: int, size: tuple[int, int]) -> None:
    o, i, kh, kw = conv.weight.shape
    expected_out = tuple(_out_size(s, k, conv.stride, p)
                         for s, k, p in zip(size, conv.kernel, conv.padding))
    problems = [
        (conv.in_channels == channels, f"in_channels {conv.in_channels} != producer's {channels}"),
        (conv.in_shape == size, f"in_shape {conv.in_shape} != producer's {size}"),
        (conv.out_shape == expected_out, f"out_shape {conv.out_shape} != {expected_out}"),
        (conv.groups in (1, conv.in_channels), f"groups {conv.groups} (only 1 or depthwise)"),
        ((o, i * conv.groups, kh, kw) == (conv.out_channels, conv.in_channels, *conv.kernel),
         f"weight shape {conv.weight.shape}"),
    ]
    for ok, message in problems:
        if not ok:
            raise UnsupportedModelError(f"{conv.name}: {message}")


def _check_model(model: PaperModel) -> None:
    """Every op consumes the channels, size, scale and zero point its producer makes."""
    channels, size = model.input_shape[0], model.input_shape[1:]
    for conv in conv_list(model)[:-1]:
        _check_conv(conv, channels, size)
        channels, size = conv.out_channels, conv.out_shape
    _check_conv(model.classifier, channels, (1, 1))
    for block in model.blocks:
        first, last = block.convs[0], block.pointwise2
        if block.residual is not None and (first.in_channels, first.in_shape) != (
                last.out_channels, last.out_shape):
            raise UnsupportedModelError(f"{block.residual.name}: shapes differ")
    _check_scales(model)


def _check_scales(model: PaperModel) -> None:
    """A conv's (x_scale, x_zero), or a residual's block input, is its producer's output's."""
    first = model.first_conv
    quant = {"input": (first.x_scale, first.x_zero)}
    for op in program(model):
        if op.kind == "pool":
            quant[op.name] = quant[op.inputs[0]]
            continue
        if op.kind == "conv":
            consumed, produced = (op.layer.x_scale, op.layer.x_zero), op.inputs[0]
            quant[op.name] = (op.layer.y_scale, op.layer.y_zero)
        else:
            consumed, produced = (op.layer.in_scale, op.layer.in_zero), op.inputs[1]
            quant[op.name] = (op.layer.out_scale, op.layer.out_zero)
        if consumed != quant[produced]:
            raise UnsupportedModelError(
                f"{op.name}: input quantization {consumed} != {produced}'s {quant[produced]}")


def _out_size(size: int, kernel: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - kernel) // stride + 1


# --- the program: ops in execution order ---------------------------------------------------


class Op(NamedTuple):
    """One step of the forward pass; its output is named ``name``."""

    kind: str  # "conv" | "add" | "pool"
    name: str
    layer: QConv | QResidual | None
    inputs: tuple[str, ...]


def program(model: PaperModel) -> list[Op]:
    """The forward pass as a flat op list; the first input is called ``"input"``."""
    ops = [Op("conv", model.first_conv.name, model.first_conv, ("input",))]
    for block in model.blocks:
        block_input = ops[-1].name
        for conv in block.convs:
            ops.append(Op("conv", conv.name, conv, (ops[-1].name,)))
        if block.residual is not None:
            ops.append(Op("add", block.residual.name, block.residual,
                          (ops[-1].name, block_input)))
    if model.feature_mix is not None:
        ops.append(Op("conv", model.feature_mix.name, model.feature_mix, (ops[-1].name,)))
    ops.append(Op("pool", "avgpool", None, (ops[-1].name,)))
    ops.append(Op("conv", model.classifier.name, model.classifier, ("avgpool",)))
    return ops


# --- integer kernels -----------------------------------------------------------------------


def conv_accumulate(conv: QConv, x: np.ndarray) -> np.ndarray:
    """int64 ``conv(x - x_zero, W)`` (no bias) for ``x`` int8 (1, C, H, W); (1, O, Ho, Wo)."""
    ph, pw = conv.padding
    shifted = x[0].astype(np.int64) - conv.x_zero
    padded = np.pad(shifted, ((0, 0), (ph, ph), (pw, pw)))
    kh, kw = conv.kernel
    s = conv.stride
    ho = _out_size(x.shape[2], kh, s, ph)
    wo = _out_size(x.shape[3], kw, s, pw)
    weight = conv.weight.astype(np.int64)
    if conv.groups == 1:
        windows = np.lib.stride_tricks.sliding_window_view(padded, (kh, kw), axis=(1, 2))
        windows = windows[:, : s * ho : s, : s * wo : s]  # (C, ho, wo, kh, kw)
        cols = windows.transpose(0, 3, 4, 1, 2).reshape(-1, ho * wo)
        acc = (weight.reshape(conv.out_channels, -1) @ cols).reshape(-1, ho, wo)
    else:  # depthwise
        acc = np.zeros((conv.out_channels, ho, wo), np.int64)
        for i in range(kh):
            for j in range(kw):
                tap = padded[:, i : i + s * ho : s, j : j + s * wo : s]
                acc += weight[:, 0, i, j, None, None] * tap
    return acc[None]


def _clamp_int8(v: np.ndarray) -> np.ndarray:
    return np.clip(v, INT8_MIN, INT8_MAX).astype(np.int8)


def _check_rescale(rescale: str) -> None:
    if rescale not in RESCALES:
        raise ValueError(f"rescale must be one of {RESCALES}, not {rescale!r}")


def requantize(conv: QConv, acc: np.ndarray, rescale: str = "float32") -> np.ndarray:
    """int8 output from the conv sum ``acc`` (no bias), with the chosen rescale arithmetic.

    float32 is the original bit for bit: ``(f32(acc) + f32(bias)) * f32(M)`` (``f32(bias)``
    rounds the biases beyond 2**24, see ``saturated_bias_channels``). float64: the exact
    ``acc + bias`` times float32 ``M``, in double. fixed, fixed-single: ``acc + bias``
    saturated to int32, then ``multiply_by_quantized_multiplier`` with ``requant_params``.
    """
    _check_rescale(rescale)
    bias = conv.bias[:, None, None]
    if rescale == "float32":
        scale = conv.effective_scale.astype(np.float32)[:, None, None]
        total = acc.astype(np.float32) + bias.astype(np.float32)
        scaled = np.rint(total * scale).astype(np.int64)
    elif rescale == "float64":
        scale = conv.effective_scale.astype(np.float32).astype(np.float64)[:, None, None]
        scaled = np.rint((acc + bias.astype(np.int64)) * scale).astype(np.int64)
    else:
        multiplier, shift = requant_params(conv)
        total = np.clip(acc + bias.astype(np.int64), INT32_MIN, INT32_MAX)
        scaled = multiply_by_quantized_multiplier(
            total, multiplier[:, None, None], shift[:, None, None], FIXED_ROUNDING[rescale])
    return _clamp_int8(scaled + conv.y_zero)


def residual_add(res: QResidual, conv: QConv, a: np.ndarray, b: np.ndarray,
                 rescale: str = "float32") -> np.ndarray:
    """int8 ``a + b``: ``a`` is ``conv``'s (pointwise2's) output, ``b`` the block input."""
    _check_rescale(rescale)
    if rescale in FIXED_ROUNDING:
        return _residual_add_fixed(res, conv, a, b, FIXED_ROUNDING[rescale])
    f = np.float32 if rescale == "float32" else np.float64
    x1 = (b.astype(f) - f(res.in_zero)) * f(res.in_scale)
    x2 = (a.astype(f) - f(conv.y_zero)) * f(conv.y_scale)
    out = np.rint((x1 + x2) / f(res.out_scale)).astype(np.int64)
    return _clamp_int8(out + res.out_zero)


def avg_pool(x: np.ndarray) -> np.ndarray:
    """Global average pool of int8 (1, C, H, W): exact round-half-to-even of sum / (H*W)."""
    n = x.shape[2] * x.shape[3]
    total = x.astype(np.int64).sum(axis=(2, 3), keepdims=True)
    quotient, remainder = np.divmod(total, n)  # floor division, 0 <= remainder < n
    up = (2 * remainder > n) | ((2 * remainder == n) & (quotient % 2 == 1))
    return _clamp_int8(quotient + up)


# --- fixed-point requantization (TFLite / CMSIS-NN) ----------------------------------------


def quantize_multiplier(real: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``real ≈ multiplier * 2**-31 * 2**-shift``; multiplier int32 in [2**30, 2**31).

    TFLite's ``QuantizeMultiplier`` (mantissa rounded half away from zero), with ``shift``
    counted to the right: CMSIS-NN's ``shift`` argument (and TFLite's) is ``-shift``.
    """
    real = np.asarray(real, np.float64)
    mantissa, exponent = np.frexp(real)
    q = np.floor(np.abs(mantissa) * 2.0**31 + 0.5) * np.sign(mantissa)
    carry = q == 2.0**31
    q = np.where(carry, q / 2, q).astype(np.int64)
    exponent = exponent + carry
    tiny = exponent < -31
    q, exponent = np.where(tiny, 0, q), np.where(tiny, 0, exponent)
    return q.astype(np.int32), (-exponent).astype(np.int32)


def requant_params(conv: QConv) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel ``(multiplier int32 [O], shift int32 [O])`` of ``x_scale*w_scales/y_scale``."""
    return quantize_multiplier(conv.effective_scale)


def _rounding_doubling_high_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """gemmlowp ``SaturatingRoundingDoublingHighMul`` on int32-range int64 arrays."""
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    product = a * b
    nudge = np.where(product >= 0, 1 << 30, 1 - (1 << 30))
    total = product + nudge
    high = np.where(total >= 0, total >> 31, -((-total) >> 31))  # C division truncates
    overflow = (a == INT32_MIN) & (b == INT32_MIN)
    return np.where(overflow, INT32_MAX, high)


def _rounding_divide_by_pot(x: np.ndarray, exponent: np.ndarray) -> np.ndarray:
    """gemmlowp ``RoundingDivideByPOT``: ``x / 2**exponent`` rounded half away from zero."""
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def multiply_by_quantized_multiplier(x: np.ndarray, multiplier, shift,
                                     rounding: str = "double") -> np.ndarray:
    """``x * multiplier * 2**-31 * 2**-shift`` rounded, ``x`` in int32 range.

    rounding "double": TFLite's ``MultiplyByQuantizedMultiplier`` and CMSIS-NN's default
    ``arm_nn_requantize`` (high multiply rounded, then a rounding shift: two roundings, half
    away from zero). "single": CMSIS-NN with ``CMSIS_NN_USE_SINGLE_ROUNDING`` (one rounding,
    half up).
    """
    x = np.asarray(x, np.int64)
    if np.any((x < INT32_MIN) | (x > INT32_MAX)):
        raise OverflowError("fixed-point requantization input exceeds int32")
    shift = np.asarray(shift, np.int64)
    multiplier = np.asarray(multiplier, np.int64)
    if rounding == "single":
        total_shift = 31 + shift
        return ((x * multiplier >> (total_shift - 1)) + 1) >> 1
    if rounding != "double":
        raise ValueError(f"rounding must be 'double' or 'single', not {rounding!r}")
    left, right = np.maximum(-shift, 0), np.maximum(shift, 0)
    high = _rounding_doubling_high_mul(x << left, multiplier)
    return _rounding_divide_by_pot(high, right)


def _residual_add_fixed(res: QResidual, conv: QConv, a: np.ndarray, b: np.ndarray,
                        rounding: str) -> np.ndarray:
    """TFLite's int8 ADD (``left_shift = 20``), as CMSIS-NN ``arm_elementwise_add_s8``."""
    left_shift = 20
    twice_max = 2.0 * max(res.in_scale, conv.y_scale)
    terms = []
    for value, zero, scale in ((b, res.in_zero, res.in_scale), (a, conv.y_zero, conv.y_scale)):
        multiplier, shift = quantize_multiplier(scale / twice_max)
        shifted = (value.astype(np.int64) - zero) << left_shift
        terms.append(multiply_by_quantized_multiplier(shifted, multiplier, shift, rounding))
    multiplier, shift = quantize_multiplier(twice_max / ((1 << left_shift) * res.out_scale))
    out = multiply_by_quantized_multiplier(terms[0] + terms[1], multiplier, shift, rounding)
    return _clamp_int8(out + res.out_zero)


# --- forward passes ------------------------------------------------------------------------


def run_op(model: PaperModel, op: Op, values: dict, rescale: str) -> np.ndarray:
    """``op``'s int8 output, its inputs read from ``values`` by name."""
    args = [values[name] for name in op.inputs]
    if op.kind == "conv":
        return requantize(op.layer, conv_accumulate(op.layer, args[0]), rescale)
    if op.kind == "add":
        return residual_add(op.layer, _producer_conv(model, op), args[0], args[1], rescale)
    return avg_pool(args[0])


def _producer_conv(model: PaperModel, op: Op) -> QConv:
    block = next(b for b in model.blocks if b.residual is op.layer)
    return block.pointwise2


def _check_input(model: PaperModel, x: np.ndarray) -> None:
    if x.dtype != np.int8 or x.ndim != 4 or x.shape[:2] != (1, model.input_shape[0]):
        raise ValueError(f"{model.name}: input must be int8 (1, {model.input_shape[0]}, H, W), "
                         f"got {x.dtype} {x.shape}")


def forward_int8(model: PaperModel, x: np.ndarray, rescale: str = "float32") -> dict:
    """Run the model on int8 ``x`` (1, 3, H, W); the original's semantics with the default.

    Returns every op's int8 output by name (``"first_conv"``, ``"blocks.1.pointwise1"``,
    ``"blocks.2.residual"``, ``"avgpool"``, ``"classifier"``, ...), ``"input"``, and
    ``"logits"``: the classifier's int8 output as (1, classes). ``rescale`` is "float32"
    (the original) or another of ``RESCALES``.
    """
    _check_input(model, x)
    values = {"input": x}
    for op in program(model):
        values[op.name] = run_op(model, op, values, rescale)
    values["logits"] = values[model.classifier.name].reshape(1, -1)
    return values


def forward_int8_fixed_point(model: PaperModel, x: np.ndarray) -> dict:
    """``forward_int8`` with ``requant_params`` fixed point in every conv and add."""
    return forward_int8(model, x, rescale="fixed")


def compare_rescale(model: PaperModel, x: np.ndarray, other: str = "fixed",
                    reference: str = "float32") -> dict[str, int]:
    """Per op, how many outputs ``other`` gets wrong when fed ``reference``'s exact inputs."""
    values = forward_int8(model, x, rescale=reference)
    return {op.name: int(np.count_nonzero(run_op(model, op, values, other) != values[op.name]))
            for op in program(model) if op.kind != "pool"}


# --- input ---------------------------------------------------------------------------------


def quantize_input(model: PaperModel, image: np.ndarray) -> np.ndarray:
    """int8 (1, 3, H, W) from an RGB image as the original pipeline makes it.

    ``image`` is uint8 (0..255) or float in [0, 1], shaped (3, H, W), (1, 3, H, W) or
    (H, W, 3); resize / center crop are the caller's. The original normalises with
    mean 0.5 and std 1/255 (``ToTensor`` then ``Normalize``, float32), which is the first
    conv's ``x_scale = 2/255, x_zero = 0``, and rounds half to even. Its float32 noise is
    reproduced: uint8 1 becomes -126 (-126.49999), not -127.
    """
    first = model.first_conv
    if not (np.isclose(first.x_scale, 2 / 255, rtol=1e-6) and first.x_zero == 0):
        raise UnsupportedModelError(f"{model.name}: first conv expects x_scale 2/255, "
                                    f"x_zero 0, got {first.x_scale}, {first.x_zero}")
    chw = _to_chw(np.asarray(image))
    if chw.dtype == np.uint8:
        p = chw.astype(np.float32) / np.float32(255)
    elif np.issubdtype(chw.dtype, np.floating):
        p = chw.astype(np.float32)
    else:
        raise ValueError(f"image must be uint8 or float in [0, 1], got {chw.dtype}")
    normalised = (p - np.float32(0.5)) / np.float32(1 / 255)
    return _clamp_int8(np.rint(normalised))[None]


def _to_chw(image: np.ndarray) -> np.ndarray:
    if image.ndim == 4 and image.shape[:2] == (1, 3):
        return image[0]
    if image.ndim == 3 and image.shape[0] == 3:
        return image
    if image.ndim == 3 and image.shape[2] == 3:
        return image.transpose(2, 0, 1)
    raise ValueError(f"image must be (3, H, W), (1, 3, H, W) or (H, W, 3), got {image.shape}")


def synthetic_image(size: int = 128) -> np.ndarray:
    """A deterministic uint8 (size, size, 3) test image: ramps, tiles and hashed noise.

    Integer arithmetic only, so it is the same on every platform and numpy version.
    """
    y, x = np.mgrid[0:size, 0:size].astype(np.int64)
    channel = np.arange(3, dtype=np.int64)[:, None, None]
    ramp = x * 150 // size + y * 50 // size + channel * 25
    tiles = ((x // 16 + y // 16 + channel) % 2) * 40
    noise = ((x * 7919 + y * 104729 + channel * 15485863) * 2654435761 >> 13) % 61 - 30
    return np.clip(ramp + tiles + noise, 0, 255).astype(np.uint8).transpose(1, 2, 0)


# --- facts ---------------------------------------------------------------------------------


def acc_bound(conv: QConv) -> int:
    """Largest ``|conv(x - x_zero, W)|`` (no bias) any int8 input can produce."""
    reach = max(abs(INT8_MIN - conv.x_zero), abs(INT8_MAX - conv.x_zero))
    per_channel = np.abs(conv.weight.astype(np.int64)).reshape(conv.out_channels, -1).sum(1)
    return int(np.max(per_channel * reach))


def saturated_bias_channels(conv: QConv) -> np.ndarray:
    """Output channels whose |bias| is beyond float32's exact range (2**24): in these data,
    dead channels (all-zero weights, w_scale ~4e-9) with the bias clipped to ±2**31, and a
    few live channels with tiny w_scale. ``int32 acc + bias`` can overflow there."""
    return np.nonzero(np.abs(conv.bias.astype(np.int64)) >= FLOAT32_EXACT_INT)[0]


def conv_facts(index: int, conv: QConv) -> dict:
    """Shape, cost and range facts of one conv."""
    return {
        "index": index, "name": conv.name, "kind": conv.kind,
        "in_channels": conv.in_channels, "out_channels": conv.out_channels,
        "kernel": conv.kernel[0], "stride": conv.stride,
        "in_hw": conv.in_shape, "out_hw": conv.out_shape, "macs": conv.macs,
        "weight_bytes": conv.weight.size, "bias_bytes": 4 * conv.bias.size,
        "acc_bound": acc_bound(conv),
        "big_bias_channels": len(saturated_bias_channels(conv)),
    }


def architecture_facts(model: PaperModel) -> tuple[list[dict], dict]:
    """Per conv (execution order) ``conv_facts``; and the totals over the model."""
    rows = [conv_facts(i, conv) for i, conv in enumerate(conv_list(model))]
    totals = {
        "convs": len(rows), "blocks": len(model.blocks),
        "residuals": sum(b.residual is not None for b in model.blocks),
        "macs": sum(r["macs"] for r in rows),
        "weight_bytes": sum(r["weight_bytes"] for r in rows),
        "bias_bytes": sum(r["bias_bytes"] for r in rows),
        "max_acc_bound": max(r["acc_bound"] for r in rows),
        "big_bias_channels": sum(r["big_bias_channels"] for r in rows),
    }
    return rows, totals


def activation_sizes(model: PaperModel) -> dict[str, int]:
    """int8 bytes of the input and of every op's output, in execution order."""
    c, h, w = model.input_shape
    sizes = {"input": c * h * w}
    for op in program(model):
        if op.kind == "conv":
            size = op.layer.out_channels * op.layer.out_shape[0] * op.layer.out_shape[1]
        elif op.kind == "add":
            size = sizes[op.inputs[0]]
        else:  # global pool: one value per channel
            size = model.classifier.in_channels
        sizes[op.name] = size
    return sizes


def layer_by_layer_peak(model: PaperModel) -> tuple[int, str]:
    """Most int8 activation bytes alive during one op, running op after op, and that op.

    Alive: the op's inputs and output, and every earlier tensor a later op still reads
    (a residual's block input). No in-place or fused execution.
    """
    sizes, ops = activation_sizes(model), program(model)
    last_use = {name: i for i, op in enumerate(ops) for name in op.inputs}
    best = (0, "")
    for i, op in enumerate(ops):
        alive = {op.name, *op.inputs}
        alive |= {n for n, last in last_use.items() if last > i and _produced_before(n, ops, i)}
        best = max(best, (sum(sizes[n] for n in alive), op.name))
    return best


def _produced_before(name: str, ops: list[Op], index: int) -> bool:
    return name == "input" or any(op.name == name for op in ops[:index])
