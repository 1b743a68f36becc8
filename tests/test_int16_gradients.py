"""16-bit input gradients of pointwise convs (tinytvm/quant/qgrad16.py,
passes/int16_gradients.py, runtime_c/kernels/tt_qgrad16.h).

The TIR kernels against numpy (the layout, the rounding, the exact integer sum and its error
against the float32 product), the micro-kernels against the TIR ones bit for bit on the host
and on the Cortex-M7 (QEMU), the pass's coverage, and whole training steps: fast == naive on
the host, QEMU == host.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import tvm

import tinytvm
from tinytvm.quant import qgrad16
from tinytvm.quant.fast import fast_version
from tinytvm.quant.qops import ConvGeometry

from test_fast_kernels import (
    _c_array,
    _call,
    _host_library,
    _run_on_m7,
    assert_qemu_steps_equal_host,
)

SHAPES = [  # (C, H, W, O): O and P = H W multiples of 4 or not, C multiple of 4 or not
    (12, 4, 4, 16), (5, 3, 3, 7), (16, 2, 2, 13), (9, 5, 3, 10), (3, 4, 1, 1), (64, 4, 4, 112),
    (7, 2, 3, 600),
]


def _kernels(c, h, w, o):
    g = ConvGeometry.of((1, c, h, w), (o, c, 1, 1))
    return g, [qgrad16.grad_scale(o, (h, w), qgrad16.qmax_for(o)), qgrad16.quantize(o, (h, w)),
               qgrad16.data_grad(g)]


def _inputs(rng, g: ConvGeometry, zero: bool = False):
    g_acc = rng.standard_normal(g.y_shape) * 10.0 ** rng.uniform(-6, 3)
    g_acc = (g_acc * 10.0 ** rng.uniform(-2, 2, g.y_shape)).astype(np.float32)
    g_acc.reshape(-1)[::5] = 0.0
    g_acc.reshape(-1)[1::7] = -0.0
    if zero:
        g_acc[:] = -0.0
    weight = rng.integers(-128, 128, g.w_shape).astype(np.int8)
    weight.reshape(-1)[::3] = -128
    return g_acc, weight


def _run(lib, prefix, g_acc, weight, g: ConvGeometry):
    o, p = g.out_channels, g.out_hw[0] * g.out_hw[1]
    scale = _call(lib, f"{prefix}_0", [g_acc], np.full(2, np.nan, np.float32))
    q = _call(lib, f"{prefix}_1", [g_acc, scale],
              np.full(qgrad16.packed_shape(o, p), 0x5A5A, np.int16))
    dx = _call(lib, f"{prefix}_2", [q, scale, weight], np.full(g.x_shape, np.nan, np.float32))
    return scale, q, dx


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    prims = {}
    for i, shape in enumerate(SHAPES):
        _, kernels = _kernels(*shape)
        for j, k in enumerate(kernels):
            prims[f"n{i}_{j}"], prims[f"f{i}_{j}"] = k, fast_version(k)
    return _host_library(prims, tmp_path_factory.mktemp("grad16"), "grad16")


def test_qmax_keeps_the_integer_sum_exact():
    assert qgrad16.qmax_for(112) == 32767
    for o in (1, 512, 513, 600, 1280, 100_000):
        assert 128 * o * qgrad16.qmax_for(o) <= 2**31 - 1
        assert 128 * o * (qgrad16.qmax_for(o) + 1) > 2**31 - 1 or qgrad16.qmax_for(o) == 32767


@pytest.mark.parametrize("i", range(len(SHAPES)))
def test_tir_kernels_match_numpy(library, i):
    """scale = [m / qmax, qmax / m]; q = rint(g * qmax / m) in the packed layout, 0 past O and
    P; dx = f32(exact int sum) * scale[0], within half a quantization step per term of the
    float32 product."""
    g, _ = _kernels(*SHAPES[i])
    c, o, p = g.in_channels, g.out_channels, g.out_hw[0] * g.out_hw[1]
    rng = np.random.default_rng(40 + i)
    g_acc, weight = _inputs(rng, g)
    scale, q, dx = _run(library, f"n{i}", g_acc, weight, g)
    qmax = np.float32(qgrad16.qmax_for(o))
    m = np.float32(np.abs(g_acc).max())
    assert scale[0] == m / qmax and scale[1] == qmax / m
    flat = np.rint(g_acc.reshape(o, p) * scale[1]).astype(np.int64)
    assert np.abs(flat).max() == qmax
    packed = np.zeros(qgrad16.packed_shape(o, p), np.int64)
    for pg, og, k, j, h in np.ndindex(packed.shape):
        oo, pp = 4 * og + j + 2 * h, 4 * pg + k
        packed[pg, og, k, j, h] = flat[oo, pp] if oo < o and pp < p else 0
    np.testing.assert_array_equal(q, packed)
    w = weight.reshape(o, c).astype(np.int64)
    exact = (w.T @ flat).astype(np.float32) * scale[0]
    np.testing.assert_array_equal(dx.reshape(c, p), exact)
    product = w.T.astype(np.float64) @ g_acc.reshape(o, p).astype(np.float64)
    bound = 0.5 * float(scale[0]) * np.abs(w).sum(axis=0)[:, None] * (1 + 1e-6)
    assert (np.abs(dx.reshape(c, p) - product) <= bound + 1e-6 * np.abs(product)).all()


def test_tir_kernels_all_zero_gradient(library):
    g, _ = _kernels(*SHAPES[1])
    g_acc, weight = _inputs(np.random.default_rng(3), g, zero=True)
    scale, q, dx = _run(library, "n1", g_acc, weight, g)
    assert (scale == 0).all() and (q == 0).all()
    assert (dx.view(np.uint32) == 0).all()  # +0.0 everywhere


@pytest.mark.parametrize("i", range(len(SHAPES)))
def test_fast_kernels_equal_tir_on_the_host(library, i):
    g, kernels = _kernels(*SHAPES[i])
    fast = [fast_version(k) for k in kernels]
    assert [str(f.attrs["tt.fast"]) for f in fast] == [
        "tt_qgrad16_scale", "tt_qgrad16_quantize", "tt_qgrad16_data_1x1"]
    rng = np.random.default_rng(50 + i)
    for zero in (False, True):
        g_acc, weight = _inputs(rng, g, zero)
        naive = _run(library, f"n{i}", g_acc, weight, g)
        got = _run(library, f"f{i}", g_acc, weight, g)
        for a, b, what in zip(naive, got, ("scale", "q", "dx")):
            np.testing.assert_array_equal(b.view(np.uint8), a.view(np.uint8),
                                          err_msg=f"{SHAPES[i]} {what} zero={zero}")


def test_fast_kernels_on_cortex_m7(tmp_path):
    """The DSP path (LDRD/LDM/SMLAD loop, VCVTR, VMAXNM) in QEMU: each fast kernel against the
    TIR one, on the TIR one's inputs."""
    rng = np.random.default_rng(60)
    prims, data, calls = {}, "", ""
    for i, shape in enumerate(SHAPES[:6]):
        g, kernels = _kernels(*shape)
        g_acc, weight = _inputs(rng, g)
        m = np.float32(np.abs(g_acc).max())
        qmax = np.float32(qgrad16.qmax_for(g.out_channels))
        scale = np.array([m / qmax, qmax / m], np.float32)
        q = rng.integers(-int(qmax), int(qmax) + 1,
                         qgrad16.packed_shape(g.out_channels, g.out_hw[0] * g.out_hw[1]))
        inputs = [[g_acc], [g_acc, scale], [q.astype(np.int16), scale, weight]]
        for j, (kernel, args) in enumerate(zip(kernels, inputs)):
            name = f"k{i}_{j}"
            prims[f"n_{name}"], prims[f"f_{name}"] = kernel, fast_version(kernel)
            out = kernel.params[-1]
            size = int(np.prod([int(d) for d in out.shape]))
            ctype = {"float32": "float", "int16": "int16_t"}[str(out.dtype)]
            names = []
            for k, a in enumerate(args):
                data += _c_array(f"{name}_in{k}", np.ascontiguousarray(a))
                names.append(f"(void *){name}_in{k}")
            data += f"static {ctype} {name}_n[{size}], {name}_f[{size}];\n"
            calls += (f"  tt_k_n_{name}({', '.join(names)}, {name}_n);\n"
                      f"  tt_k_f_{name}({', '.join(names)}, {name}_f);\n"
                      f"  if (memcmp({name}_n, {name}_f, sizeof({name}_n))) "
                      f'{{ tt_puts("MISMATCH {name}\\n"); bad++; }}\n')
    _run_on_m7(tmp_path, "grad16", prims, data, calls)


