"""int8 kernels (tinytvm.quant.qops): the compiled C equals paper.py's numpy kernels bit for bit.

Each case builds a one-op Relax module through `tinytvm.build(..., inference_only=True)` and
runs the generated C on the host (gcc + ctypes). The numpy side is paper.py's
`conv_accumulate` + `requantize`, `residual_add` and `avg_pool`, the semantics of the paper's
original code. Tie cases make round-half-to-even observable: each asserts that exact .5 values
occur and that rounding them half up would have changed the result.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import tvm
from tvm import relax

import tinytvm
from tinytvm.models import paper
from tinytvm.models.paper import QConv, QResidual
from tinytvm.quant import ConvGeometry, qadd, qavgpool, qclassifier, qconv2d, tt_op
from tinytvm.quant.qops import ROUNDING_INTRINSIC, _f32

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


# --- running one kernel ---------------------------------------------------------------------


def one_op_module(prim, arrays: list[np.ndarray], out_shape) -> tvm.IRModule:
    """main(arrays[0], *arrays[1:] as weights) -> the op's output, flattened to (1, N).

    Flattened: an artifact's output is read as (1, classes) (HostSession.infer allocates
    shape[-1] values). And always through a reshape kernel, so that the program has one arena
    tensor: a program without one emits an unused `tt_arena`, which -Werror rejects."""
    bb = relax.BlockBuilder()
    x = relax.Var("input", relax.TensorType(arrays[0].shape, str(arrays[0].dtype)))
    weights = [relax.Var(f"w{i}", relax.TensorType(a.shape, str(a.dtype)))
               for i, a in enumerate(arrays[1:])]
    with bb.function("main", [x, *weights]):
        with bb.dataflow():
            gv = bb.add_func(prim, tt_op(prim))
            y = bb.emit(relax.call_tir(gv, [x, *weights], relax.TensorType(out_shape, "int8")))
            y = bb.emit(relax.op.reshape(y, (1, int(np.prod(out_shape)))))
            out = bb.emit_output(y)
        bb.emit_func_output(out)
    mod = bb.get()
    params = [tvm.runtime.tensor(np.ascontiguousarray(a)) for a in arrays[1:]]
    main = mod["main"].with_attrs({"num_input": 1, "params": params})
    mod.update_func(mod.get_global_var("main"), main)
    return mod


def run_c(prim, arrays: list[np.ndarray], out_shape) -> tuple[np.ndarray, str]:
    """The kernel's output computed by the generated C, and that C (model.c)."""
    art = tinytvm.build(one_op_module(prim, arrays, out_shape), target="host",
                        inference_only=True, passes=[])  # this kernel, not a rewrite of it
    out = art.host_session().infer(arrays[0])
    return out.reshape(out_shape), art.sources["model.c"]


def check_kernel_c(source: str) -> None:
    """Half-to-even rounding, and no temporary array beyond one element on the stack."""
    if "float" in source:
        assert f"{ROUNDING_INTRINSIC}(" in source and "roundf(" not in source
    sizes = [int(n) for n in re.findall(r"^\s+\w+ \w+\[(\d+)\];", source, re.MULTILINE)]
    assert all(n <= 1 for n in sizes), f"stack arrays of {sizes} elements"


# --- conv -----------------------------------------------------------------------------------


def make_conv(rng, c, hw, o, k, stride=1, groups=1, *, ties=False) -> QConv:
    """A QConv with random int8 weights, zero points and per-channel scales (x_scale = y_scale
    = 1, so M = w_scales exactly). ties: tiny weights and M in {1/2, 1/4}, so (acc + bias) * M
    lands on .5 often; otherwise M spreads outputs over the int8 range, and two channels carry
    an INT32_MIN bias and a bias beyond float32's exact integers."""
    pad = (k - 1) // 2
    out_hw = (hw + 2 * pad - k) // stride + 1
    cin = c // groups
    if ties:
        weight = rng.integers(-2, 3, (o, cin, k, k))
        bias = rng.integers(-20, 21, o)
        m = rng.choice([0.5, 0.25], o)
    else:
        weight = rng.integers(-128, 128, (o, cin, k, k))
        bias = rng.integers(-(2**14), 2**14, o)
        std = 74.0 * 74.0 * np.sqrt(cin * k * k)  # of acc, for uniform int8 x and w
        m = rng.uniform(0.3, 1.0, o) * 100.0 / std
        bias[0], bias[-1], m[-1] = INT32_MIN, 2**24 + 3, 2.0**-18
    return QConv(
        name="conv", in_channels=c, out_channels=o, kernel=(k, k), stride=stride,
        groups=groups, padding=(pad, pad), in_shape=(hw, hw), out_shape=(out_hw, out_hw),
        weight=weight.astype(np.int8), bias=bias.astype(np.int32),
        w_scales=m.astype(np.float32), x_scale=1.0,
        x_zero=int(rng.integers(-8, 9) if ties else rng.integers(-128, 128)), y_scale=1.0,
        y_zero=int(rng.integers(-20, 21)))


