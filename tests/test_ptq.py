"""Post-training quantization (tinytvm.quant.quantize): an fp32 CNN trained on sklearn digits,
calibrated, compiled to C; the C equals the numpy reference interpreter bit for bit, and the
int8 accuracy stays within a few points of fp32."""

from __future__ import annotations

import functools

import numpy as np
import onnx
import pytest
from onnx import helper
from onnx.reference import ReferenceEvaluator

import tinytvm
from tinytvm.errors import UnsupportedModelError
from tinytvm.frontend import from_onnx
from tinytvm.models import OnnxBuilder, mbv2_tiny
from tinytvm.pipeline import canonicalize, run_passes
from tinytvm.quant import quantize, quantize_input, run_int8_graph
from tinytvm.quant.ptq import float_forward, read_layers


@functools.cache
def digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    return x[:1400], d.target[:1400], x[1400:], d.target[1400:]


def _train(seed: int = 0):
    """A small residual CNN trained for a few epochs with torch; returns its weights."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny batches: threads only add overhead (26 s -> 2 s)
    net = nn.ModuleDict({
        "conv1": nn.Conv2d(1, 8, 3, padding=1), "dw": nn.Conv2d(8, 8, 3, padding=1, groups=8),
        "pw": nn.Conv2d(8, 8, 1), "conv2": nn.Conv2d(8, 32, 3, stride=2, padding=1),
        "fc": nn.Linear(32, 10)})

    def forward(x):
        h = torch.relu(net["conv1"](x))
        r = net["pw"](torch.clamp(net["dw"](h), 0, 6))
        h = torch.relu(h + r)
        h = torch.relu(net["conv2"](h)).mean(dim=(2, 3))
        return net["fc"](h)

    x, y, _, _ = digits()
    xt, yt = torch.tensor(x), torch.tensor(y, dtype=torch.long)
    opt = torch.optim.Adam(net.parameters(), lr=0.02)
    for _ in range(25):
        for idx in torch.randperm(len(xt)).split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(forward(xt[idx]), yt[idx]).backward()
            opt.step()
    torch.set_num_threads(threads)
    return {k: v.detach().numpy().astype(np.float64) for k, v in net.state_dict().items()}


@functools.cache
def digits_model() -> onnx.ModelProto:
    """The trained CNN as ONNX (conv+relu, depthwise+relu6, 1x1, add+relu, conv s2+relu, GAP,
    flatten, Gemm)."""
    w = _train()
    b = OnnxBuilder("digits_cnn", [1, 1, 8, 8])

    def conv(x, name, cin, cout, k, stride=1, groups=1):
        return b.conv(x, cin, cout, k, stride, groups, name=name, weight=w[f"{name}.weight"],
                      bias=w[f"{name}.bias"])

    h = b.relu(conv("input", "conv1", 1, 8, 3))
    r = conv(b.relu6(conv(h, "dw", 8, 8, 3, groups=8)), "pw", 8, 8, 1)
    h = b.relu(b.add(h, r))
    h = b.flatten(b.global_avg_pool(b.relu(conv(h, "conv2", 8, 32, 3, stride=2))))
    fc = [b._init("fc.weight", w["fc.weight"]), b._init("fc.bias", w["fc.bias"])]
    b.nodes.append(helper.make_node("Gemm", [h, *fc], ["logits"], name="fc", transB=1))
    return b.finish("logits", [1, 10])


def test_float_forward_reads_the_model_right():
    """The layers PTQ calibrates on compute what the ONNX model computes."""
    model = digits_model()
    _, _, x, _ = digits()
    layers = read_layers(run_passes(from_onnx(model), canonicalize())["main"])
    assert [layer.kind for layer in layers] == ["input", "conv", "conv", "conv", "add", "conv",
                                                "pool", "linear"]
    ref = ReferenceEvaluator(model)
    for sample in x[:4]:
        expected = ref.run(None, {"input": sample[None]})[0]
        np.testing.assert_allclose(float_forward(layers, sample[None])[-1], expected,
                                   rtol=1e-4, atol=1e-4)


def test_ptq_digits_c_matches_reference_and_keeps_accuracy():
    model = digits_model()
    x_train, _, x_test, y_test = digits()
    mod = quantize(model, x_train[:200])
    main = mod["main"]
    names = [p.name for p in main.params]
    assert names[:6] == ["input", "conv1.weight", "conv1.bias", "conv1.multiplier",
                         "conv1.shift", "dw.weight"]
    assert "add1.qparams" in names and names[-3:] == ["fc.weight", "fc.bias", "fc.scale"]
    units = main.attrs["tt.quant_units"]
    assert set(units.keys()) == {n for n in names if n.endswith((".weight", ".bias"))}
    scale, zero = main.attrs["tt.input_quant"]
    assert float(scale) > 0 and -128 <= int(zero) <= 127

    session = tinytvm.build(mod, target="host", inference_only=True).host_session()
    for sample in x_test[:8]:
        q = quantize_input(mod, sample[None])
        expected = run_int8_graph(mod, q)["output"]
        np.testing.assert_array_equal(session.infer(q).reshape(expected.shape), expected)

    layers = read_layers(run_passes(from_onnx(model), canonicalize())["main"])
    fp32 = np.mean(float_forward(layers, x_test)[-1].argmax(axis=1) == y_test)
    int8 = np.mean([run_int8_graph(mod, quantize_input(mod, s[None]))["output"].argmax() == t
                    for s, t in zip(x_test, y_test)])
    print(f"digits: fp32 {fp32:.3f}, int8 PTQ {int8:.3f}")
    assert fp32 > 0.85
    assert int8 >= fp32 - 0.03


@pytest.mark.parametrize("requant,logits", [("float32", "int8"), ("fixed", "int8")])
def test_ptq_variants_and_batchnorm_c_matches_reference(requant, logits):
    """mbv2_tiny has a BatchNorm (folded), ReLU6, a residual add: every kernel kind."""
    rng = np.random.default_rng(0)
    mod = quantize(mbv2_tiny(), rng.uniform(0, 1, (16, 1, 8, 8)), requant=requant,
                   logits=logits)
    kinds = {str(f.attrs["tt.requant"]) for f in mod.functions.values()
             if hasattr(f, "attrs") and f.attrs is not None and "tt.requant" in f.attrs}
    assert kinds == {requant}
    assert str(mod["main"].ret_ty.dtype) == "int8"
    session = tinytvm.build(mod, target="host", inference_only=True).host_session()
    for _ in range(4):
        q = quantize_input(mod, rng.uniform(0, 1, (1, 1, 8, 8)))
        expected = run_int8_graph(mod, q)["output"]
        np.testing.assert_array_equal(session.infer(q).reshape(expected.shape), expected)


def test_quantize_input_rounds_half_to_even_and_saturates():
    mod = quantize(mbv2_tiny(), np.linspace(0, 1, 64).reshape(1, 1, 8, 8))
    scale, zero = (mod["main"].attrs["tt.input_quant"][i] for i in (0, 1))
    x = np.array([0.5, 1.5, 2.5, -1e6, 1e6]) * float(scale)
    assert quantize_input(mod, x).tolist() == [zero + 0, zero + 2, zero + 2, -128, 127]


def test_unsupported_op_is_named():
    b = OnnxBuilder("pooled", [1, 1, 8, 8])
    h = b.relu(b.conv("input", 1, 4, 3))
    b.nodes.append(helper.make_node("MaxPool", [h], ["mp"], name="mp", kernel_shape=[2, 2],
                                    strides=[2, 2]))
    h = b.flatten(b.global_avg_pool("mp"))
    model = b.finish(b.gemm(h, 4, 3), [1, 3])
    with pytest.raises(UnsupportedModelError, match="max_pool2d"):
        quantize(model, np.zeros((2, 1, 8, 8)))
    with pytest.raises(ValueError, match="calibration"):
        quantize(mbv2_tiny(), np.zeros((2, 8, 8)))
