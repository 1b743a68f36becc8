"""Quantized ONNX import (tinytvm.quant.from_quantized_onnx): QDQ graphs and QLinearConv become
float32-requantized qops kernels; the generated C equals the numpy reference bit for bit, and
agrees with onnx.reference / onnxruntime on the int8 logits."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import tinytvm
from tinytvm.errors import UnsupportedModelError
from tinytvm.quant import from_quantized_onnx, quantize_input, run_int8_graph


class QDQBuilder:
    """A QDQ-format graph by hand: int8 activations with Q -> DQ pairs, per-channel weights."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.scales = [], [], {}

    def init(self, name, array):
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def qdq(self, x, name, scale, zero):
        """Q then DQ of the float tensor ``x``; returns the DQ output."""
        s = self.init(f"{name}_scale", np.array(scale, np.float32))
        z = self.init(f"{name}_zp", np.array(zero, np.int8))
        self.scales[name] = np.float32(scale)
        self.nodes += [helper.make_node("QuantizeLinear", [x, s, z], [f"{name}_q"]),
                       helper.make_node("DequantizeLinear", [f"{name}_q", s, z], [f"{name}_dq"])]
        return f"{name}_dq"

    def weight(self, name, shape):
        w = self.rng.integers(-127, 128, shape).astype(np.int8)
        fan_in = int(np.prod(shape[1:]))  # He-like real weights: std sqrt(2 / fan_in)
        scales = (self.rng.uniform(0.7, 1.3, shape[0]) * np.sqrt(2 / fan_in) / 73).astype(
            np.float32)
        args = [self.init(f"{name}_quantized", w), self.init(f"{name}_scale", scales),
                self.init(f"{name}_zp", np.zeros(shape[0], np.int8))]
        self.nodes.append(helper.make_node("DequantizeLinear", args, [f"{name}_dq"], axis=0))
        return f"{name}_dq", scales

    def bias(self, name, x_scale, w_scales):
        b = self.rng.integers(-300, 300, len(w_scales)).astype(np.int32)
        args = [self.init(f"{name}_quantized", b),
                self.init(f"{name}_scale", np.float32(x_scale) * w_scales),
                self.init(f"{name}_zp", np.zeros(len(w_scales), np.int32))]
        self.nodes.append(helper.make_node("DequantizeLinear", args, [f"{name}_dq"], axis=0))
        return f"{name}_dq"

    def conv(self, x, x_scale, name, cin, cout, k, groups=1, stride=1):
        w, ws = self.weight(f"{name}.weight", (cout, cin // groups, k, k))
        b = self.bias(f"{name}.bias", x_scale, ws)
        p = (k - 1) // 2
        self.nodes.append(helper.make_node("Conv", [x, w, b], [f"{name}.out"], name=name,
                                           kernel_shape=[k, k], pads=[p] * 4,
                                           strides=[stride] * 2, group=groups))
        return f"{name}.out"

    def node(self, op, inputs, out, **attrs):
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def finish(self, output, classes) -> onnx.ModelProto:
        graph = helper.make_graph(
            self.nodes, "qdq", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                              [1, 1, 8, 8])],
            [helper.make_tensor_value_info(output, TensorProto.FLOAT, [1, classes])],
            self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
        model.ir_version = 9
        onnx.checker.check_model(model)
        return model


def qdq_cnn(seed: int = 0, qlinear: bool = False, bad: str = "") -> onnx.ModelProto:
    """conv+relu, depthwise (Conv or QLinearConv) + relu, residual add, GAP (own scale),
    flatten, Gemm, output Q -> DQ. ``bad``: "bn" or "weight_zero" breaks a rule."""
    b = QDQBuilder(seed)
    x = b.qdq("input", "input", 1 / 255, -128)
    h = b.node("Relu", [b.conv(x, 1 / 255, "conv1", 1, 8, 3)], "relu1")
    h = b.qdq(h, "act1", 0.02, -128)
    if qlinear:
        w = b.rng.integers(-127, 128, (8, 1, 3, 3)).astype(np.int8)
        ws = (b.rng.uniform(0.7, 1.3, 8) * np.sqrt(2 / 9) / 73).astype(np.float32)
        args = ["act1_q", "act1_scale", "act1_zp", b.init("dw.weight_quantized", w),
                b.init("dw.weight_scale", ws), b.init("dw.weight_zp", np.zeros(8, np.int8)),
                b.init("act2_scale", np.float32(0.03)), b.init("act2_zp", np.int8(-10)),
                b.init("dw.bias", b.rng.integers(-100, 100, 8).astype(np.int32))]
        b.nodes.append(helper.make_node("QLinearConv", args, ["act2_q"], name="dw",
                                        kernel_shape=[3, 3], pads=[1] * 4, group=8))
        b.nodes.append(helper.make_node("DequantizeLinear", ["act2_q", "act2_scale", "act2_zp"],
                                        ["act2_dq"]))
        r = "act2_dq"
    else:
        r = b.qdq(b.conv(h, 0.02, "dw", 8, 8, 3, groups=8), "act2", 0.03, -10)
    if bad == "bn":
        r = b.node("BatchNormalization", [r, *(b.init(f"bn.{p}", np.ones(8, np.float32))
                                               for p in ("s", "b", "m", "v"))], "bn")
        r = b.qdq(r, "bnq", 0.03, 0)
    h = b.qdq(b.node("Add", [h, r], "add1"), "act3", 0.04, 5)
    h = b.qdq(b.node("Conv", [h, *b.weight("conv2.weight", (16, 8, 3, 3))[:1]], "conv2.out",
                     kernel_shape=[3, 3], pads=[1] * 4, strides=[2, 2]), "act4", 0.05, -3)
    h = b.qdq(b.node("GlobalAveragePool", [h], "gap"), "pool", 0.03, 2)
    h = b.qdq(b.node("Flatten", [h], "flat", axis=1), "flatq", 0.03, 2)
    w, ws = b.weight("fc.weight", (10, 16))
    if bad == "weight_zero":
        b.inits[-1] = numpy_helper.from_array(np.ones(10, np.int8), "fc.weight_zp")
    g = b.node("Gemm", [h, w, b.bias("fc.bias", 0.03, ws)], "fc", transB=1)
    out = b.qdq(g, "logits", 0.05, 0)
    return b.finish(out, 10)


def _int8_of(model, float_out) -> np.ndarray:
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    return np.rint(float_out / inits["logits_scale"]).astype(np.int64) + inits["logits_zp"]


@pytest.mark.parametrize("qlinear", [False, True])
def test_qdq_import_c_matches_reference(qlinear):
    model = qdq_cnn(qlinear=qlinear)
    mod = from_quantized_onnx(model)
    main = mod["main"]
    assert str(main.ret_ty.dtype) == "int8" and [int(s) for s in main.ret_ty.shape] == [1, 10]
    assert [p.name for p in main.params][1:4] == ["conv1.weight", "conv1.bias", "conv1.scale"]
    assert {str(f.attrs["tt.requant"]) for f in mod.functions.values()
            if getattr(f, "attrs", None) is not None and "tt.requant" in f.attrs} == {"float32"}
    session = tinytvm.build(mod, target="host", inference_only=True).host_session()
    ref = ReferenceEvaluator(model)
    rng = np.random.default_rng(1)
    agree = total = 0
    for _ in range(10):
        x = rng.uniform(0, 1, (1, 1, 8, 8)).astype(np.float32)
        q = quantize_input(mod, x)
        expected = run_int8_graph(mod, q)["output"]
        assert len(np.unique(expected)) > 3
        np.testing.assert_array_equal(session.infer(q).reshape(expected.shape), expected)
        onnx_int8 = _int8_of(model, ref.run(None, {"input": x})[0])
        agree, total = agree + (onnx_int8 == expected).sum(), total + expected.size
    print(f"onnx.reference agreement ({'QLinearConv' if qlinear else 'QDQ'}): {agree / total:.3f}")
    assert agree / total >= 0.85  # onnx.reference sums dequantized floats: not exact


def test_qdq_float32_logits():
    model = qdq_cnn()
    mod = from_quantized_onnx(model, logits="float32")
    assert str(mod["main"].ret_ty.dtype) == "float32"
    x = quantize_input(mod, np.random.default_rng(2).uniform(0, 1, (1, 1, 8, 8)))
    int8 = run_int8_graph(from_quantized_onnx(model), x)["output"]
    logits = run_int8_graph(mod, x)["output"]
    np.testing.assert_allclose(logits, int8 * np.float32(0.05), atol=0.05 / 2 + 1e-6)


@pytest.mark.parametrize("bad,node", [("bn", "bn"), ("weight_zero", "fc")])
def test_unsupported_pattern_names_the_node(bad, node):
    with pytest.raises(UnsupportedModelError, match=f"'{node}'"):
        from_quantized_onnx(qdq_cnn(bad=bad))


def test_onnxruntime_quantize_static_matches():
    """Second opinion: onnxruntime's own QDQ quantization of the digits CNN, run by onnxruntime,
    against the generated C (which must equal the reference bit for bit)."""
    import onnxruntime as ort  # a test dependency (pyproject [test])
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from test_ptq import digits, digits_model

    x_train, _, x_test, y_test = digits()

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.samples = iter([{"input": s[None]} for s in x_train[:64]])

        def get_next(self):
            return next(self.samples, None)

    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        fp32, qdq = Path(tmp) / "fp32.onnx", Path(tmp) / "qdq.onnx"
        onnx.save(digits_model(), fp32)
        quantize_static(str(fp32), str(qdq), Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QInt8,
                        weight_type=QuantType.QInt8)
        model = onnx.load(str(qdq))
        session_ort = ort.InferenceSession(str(qdq))
    mod = from_quantized_onnx(model)
    session = tinytvm.build(mod, target="host", inference_only=True).host_session()
    last = next(n for n in model.graph.node if n.output[0] == model.graph.output[0].name)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    scale, zero = inits[last.input[1]], inits[last.input[2]]
    agree = total = correct = 0
    for i, sample in enumerate(x_test[:100]):
        q = quantize_input(mod, sample[None])
        ours = run_int8_graph(mod, q)["output"]
        if i < 10:
            np.testing.assert_array_equal(session.infer(q).reshape(ours.shape), ours)
        theirs = np.rint(session_ort.run(None, {"input": sample[None]})[0] / scale) + zero
        agree, total = agree + (theirs == ours).sum(), total + ours.size
        correct += ours.argmax() == y_test[i]
    print(f"onnxruntime agreement: {agree / total:.4f} of {total} logits; "
          f"int8 accuracy {correct / 100:.2f}")
    assert agree / total >= 0.99


@pytest.mark.parametrize("qlinear", [False, True])
def test_build_takes_a_quantized_onnx_model_and_trains_it(qlinear):
    """tinytvm.build(quantized.onnx) imports it as a real int8 graph (float32 logits) and its
    training step (QAS, int8 updates) runs and lowers the loss on a repeated sample."""
    from tinytvm.quant import quantize_input

    model = qdq_cnn(qlinear=qlinear)
    art = tinytvm.build(model, target="host", train=tinytvm.TrainConfig(lr=0.01))
    main = art.ir["main"]
    assert str(main.params[0].ty.dtype) == "int8" and str(main.ret_ty.dtype) == "float32"
    assert any(n.endswith(".master") for n in art.weights)  # int8 weights trained
    x = quantize_input(art.ir, np.random.default_rng(2).uniform(0, 1, art.input_shape))
    session = art.host_session()
    losses = [session.train_step(x, 3) for _ in range(6)]
    assert losses[-1] < losses[0], losses
