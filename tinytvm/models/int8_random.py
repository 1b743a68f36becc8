"""Random int8 models in the paper's format (``paper.PaperModel``), for tests and examples that
must not depend on the pretrained data: a first conv, MobileNetV2 blocks (1x1 expand, 3x3
depthwise, 1x1 project, residual when shapes allow), a 1x1 feature mix, pool, classifier.

Weights are random; every output quantization is calibrated on one random input (the
accumulator's spread mapped to ~±48 int8 units, ReLU6 outputs with zero point -128), so
activations use the int8 range the way a real model's do, and the model passes
``paper._check_model``.
"""

from __future__ import annotations

import numpy as np

from .paper import (
    PaperModel,
    QBlock,
    QConv,
    QResidual,
    _check_model,
    _out_size,
    conv_accumulate,
    requantize,
    residual_add,
)

SPREAD = 48.0  # int8 units per accumulator standard deviation after rescale


def _conv(rng, name, x, x_quant, out_channels, kernel, stride, groups, relu) -> QConv:
    _, c, h, w = x.shape
    pad = (kernel - 1) // 2
    out_hw = (_out_size(h, kernel, stride, pad), _out_size(w, kernel, stride, pad))
    weight = rng.integers(-127, 128, (out_channels, c // groups, kernel, kernel)).astype(np.int8)
    conv = QConv(name, c, out_channels, (kernel, kernel), stride, groups, (pad, pad), (h, w),
                 out_hw, weight, np.zeros(out_channels, np.int32),
                 rng.uniform(0.002, 0.02, out_channels).astype(np.float32),
                 x_quant[0], x_quant[1], 1.0, 0)
    acc = conv_accumulate(conv, x).astype(np.float64)
    real = acc * conv.x_scale * conv.w_scales[None, :, None, None]
    bias_real = rng.normal(0, real.std() / 4 + 1e-6, out_channels)
    bias = np.rint(bias_real / (conv.x_scale * conv.w_scales)).astype(np.int32)
    spread = (real + bias_real[None, :, None, None]).std() + 1e-9
    y_scale = float(spread / SPREAD)
    y_zero = -128 if relu else int(rng.integers(-8, 9))
    return QConv(**{**conv.__dict__, "bias": bias, "y_scale": y_scale, "y_zero": y_zero})


def _run(conv: QConv, x):
    return requantize(conv, conv_accumulate(conv, x))


def random_int8_model(name: str, first: tuple[int, int, int], blocks, num_classes: int = 10,
                      hw: int = 128, seed: int = 0, feature_mix: int | None = None) -> PaperModel:
    """An int8 model in the paper's format with random, calibrated weights.

    first: (out channels, kernel, stride) of the first conv; blocks: (expand channels or None,
    out channels, depthwise kernel, stride, residual) per MobileNetV2 block; feature_mix: the
    channels of a 1x1 conv before the pool (the paper's models have none)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, (1, 3, hw, hw)).astype(np.int8)
    out, k, stride = first
    first_conv = _conv(rng, "first_conv", x, (2 / 255, 0), out, k, stride, 1, True)
    x, quant = _run(first_conv, x), (first_conv.y_scale, first_conv.y_zero)
    block_list = []
    for b, (expand, out, k, stride, has_residual) in enumerate(blocks):
        name_b = f"blocks.{b}"
        block_in, in_quant = x, quant
        pw1 = None
        if expand is not None:
            pw1 = _conv(rng, f"{name_b}.pointwise1", x, quant, expand, 1, 1, 1, True)
            x, quant = _run(pw1, x), (pw1.y_scale, pw1.y_zero)
        channels = x.shape[1]
        dw = _conv(rng, f"{name_b}.depthwise", x, quant, channels, k, stride, channels, True)
        x = _run(dw, x)
        project = _conv(rng, f"{name_b}.pointwise2", x, (dw.y_scale, dw.y_zero), out, 1, 1, 1,
                        False)
        x = _run(project, x)
        quant = (project.y_scale, project.y_zero)
        residual = None
        if has_residual:
            out_scale = float(max(project.y_scale, in_quant[0]) * 1.5)
            residual = QResidual(f"{name_b}.residual", in_quant[0], in_quant[1], out_scale, 0)
            x = residual_add(residual, project, x, block_in)
            quant = (out_scale, 0)
        block_list.append(QBlock(name_b, pw1, dw, project, residual))
    mix = None
    if feature_mix is not None:
        mix = _conv(rng, "feature_mix", x, quant, feature_mix, 1, 1, 1, True)
        x, quant = _run(mix, x), (mix.y_scale, mix.y_zero)
    pooled = np.round(x.astype(np.float64).mean(axis=(2, 3), keepdims=True)).astype(np.int8)
    classifier = _conv(rng, "classifier", pooled, quant, num_classes, 1, 1, 1, False)
    model = PaperModel(name, first_conv, tuple(block_list), mix, classifier, (3, hw, hw))
    _check_model(model)
    return model


def tiny_int8_model(seed: int = 0, hw: int = 16, width: int = 8, blocks: int = 2,
                    num_classes: int = 10) -> PaperModel:
    """A small MobileNetV2-like int8 model for (1, 3, hw, hw) inputs: a stride-2 first conv,
    `blocks` expand-3x blocks at stride 1 (residual after the first) and a 1x1 feature mix."""
    spec = [(width * 3, width, 3, 1, b > 0) for b in range(blocks)]
    return random_int8_model("tiny-int8", (width, 3, 2), spec, num_classes, hw, seed,
                             feature_mix=width * 4)