# ---- the pass and whole training steps ---------------------------------------------------------


def _model(width: int, hw: int, blocks: int = 2):
    from tinytvm.models.int8_random import tiny_int8_model
    from tinytvm.quant.paper_import import paper_to_relax, with_new_head

    model = tiny_int8_model(11, hw=hw, width=width, blocks=blocks)
    rng = np.random.default_rng(12)
    model = with_new_head(model, rng.normal(0, 0.1, (10, model.classifier.in_channels)),
                          rng.normal(0, 0.1, 10))
    return paper_to_relax(model, logits="float32")


def _calls(art) -> list[tuple[str, tvm.tirx.PrimFunc]]:
    """(tt.op, kernel) of each call_tir of the training step, in order."""
    from tinytvm.ir import FunctionView, op_name

    mod = art.model_ir
    out = []
    for b in FunctionView.of(mod["train_step"]).bindings:
        name = op_name(b.value)
        if name and name.startswith("call_tir:"):
            prim = mod[b.value.args[0]]
            out.append((str(prim.attrs.get("tt.op", "")), prim))
    return out


# every bias and the feature mix's weight: gradients reach every layer, the convs' weights frozen
SCHEME = tinytvm.UpdateScheme(bias_last=9, weights=((7, 1.0),))


def _builds(target: str, width: int, passes_for):
    mod = _model(width, 9)
    train = tinytvm.TrainConfig(lr=0.05, int8_update="master", update=SCHEME,
                                pointwise_input_grad="int16")
    return [tinytvm.build(mod, target=target, train=train, passes=passes_for(train, fast))
            for fast in (False, True)]


