"""The paper's three int8 models: loading, architecture facts, and the integer reference.

The data (shared/data/paper-models) must be present: CI has it, so these tests fail rather
than skip without it. The numpy reference is checked bit for bit against an independent
PyTorch re-statement of the original's simulated-device ops (float32, torch.round), and
on a real photo (scikit-learn's bundled china.jpg, a temple) its top classes are buildings.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest

from tinytvm.errors import UnsupportedModelError
from tinytvm.models import paper
from tinytvm.models.paper import (
    PAPER_MODELS,
    architecture_facts,
    compare_rescale,
    conv_list,
    forward_int8,
    forward_int8_fixed_point,
    layer_by_layer_peak,
    load_paper_model,
    paper_models_available,
    program,
    quantize_input,
    requant_params,
    synthetic_image,
)

torch = pytest.importorskip("torch")
F = torch.nn.functional

EXPECTED = {  # name: (convs, blocks, residual adds)
    "mbv2-w0.35": (52, 17, 10),
    "proxyless-w0.3": (61, 20, 13),
    "mcunet-5fps": (43, 14, 7),
}
# ImageNet classes a photo of a Chinese temple may fairly be: bell cote, church, dome,
# monastery, palace, stupa.
BUILDINGS = {442, 497, 538, 663, 698, 832}
PALACE = 698


@functools.cache
def model(name: str) -> paper.PaperModel:
    return load_paper_model(name)


@functools.cache
def synthetic_input(name: str) -> np.ndarray:
    return quantize_input(model(name), synthetic_image())


def test_paper_models_present():
    assert paper_models_available(), f"paper models missing from {paper.paper_models_dir()}"


@pytest.mark.parametrize("name", PAPER_MODELS)
def test_load(name):
    m = model(name)
    convs, blocks, residuals = EXPECTED[name]
    assert len(conv_list(m)) == convs
    assert len(m.blocks) == blocks
    assert sum(b.residual is not None for b in m.blocks) == residuals
    assert m.input_shape == (3, 128, 128)
    assert m.classifier.out_channels == 1000 and m.feature_mix is None
    for conv in conv_list(m):
        assert conv.weight.dtype == np.int8 and conv.bias.dtype == np.int32
        assert conv.w_scales.shape == (conv.out_channels,)
    assert [c.name for c in conv_list(m)] == [op.name for op in program(m) if op.kind == "conv"]


def test_missing_data_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv(paper.ENV_VAR, str(tmp_path))
    assert not paper_models_available()
    with pytest.raises(UnsupportedModelError, match=str(tmp_path)):
        load_paper_model("mbv2-w0.35")
    with pytest.raises(UnsupportedModelError, match="unknown paper model"):
        load_paper_model("resnet-50")


def test_mbv2_architecture_facts():
    rows, totals = architecture_facts(model("mbv2-w0.35"))
    # DESIGN.md says "19 M MACs"; the data give 16.76 M (convs incl. the 112->1000
    # classifier, no 1280-channel feature mix). Recorded exactly; see the report.
    assert totals["macs"] == 16_758_912
    assert rows[0]["kind"] == "full" and rows[0]["out_hw"] == (64, 64)
    assert {r["kind"] for r in rows[1:]} == {"depthwise", "pointwise"}
    assert totals["weight_bytes"] == 350_688 and totals["bias_bytes"] == 27_040
    # DESIGN.md: block 1 expands 8 -> 48 at 64x64 (192 KB); layer by layer >= 224 KB there,
    # and its depthwise (192 KB in + 48 KB out) is the peak.
    assert layer_by_layer_peak(model("mbv2-w0.35")) == (245_760, "blocks.1.depthwise")


@pytest.mark.parametrize("name", PAPER_MODELS)
def test_macs_match_forward_shapes(name):
    """MACs from the JSON shapes equal MACs from the shapes the forward pass produces."""
    m = model(name)
    values = forward_int8(m, synthetic_input(name))
    for conv in conv_list(m):
        out = values[conv.name]
        assert out.shape[1:] == (conv.out_channels, *conv.out_shape), conv.name
    counted = sum(values[c.name].size * c.weight[0].size for c in conv_list(m))
    assert counted == architecture_facts(m)[1]["macs"]


@pytest.mark.parametrize("name", PAPER_MODELS)
def test_accumulators_exact_in_float32(name):
    """The conv sum (no bias) of any input stays below 2**24: float32 holds it exactly."""
    assert architecture_facts(model(name))[1]["max_acc_bound"] < 2**24


@pytest.mark.parametrize("name", PAPER_MODELS)
def test_forward_int8_runs(name):
    m = model(name)
    values = forward_int8(m, synthetic_input(name))
    for op in program(m):
        assert values[op.name].dtype == np.int8, op.name
    logits = values["logits"]
    assert logits.shape == (1, 1000) and logits.dtype == np.int8
    assert len(np.unique(logits)) > 20  # not collapsed to a constant
    assert values["blocks.1.pointwise1"].min() == -128  # ReLU6 via y_zero = -128


# --- the original's semantics, stated independently in PyTorch -----------------------------


def torch_original(m: paper.PaperModel, x: np.ndarray) -> dict:
    """tiny-training's simulated device ops (quantized_ops_diff): float32 tensors throughout."""

    def conv(c, t):
        weight = torch.from_numpy(c.weight.astype(np.float32))
        out = F.conv2d(t - c.x_zero, weight, None, c.stride, c.padding, 1, c.groups).round()
        out = out + torch.from_numpy(c.bias.copy()).float().view(1, -1, 1, 1)
        scale = (c.x_scale * torch.from_numpy(c.w_scales.copy()).double() / c.y_scale).float()
        return ((out * scale.view(1, -1, 1, 1)).round() + c.y_zero).clamp(-128, 127)

    def s(v):  # a python scale or zero point as the original's float32 buffer
        return torch.tensor([v], dtype=torch.float64).float()

    def add(r, c, a, b):
        total = (b - s(r.in_zero)) * s(r.in_scale) + (a - s(c.y_zero)) * s(c.y_scale)
        return ((total / s(r.out_scale)).round() + r.out_zero).clamp(-128, 127)

    out = {"input": torch.from_numpy(x.astype(np.float32))}
    t = out["first_conv"] = conv(m.first_conv, out["input"])
    for block in m.blocks:
        block_input = t
        for c in block.convs:
            t = out[c.name] = conv(c, t)
        if block.residual is not None:
            t = out[block.residual.name] = add(block.residual, block.pointwise2, t, block_input)
    t = out["avgpool"] = t.mean([-1, -2], keepdim=True).round()
    out["classifier"] = conv(m.classifier, t)
    return {k: v.numpy().astype(np.int64) for k, v in out.items()}


