"""Import of already-quantized ONNX models (QDQ format, and QLinearConv / QLinearMatMul).

``from_quantized_onnx(model)`` reads the graph directly (TVM's ONNX frontend has no
QLinearConv): ``QuantizeLinear`` nodes name the int8 activations and their quantization,
``DequantizeLinear`` of an initializer gives a quantized weight or bias, and every float op
between a DQ and a Q — Conv, Gemm, MatMul, Add, GlobalAveragePool, Flatten / Reshape, Relu,
Clip — becomes one ``qops`` kernel from the int8 input to the int8 output. This is the format
``onnxruntime.quantization.quantize_static(quant_format=QDQ)`` writes.

Requantization: float32, as onnxruntime's QLinearConv / QLinearMatMul do it (``M = x_scale *
w_scale / y_scale`` computed in float32, ``rint((acc + bias) * M)`` half to even), i.e. the
float32 ``qops`` kernels (``"tt.requant" = "float32"``); the residual add is ``qops.qadd``
(float32 ``((b - zb) * sb + (a - za) * sa) / so``; onnxruntime's QLinearAdd multiplies by
``sa / so`` and ``sb / so`` instead, so an output within a float32 ulp of .5 may differ by 1).
A global average pool that keeps its input's quantization is ``qops.qavgpool``; one that
requantizes (``quantize_static`` gives the pool its own scale) is a depthwise ``qconv2d``
with an all-ones (H, W) kernel and ``M = x_scale / (H * W * y_scale)``: the exact integer sum
rescaled once, as onnxruntime's QLinearGlobalAveragePool does. Relu / Clip before a Q are the
output clamp (a Relu needs the output zero point -128, which ``quantize_static`` gives it).

Requires symmetric weights (zero point 0, per tensor or per output channel), int8 activations,
a batch-1 NCHW input, and a classifier over globally pooled features. The final classifier
writes int8 logits in its output Q's quantization (``logits="int8"``) or the dequantized
``(acc + bias) * x_scale * w_scale`` (``logits="float32"``). Anything else raises
``UnsupportedModelError`` naming the node.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import tvm
from onnx import numpy_helper

from ..errors import UnsupportedModelError
from . import qops
from .paper_import import KernelPlan, KernelStep, emit_plan
from .ptq import QParams


@dataclass
class _Const:
    """A DequantizeLinear of an initializer: integer values and their per-axis scale."""

    values: np.ndarray
    scale: np.ndarray
    zero: np.ndarray
    name: str


@dataclass
class _Pending:
    """A float op waiting for the QuantizeLinear that gives its output quantization."""

    node: onnx.NodeProto
    inputs: list[str]  # quantized activation names
    relu: bool = False


class _Importer:
    def __init__(self, proto: onnx.ModelProto, logits: str):
        self.graph, self.logits = proto.graph, logits
        self.inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
        self.consts: dict[str, _Const] = {}
        self.float_to_q: dict[str, str] = {}  # DQ output (float) -> quantized activation name
        self.q: dict[str, QParams] = {}  # quantized activation -> its quantization
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.pending: dict[str, _Pending] = {}  # float output -> op waiting for its Q
        self.alias: dict[str, str] = {}  # quantized name -> the step output it is
        self.plan = KernelPlan()
        self.input_q: QParams | None = None
        graph_input = [i for i in proto.graph.input if i.name not in self.inits]
        if len(graph_input) != 1:
            raise UnsupportedModelError("quantized ONNX import takes models with one input")
        self.input_name = graph_input[0].name
        dims = graph_input[0].type.tensor_type.shape.dim
        self.in_shape = tuple(int(d.dim_value) for d in dims)
        if len(self.in_shape) != 4 or self.in_shape[0] != 1:
            raise UnsupportedModelError(f"input must be (1, C, H, W), got {self.in_shape}")

    def run(self) -> tvm.IRModule:
        for node in self.graph.node:
            self._node(node)
        out = self.graph.output[0].name
        last = self._final_logits(out)
        if last is None:
            raise UnsupportedModelError(f"graph output '{out}' is not a quantized classifier")
        mod = emit_plan(self.plan, self.in_shape)
        main = mod["main"].with_attr("tt.input_quant",
                                     [float(self.input_q.scale), int(self.input_q.zero)])
        mod.update_func(mod.get_global_var("main"), main)
        return mod

    # --- nodes -------------------------------------------------------------------------------

    def _node(self, node: onnx.NodeProto):
        handler = {"QuantizeLinear": self._quantize, "DequantizeLinear": self._dequantize,
                   "Conv": self._float_op, "Gemm": self._float_op, "MatMul": self._float_op,
                   "Add": self._float_op, "GlobalAveragePool": self._float_op,
                   "Flatten": self._float_op, "Reshape": self._float_op,
                   "Relu": self._activation, "Clip": self._activation,
                   "QLinearConv": self._qlinear, "QLinearMatMul": self._qlinear,
                   "Constant": self._constant}.get(node.op_type)
        if handler is None:
            raise UnsupportedModelError(f"node '{_label(node)}' ({node.op_type}) is not supported "
                                        "by the quantized ONNX import")
        handler(node)

    def _constant(self, node):
        self.inits[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)

    def _qparams(self, node, scale_name: str, zero_name: str | None) -> QParams:
        scale = self.inits.get(scale_name)
        zero = self.inits.get(zero_name) if zero_name else np.zeros((), np.int8)
        if scale is None or zero is None or scale.size != 1 or zero.size != 1:
            raise UnsupportedModelError(f"node '{_label(node)}': activation quantization must be "
                                        "per-tensor constants")
        if zero.dtype != np.int8:
            raise UnsupportedModelError(f"node '{_label(node)}': activations must be int8, got "
                                        f"{zero.dtype}")
        return QParams(float(np.float32(scale.reshape(()))), int(zero.reshape(())))

    def _quantize(self, node):
        x, out = node.input[0], node.output[0]
        q = self._qparams(node, node.input[1], _opt(node, 2))
        if x == self.input_name:
            self.input_q, self.q[out], self.shapes[out] = q, q, self.in_shape
            self.alias[out] = "input"
            return
        pending = self.pending.pop(x, None)
        if pending is None:
            raise UnsupportedModelError(f"node '{_label(node)}' quantizes '{x}', which is not "
                                        "the output of a supported op on quantized inputs")
        self.q[out] = q
        self._finish(pending, out, q)

    def _dequantize(self, node):
        x, out = node.input[0], node.output[0]
        if x in self.inits:
            zero_name = _opt(node, 2)
            zero = self.inits[zero_name] if zero_name else np.zeros((), self.inits[x].dtype)
            self.consts[out] = _Const(self.inits[x], self.inits[node.input[1]], zero, x)
        elif x in self.q:
            self.float_to_q[out] = x
        else:
            raise UnsupportedModelError(f"node '{_label(node)}' dequantizes '{x}', which is "
                                        "neither an initializer nor a quantized activation")

    def _act_input(self, node, name: str) -> str:
        if name not in self.float_to_q:
            raise UnsupportedModelError(f"node '{_label(node)}' ({node.op_type}) reads '{name}', "
                                        "which is not a dequantized int8 activation")
        return self.float_to_q[name]

    def _float_op(self, node):
        if node.op_type in ("Conv", "Gemm", "MatMul"):
            inputs = [self._act_input(node, node.input[0])]
        elif node.op_type == "Add":
            inputs = [self._act_input(node, n) for n in node.input[:2]]
        else:
            inputs = [self._act_input(node, node.input[0])]
        self.pending[node.output[0]] = _Pending(node, inputs)

    def _activation(self, node):
        pending = self.pending.pop(node.input[0], None)
        if pending is None or pending.node.op_type not in ("Conv", "Gemm", "MatMul", "Add"):
            raise UnsupportedModelError(f"node '{_label(node)}' ({node.op_type}) must follow a "
                                        "Conv, Gemm, MatMul or Add on quantized inputs")
        pending.relu = True
        self.pending[node.output[0]] = pending

    def _qlinear(self, node):
        """QLinearConv / QLinearMatMul: the DQ → op → Q pattern in one node."""
        ins = list(node.input)
        x_q = self._qparams(node, ins[1], ins[2])
        x = self._dequantized_input(node, ins[0], x_q)
        w = _Const(self.inits[ins[3]], self.inits[ins[4]], self.inits[ins[5]], ins[3])
        y_q = self._qparams(node, ins[6], ins[7])
        self.consts[f"{node.output[0]}#w"] = w
        bias_name = ins[8] if node.op_type == "QLinearConv" and len(ins) > 8 and ins[8] else ""
        fake = onnx.helper.make_node(
            "Conv" if node.op_type == "QLinearConv" else "MatMul",
            [f"{x}#dq", f"{node.output[0]}#w", *([f"{bias_name}#int"] if bias_name else [])],
            [node.output[0]], name=_label(node))
        fake.attribute.extend(node.attribute)
        if bias_name:
            scale = np.float32(x_q.scale) * w.scale.astype(np.float32)
            self.consts[f"{bias_name}#int"] = _Const(self.inits[bias_name], scale,
                                                     np.zeros_like(scale), bias_name)
        self.q[node.output[0]] = y_q
        self._finish(_Pending(fake, [x]), node.output[0], y_q)

    def _dequantized_input(self, node, name: str, q: QParams) -> str:
        if name not in self.q or self.q[name] != q:
            raise UnsupportedModelError(f"node '{_label(node)}' reads '{name}' with a "
                                        "quantization other than its producer's")
        return name

    # --- steps -------------------------------------------------------------------------------

    def _finish(self, pending: _Pending, out: str, q: QParams):
        node = pending.node
        if pending.relu and q.zero != qops.INT8_MIN:
            raise UnsupportedModelError(f"node '{_label(node)}': a fused Relu needs the output "
                                        f"zero point -128, got {q.zero}")
        kind = node.op_type
        if kind in ("Flatten", "Reshape"):
            self._alias(node, pending.inputs[0], out, q)
            return
        x = pending.inputs[0]
        if kind == "Conv":
            step = self._conv(node, x, q)
        elif kind in ("Gemm", "MatMul"):
            step = self._linear(node, x, q, "int8")
        elif kind == "Add":
            step = self._add(node, pending.inputs, q)
        else:
            step = self._pool(node, x, q)
        self._add_step(step, out)

    def _add_step(self, step: KernelStep, out: str):
        self.plan.steps.append(step)
        self.alias[out] = step.name
        self.shapes[out] = step.out_shape

    def _alias(self, node, x: str, out: str, q: QParams):
        if q != self.q[x]:
            raise UnsupportedModelError(f"node '{_label(node)}' ({node.op_type}) requantizes")
        shape = self.shapes[x]
        if node.op_type in ("Flatten", "Reshape") and shape[2:] != (1, 1):
            raise UnsupportedModelError(f"node '{_label(node)}' flattens a (H, W) > 1 tensor: "
                                        "only pooled features may be flattened")
        self.alias[out], self.shapes[out] = self.alias[x], shape

    def _weight(self, node, name: str) -> _Const:
        const = self.consts.get(name)
        if const is None or const.values.dtype != np.int8 or np.any(const.zero != 0):
            raise UnsupportedModelError(f"node '{_label(node)}': weight '{name}' must be a "
                                        "symmetric int8 DequantizeLinear of an initializer")
        return const

    def _bias(self, node, name: str | None, x_q: QParams, w: _Const, count: int) -> np.ndarray:
        units = np.float32(x_q.scale) * np.broadcast_to(w.scale.astype(np.float32), (count,))
        if not name:
            return np.zeros(count, np.int32)
        if name in self.consts and self.consts[name].values.dtype == np.int32:
            c = self.consts[name]
            if np.allclose(np.broadcast_to(c.scale, (count,)), units, rtol=1e-6, atol=0):
                return c.values.astype(np.int32).reshape(count)
            real = (c.values.astype(np.float64) - c.zero) * c.scale
        elif name in self.inits:
            real = self.inits[name].astype(np.float64)
        else:
            raise UnsupportedModelError(f"node '{_label(node)}': bias '{name}' is not constant")
        return np.rint(real.reshape(count) / units).astype(np.int32)

    def _register(self, prefix: str, w: _Const, weight: np.ndarray, bias: np.ndarray,
                  x_q: QParams) -> list[str]:
        count = len(weight)
        w_scales = np.broadcast_to(w.scale.astype(np.float32), (count,))
        self.plan.weights[f"{prefix}.weight"] = weight
        self.plan.weights[f"{prefix}.bias"] = bias
        self.plan.units[f"{prefix}.weight"] = w_scales.copy()
        self.plan.units[f"{prefix}.bias"] = (np.float32(x_q.scale) * w_scales).astype(np.float32)
        return [f"{prefix}.weight", f"{prefix}.bias"]

    def _scale(self, prefix: str, x_q: QParams, w_scales, y_scale: float | None) -> str:
        """float32 ``x_scale * w_scale / y_scale`` (onnxruntime's float32 arithmetic)."""
        scale = np.float32(x_q.scale) * np.asarray(w_scales, np.float32)
        if y_scale is not None:
            scale = scale / np.float32(y_scale)
        self.plan.weights[f"{prefix}.scale"] = scale.astype(np.float32)
        return f"{prefix}.scale"

    def _conv(self, node, x: str, y_q: QParams) -> KernelStep:
        w = self._weight(node, node.input[1])
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        pads = list(attrs.get("pads", [0, 0, 0, 0]))
        strides = list(attrs.get("strides", [1, 1]))
        if pads[:2] != pads[2:] or strides[0] != strides[1] or any(
                d != 1 for d in attrs.get("dilations", [1, 1])):
            raise UnsupportedModelError(f"node '{_label(node)}': asymmetric padding, unequal "
                                        "strides or dilation")
        x_q, prefix = self.q[x], _layer_name(w.name, node)
        bias = self._bias(node, _opt(node, 2), x_q, w, len(w.values))
        names = self._register(prefix, w, w.values, bias, x_q)
        w_scales = np.broadcast_to(w.scale, (len(w.values),))
        names.append(self._scale(prefix, x_q, w_scales, y_q.scale))
        kernel = qops.qconv2d(self.shapes[x], w.values.shape, stride=int(strides[0]),
                              padding=tuple(int(p) for p in pads[:2]),
                              groups=int(attrs.get("group", 1)), x_zero=x_q.zero,
                              y_zero=y_q.zero)
        return KernelStep(prefix, kernel, [self.alias[x], *names])

    def _linear(self, node, x: str, y_q: QParams | None, out_dtype: str) -> KernelStep:
        w = self._weight(node, node.input[1])
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        trans_b = node.op_type == "Gemm" and attrs.get("transB", 0) == 1
        if node.op_type == "Gemm" and (attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0
                                       or attrs.get("beta", 1.0) != 1.0):
            raise UnsupportedModelError(f"node '{_label(node)}': Gemm with transA/alpha/beta")
        weight = w.values if trans_b else w.values.T
        w_const = _Const(weight, w.scale, w.zero, w.name)
        if w.scale.size > 1 and not trans_b and w.scale.size != weight.shape[0]:
            raise UnsupportedModelError(f"node '{_label(node)}': per-channel weight scales "
                                        "must be per output feature")
        x_q, prefix = self.q[x], _layer_name(w.name, node)
        shape = self.shapes[x]
        if shape[2:] != (1, 1):
            raise UnsupportedModelError(f"node '{_label(node)}' ({node.op_type}) must read "
                                        "globally pooled features")
        count = weight.shape[0]
        bias = self._bias(node, _opt(node, 2), x_q, w_const, count)
        names = self._register(prefix, w_const, weight[:, :, None, None], bias, x_q)
        w_scales = np.broadcast_to(w.scale, (count,))
        if out_dtype == "float32":
            names.append(self._scale(prefix, x_q, w_scales, None))
            kernel = qops.qclassifier(shape, (count, shape[1], 1, 1), x_zero=x_q.zero,
                                      out_dtype="float32")
        else:
            names.append(self._scale(prefix, x_q, w_scales, y_q.scale))
            kernel = qops.qclassifier(shape, (count, shape[1], 1, 1), x_zero=x_q.zero,
                                      y_zero=y_q.zero)
        return KernelStep(prefix, kernel, [self.alias[x], *names])

    def _add(self, node, inputs: list[str], y_q: QParams) -> KernelStep:
        (qa, qb), name = (self.q[i] for i in inputs), _label(node)
        self.plan.weights[f"{name}.scales"] = np.array([qa.scale, qb.scale, y_q.scale],
                                                       np.float32)
        kernel = qops.qadd(self.shapes[inputs[0]], a_zero=qa.zero, b_zero=qb.zero,
                           out_zero=y_q.zero)
        return KernelStep(name, kernel, [*(self.alias[i] for i in inputs), f"{name}.scales"])

    def _pool(self, node, x: str, y_q: QParams) -> KernelStep:
        x_q, shape, name = self.q[x], self.shapes[x], _label(node)
        if x_q == y_q:
            return KernelStep(name, qops.qavgpool(shape), [self.alias[x]])
        c, h, w = shape[1:]  # a depthwise all-ones (h, w) conv: sum(x - zx) * M once
        self.plan.weights[f"{name}.weight"] = np.ones((c, 1, h, w), np.int8)
        self.plan.weights[f"{name}.bias"] = np.zeros(c, np.int32)
        m = np.float32(x_q.scale) / (np.float32(h * w) * np.float32(y_q.scale))
        self.plan.weights[f"{name}.scale"] = np.full(c, m, np.float32)
        kernel = qops.qconv2d(shape, (c, 1, h, w), groups=c, x_zero=x_q.zero, y_zero=y_q.zero)
        return KernelStep(name, kernel, [self.alias[x], *(f"{name}.{p}" for p in
                                                     ("weight", "bias", "scale"))])

    def _final_logits(self, out: str):
        """The classifier step feeding the graph output, rebuilt for ``logits`` if needed."""
        q_name = self.float_to_q.get(out)
        if q_name is None:  # a float Gemm output with no Q: float32 logits only
            pending = self.pending.pop(out, None)
            if pending is None or pending.node.op_type not in ("Gemm", "MatMul"):
                return None
            step = self._linear(pending.node, pending.inputs[0], None, "float32")
            self.plan.steps.append(step)
            return step
        last = self.plan.steps[-1]
        if self.alias.get(q_name) != last.name or qops.tt_op(last.kernel) != "qclassifier":
            return None
        if self.logits == "float32":  # (acc + bias) * x_scale * w_scale: the bias units
            x_shape = tuple(int(d) for d in last.kernel.params[0].shape)
            weight = self.plan.weights[f"{last.name}.weight"]
            self.plan.weights[f"{last.name}.scale"] = self.plan.units[f"{last.name}.bias"].copy()
            kernel = qops.qclassifier(x_shape, weight.shape, out_dtype="float32",
                                      x_zero=int(last.kernel.attrs["tt.x_zero"]))
            self.plan.steps[-1] = KernelStep(last.name, kernel, last.inputs)
        return self.plan.steps[-1]


def _opt(node, i: int) -> str | None:
    return node.input[i] if len(node.input) > i and node.input[i] else None


def _label(node) -> str:
    return node.name or node.output[0]


def _layer_name(weight: str, node) -> str:
    for suffix in ("_quantized", ".weight", "_weight"):
        weight = weight.removesuffix(suffix)
    return weight or _label(node)


def from_quantized_onnx(model: str | Path | onnx.ModelProto, *,
                        logits: str = "int8") -> tvm.IRModule:
    """int8 Relax module (``paper_to_relax``'s convention, with ``tt.input_quant``) of a QDQ
    or QLinear ONNX model; see the module docstring for the recognised patterns."""
    from ..frontend import load_onnx

    if logits not in ("int8", "float32"):
        raise ValueError(f"logits must be 'int8' or 'float32', not {logits!r}")
    proto = load_onnx(model)
    return _Importer(proto, logits).run()
