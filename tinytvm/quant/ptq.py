"""Post-training quantization: an fp32 CNN and calibration data in, an int8 ``qops`` graph out.

``quantize(model, calibration)`` canonicalizes the fp32 model (``pipeline.canonicalize``:
BatchNorm folded, ReLU6 as ``clip``, pool + flatten as ``mean``), reads it into a list of
float layers, runs that list in numpy (float64) over the calibration samples, and quantizes:

- activations per tensor, asymmetric int8: ``scale = (hi - lo) / 255``, ``zero = round(-128 -
  lo / scale)``, the range ``[lo, hi]`` = calibrated min/max widened to include 0. A ReLU /
  clip after a conv or an add is fused into the output clamp: it is calibrated on the clipped
  tensor, so a ReLU output gets ``lo = 0``, ``zero = -128`` and the int8 clamp is the ReLU;
- weights per output channel, symmetric: ``w_scale = max|w| / 127``, values in [-127, 127];
- biases int32 in units of ``x_scale * w_scale``; requantization ``M = x_scale * w_scale /
  y_scale`` as ``(multiplier, shift)`` (``requant="fixed"``, ``qops.qconv2d_fixed``) or as a
  float32 scale (``requant="float32"``, ``qops.qconv2d``); residual adds likewise
  (``qops.qadd_fixed`` with ``fixed_add_params``, or ``qops.qadd`` with float32 scales);
- the global average pool keeps its input's quantization (``qops.qavgpool``); the linear
  classifier is a ``qclassifier`` over the pooled (1, C, 1, 1) tensor, writing dequantized
  float32 logits (``logits="float32"``) or int8 ones.

Supported (after canonicalization): conv2d (+ bias) (+ relu / clip), add of two activations
(+ relu / clip), mean over H, W, reshape / flatten to (1, C), matmul (+ bias). Anything else
raises ``UnsupportedModelError`` naming the op and its binding.

The result follows ``paper_to_relax``'s convention: ``main(input int8 (1, C, H, W), *weights)``
with attributes ``num_input``, ``params``, ``tt.quant_units`` and ``tt.input_quant`` =
``[input_scale, input_zero]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import tvm
from tvm import relax

from ..errors import UnsupportedModelError
from . import qops
from .paper_import import KernelPlan, KernelStep, emit_plan

INT8_MIN, INT8_MAX = -128, 127
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
REQUANTS = ("fixed", "float32")


@dataclass
class Layer:
    """One float op of the model; ``inputs`` index earlier layers (0 is the input)."""

    kind: str  # "input" | "conv" | "add" | "pool" | "linear"
    name: str
    inputs: list[int] = field(default_factory=list)
    weight: np.ndarray | None = None  # conv OIHW, linear (O, C)
    bias: np.ndarray | None = None
    stride: int = 1
    padding: tuple[int, int] = (0, 0)
    groups: int = 1
    clip: tuple[float, float] | None = None  # fused activation (lo, hi)


@dataclass(frozen=True)
class QParams:
    """Per-tensor asymmetric int8: ``real = scale * (q - zero)``."""

    scale: float
    zero: int

    @classmethod
    def of_range(cls, lo: float, hi: float) -> QParams:
        lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
        scale = (hi - lo) / 255.0 if hi > lo else 1.0
        zero = int(np.clip(np.rint(INT8_MIN - lo / scale), INT8_MIN, INT8_MAX))
        return cls(scale, zero)


def quantize(model, calibration: np.ndarray, *, requant: str = "fixed",
             logits: str = "float32") -> tvm.IRModule:
    """int8 Relax module of the fp32 ``model`` (ONNX path / ModelProto / Relax IRModule),
    calibrated on ``calibration`` (N, C, H, W) float samples (see the module docstring)."""
    from ..build import _as_module  # lazily: tinytvm.pipeline imports this package
    from ..pipeline import canonicalize, run_passes

    if requant not in REQUANTS:
        raise ValueError(f"requant must be one of {REQUANTS}, not {requant!r}")
    if logits not in ("float32", "int8"):
        raise ValueError(f"logits must be 'float32' or 'int8', not {logits!r}")
    mod = run_passes(_as_module(model), canonicalize())
    layers = read_layers(mod["main"])
    calibration = np.asarray(calibration, np.float64)
    in_shape = tuple(int(s) for s in mod["main"].params[0].ty.shape)
    if calibration.ndim != 4 or calibration.shape[1:] != in_shape[1:]:
        raise ValueError(f"calibration must be (N, {', '.join(map(str, in_shape[1:]))}), got "
                         f"{calibration.shape}")
    outputs = float_forward(layers, calibration)
    qparams = _activation_qparams(layers, outputs)
    plan = _plan(layers, qparams, in_shape, requant, logits)
    mod = emit_plan(plan, in_shape)
    q_in = qparams[0]
    main = mod["main"].with_attr("tt.input_quant", [float(q_in.scale), int(q_in.zero)])
    mod.update_func(mod.get_global_var("main"), main)
    return mod


def quantize_input(mod: tvm.IRModule, x_float: np.ndarray) -> np.ndarray:
    """int8 ``clamp(rint(x / scale) + zero)`` (half to even) with ``main``'s ``tt.input_quant``."""
    scale, zero = (mod["main"].attrs["tt.input_quant"][i] for i in (0, 1))
    q = np.rint(np.asarray(x_float, np.float64) / float(scale)) + int(zero)
    return np.clip(q, INT8_MIN, INT8_MAX).astype(np.int8)