def china_photo(size: int = 128) -> np.ndarray:
    """scikit-learn's bundled china.jpg, resized and center-cropped as the original's val set."""
    image_module = pytest.importorskip("PIL.Image")
    from sklearn.datasets import load_sample_image

    image = image_module.fromarray(load_sample_image("china.jpg"))
    short = math.ceil(size / 0.875)
    w, h = image.size
    new = (short, int(short * h / w)) if w < h else (int(short * w / h), short)
    image = image.resize(new, image_module.BILINEAR)
    left, top = round((new[0] - size) / 2), round((new[1] - size) / 2)
    return np.asarray(image.crop((left, top, left + size, top + size)))


@pytest.mark.parametrize("name", PAPER_MODELS)
@pytest.mark.parametrize("image", ["synthetic", "china"])
def test_matches_torch_original_bit_for_bit(name, image):
    m = model(name)
    x = synthetic_input(name) if image == "synthetic" else quantize_input(m, china_photo())
    ours, theirs = forward_int8(m, x), torch_original(m, x)
    for key, expected in theirs.items():
        mismatches = np.count_nonzero(ours[key].astype(np.int64) != expected)
        assert mismatches == 0, f"{name} {key}: {mismatches} values differ"


@pytest.mark.parametrize("name", PAPER_MODELS)
def test_photo_ranks_buildings(name):
    """The README's palace-ranking check needs its photo; a temple photo is a close stand-in."""
    m = model(name)
    logits = forward_int8(m, quantize_input(m, china_photo()))["logits"][0].astype(int)
    top5 = np.argsort(-logits, kind="stable")[:5]
    assert top5[0] in BUILDINGS and PALACE in top5, top5