def random_input(rng, shape, ties=False) -> np.ndarray:
    lo, hi = (-8, 9) if ties else (-128, 128)
    return rng.integers(lo, hi, shape).astype(np.int8)


def conv_kernel_args(conv: QConv, x: np.ndarray) -> list[np.ndarray]:
    return [x, conv.weight, conv.bias, conv.effective_scale.astype(np.float32)]


def grouped_accumulate(conv: QConv, x: np.ndarray) -> np.ndarray:
    """paper.conv_accumulate for any groups: one groups=1 conv per group."""
    g, cin, opg = conv.groups, conv.in_channels // conv.groups, conv.out_channels // conv.groups
    parts = []
    for i in range(g):
        sub = QConv(**{**conv.__dict__, "groups": 1, "in_channels": cin, "out_channels": opg,
                       "weight": conv.weight[i * opg:(i + 1) * opg]})
        parts.append(paper.conv_accumulate(sub, x[:, i * cin:(i + 1) * cin]))
    return np.concatenate(parts, axis=1)


def assert_ties_matter(conv: QConv, acc: np.ndarray) -> None:
    """Some (acc + bias) * M are exact .5 ties, and rounding them half up changes the result."""
    total = (acc.astype(np.float32) + conv.bias.astype(np.float32)[:, None, None])
    v = total * conv.effective_scale.astype(np.float32)[:, None, None]
    ties = v - np.floor(v) == 0.5
    assert ties.sum() > 0
    assert (np.floor(v[ties] + 0.5) != np.rint(v[ties])).any()


CONVS = {  # name: (channels, size, out channels, kernel, stride, groups)
    "pointwise": (16, 7, 24, 1, 1, 1),
    "depthwise3_s1": (12, 9, 12, 3, 1, 12),
    "depthwise3_s2": (12, 10, 12, 3, 2, 12),
    "depthwise5_s1": (8, 9, 8, 5, 1, 8),
    "depthwise5_s2": (8, 11, 8, 5, 2, 8),
    "depthwise7_s1": (8, 10, 8, 7, 1, 8),
    "depthwise7_s2": (8, 13, 8, 7, 2, 8),
    "full3_s2": (3, 13, 8, 3, 2, 1),
    "grouped3_s1": (8, 6, 12, 3, 1, 4),
}


@pytest.mark.parametrize("case", sorted(CONVS))
def test_qconv2d_matches_paper(case):
    c, hw, o, k, s, g = CONVS[case]
    rng = np.random.default_rng(sorted(CONVS).index(case))
    conv = make_conv(rng, c, hw, o, k, s, g)
    x = random_input(rng, (1, c, hw, hw))
    accumulate = paper.conv_accumulate if g in (1, c) else grouped_accumulate
    expected = paper.requantize(conv, accumulate(conv, x))
    assert len(np.unique(expected)) > 20  # the scales keep most outputs off the clamp bounds
    prim = qconv2d(x.shape, conv.weight.shape, stride=s, padding=conv.padding, groups=g,
                   x_zero=conv.x_zero, y_zero=conv.y_zero)
    got, source = run_c(prim, conv_kernel_args(conv, x), expected.shape)
    np.testing.assert_array_equal(got, expected)
    check_kernel_c(source)


@pytest.mark.parametrize("case", ["pointwise", "depthwise3_s2", "full3_s2"])
def test_qconv2d_rounds_ties_to_even(case):
    c, hw, o, k, s, g = CONVS[case]
    rng = np.random.default_rng(100 + sorted(CONVS).index(case))
    conv = make_conv(rng, c, hw, o, k, s, g, ties=True)
    x = random_input(rng, (1, c, hw, hw), ties=True)
    acc = paper.conv_accumulate(conv, x)
    assert_ties_matter(conv, acc[0])
    expected = paper.requantize(conv, acc)
    prim = qconv2d(x.shape, conv.weight.shape, stride=s, padding=conv.padding, groups=g,
                   x_zero=conv.x_zero, y_zero=conv.y_zero)
    got, _ = run_c(prim, conv_kernel_args(conv, x), expected.shape)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("ties", [False, True])