# --- reading the canonical fp32 graph ------------------------------------------------------


def read_layers(main: relax.Function) -> list[Layer]:
    """The float layers of a canonical ``main`` (see the module docstring for what is read)."""
    return _Reader(main).run()


class _Reader:
    def __init__(self, main: relax.Function):
        self.main = main
        params = list(main.params)
        values = [np.asarray(v.numpy(), np.float64) for v in main.attrs["params"]]
        self.consts: dict[relax.Var, np.ndarray] = dict(zip(params[1:], values))
        self.names = {p: p.name for p in params[1:]}
        self.acts: dict[relax.Var, int] = {params[0]: 0}
        self.layers = [Layer("input", "input")]
        self.open_: dict[int, str] = {}  # layer -> what it may still absorb ("bias", "act")
        self.uses = _use_counts(main)
        self.adds = 0

    def run(self) -> list[Layer]:
        for block in self.main.body.blocks:
            for b in block.bindings:
                self._binding(b.var, b.value)
        out = self.main.body.body
        if out not in self.acts or self.layers[self.acts[out]].kind != "linear":
            raise UnsupportedModelError("the model must end in a linear classifier "
                                        "(pool, flatten, matmul + bias)")
        return self.layers

    def _unsupported(self, var, what: str):
        raise UnsupportedModelError(f"quantize: {what} (binding '{var.name}') is not supported")

    def _binding(self, var, value):
        if not isinstance(value, relax.Call) or not isinstance(value.op, tvm.ir.Op):
            self._unsupported(var, f"a {type(value).__name__} binding")
        op, args = value.op.name, list(value.args)
        if not any(isinstance(a, relax.Var) and a in self.acts for a in args):
            return self._const(var, op, args, value)
        handler = {"relax.nn.conv2d": self._conv, "relax.add": self._add,
                   "relax.nn.relu": self._relu, "relax.clip": self._clip,
                   "relax.mean": self._mean, "relax.reshape": self._reshape,
                   "relax.flatten": self._reshape, "relax.matmul": self._matmul}.get(op)
        if handler is None:
            self._unsupported(var, f"op '{op}'")
        handler(var, value, args)

    def _const(self, var, op, args, call):
        x = self.consts[args[0]]
        if op == "relax.reshape":
            self.consts[var] = x.reshape([int(s) for s in var.ty.shape])
        elif op == "relax.permute_dims":
            axes = call.attrs.axes
            self.consts[var] = x.transpose(None if axes is None else [int(a) for a in axes])
        else:
            self._unsupported(var, f"op '{op}' on constants")
        self.names[var] = self.names[args[0]]

    def _new(self, var, layer: Layer, absorbs: str = ""):
        self.layers.append(layer)
        self.acts[var] = len(self.layers) - 1
        self.open_[len(self.layers) - 1] = absorbs

    def _absorb(self, var, src, kind: str) -> Layer | None:
        """The layer producing ``src`` if it can take ``kind`` (and ``src`` has no other use)."""
        index = self.acts.get(src)
        if index is None or kind not in self.open_.get(index, "") or self.uses[src] != 1:
            return None
        self.acts[var] = index
        if kind == "bias":
            self.open_[index] = self.open_[index].replace("bias", "")
        else:
            self.open_[index] = ""
        return self.layers[index]

    def _conv(self, var, call, args):
        x, w = args
        if x not in self.acts or w not in self.consts:
            self._unsupported(var, "conv2d of a non-constant weight")
        a = call.attrs
        if any(int(d) != 1 for d in a.dilation) or str(a.data_layout) != "NCHW":
            self._unsupported(var, "a dilated or non-NCHW conv2d")
        pad = [int(p) for p in a.padding]
        if pad[0] != pad[2] or pad[1] != pad[3] or int(a.strides[0]) != int(a.strides[1]):
            self._unsupported(var, "conv2d with asymmetric padding or strides")
        name = _layer_name(self.names[w])
        self._new(var, Layer("conv", name, [self.acts[x]], self.consts[w], None,
                             int(a.strides[0]), (pad[0], pad[1]), int(a.groups)), "bias act")

    def _add(self, var, call, args):
        lhs, rhs = args
        const = rhs if rhs in self.consts else lhs if lhs in self.consts else None
        if const is not None:
            src = lhs if const is rhs else rhs
            layer = self._absorb(var, src, "bias")
            if layer is None:
                self._unsupported(var, "add of a constant not directly after a conv / matmul")
            layer.bias = self.consts[const].reshape(-1)
            return
        if lhs not in self.acts or rhs not in self.acts:
            self._unsupported(var, "add")
        self.adds += 1
        self._new(var, Layer("add", f"add{self.adds}", [self.acts[lhs], self.acts[rhs]]), "act")

    def _relu(self, var, call, args):
        self._activation(var, args[0], (0.0, np.inf))

    def _clip(self, var, call, args):
        lo, hi = (float(v.value) for v in args[1:3])
        self._activation(var, args[0], (lo, hi))

    def _activation(self, var, src, bounds):
        layer = self._absorb(var, src, "act")
        if layer is None:
            self._unsupported(var, "an activation not directly after a conv or an add")
        if self.layers[self.acts[var]].kind == "conv":  # bias can no longer come
            self.open_[self.acts[var]] = ""
        layer.clip = bounds

    def _mean(self, var, call, args):
        axes = sorted(int(a) for a in call.attrs.axis)
        x = args[0]
        if x not in self.acts or axes != [2, 3] or len(x.ty.shape) != 4:
            self._unsupported(var, "mean other than a global average pool over (H, W)")
        self._new(var, Layer("pool", "avgpool", [self.acts[x]]))

    def _reshape(self, var, call, args):
        x = args[0]
        shape = [int(s) for s in var.ty.shape]
        if x not in self.acts or self.layers[self.acts[x]].kind != "pool" or len(shape) != 2:
            self._unsupported(var, "reshape / flatten other than of the pooled features")
        self.acts[var] = self.acts[x]

    def _matmul(self, var, call, args):
        x, w = args
        if x not in self.acts or w not in self.consts or self.layers[self.acts[x]].kind != "pool":
            self._unsupported(var, "matmul other than a classifier over the pooled features")
        weight = self.consts[w].T  # (C, O) -> (O, C)
        self._new(var, Layer("linear", _layer_name(self.names[w]), [self.acts[x]], weight), "bias")