# --- input quantization and fixed point ------------------------------------------------------


def test_quantize_input_reproduces_original_float32_noise():
    """As torchvision's ToTensor + Normalize(0.5, 1/255) in float32, then torch.round."""
    m = model("mbv2-w0.35")
    u8 = np.arange(256, dtype=np.uint8).reshape(1, 16, 16).repeat(3, axis=0)
    q = quantize_input(m, u8)
    assert q.shape == (1, 3, 16, 16) and q.dtype == np.int8
    mean, std = torch.tensor([0.5] * 3), torch.tensor([1 / 255] * 3)
    t = torch.from_numpy(u8.copy()).float().div(255).sub(mean.view(3, 1, 1)).div(std.view(3, 1, 1))
    assert np.array_equal(q[0], t.round().numpy().astype(np.int8))
    flat = q[0, 0].ravel().astype(int)  # -127.49999 -> -127, never -128; 40 ties land even
    assert (flat[0], flat[1], flat[255], len(np.unique(flat))) == (-127, -126, 127, 215)
    assert np.array_equal(quantize_input(m, u8.transpose(1, 2, 0)), q)  # HWC
    assert np.array_equal(quantize_input(m, u8.astype(np.float32) / np.float32(255)), q)


def test_avg_pool_rounds_half_to_even():
    x = np.zeros((1, 4, 4, 4), np.int8)
    x[0, :, 0, 0] = [8, 24, -8, -24]  # means 0.5, 1.5, -0.5, -1.5
    assert paper.avg_pool(x).ravel().tolist() == [0, 2, 0, -2]


@pytest.mark.parametrize("name", PAPER_MODELS)
def test_requant_params_represent_the_scale(name):
    for conv in conv_list(model(name)):
        multiplier, shift = requant_params(conv)
        assert multiplier.dtype == np.int32 and shift.dtype == np.int32
        assert np.all((multiplier >= 2**30) & (shift >= 0) & (shift < 31)), conv.name
        rebuilt = multiplier.astype(np.float64) * 2.0**-31 * 2.0 ** -shift.astype(np.float64)
        np.testing.assert_allclose(rebuilt, conv.effective_scale, rtol=2**-30)


# What we found (synthetic image; isolated = each op fed the float32 reference's own inputs):
# TFLite / CMSIS-NN default fixed point (double rounding) puts ~0.4% of conv outputs off by
# 1 (the adds match), and the differences spread to ~20% of all activations and 50-60% of
# the logits (mbv2-w0.35's top-1 class changes). Single rounding and float64 differ from the
# original only where a float32 product lies within an ulp of .5: 0-1 outputs here, which
# can still spread (see the report). So bit-exact C needs the original's float32 rescale.
FOUND_ISOLATED = {  # name: (fixed, fixed-single, float64)
    "mbv2-w0.35": (3345, 0, 0),
    "proxyless-w0.3": (2849, 1, 1),
    "mcunet-5fps": (3273, 1, 1),
}


@pytest.mark.parametrize("name", PAPER_MODELS)
def test_fixed_point_is_not_bit_exact_with_the_original(name):
    m, x = model(name), synthetic_input(name)
    found = tuple(sum(compare_rescale(m, x, mode).values())
                  for mode in ("fixed", "fixed-single", "float64"))
    assert found == FOUND_ISOLATED[name]
    ref, fixed = forward_int8(m, x), forward_int8_fixed_point(m, x)
    assert np.count_nonzero(ref["logits"] != fixed["logits"]) > 300
    for op in program(m):  # isolated, an op is never off by more than 1
        if op.kind != "pool":
            got = paper.run_op(m, op, ref, "fixed").astype(int)
            assert np.max(np.abs(got - ref[op.name])) <= 1, op.name
