"""Fixed-point int8 kernels (qops.qconv2d_fixed / qclassifier_fixed / qadd_fixed): the generated
C equals paper.py's numpy fixed-point functions (TFLite / CMSIS-NN double rounding) bit for bit,
and tinytvm.quant.reference reproduces both the C and the paper models."""

from __future__ import annotations

import numpy as np
import pytest
from test_quant_ops import check_kernel_c, make_conv, random_input, run_c

from tinytvm.models import paper
from tinytvm.models.paper import QResidual
from tinytvm.quant import (
    fixed_add_params,
    paper_to_relax,
    qadd_fixed,
    qclassifier_fixed,
    qconv2d_fixed,
    real_scale,
    run_int8_graph,
    tt_op,
)
from tinytvm.quant.qops import quantize_multiplier
from tinytvm.quant.reference import accumulate, run_kernel

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def fixed_expected(conv, x, multiplier, shift) -> np.ndarray:
    """paper.py's fixed-point requantization with the given (multiplier, shift)."""
    acc = accumulate(conv, x)
    total = np.clip(acc + conv.bias.astype(np.int64)[:, None, None], INT32_MIN, INT32_MAX)
    y = paper.multiply_by_quantized_multiplier(total, multiplier[:, None, None],
                                               shift[:, None, None], "double")
    return np.clip(y + conv.y_zero, -128, 127).astype(np.int8)


CONVS = {  # name: (channels, size, out channels, kernel, stride, groups)
    "pointwise": (16, 5, 12, 1, 1, 1),
    "full3_s2_pad": (3, 9, 8, 3, 2, 1),
    "depthwise3_s1": (8, 7, 8, 3, 1, 8),
    "depthwise5_s2": (8, 11, 8, 5, 2, 8),
    "grouped3": (8, 6, 12, 3, 1, 4),
}


@pytest.mark.parametrize("case", sorted(CONVS))
def test_qconv2d_fixed_matches_paper(case):
    c, hw, o, k, s, g = CONVS[case]
    rng = np.random.default_rng(sorted(CONVS).index(case))
    conv = make_conv(rng, c, hw, o, k, s, g)  # includes an INT32_MIN bias: int32 saturation
    x = random_input(rng, (1, c, hw, hw))
    multiplier, shift = paper.requant_params(conv)
    expected = fixed_expected(conv, x, multiplier, shift)
    if g in (1, c):  # paper.requantize's own "fixed" path agrees
        acc = paper.conv_accumulate(conv, x)
        np.testing.assert_array_equal(expected, paper.requantize(conv, acc, "fixed"))
    assert len(np.unique(expected)) > 20
    prim = qconv2d_fixed(x.shape, conv.weight.shape, stride=s, padding=conv.padding, groups=g,
                         x_zero=conv.x_zero, y_zero=conv.y_zero)
    assert tt_op(prim) == "qconv2d" and str(prim.attrs["tt.requant"]) == "fixed"
    args = [x, conv.weight, conv.bias, multiplier, shift]
    got, source = run_c(prim, args, expected.shape)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(run_kernel(prim, args), expected)
    check_kernel_c(source)
    assert "float" not in source.split("tt_k_qconv2d")[1].split("}\n\n")[0]


def test_qconv2d_fixed_negative_shift_and_saturation():
    """M >= 1 (shift < 0: a left shift before the high multiply), M = 2**-31-ish (shift 31),
    and sums whose left shift leaves int32 (saturated, then clamped like the exact product)."""
    rng = np.random.default_rng(11)
    conv = make_conv(rng, 4, 5, 8, 3, 1, 1, ties=True)
    real = np.array([1.0, 1.5, 3.7, 7.99, 2.0**-30, 0.5, 1.0 + 2**-20, 4.0])
    multiplier, shift = quantize_multiplier(real)
    assert (shift < 0).sum() >= 4 and shift.max() == 29
    bias = conv.bias.astype(np.int64)
    bias[5], bias[7] = 2**29, -(2**29)  # x * 8 (M = 4) leaves int32: saturates, then clamps
    conv = paper.QConv(**{**conv.__dict__, "bias": bias.astype(np.int32)})
    x = random_input(rng, (1, 4, 5, 5), ties=True)
    expected = fixed_expected(conv, x, multiplier, shift)
    assert (expected[0, 7] == -128).all() and (expected[0, 5] == 127).all()
    prim = qconv2d_fixed(x.shape, conv.weight.shape, padding=1, x_zero=conv.x_zero,
                         y_zero=conv.y_zero)
    got, _ = run_c(prim, [x, conv.weight, conv.bias, multiplier, shift], expected.shape)
    np.testing.assert_array_equal(got, expected)