def _use_counts(main: relax.Function) -> dict[relax.Var, int]:
    counts: dict[relax.Var, int] = {}

    def visit(expr):
        if isinstance(expr, relax.Call):
            for a in expr.args:
                if isinstance(a, relax.Var):
                    counts[a] = counts.get(a, 0) + 1

    relax.analysis.post_order_visit(main.body, visit)
    counts[main.body.body] = counts.get(main.body.body, 0) + 1
    return counts


def _layer_name(weight_name: str) -> str:
    """"conv1.weight" -> "conv1" (the fp32 weight's name without its last part)."""
    for suffix in (".weight", "_weight", ".kernel"):
        if weight_name.endswith(suffix):
            return weight_name[: -len(suffix)]
    return weight_name


# --- the fp32 forward pass (calibration) ---------------------------------------------------


def float_forward(layers: list[Layer], x: np.ndarray) -> list[np.ndarray]:
    """Every layer's float64 output for a batch ``x`` (N, C, H, W)."""
    outs = [np.asarray(x, np.float64)]
    for layer in layers[1:]:
        args = [outs[i] for i in layer.inputs]
        if layer.kind == "conv":
            y = conv2d_float(args[0], layer.weight, layer.stride, layer.padding, layer.groups)
            if layer.bias is not None:
                y = y + layer.bias[None, :, None, None]
        elif layer.kind == "add":
            y = args[0] + args[1]
        elif layer.kind == "pool":
            y = args[0].mean(axis=(2, 3), keepdims=True)
        else:
            y = args[0].reshape(len(args[0]), -1) @ layer.weight.T
            if layer.bias is not None:
                y = y + layer.bias[None]
        if layer.clip is not None:
            y = np.clip(y, *layer.clip)
        outs.append(y)
    return outs


def conv2d_float(x: np.ndarray, w: np.ndarray, stride: int, padding, groups: int) -> np.ndarray:
    """NCHW x OIHW grouped convolution, zero padding."""
    ph, pw = padding
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    o, cin, kh, kw = w.shape
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))
    win = win[:, :, ::stride, ::stride]  # (N, C, Ho, Wo, kh, kw)
    opg = o // groups
    parts = [np.einsum("nchwij,ocij->nohw", win[:, g * cin:(g + 1) * cin],
                       w[g * opg:(g + 1) * opg]) for g in range(groups)]
    return np.concatenate(parts, axis=1)


# --- quantization --------------------------------------------------------------------------