def test_qclassifier_matches_paper(ties):
    rng = np.random.default_rng(7 + ties)
    conv = make_conv(rng, 32, 1, 40, 1, ties=ties)
    x = random_input(rng, (1, 32, 1, 1), ties=ties)
    acc = paper.conv_accumulate(conv, x)
    if ties:
        assert_ties_matter(conv, acc[0])
    expected = paper.requantize(conv, acc).reshape(1, 40)
    prim = qclassifier(x.shape, conv.weight.shape, x_zero=conv.x_zero, y_zero=conv.y_zero)
    got, source = run_c(prim, conv_kernel_args(conv, x), (1, 40))
    np.testing.assert_array_equal(got, expected)
    check_kernel_c(source)


# --- residual add and pool ------------------------------------------------------------------


def producer(y_scale: float, y_zero: int) -> QConv:
    """The conv whose output is the add's `a` (only its y_scale / y_zero are read)."""
    z = np.zeros(1)
    return QConv("pw2", 1, 1, (1, 1), 1, 1, (0, 0), (1, 1), (1, 1), z.astype(np.int8),
                 z.astype(np.int32), z.astype(np.float32), 1.0, 0, y_scale, y_zero)


ADDS = {  # name: (a scale, b scale, out scale): random, and one where exact .5 ties abound
    "random": (0.0371, 0.0213, 0.0457),
    "ties": (1.0, 1.0, 2.0),
}


@pytest.mark.parametrize("case", sorted(ADDS))
def test_qadd_matches_paper(case):
    sa, sb, so = ADDS[case]
    rng = np.random.default_rng(sorted(ADDS).index(case))
    za, zb, zo = (int(z) for z in rng.integers(-30, 30, 3))
    res, conv = QResidual("res", sb, zb, so, zo), producer(sa, za)
    shape = (1, 8, 5, 6)
    a, b = random_input(rng, shape), random_input(rng, shape)
    expected = paper.residual_add(res, conv, a, b)
    if case == "ties":
        v = ((b.astype(np.float32) - zb) * sb + (a.astype(np.float32) - za) * sa) / np.float32(so)
        assert (v - np.floor(v) == 0.5).sum() > 10
    scales = np.array([sa, sb, so], np.float32)
    prim = qadd(shape, a_zero=za, b_zero=zb, out_zero=zo)
    got, source = run_c(prim, [a, b, scales], shape)
    np.testing.assert_array_equal(got, expected)
    check_kernel_c(source)


@pytest.mark.parametrize("hw", [(4, 4), (2, 3), (3, 5), (1, 1)])
def test_qavgpool_matches_paper(hw):
    rng = np.random.default_rng(hw[0] * 10 + hw[1])
    x = random_input(rng, (1, 64, *hw))
    expected = paper.avg_pool(x)
    if hw[0] * hw[1] % 2 == 0:  # an even count: some sums fall exactly halfway
        total = x.astype(np.int64).sum(axis=(2, 3))
        assert (total * 2 % (hw[0] * hw[1]) == 0).any()
    got, source = run_c(qavgpool(x.shape), [x], expected.shape)
    np.testing.assert_array_equal(got, expected)
    check_kernel_c(source)


# --- the kernels themselves -----------------------------------------------------------------


def test_every_kernel_names_its_op():
    kernels = {
        "qconv2d": qconv2d((1, 4, 5, 5), (4, 1, 3, 3), padding=1, groups=4),
        "qclassifier": qclassifier((1, 4, 1, 1), (10, 4, 1, 1)),
        "qadd": qadd((1, 4, 5, 5), a_zero=0, b_zero=0, out_zero=0),
        "qavgpool": qavgpool((1, 4, 5, 5)),
    }
    for name, prim in kernels.items():
        assert tt_op(prim) == name
    conv = kernels["qconv2d"]
    assert int(conv.attrs["tt.groups"]) == 4 and [int(p) for p in conv.attrs["tt.padding"]] == [1, 1]


def test_geometry_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="does not take"):
        ConvGeometry.of((1, 8, 5, 5), (8, 2, 3, 3), groups=8)
    with pytest.raises(ValueError, match="smaller than the kernel"):
        ConvGeometry.of((1, 8, 2, 2), (8, 8, 3, 3))
    with pytest.raises(ValueError, match="1x1"):
        qclassifier((1, 8, 2, 2), (4, 8, 1, 1))


def test_non_integer_float_constants_are_refused():
    """TVM's C printer writes float immediates with 7 digits: scales must be tensors."""
    assert float(_f32(-128).value) == -128.0
    with pytest.raises(ValueError, match="as a tensor"):
        _f32(0.1234567891)