def test_qclassifier_fixed_matches_paper():
    rng = np.random.default_rng(5)
    conv = make_conv(rng, 24, 1, 10, 1)
    x = random_input(rng, (1, 24, 1, 1))
    multiplier, shift = paper.requant_params(conv)
    expected = paper.requantize(conv, paper.conv_accumulate(conv, x), "fixed").reshape(1, 10)
    prim = qclassifier_fixed(x.shape, conv.weight.shape, x_zero=conv.x_zero, y_zero=conv.y_zero)
    got, source = run_c(prim, [x, conv.weight, conv.bias, multiplier, shift], (1, 10))
    np.testing.assert_array_equal(got, expected)
    check_kernel_c(source)


ADDS = {  # (a scale, b scale, out scale)
    "random": (0.0371, 0.0213, 0.0457),
    "equal": (0.05, 0.05, 0.1),
    "wide": (0.9, 0.001, 0.02),
}


@pytest.mark.parametrize("case", sorted(ADDS))
def test_qadd_fixed_matches_paper(case):
    sa, sb, so = ADDS[case]
    rng = np.random.default_rng(20 + sorted(ADDS).index(case))
    za, zb, zo = (int(z) for z in rng.integers(-30, 30, 3))
    res = QResidual("res", sb, zb, so, zo)
    producer = paper.QConv("pw2", 1, 1, (1, 1), 1, 1, (0, 0), (1, 1), (1, 1),
                           np.zeros((1, 1, 1, 1), np.int8), np.zeros(1, np.int32),
                           np.ones(1, np.float32), 1.0, 0, sa, za)
    shape = (1, 6, 5, 4)
    a, b = random_input(rng, shape), random_input(rng, shape)
    expected = paper._residual_add_fixed(res, producer, a, b, "double")
    qparams = fixed_add_params(sa, sb, so)
    assert qparams.dtype == np.int32 and qparams.shape == (6,)
    prim = qadd_fixed(shape, a_zero=za, b_zero=zb, out_zero=zo)
    assert str(prim.attrs["tt.requant"]) == "fixed"
    got, source = run_c(prim, [a, b, qparams], shape)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(run_kernel(prim, [a, b, qparams]), expected)
    check_kernel_c(source)


def test_qadd_fixed_output_left_shift():
    """An output multiplier >= 1 (so tiny): the left shift path of the output rescale."""
    rng = np.random.default_rng(3)
    shape = (1, 4, 3, 3)
    qparams = fixed_add_params(0.5, 0.25, 1e-8)
    assert qparams[5] < 0
    a, b = random_input(rng, shape), random_input(rng, shape)
    prim = qadd_fixed(shape, a_zero=3, b_zero=-7, out_zero=1)
    expected = run_kernel(prim, [a, b, qparams])
    assert set(np.unique(expected)) <= {-128, 1, 127} and len(np.unique(expected)) > 1
    got, _ = run_c(prim, [a, b, qparams], shape)
    np.testing.assert_array_equal(got, expected)


def test_real_scale_inverts_quantize_multiplier():
    real = np.geomspace(1e-9, 100.0, 200)
    multiplier, shift = quantize_multiplier(real)
    np.testing.assert_allclose(real_scale(multiplier, shift), real, rtol=2.0**-30)
    params = fixed_add_params(0.3, 0.1, 0.2)
    m = real_scale(params[0::2], params[1::2])
    np.testing.assert_allclose(m, [0.3 / 0.6, 0.1 / 0.6, 0.6 / (2**20 * 0.2)], rtol=2.0**-30)
    with pytest.raises(ValueError, match="shift"):
        quantize_multiplier(2.0**40)


@pytest.mark.skipif(not paper.paper_models_available(), reason="paper models not present")
@pytest.mark.parametrize("name", paper.PAPER_MODELS)
def test_reference_reproduces_paper_models(name):
    model = paper.load_paper_model(name)
    x = np.random.default_rng(0).integers(-128, 128, (1, 3, 32, 32)).astype(np.int8)
    for logits in ("int8",):
        got = run_int8_graph(paper_to_relax(model, (32, 32), logits=logits), x)
        np.testing.assert_array_equal(got["output"], paper.forward_int8(model, x)["logits"])
