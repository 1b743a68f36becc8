"""Fast int8 conv kernels (tinytvm.quant.fast, runtime_c/kernels/tt_qconv.h) equal qops bit for bit.

Each case builds the same one-op Relax module twice through ``tinytvm.build``: with the naive
``qops`` kernel and after ``use_fast_kernels``, and runs both on the host (the portable C path).
Shapes are chosen to hit every edge of the micro-kernels: channel counts that are not multiples
of 4, odd spatial sizes (a partial last 4-pixel block), stride 2, padding, x_zero != 0, biases
beyond float32's exact integers (the float bias path) and scales that saturate most outputs.
One model also runs on the Cortex-M7 in QEMU (the DSP path) and must print the host's output;
a missing cross toolchain or QEMU fails that test, as in the other QEMU tests.
"""

from __future__ import annotations

import numpy as np
import pytest
import tvm
from tvm import relax

import tinytvm
from tinytvm.harness import run_inference_qemu
from tinytvm.lower import FAST_KERNELS_HEADER
from tinytvm.quant import qclassifier, qconv2d, tt_op
from tinytvm.quant.fast import (
    DW3X3,
    IM2COL,
    fast_version,
    qconv2d_fast,
    use_fast_kernels,
)

INT32_MIN = -(2**31)


def conv_module(prims, arrays: list[np.ndarray], out_shapes) -> tvm.IRModule:
    """main(x, *weights): the kernels one after the other (each reads the previous output and
    its own weight, bias and scale), the last output flattened to (1, N)."""
    bb = relax.BlockBuilder()
    x = relax.Var("input", relax.TensorType(arrays[0].shape, "int8"))
    weights = [relax.Var(f"w{i}", relax.TensorType(a.shape, str(a.dtype)))
               for i, a in enumerate(arrays[1:])]
    with bb.function("main", [x, *weights]):
        with bb.dataflow():
            y = x
            for i, (prim, shape) in enumerate(zip(prims, out_shapes)):
                gv = bb.add_func(prim, f"{tt_op(prim)}_{i}")
                y = bb.emit(relax.call_tir(gv, [y, *weights[3 * i:3 * i + 3]],
                                           relax.TensorType(shape, "int8")))
            y = bb.emit(relax.op.reshape(y, (1, int(np.prod(out_shapes[-1])))))
            out = bb.emit_output(y)
        bb.emit_func_output(out)
    mod = bb.get()
    params = [tvm.runtime.tensor(np.ascontiguousarray(a)) for a in arrays[1:]]
    main = mod["main"].with_attrs({"num_input": 1, "params": params})
    mod.update_func(mod.get_global_var("main"), main)
    return mod


