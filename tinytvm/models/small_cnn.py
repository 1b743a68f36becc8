"""Tiny CNNs written directly as ONNX graphs.

They are built with `onnx.helper`, not exported from a framework, so the tests control every
node (BatchNorm, Clip, Flatten, Gemm) exactly as exporters emit them, and the weights are
plain numpy arrays an independent reference can reuse.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class OnnxBuilder:
    """Appends ONNX nodes to one graph; each method returns the output tensor name."""

    def __init__(self, name: str, input_shape, seed: int = 0):
        self.name = name
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.input = helper.make_tensor_value_info("input", TensorProto.FLOAT, list(input_shape))
        self.counter = 0

    def _fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def _init(self, name: str, array: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(array, dtype=np.float32), name))
        return name

    def conv(self, x, cin, cout, k, stride=1, groups=1, bias=True, name=None, weight=None):
        """`weight`/`bias` may be arrays (pretrained values); otherwise He-initialised."""
        name = name or self._fresh("conv")
        fan_in = cin // groups * k * k
        w = self.rng.normal(0, np.sqrt(2.0 / fan_in), (cout, cin // groups, k, k)) \
            if weight is None else weight
        inputs = [x, self._init(f"{name}.weight", w)]
        if bias is not False:
            b = self.rng.normal(0, 0.05, cout) if bias is True else bias
            inputs.append(self._init(f"{name}.bias", b))
        out = f"{name}.out"
        pad = (k - 1) // 2
        self.nodes.append(helper.make_node(
            "Conv", inputs, [out], name=name, kernel_shape=[k, k], strides=[stride, stride],
            pads=[pad, pad, pad, pad], group=groups))
        return out

    def conv1d(self, x, cin, cout, k, stride=1, groups=1, name=None):
        name = name or self._fresh("conv")
        w = self.rng.normal(0, np.sqrt(2.0 / (cin // groups * k)), (cout, cin // groups, k))
        inputs = [x, self._init(f"{name}.weight", w),
                  self._init(f"{name}.bias", self.rng.normal(0, 0.05, cout))]
        out = f"{name}.out"
        pad = (k - 1) // 2
        self.nodes.append(helper.make_node("Conv", inputs, [out], name=name, kernel_shape=[k],
                                           strides=[stride], pads=[pad, pad], group=groups))
        return out

    def pool1d(self, x, kind: str, k: int, stride: int):
        """kind: 'MaxPool' or 'AveragePool'."""
        out = self._fresh(kind.lower())
        self.nodes.append(helper.make_node(kind, [x], [out], name=out, kernel_shape=[k],
                                           strides=[stride]))
        return out

    def batchnorm(self, x, c, name=None):
        name = name or self._fresh("bn")
        params = [
            self._init(f"{name}.scale", self.rng.uniform(0.5, 1.5, c)),
            self._init(f"{name}.bias", self.rng.normal(0, 0.1, c)),
            self._init(f"{name}.mean", self.rng.normal(0, 0.1, c)),
            self._init(f"{name}.var", self.rng.uniform(0.5, 1.5, c)),
        ]
        out = f"{name}.out"
        self.nodes.append(helper.make_node("BatchNormalization", [x, *params], [out], name=name,
                                           epsilon=1e-5))
        return out

    def relu(self, x):
        out = self._fresh("relu")
        self.nodes.append(helper.make_node("Relu", [x], [out], name=out))
        return out

    def relu6(self, x, hi: float = 6.0):
        """Clip(0, hi) with min/max as initializer inputs, as PyTorch exports it (opset >= 11)."""
        out = self._fresh("clip")
        lo = self._scalar(f"{out}.min", 0.0)
        hi = self._scalar(f"{out}.max", float(hi))
        self.nodes.append(helper.make_node("Clip", [x, lo, hi], [out], name=out))
        return out

    def _scalar(self, name, value):
        self.inits.append(numpy_helper.from_array(np.array(value, dtype=np.float32), name))
        return name

    def add(self, a, b):
        out = self._fresh("add")
        self.nodes.append(helper.make_node("Add", [a, b], [out], name=out))
        return out

    def global_avg_pool(self, x):
        out = self._fresh("gap")
        self.nodes.append(helper.make_node("GlobalAveragePool", [x], [out], name=out))
        return out

    def flatten(self, x):
        out = self._fresh("flatten")
        self.nodes.append(helper.make_node("Flatten", [x], [out], name=out, axis=1))
        return out

    def gemm(self, x, cin, cout, name=None):
        name = name or self._fresh("fc")
        w = self.rng.normal(0, np.sqrt(1.0 / cin), (cout, cin))
        inputs = [x, self._init(f"{name}.weight", w), self._init(f"{name}.bias", np.zeros(cout))]
        out = f"{name}.out"
        self.nodes.append(helper.make_node("Gemm", inputs, [out], name=name, transB=1))
        return out

    def finish(self, output, output_shape) -> onnx.ModelProto:
        out = helper.make_tensor_value_info(output, TensorProto.FLOAT, list(output_shape))
        graph = helper.make_graph(self.nodes, self.name, [self.input], [out], self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = 8
        onnx.checker.check_model(model)
        return model


def mbv2_tiny(num_classes=10, in_ch=1, size=8, width=8, seed=0) -> onnx.ModelProto:
    """MobileNetV2-like: strided stem + BN + ReLU6, an inverted residual block, GAP, linear."""
    b = OnnxBuilder("mbv2_tiny", [1, in_ch, size, size], seed)
    x = b.relu6(b.batchnorm(b.conv("input", in_ch, width, 3, stride=2, bias=False), width))
    h = b.relu6(b.conv(x, width, 2 * width, 1))
    h = b.relu6(b.conv(h, 2 * width, 2 * width, 3, groups=2 * width))
    h = b.conv(h, 2 * width, width, 1)
    x = b.add(x, h)
    x = b.relu(b.conv(x, width, 2 * width, 3, stride=2))
    x = b.flatten(b.global_avg_pool(x))
    return b.finish(b.gemm(x, 2 * width, num_classes), [1, num_classes])


def resnet_tiny(num_classes=10, in_ch=1, size=8, width=6, seed=1) -> onnx.ModelProto:
    """ResNet-like: conv + BN + ReLU, a basic residual block with a depthwise ReLU6 stage."""
    b = OnnxBuilder("resnet_tiny", [1, in_ch, size, size], seed)
    x = b.relu(b.conv("input", in_ch, width, 3))
    h = b.relu6(b.conv(x, width, width, 3, groups=width))
    h = b.batchnorm(b.conv(h, width, width, 1, bias=False), width)
    x = b.relu(b.add(h, x))
    x = b.relu6(b.conv(x, width, 2 * width, 3, stride=2, groups=2 if width % 2 == 0 else 1))
    x = b.flatten(b.global_avg_pool(x))
    return b.finish(b.gemm(x, 2 * width, num_classes), [1, num_classes])


def ts_cnn(length=150, num_classes=2, width=8, seed=2) -> onnx.ModelProto:
    """1-D CNN for time series: strided conv + BN + ReLU, max pool, depthwise + ReLU6, 1x1,
    residual add, average pool, global average pool over time, linear."""
    b = OnnxBuilder("ts_cnn", [1, 1, length], seed)
    x = b.relu(b.batchnorm(b.conv1d("input", 1, width, 7, stride=2), width))
    x = b.pool1d(x, "MaxPool", 2, 2)
    h = b.relu6(b.conv1d(x, width, width, 5, groups=width))
    x = b.add(x, b.conv1d(h, width, width, 1))
    x = b.relu(b.conv1d(b.pool1d(x, "AveragePool", 2, 2), width, 2 * width, 3, stride=2))
    x = b.flatten(b.global_avg_pool(x))
    return b.finish(b.gemm(x, 2 * width, num_classes), [1, num_classes])