def _low_thresholds(train, fast):
    """Every pointwise conv of >= 4 pixels covered (the tiny model's are narrow)."""
    from tinytvm.pipeline import default_passes, replace

    return replace(default_passes(train, fast_kernels=fast), "Int16PointwiseGradients",
                   tinytvm.passes.Int16PointwiseGradients(1, 1))


def test_option_covers_wide_frozen_pointwise_convs_only():
    """The default thresholds: of a width-32 model's 1x1 convs only the 96->32 projections
    (>= 48 in, >= 32 out) pass an int16 gradient, and only where the weight is frozen (block
    0's; block 1's is trained: its float32 g_acc must outlive the input gradient anyway); their
    bias gradients and every other data gradient stay float32; float32 (the default) changes
    nothing."""
    mod = _model(32, 9)
    scheme = tinytvm.UpdateScheme(bias_last=9, weights=((6, 1.0),))
    int16 = tinytvm.build(mod, train=tinytvm.TrainConfig(update=scheme,
                                                         pointwise_input_grad="int16"))
    plain = tinytvm.build(mod, train=tinytvm.TrainConfig(update=scheme))
    calls16, calls = _calls(int16), _calls(plain)
    ops16, ops = [op for op, _ in calls16], [op for op, _ in calls]
    assert "qconv2d_data_grad16" not in ops and "grad16_quantize" not in ops
    data16 = [prim for op, prim in calls16 if op == "qconv2d_data_grad16"]
    assert len(data16) == 1
    assert tuple(int(d) for d in data16[0].params[2].shape[:2]) == (32, 96)
    assert ops16.count("grad16_scale") == ops16.count("grad16_quantize") == 1
    assert ops16.count("qconv2d_data_grad") == ops.count("qconv2d_data_grad") - 1
    for op in ("qconv2d_weight_grad", "qconv2d_bias_grad"):
        assert ops16.count(op) == ops.count(op) > 0
    with pytest.raises(ValueError, match="pointwise_input_grad"):
        tinytvm.TrainConfig(pointwise_input_grad="int8")


def test_training_step_fast_equals_naive_on_host():
    """Three steps with every frozen pointwise conv's input gradient in int16: the micro-kernels
    against the TIR kernels, losses and every weight bit for bit; against a float32
    input-gradient build, the fp32 master copies of the trained biases and weight differ (the
    option does something), by little."""
    naive, fast = _builds("host", 8, _low_thresholds)
    kinds = set(re.findall(r"^  (tt_q\w+)\(", fast.sources["model.c"], re.MULTILINE))
    assert {"tt_qgrad16_scale", "tt_qgrad16_quantize", "tt_qgrad16_data_1x1"} <= kinds
    assert "tt_qgrad16.h" in fast.sources and "tt_qconv.h" in fast.sources
    plain = tinytvm.build(_model(8, 9), train=tinytvm.TrainConfig(
        lr=0.05, int8_update="master", update=SCHEME))
    x = np.random.default_rng(13).integers(-128, 128, (3, 1, 3, 9, 9)).astype(np.int8)
    sessions = [art.host_session() for art in (naive, fast, plain)]
    before = sessions[2].params()
    losses = np.array([[s.train_step(x[k], k + 2) for s in sessions] for k in range(3)],
                      np.float32)
    np.testing.assert_array_equal(losses[:, 1].view(np.uint32), losses[:, 0].view(np.uint32))
    after = [s.params() for s in sessions]
    for name, value in after[0].items():
        np.testing.assert_array_equal(np.asarray(after[1][name]).view(np.uint8),
                                      np.asarray(value).view(np.uint8), err_msg=name)
    masters = [n for n, v in after[2].items() if v.dtype == np.float32]
    assert masters
    steps16 = np.concatenate([(after[0][n] - before[n]).ravel() for n in masters])
    steps32 = np.concatenate([(after[2][n] - before[n]).ravel() for n in masters])
    assert np.abs(steps32).max() > 0 and not np.array_equal(steps16, steps32)
    assert np.abs(steps16 - steps32).max() <= 1e-2 * np.abs(steps32).max()


def test_training_step_in_qemu_equals_host(tmp_path):
    naive, _ = _builds("host", 8, _low_thresholds)
    _, fast = _builds("mps2-an500", 8, _low_thresholds)
    assert_qemu_steps_equal_host(naive, fast, tmp_path, 9, 14)
