"""The paper's pretrained int8 models as float32 ONNX models, for fp32 transfer learning.

Weights and biases are dequantized (W = s_W·W̄, b = s_x·s_W·b̄); an output clamp whose int8
range starts at 0 (y_zero = -128) becomes Clip(0, top), i.e. the ReLU6 the int8 graph encodes;
clamps of linear (projection) convs are dropped. The 1000-class classifier is replaced by a new
head (Gemm) with `num_classes` outputs, as in the paper's transfer learning. The model's input
is the dequantized int8 input: x = 2·p − 1 for pixels p in [0, 1].
"""

from __future__ import annotations

import numpy as np
import onnx

from .paper import PaperModel, QConv, load_paper_model, program
from .small_cnn import OnnxBuilder


def _float_conv(b: OnnxBuilder, x: str, conv: QConv) -> str:
    scales = conv.w_scales.astype(np.float64)
    weight = conv.weight.astype(np.float64) * scales[:, None, None, None]
    bias = conv.bias.astype(np.float64) * conv.x_scale * scales
    out = b.conv(x, conv.in_channels, conv.out_channels, conv.kernel[0], stride=conv.stride,
                 groups=conv.groups, name=conv.name, weight=weight, bias=bias)
    low = (-128 - conv.y_zero) * conv.y_scale
    if abs(low) < 1e-9:
        return b.relu6(out, hi=(127 - conv.y_zero) * conv.y_scale)
    return out


def paper_onnx_fp32(name: str | PaperModel = "mbv2-w0.35", num_classes: int | None = 10,
                    resolution: int = 128, seed: int = 0) -> onnx.ModelProto:
    """`num_classes=None` keeps the pretrained 1000-class classifier (dequantized)."""
    model = load_paper_model(name) if isinstance(name, str) else name
    b = OnnxBuilder(f"{model.name}-fp32", [1, 3, resolution, resolution], seed)
    values = {"input": "input"}
    last = "input"
    for op in program(model):
        if op.kind == "conv" and op.layer is model.classifier:
            break
        if op.kind == "conv":
            last = _float_conv(b, values[op.inputs[0]], op.layer)
        elif op.kind == "add":
            last = b.add(values[op.inputs[0]], values[op.inputs[1]])
        elif op.kind == "pool":
            last = b.flatten(b.global_avg_pool(values[op.inputs[0]]))
        values[op.name] = last
    features = model.classifier.in_channels
    if num_classes is None:
        cls = model.classifier
        scales = cls.w_scales.astype(np.float64)
        weight = cls.weight[:, :, 0, 0].astype(np.float64) * scales[:, None]
        bias = cls.bias.astype(np.float64) * cls.x_scale * scales
        out = b.gemm(last, features, cls.out_channels, name=cls.name)
        b.inits[-2].CopyFrom(onnx.numpy_helper.from_array(weight.astype(np.float32), f"{cls.name}.weight"))
        b.inits[-1].CopyFrom(onnx.numpy_helper.from_array(bias.astype(np.float32), f"{cls.name}.bias"))
        return b.finish(out, [1, cls.out_channels])
    return b.finish(b.gemm(last, features, num_classes, name="head"), [1, num_classes])