def conv_case(rng, c, hw, o, k, stride, groups, pad=None, *, saturate=False):
    """(qops kernel, [weight, bias, scale], output shape) with random parameters."""
    pad = (k - 1) // 2 if pad is None else pad
    taps = c // groups * k * k
    weight = rng.integers(-128, 128, (o, c // groups, k, k)).astype(np.int8)
    bias = rng.integers(-(2**14), 2**14, o).astype(np.int32)
    bias[0], bias[-1] = INT32_MIN, 2**24 + 3  # the float32 bias path of the micro-kernels
    gain = 40.0 if saturate else 1.0
    scale = (rng.uniform(0.3, 1.0, o) * gain * 100.0 / (74.0 * 74.0 * np.sqrt(taps)))
    scale[-1] = 2.0**-18
    x_shape = (1, c, hw, hw)
    prim = qconv2d(x_shape, weight.shape, stride=stride, padding=pad, groups=groups,
                   x_zero=int(rng.integers(-128, 128)), y_zero=int(rng.integers(-20, 21)))
    ho = (hw + 2 * pad - k) // stride + 1
    return prim, [weight, bias, scale.astype(np.float32)], (1, o, ho, ho)


CASES = {  # name: (channels, size, out channels, kernel, stride, groups, padding)
    "pointwise_13to10_7x7": (13, 7, 10, 1, 1, 1, 0),
    "pointwise_16to3_5x5": (16, 5, 3, 1, 1, 1, 0),
    "pointwise_8to24_6x6": (8, 6, 24, 1, 1, 1, 0),
    "pointwise_5to7_3x3": (5, 3, 7, 1, 1, 1, 0),
    "full3_s2_3to8_13x13": (3, 13, 8, 3, 2, 1, 1),
    "full3_s1_6to5_6x6": (6, 6, 5, 3, 1, 1, 1),
    "full1_s2_5to6_9x9": (5, 9, 6, 1, 2, 1, 0),
    "full5_s2_2to4_11x11": (2, 11, 4, 5, 2, 1, 2),
    "depthwise3_s1_13_9x9": (13, 9, 13, 3, 1, 13, 1),
    "depthwise3_s2_12_10x10": (12, 10, 12, 3, 2, 12, 1),
    "depthwise3_s2_7_11x11_nopad": (7, 11, 7, 3, 2, 7, 0),
    "depthwise3_s1_5_4x4": (5, 4, 5, 3, 1, 5, 1),
}


def host_outputs(mod: tvm.IRModule, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
    """(naive output, fast output, the fast build's sources), both on the host."""
    naive = tinytvm.build(mod, target="host", inference_only=True).host_session().infer(x)
    fast_art = tinytvm.build(use_fast_kernels(mod), target="host", inference_only=True)
    return naive, fast_art.host_session().infer(x), fast_art.sources


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("saturate", [False, True])
def test_fast_conv_matches_qops(case, saturate):
    c, hw, o, k, s, g, pad = CASES[case]
    rng = np.random.default_rng(sorted(CASES).index(case) + 100 * saturate)
    prim, arrays, y_shape = conv_case(rng, c, hw, o, k, s, g, pad, saturate=saturate)
    assert fast_version(prim) is not None
    x = rng.integers(-128, 128, (1, c, hw, hw)).astype(np.int8)
    naive, fast, sources = host_outputs(conv_module([prim], [x, *arrays], [y_shape]), x)
    np.testing.assert_array_equal(fast, naive)
    values = np.unique(naive)
    if saturate:
        assert (np.abs(naive.astype(int) + 0.5) > 127).mean() > 0.3  # mostly clamped
    else:
        assert len(values) > 8  # not all clamped: the rounding is exercised
    assert f'#include "{FAST_KERNELS_HEADER}"' in sources["model.c"]
    assert FAST_KERNELS_HEADER in sources


def test_fast_classifier_matches_qops():
    rng = np.random.default_rng(5)
    c, o = 37, 11
    weight = rng.integers(-128, 128, (o, c, 1, 1)).astype(np.int8)
    bias = rng.integers(-(2**14), 2**14, o).astype(np.int32)
    scale = (rng.uniform(0.3, 1.0, o) * 100.0 / (74.0 * 74.0 * np.sqrt(c))).astype(np.float32)
    x = rng.integers(-128, 128, (1, c, 1, 1)).astype(np.int8)
    prim = qclassifier(x.shape, weight.shape, x_zero=-3, y_zero=4)
    assert str(fast_version(prim).attrs["tt.fast"]) == IM2COL
    naive, fast, _ = host_outputs(conv_module([prim], [x, weight, bias, scale], [(1, o)]), x)
    np.testing.assert_array_equal(fast, naive)


def test_fast_kernel_keeps_signature_and_attributes():
    naive = qconv2d((1, 8, 9, 9), (8, 1, 3, 3), stride=2, padding=1, groups=8, x_zero=-7,
                    y_zero=3)
    fast = qconv2d_fast((1, 8, 9, 9), (8, 1, 3, 3), stride=2, padding=1, groups=8, x_zero=-7,
                        y_zero=3)
    assert str(fast.attrs["tt.fast"]) == DW3X3
    fast_attrs = dict(fast.attrs)
    for key, value in dict(naive.attrs).items():
        assert str(fast_attrs[key]) == str(value)
    assert [(tuple(b.shape), b.dtype) for b in fast.params] == [
        (tuple(b.shape), b.dtype) for b in naive.params]


def test_uncovered_kernels_stay_naive():
    dw5 = qconv2d((1, 8, 9, 9), (8, 1, 5, 5), padding=2, groups=8)
    grouped = qconv2d((1, 8, 6, 6), (12, 2, 3, 3), padding=1, groups=4)
    logits = qclassifier((1, 8, 1, 1), (10, 8, 1, 1), out_dtype="float32")
    for prim in (dw5, grouped, logits):
        assert fast_version(prim) is None
    mod = tvm.IRModule({"dw5": dw5})
    assert use_fast_kernels(mod) is mod
    with pytest.raises(ValueError, match="no fast kernel"):
        qconv2d_fast((1, 8, 9, 9), (8, 1, 5, 5), padding=2, groups=8)


def test_qemu_dsp_path_equals_host(tmp_path):
    """A pointwise + depthwise s2 + 3x3 conv chain on the Cortex-M7 (DSP path) in QEMU."""
    rng = np.random.default_rng(42)
    layers = [conv_case(rng, 13, 11, 18, 1, 1, 1), conv_case(rng, 18, 11, 18, 3, 2, 18),
              conv_case(rng, 18, 6, 7, 3, 1, 1)]
    x = rng.integers(-128, 128, (1, 13, 11, 11)).astype(np.int8)
    prims = [p for p, _, _ in layers]
    arrays = [x] + [a for _, arr, _ in layers for a in arr]
    mod = use_fast_kernels(conv_module(prims, arrays, [s for _, _, s in layers]))
    assert sum("tt.fast" in f.attrs for f in mod.functions.values()
               if isinstance(f, tvm.tirx.PrimFunc)) == 3
    host = tinytvm.build(mod, target="host", inference_only=True).host_session().infer(x)
    device = tinytvm.build(mod, target="mps2-an500", inference_only=True)
    run = run_inference_qemu(device, x, tmp_path)
    np.testing.assert_array_equal(run.logits, host.reshape(-1))
    naive = conv_module(prims, arrays, [s for _, _, s in layers])
    reference = tinytvm.build(naive, target="host", inference_only=True).host_session().infer(x)
    np.testing.assert_array_equal(host, reference)