def _activation_qparams(layers: list[Layer], outs: list[np.ndarray]) -> list[QParams]:
    qparams: list[QParams] = []
    for layer, y in zip(layers, outs):
        if layer.kind == "pool":  # qavgpool keeps its input's quantization
            qparams.append(qparams[layer.inputs[0]])
        else:
            qparams.append(QParams.of_range(y.min(), y.max()))
    return qparams


def quantize_weight(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per output channel (axis 0) symmetric int8: ``(q int8, scales float64 [O])``."""
    peak = np.abs(w.reshape(len(w), -1)).max(axis=1)
    scales = np.where(peak > 0, peak / 127.0, 1.0)
    shape = (-1,) + (1,) * (w.ndim - 1)
    q = np.clip(np.rint(w / scales.reshape(shape)), -127, 127).astype(np.int8)
    return q, scales


def _plan(layers, qparams, in_shape, requant: str, logits: str) -> KernelPlan:
    plan, shapes = KernelPlan(), {0: in_shape}
    names = {0: "input"}
    for i, layer in enumerate(layers[1:], start=1):
        x_shape = shapes[layer.inputs[0]]
        inputs = [names[j] for j in layer.inputs]
        if layer.kind == "pool":
            step = KernelStep(layer.name, qops.qavgpool(x_shape), inputs)
        elif layer.kind == "add":
            step = _add_step(plan, layer, [qparams[j] for j in layer.inputs], qparams[i],
                             x_shape, inputs, requant)
        else:
            out_dtype = logits if layer.kind == "linear" else "int8"
            step = _conv_step(plan, layer, qparams[layer.inputs[0]], qparams[i], x_shape,
                              inputs, requant, out_dtype)
        names[i], shapes[i] = layer.name, step.out_shape
        plan.steps.append(step)
    return plan


def _conv_step(plan: KernelPlan, layer: Layer, qx: QParams, qy: QParams, x_shape, inputs,
               requant: str, out_dtype: str) -> KernelStep:
    weight = layer.weight if layer.kind == "conv" else layer.weight[:, :, None, None]
    q_weight, w_scales = quantize_weight(weight)
    units = qx.scale * w_scales
    bias = layer.bias if layer.bias is not None else np.zeros(len(weight))
    q_bias = np.clip(np.rint(bias / units), INT32_MIN, INT32_MAX).astype(np.int32)
    prefix = layer.name
    plan.weights[f"{prefix}.weight"] = q_weight
    plan.weights[f"{prefix}.bias"] = q_bias
    plan.units[f"{prefix}.weight"] = w_scales.astype(np.float32)
    plan.units[f"{prefix}.bias"] = units.astype(np.float32)
    names = [f"{prefix}.weight", f"{prefix}.bias"]
    zeros = {"x_zero": qx.zero, "y_zero": qy.zero}
    if out_dtype == "float32":  # dequantized logits: (acc + bias) * x_scale * w_scale
        plan.weights[f"{prefix}.scale"] = units.astype(np.float32)
        names.append(f"{prefix}.scale")
        kernel = qops.qclassifier(x_shape, q_weight.shape, out_dtype="float32", **zeros)
        return KernelStep(layer.name, kernel, [*inputs, *names])
    real = units / qy.scale
    if requant == "fixed":
        multiplier, shift = qops.quantize_multiplier(real)
        plan.weights[f"{prefix}.multiplier"] = multiplier
        plan.weights[f"{prefix}.shift"] = shift
        names += [f"{prefix}.multiplier", f"{prefix}.shift"]
    else:
        plan.weights[f"{prefix}.scale"] = real.astype(np.float32)
        names.append(f"{prefix}.scale")
    if layer.kind == "linear":
        build = qops.qclassifier_fixed if requant == "fixed" else qops.qclassifier
        kernel = build(x_shape, q_weight.shape, **zeros)
    else:
        build = qops.qconv2d_fixed if requant == "fixed" else qops.qconv2d
        kernel = build(x_shape, q_weight.shape, stride=layer.stride, padding=layer.padding,
                       groups=layer.groups, **zeros)
    return KernelStep(layer.name, kernel, [*inputs, *names])


def _add_step(plan: KernelPlan, layer: Layer, q_in: list[QParams], qy: QParams, shape, inputs,
              requant: str) -> KernelStep:
    (qa, qb), name = q_in, f"{layer.name}.qparams"
    zeros = {"a_zero": qa.zero, "b_zero": qb.zero, "out_zero": qy.zero}
    if requant == "fixed":
        plan.weights[name] = qops.fixed_add_params(qa.scale, qb.scale, qy.scale)
        kernel = qops.qadd_fixed(shape, **zeros)
    else:
        plan.weights[name] = np.array([qa.scale, qb.scale, qy.scale], np.float32)
        kernel = qops.qadd(shape, **zeros)
    return KernelStep(layer.name, kernel, [*inputs, name])
