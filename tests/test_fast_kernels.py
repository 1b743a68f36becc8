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

import re

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
    DWK,
    IM2COL,
    expand_dw_scratch_bytes,
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
    # depthwise: 4 outputs at a time, then the last Wo % 4; W < 4; tiny planes, many channels
    "depthwise3_s1_9_11x11": (9, 11, 9, 3, 1, 9, 1),
    "depthwise3_s1_6_7x7_nopad": (6, 7, 6, 3, 1, 6, 0),
    "depthwise3_s1_7_3x3": (7, 3, 7, 3, 1, 7, 1),
    "depthwise3_s2_10_13x13": (10, 13, 10, 3, 2, 10, 1),
    "depthwise3_s2_16_2x2": (16, 2, 16, 3, 2, 16, 1),
    "depthwise3_s1_96_4x4": (96, 4, 96, 3, 1, 96, 1),
    "depthwise3_s1_64_8x8": (64, 8, 64, 3, 1, 64, 1),
    "depthwise3_s2_48_8x8": (48, 8, 48, 3, 2, 48, 1),
    # depthwise 5x5 / 7x7 (tt_qconv_dwk): stride 1 and 2, padding (k-1)/2 and smaller, odd
    # widths (outputs at odd columns, the last Wo % 4), planes smaller than the kernel
    "depthwise5_s1_13_9x9": (13, 9, 13, 5, 1, 13, 2),
    "depthwise5_s2_12_11x11": (12, 11, 12, 5, 2, 12, 2),
    "depthwise5_s1_6_7x7_pad1": (6, 7, 6, 5, 1, 6, 1),
    "depthwise5_s2_7_13x13_nopad": (7, 13, 7, 5, 2, 7, 0),
    "depthwise5_s1_9_3x3": (9, 3, 9, 5, 1, 9, 2),
    "depthwise5_s1_96_4x4": (96, 4, 96, 5, 1, 96, 2),
    "depthwise5_s2_48_8x8": (48, 8, 48, 5, 2, 48, 2),
    "depthwise7_s1_10_11x11": (10, 11, 10, 7, 1, 10, 3),
    "depthwise7_s2_8_13x13": (8, 13, 8, 7, 2, 8, 3),
    "depthwise7_s1_5_9x9_pad1": (5, 9, 5, 7, 1, 5, 1),
    "depthwise7_s2_6_15x15_pad2": (6, 15, 6, 7, 2, 6, 2),
    "depthwise7_s1_4_13x13_nopad": (4, 13, 4, 7, 1, 4, 0),
    "depthwise7_s1_16_2x2": (16, 2, 16, 7, 1, 16, 3),
    "depthwise7_s2_12_3x3": (12, 3, 12, 7, 2, 12, 3),
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
    dw9 = qconv2d((1, 8, 9, 9), (8, 1, 9, 9), padding=4, groups=8)
    dw5_s3 = qconv2d((1, 8, 9, 9), (8, 1, 5, 5), stride=3, padding=2, groups=8)
    grouped = qconv2d((1, 8, 6, 6), (12, 2, 3, 3), padding=1, groups=4)
    logits = qclassifier((1, 8, 1, 1), (10, 8, 1, 1), out_dtype="float32")
    for prim in (dw9, dw5_s3, grouped, logits):
        assert fast_version(prim) is None
    mod = tvm.IRModule({"dw9": dw9})
    assert use_fast_kernels(mod) is mod
    with pytest.raises(ValueError, match="no fast kernel"):
        qconv2d_fast((1, 8, 9, 9), (8, 1, 9, 9), padding=4, groups=8)
    for k in (5, 7):
        prim = qconv2d((1, 8, 9, 9), (8, 1, k, k), stride=2, padding=1, groups=8)
        assert str(fast_version(prim).attrs["tt.fast"]) == DWK


def test_qemu_dsp_path_equals_host(tmp_path):
    """A pointwise + depthwise s2 + depthwise s1 + 3x3 conv chain on the Cortex-M7 (DSP path)
    in QEMU."""
    rng = np.random.default_rng(42)
    layers = [conv_case(rng, 13, 11, 18, 1, 1, 1), conv_case(rng, 18, 11, 18, 3, 2, 18),
              conv_case(rng, 18, 6, 18, 3, 1, 18), conv_case(rng, 18, 6, 7, 3, 1, 1)]
    x = rng.integers(-128, 128, (1, 13, 11, 11)).astype(np.int8)
    prims = [p for p, _, _ in layers]
    arrays = [x] + [a for _, arr, _ in layers for a in arr]
    mod = use_fast_kernels(conv_module(prims, arrays, [s for _, _, s in layers]))
    assert sum("tt.fast" in f.attrs for f in mod.functions.values()
               if isinstance(f, tvm.tirx.PrimFunc)) == 4
    host = tinytvm.build(mod, target="host", inference_only=True).host_session().infer(x)
    device = tinytvm.build(mod, target="mps2-an500", inference_only=True)
    run = run_inference_qemu(device, x, tmp_path)
    np.testing.assert_array_equal(run.logits, host.reshape(-1))
    naive = conv_module(prims, arrays, [s for _, _, s in layers])
    reference = tinytvm.build(naive, target="host", inference_only=True).host_session().infer(x)
    np.testing.assert_array_equal(host, reference)


def test_qemu_dsp_depthwise_kxk_equals_host(tmp_path):
    """A chain of depthwise 5x5 / 7x7 convs (tt_qconv_dwk's assembly loops: stride 1 and 2,
    groups of 4 outputs, the last 2 or 3 as a group into a temporary, a single last one, rows
    narrower than 4) on the Cortex-M7 in QEMU equals the host and the naive kernels."""
    rng = np.random.default_rng(43)
    c = 12
    layers = [conv_case(rng, c, 20, c, 5, 2, c),  # 20 -> 10
              conv_case(rng, c, 10, c, 7, 1, c),  # 10 -> 10
              conv_case(rng, c, 10, c, 7, 2, c),  # 10 -> 5
              conv_case(rng, c, 5, c, 5, 1, c, 1),  # 5 -> 3
              conv_case(rng, c, 3, c, 7, 1, c),  # 3 -> 3
              conv_case(rng, c, 3, c, 5, 1, c)]  # 3 -> 3
    x = rng.integers(-128, 128, (1, c, 20, 20)).astype(np.int8)
    prims = [p for p, _, _ in layers]
    arrays = [x] + [a for _, arr, _ in layers for a in arr]
    naive = conv_module(prims, arrays, [s for _, _, s in layers])
    mod = use_fast_kernels(naive)
    assert [str(f.attrs["tt.fast"]) for f in mod.functions.values()
            if isinstance(f, tvm.tirx.PrimFunc)] == [DWK] * len(layers)
    host = tinytvm.build(mod, target="host", inference_only=True).host_session().infer(x)
    device = tinytvm.build(mod, target="mps2-an500", inference_only=True)
    run = run_inference_qemu(device, x, tmp_path)
    np.testing.assert_array_equal(run.logits, host.reshape(-1))
    reference = tinytvm.build(naive, target="host", inference_only=True).host_session().infer(x)
    np.testing.assert_array_equal(host, reference)
    assert len(np.unique(host)) > 8


# ---- backward kernels (tinytvm.quant.qgrad -> runtime_c/kernels/tt_qgrad.h) -------------------

GRAD_CASES = {  # name: (channels, size, out channels, kernel, stride, groups, padding, rows)
    "pointwise_13to10_7x7": (13, 7, 10, 1, 1, 1, 0, None),
    "pointwise_16to9_5x5_rows4": (16, 5, 9, 1, 1, 1, 0, 4),
    "pointwise_5to17_8x8": (5, 8, 17, 1, 1, 1, 0, None),
    "pointwise_20to12_4x4_rows7": (20, 4, 12, 1, 1, 1, 0, 7),
    "full3_s2_3to8_13x13": (3, 13, 8, 3, 2, 1, 1, None),
    "full3_s1_6to5_6x6": (6, 6, 5, 3, 1, 1, 1, 3),
    "full1_s2_5to6_9x9": (5, 9, 6, 1, 2, 1, 0, None),
    "full5_s2_2to4_11x11": (2, 11, 4, 5, 2, 1, 2, None),
    "full3_s1_9to4_7x7_nopad": (9, 7, 4, 3, 1, 1, 0, None),
    "depthwise3_s1_13_9x9": (13, 9, 13, 3, 1, 13, 1, None),
    "depthwise3_s1_6_4x4_rows2": (6, 4, 6, 3, 1, 6, 1, 2),
    "depthwise3_s2_12_10x10": (12, 10, 12, 3, 2, 12, 1, 5),
    "depthwise3_s2_7_11x11_nopad": (7, 11, 7, 3, 2, 7, 0, None),
    "depthwise3_s2_5_9x9": (5, 9, 5, 3, 2, 5, 1, None),
    # tiny planes (FPU-register kernels: H = W <= 4, stride 1, padding 1) and their neighbours
    "depthwise3_s1_9_4x4": (9, 4, 9, 3, 1, 9, 1, None),
    "depthwise3_s1_7_3x3_rows4": (7, 3, 7, 3, 1, 7, 1, 4),
    "depthwise3_s1_5_2x2": (5, 2, 5, 3, 1, 5, 1, None),
    "depthwise3_s1_4_1x1": (4, 1, 4, 3, 1, 4, 1, None),
    "depthwise3_s1_4_4x4_nopad": (4, 4, 4, 3, 1, 4, 0, None),
    "depthwise3_s1_3_5x5": (3, 5, 3, 3, 1, 3, 1, None),
    "depthwise3_s1_3_21x21": (3, 21, 3, 3, 1, 3, 1, None),
    # stride 1 in gather form (tt_g_dwd_s1_row): 2-element edge blocks around 8 / 4 / 2 / 1-element
    # blocks, 1 to 3 hit rows, both paddings
    "depthwise3_s1_5_6x6": (5, 6, 5, 3, 1, 5, 1, None),
    "depthwise3_s1_4_6x6_nopad": (4, 6, 4, 3, 1, 4, 0, None),
    "depthwise3_s1_3_5x5_nopad": (3, 5, 3, 3, 1, 3, 0, None),
    "depthwise3_s1_3_7x7": (3, 7, 3, 3, 1, 3, 1, None),
    "depthwise3_s1_6_8x8": (6, 8, 6, 3, 1, 6, 1, None),
    "depthwise3_s1_5_8x8_nopad_rows3": (5, 8, 5, 3, 1, 5, 0, 3),
    "depthwise3_s1_4_9x9_nopad": (4, 9, 4, 3, 1, 4, 0, None),
    "depthwise3_s1_2_15x15_nopad": (2, 15, 2, 3, 1, 2, 0, None),
    "depthwise3_s1_3_16x16": (3, 16, 3, 3, 1, 3, 1, None),
    "depthwise3_s1_3_16x16_nopad": (3, 16, 3, 3, 1, 3, 0, None),
    # stride 2 in gather form: 8 / 4 / 2 / 1-pair blocks, odd sizes, both paddings
    "depthwise3_s2_6_8x8": (6, 8, 6, 3, 2, 6, 1, None),
    "depthwise3_s2_4_4x4": (4, 4, 4, 3, 2, 4, 1, None),
    "depthwise3_s2_3_2x2": (3, 2, 3, 3, 2, 3, 1, None),
    "depthwise3_s2_3_13x13": (3, 13, 3, 3, 2, 3, 1, None),
    "depthwise3_s2_5_12x12_nopad": (5, 12, 5, 3, 2, 5, 0, 3),
    "depthwise3_s2_3_31x31": (3, 31, 3, 3, 2, 3, 1, None),
    "depthwise3_s2_2_38x38": (2, 38, 2, 3, 2, 2, 1, None),
    "depthwise3_s2_2_37x37_nopad": (2, 37, 2, 3, 2, 2, 0, None),
    # groups=1 weight gradient: O (or rows) in {1, 2, 3, 5, 8}, > 64 pixels (several tiles,
    # one ending mid-row), odd pixel counts, channel tails, taps reading padding
    "pointwise_16to1_9x9": (16, 9, 1, 1, 1, 1, 0, None),
    "pointwise_24to2_11x11": (24, 11, 2, 1, 1, 1, 0, None),
    "pointwise_19to3_9x9": (19, 9, 3, 1, 1, 1, 0, None),
    "pointwise_8to5_13x13": (8, 13, 5, 1, 1, 1, 0, None),
    "pointwise_32to8_10x10_rows5": (32, 10, 8, 1, 1, 1, 0, 5),
    "pointwise_40to8_12x12": (40, 12, 8, 1, 1, 1, 0, None),
    "full3_s1_10to3_11x11": (10, 11, 3, 3, 1, 1, 1, None),
    "full3_s2_9to5_15x15_rows3": (9, 15, 5, 3, 2, 1, 1, 3),
    "full5_s1_4to2_12x12_nopad": (4, 12, 2, 5, 1, 1, 0, None),
}

# depthwise 5x5 / 7x7 (tt_qgrad_weight_dwk / tt_qgrad_data_dwk): stride 1 and 2, every padding
# <= (k - 1) / 2, odd sizes (8 / 4 / 1-element and 6 / 4 / 1-pair block tails, stride-2 pairs
# from an even or an odd u, an odd W's half pair), rows < C, tiny planes (1 to 4 rows, mostly
# padding)
DWK_CASES = {
    "depthwise5_s1_6_9x9": (6, 9, 6, 5, 1, 6, 2, None),
    "depthwise5_s1_5_16x16_rows3": (5, 16, 5, 5, 1, 5, 2, 3),
    "depthwise5_s1_3_13x13_pad1": (3, 13, 3, 5, 1, 3, 1, None),
    "depthwise5_s1_4_7x7_nopad": (4, 7, 4, 5, 1, 4, 0, None),
    "depthwise5_s1_2_21x21": (2, 21, 2, 5, 1, 2, 2, None),
    "depthwise5_s1_5_2x2": (5, 2, 5, 5, 1, 5, 2, None),
    "depthwise5_s1_4_1x1": (4, 1, 4, 5, 1, 4, 2, None),
    "depthwise5_s2_7_11x11": (7, 11, 7, 5, 2, 7, 2, None),
    "depthwise5_s2_4_12x12_pad1_rows2": (4, 12, 4, 5, 2, 4, 1, 2),
    "depthwise5_s2_3_9x9_nopad": (3, 9, 3, 5, 2, 3, 0, None),
    "depthwise5_s2_3_3x3": (3, 3, 3, 5, 2, 3, 2, None),
    "depthwise5_s2_2_20x20": (2, 20, 2, 5, 2, 2, 2, None),
    "depthwise7_s1_6_8x8": (6, 8, 6, 7, 1, 6, 3, None),
    "depthwise7_s1_5_15x15_rows2": (5, 15, 5, 7, 1, 5, 3, 2),
    "depthwise7_s1_3_4x4": (3, 4, 3, 7, 1, 3, 3, None),
    "depthwise7_s1_3_9x9_pad2": (3, 9, 3, 7, 1, 3, 2, None),
    "depthwise7_s1_2_10x10_pad1": (2, 10, 2, 7, 1, 2, 1, None),
    "depthwise7_s1_2_7x7_nopad": (2, 7, 2, 7, 1, 2, 0, None),
    "depthwise7_s1_4_1x1": (4, 1, 4, 7, 1, 4, 3, None),
    "depthwise7_s1_3_3x3": (3, 3, 3, 7, 1, 3, 3, None),
    "depthwise7_s2_5_13x13": (5, 13, 5, 7, 2, 5, 3, None),
    "depthwise7_s2_4_16x16_rows3": (4, 16, 4, 7, 2, 4, 3, 3),
    "depthwise7_s2_3_11x11_pad2": (3, 11, 3, 7, 2, 3, 2, None),
    "depthwise7_s2_3_10x10_pad1": (3, 10, 3, 7, 2, 3, 1, None),
    "depthwise7_s2_2_9x9_nopad": (2, 9, 2, 7, 2, 2, 0, None),
    "depthwise7_s2_4_2x2": (4, 2, 4, 7, 2, 4, 3, None),
    "depthwise7_s2_2_33x33": (2, 33, 2, 7, 2, 2, 3, None),
    "depthwise7_s2_2_26x26_pad2": (2, 26, 2, 7, 2, 2, 2, None),
}
GRAD_CASES.update(DWK_CASES)


# 1x1 stride-1 data gradient (tt_qgrad_data_1x1): mbv2-w0.35's sparse-update shapes (several O
# chunks), channel tails (C % 4), pixel tails (P % 4), O = 1, P = 1 and C < 4
DATA_1X1_CASES = {
    "pointwise_56to336_4x4": (56, 4, 336, 1, 1, 1, 0, None),
    "pointwise_336to112_4x4": (336, 4, 112, 1, 1, 1, 0, None),
    "pointwise_32to192_8x8": (32, 8, 192, 1, 1, 1, 0, None),
    "pointwise_144to32_8x8": (144, 8, 32, 1, 1, 1, 0, None),
    "pointwise_7to123_3x3": (7, 3, 123, 1, 1, 1, 0, None),
    "pointwise_5to241_2x2": (5, 2, 241, 1, 1, 1, 0, None),
    "pointwise_6to1_5x5": (6, 5, 1, 1, 1, 1, 0, None),
    "pointwise_10to7_1x1": (10, 1, 7, 1, 1, 1, 0, None),
    "pointwise_13to122_1x1": (13, 1, 122, 1, 1, 1, 0, None),
    "pointwise_3to5_3x3": (3, 3, 5, 1, 1, 1, 0, None),
    "pointwise_2to9_6x6": (2, 6, 9, 1, 1, 1, 0, None),
    "pointwise_4to3_7x7": (4, 7, 3, 1, 1, 1, 0, None),
    "pointwise_9to9_3x3": (9, 3, 9, 1, 1, 1, 0, None),  # C == O
    "pointwise_5to16_2x2": (5, 2, 16, 1, 1, 1, 0, None),  # 4 P == O
}
GRAD_CASES.update(DATA_1X1_CASES)


KERNELS_PRELUDE = """#include <math.h>
#include <stdint.h>
#define TVM_DLL
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wunused-variable"
#pragma GCC diagnostic ignored "-Wsign-compare"
"""


def grad_kernels(case: str, rng) -> list[tuple[str, tvm.tirx.PrimFunc, list[np.ndarray]]]:
    """(kind, naive qgrad kernel, random inputs) of every backward kernel of one conv."""
    from tinytvm.quant import qgrad
    from tinytvm.quant.qops import ConvGeometry

    c, hw, o, k, s, groups, pad, rows = GRAD_CASES[case]
    g = ConvGeometry.of((1, c, hw, hw), (o, c // groups, k, k), s, pad, groups)
    x_zero = int(rng.integers(-128, 128))
    x = rng.integers(-128, 128, g.x_shape).astype(np.int8)
    x.reshape(-1)[::7] = x_zero  # zero terms inside the plane
    weight = rng.integers(-128, 128, g.w_shape).astype(np.int8)
    g_acc = (rng.standard_normal(g.y_shape) * 10.0 ** rng.uniform(-3, 3, g.y_shape))
    g_acc = g_acc.astype(np.float32)
    g_acc.reshape(-1)[::5] = 0.0
    g_acc.reshape(-1)[1::11] = -0.0
    y = rng.integers(-128, 128, g.y_shape).astype(np.int8)
    y.reshape(-1)[::4] = rng.choice([-128, 127], y.size // 4 + (y.size % 4 > 0))
    scale = rng.uniform(1e-4, 1e-1, o).astype(np.float32)
    y_flat = rng.standard_normal((1, o)).astype(np.float32)
    return [
        ("weight", qgrad.weight_grad(g, x_zero, rows), [x, g_acc]),
        ("data", qgrad.data_grad(g), [g_acc, weight]),
        ("bias", qgrad.bias_grad(o, g.out_hw), [g_acc]),
        ("acc", qgrad.accumulator_grad(o, g.out_hw, "int8", False), [y, g_acc, scale]),
        ("acc_f32", qgrad.accumulator_grad(o, (1, 1), "float32", True),
         [y_flat, g_acc[:, :, 0, 0].copy(), scale]),
    ]


def _run_kernel(lib, name, inputs, out_shape):
    import ctypes

    out = np.full(out_shape, np.nan, np.float32)
    args = [np.ascontiguousarray(a).ctypes.data_as(ctypes.c_void_p) for a in inputs]
    getattr(lib, f"tt_k_{name}")(*args, out.ctypes.data_as(ctypes.c_void_p))
    return out


def test_fast_backward_kernels_match_qgrad_bit_for_bit(tmp_path):
    """Every backward kernel of every case, naive and fast, in one host library: the outputs
    agree to the bit (compared as uint32, so -0.0 != +0.0 and NaN patterns count)."""
    import ctypes

    from tinytvm.lower import kernels_to_c
    from tinytvm.toolchain import RUNTIME_C, compile_host_library

    rng = np.random.default_rng(11)
    prims, runs = {}, []
    for case in sorted(GRAD_CASES):
        for kind, naive, inputs in grad_kernels(case, rng):
            fast = fast_version(naive)
            assert fast is not None and str(fast.attrs["tt.fast"]).startswith("tt_qgrad_")
            name = f"{case}_{kind}"
            prims[f"n_{name}"], prims[f"f_{name}"] = naive, fast
            runs.append((name, inputs, tuple(int(d) for d in naive.params[-1].shape)))
    src = tmp_path / "grads.c"
    src.write_text(KERNELS_PRELUDE + kernels_to_c(tvm.IRModule(prims)))
    lib = ctypes.CDLL(str(compile_host_library([src], [RUNTIME_C / "kernels"],
                                                tmp_path / "grads.so")))
    for name, inputs, out_shape in runs:
        naive = _run_kernel(lib, f"n_{name}", inputs, out_shape)
        fast = _run_kernel(lib, f"f_{name}", inputs, out_shape)
        assert np.isfinite(naive).all(), name
        np.testing.assert_array_equal(fast.view(np.uint32), naive.view(np.uint32), err_msg=name)


def _c_array(name: str, a: np.ndarray) -> str:
    ctype = {"int8": "int8_t", "int16": "int16_t", "float32": "uint32_t"}[str(a.dtype)]
    flat = a.reshape(-1).view(np.uint32) if a.dtype == np.float32 else a.reshape(-1)
    values = ",".join(str(int(v)) for v in flat)
    return f"static {ctype} {name}[{a.size}] __attribute__((aligned(8))) = {{{values}}};\n"


def test_fast_backward_kernels_on_cortex_m7(tmp_path):
    """The same comparison on the Cortex-M7 in QEMU (the VMLA assembly path): naive and fast
    outputs compared with memcmp in the guest, for a subset of the cases."""

    rng = np.random.default_rng(12)
    cases = ["pointwise_16to9_5x5_rows4", "full3_s2_3to8_13x13", "full3_s1_6to5_6x6",
             "depthwise3_s1_13_9x9", "depthwise3_s2_12_10x10", "depthwise3_s2_7_11x11_nopad",
             "pointwise_19to3_9x9", "pointwise_8to5_13x13", "pointwise_32to8_10x10_rows5",
             "full3_s1_10to3_11x11", "full5_s1_4to2_12x12_nopad"]
    prims, data, calls = {}, "", ""
    for case in cases:
        for kind, naive, inputs in grad_kernels(case, rng):
            name = f"{case}_{kind}"
            prims[f"n_{name}"], prims[f"f_{name}"] = naive, fast_version(naive)
            size = int(np.prod([int(d) for d in naive.params[-1].shape]))
            args = []
            for i, a in enumerate(inputs):
                data += _c_array(f"{name}_in{i}", np.ascontiguousarray(a))
                args.append(f"(void *){name}_in{i}")
            data += f"static float {name}_n[{size}], {name}_f[{size}];\n"
            calls += _compare_call(name, args)
    _run_on_m7(tmp_path, "grads", prims, data, calls)


def test_fast_data_1x1_dispatch_and_cortex_m7(tmp_path):
    """1x1 stride-1 unpadded groups=1 data gradients go to tt_qgrad_data_1x1 (others keep
    tt_qgrad_data); its VMLA tiles on the Cortex-M7 in QEMU equal the naive kernel."""
    from tinytvm.quant import qgrad
    from tinytvm.quant.qops import ConvGeometry

    for (c, hw, o, k, s, pad), name in [((8, 4, 16, 1, 1, 0), "tt_qgrad_data_1x1"),
                                         ((8, 5, 16, 1, 2, 0), "tt_qgrad_data"),
                                         ((8, 4, 16, 3, 1, 1), "tt_qgrad_data")]:
        g = ConvGeometry.of((1, c, hw, hw), (o, c, k, k), s, pad, 1)
        assert str(fast_version(qgrad.data_grad(g)).attrs["tt.fast"]) == name
    rng = np.random.default_rng(13)
    prims, data, calls = {}, "", ""
    for case in DATA_1X1_CASES:
        if case == "pointwise_336to112_4x4":
            continue  # the data of all the cases must fit the 320 KB SRAM
        kind, naive, inputs = grad_kernels(case, rng)[1]
        assert kind == "data"
        fast = fast_version(naive)
        assert str(fast.attrs["tt.fast"]) == "tt_qgrad_data_1x1"
        prims[f"n_{case}"], prims[f"f_{case}"] = naive, fast
        size = int(np.prod([int(d) for d in naive.params[-1].shape]))
        for i, a in enumerate(inputs):
            data += _c_array(f"{case}_in{i}", np.ascontiguousarray(a))
        data += f"static float {case}_n[{size}], {case}_f[{size}];\n"
        calls += _compare_call(case, [f"(void *){case}_in{i}" for i in range(len(inputs))])
    _run_on_m7(tmp_path, "data1x1", prims, data, calls)


@pytest.mark.parametrize("case", ["pointwise_9to9_3x3", "pointwise_5to16_2x2"])
def test_fast_data_1x1_alone_on_cortex_m7(tmp_path, case):
    """One kernel per program, so GCC inlines it with its shape as constants: equal constants
    (C == O, 4 P == O) once shared a register between an asm input and an in/out operand that
    the asm advances (wrong results on the M7 only); every in/out asm operand is now "+&r"."""
    rng = np.random.default_rng(14)
    kind, naive, inputs = grad_kernels(case, rng)[1]
    prims = {f"n_{case}": naive, f"f_{case}": fast_version(naive)}
    size = int(np.prod([int(d) for d in naive.params[-1].shape]))
    data = "".join(_c_array(f"{case}_in{i}", np.ascontiguousarray(a))
                   for i, a in enumerate(inputs))
    data += f"static float {case}_n[{size}], {case}_f[{size}];\n"
    calls = _compare_call(case, [f"(void *){case}_in{i}" for i in range(len(inputs))])
    _run_on_m7(tmp_path, "alone", prims, data, calls)


DW_M7_CASES = [  # the tiny-plane and stride-2 depthwise cases, a few per program (its RAM)
    ["depthwise3_s1_9_4x4", "depthwise3_s1_7_3x3_rows4", "depthwise3_s1_5_2x2",
     "depthwise3_s1_4_1x1", "depthwise3_s1_4_4x4_nopad", "depthwise3_s1_3_5x5",
     "depthwise3_s2_6_8x8", "depthwise3_s2_4_4x4", "depthwise3_s2_3_2x2"],
    ["depthwise3_s1_3_21x21", "depthwise3_s2_3_13x13", "depthwise3_s2_5_12x12_nopad"],
    ["depthwise3_s1_5_6x6", "depthwise3_s1_4_6x6_nopad", "depthwise3_s1_3_5x5_nopad",
     "depthwise3_s1_3_7x7", "depthwise3_s1_6_8x8", "depthwise3_s1_5_8x8_nopad_rows3",
     "depthwise3_s1_4_9x9_nopad", "depthwise3_s1_13_9x9"],
    ["depthwise3_s1_2_15x15_nopad", "depthwise3_s1_3_16x16", "depthwise3_s1_3_16x16_nopad"],
    ["depthwise3_s2_3_31x31", "depthwise3_s2_2_38x38", "depthwise3_s2_2_37x37_nopad"],
    # depthwise 5x5 / 7x7 (tt_g_dwk_wrow / tt_g_dwk_drow)
    sorted(c for c in DWK_CASES if c.startswith("depthwise5_")),
    sorted(c for c in DWK_CASES if c.startswith("depthwise7_s1_")),
    sorted(c for c in DWK_CASES if c.startswith("depthwise7_s2_")),
]


@pytest.mark.parametrize("group", range(len(DW_M7_CASES)))
def test_fast_depthwise_backward_kernels_on_cortex_m7(tmp_path, group):
    """test_fast_backward_kernels_on_cortex_m7 for the depthwise weight and data gradients of
    the tiny-plane (FPU-register) and stride-2 (gather) paths."""
    rng = np.random.default_rng(13 + group)
    prims, data, calls = {}, "", ""
    for case in DW_M7_CASES[group]:
        for kind, naive, inputs in grad_kernels(case, rng):
            if kind not in ("weight", "data"):
                continue
            name = f"{case}_{kind}"
            prims[f"n_{name}"], prims[f"f_{name}"] = naive, fast_version(naive)
            size = int(np.prod([int(d) for d in naive.params[-1].shape]))
            args = []
            for i, a in enumerate(inputs):
                data += _c_array(f"{name}_in{i}", np.ascontiguousarray(a))
                args.append(f"(void *){name}_in{i}")
            data += f"static float {name}_n[{size}], {name}_f[{size}];\n"
            calls += _compare_call(name, args)
    _run_on_m7(tmp_path, f"dwgrads{group}", prims, data, calls)


def test_generated_depthwise_backward_header_is_up_to_date():
    """runtime_c/kernels/tt_qgrad_dw.h is exactly what gen_tt_qgrad_dw.py writes (the header is
    generated: change the generator and rerun it)."""
    import subprocess
    import sys

    from tinytvm.toolchain import RUNTIME_C

    gen = RUNTIME_C / "kernels" / "gen_tt_qgrad_dw.py"
    run = subprocess.run([sys.executable, str(gen), "--check"], capture_output=True, text=True,
                         check=False)
    assert run.returncode == 0, run.stderr


def _tiny_training_builds(target: str, rounding: str = "master"):
    """(naive, fast) builds of a tiny int8 model's training step, every layer trained."""
    from tinytvm.models.int8_random import tiny_int8_model
    from tinytvm.quant.fast import UseFastKernels
    from tinytvm.quant.paper_import import paper_to_relax, with_new_head

    model = tiny_int8_model(6, hw=15)
    rng = np.random.default_rng(7)
    model = with_new_head(model, rng.normal(0, 0.1, (10, model.classifier.in_channels)),
                          rng.normal(0, 0.1, 10))
    mod = paper_to_relax(model, logits="float32")
    train = tinytvm.TrainConfig(lr=0.05, int8_update=rounding)
    # without FuseGradientUpdate, so the weight-gradient kernels exist to be swapped
    passes = [p for p in tinytvm.pipeline.default_passes(train, fast_kernels=False)
              if p.info.name != "FuseGradientUpdate"]
    naive = tinytvm.build(mod, target=target, train=train, passes=passes)
    fast = tinytvm.build(mod, target=target, train=train, passes=passes + [UseFastKernels()])
    kinds = set(re.findall(r"^  (tt_q\w+)\(", fast.sources["model.c"], re.MULTILINE))
    return naive, fast, kinds


def test_fast_training_step_equals_naive_on_host():
    """Two training steps of the whole tiny model (every weight trained, so every backward
    kernel runs, the data gradients too): losses and every weight bit-identical."""
    naive, fast, kinds = _tiny_training_builds("host")
    assert {"tt_qgrad_weight", "tt_qgrad_weight_dw3x3", "tt_qgrad_data_1x1",
            "tt_qgrad_data_dw3x3", "tt_qgrad_bias", "tt_qgrad_acc_s8",
            "tt_qgrad_acc_f32"} <= kinds
    assert "tt_qgrad.h" in fast.sources and "tt_qgrad.h" not in naive.sources
    assert "tt_qgrad_dw.h" in fast.sources  # included by tt_qgrad.h: copied next to it
    x = np.random.default_rng(8).integers(-128, 128, (2, 1, 3, 15, 15)).astype(np.int8)
    sessions = [art.host_session() for art in (naive, fast)]
    for step, label in enumerate((3, 8)):
        losses = [np.float32(s.train_step(x[step], label)) for s in sessions]
        assert losses[0].view(np.uint32) == losses[1].view(np.uint32)
    after = [s.params() for s in sessions]
    for name, value in after[0].items():
        np.testing.assert_array_equal(np.asarray(after[1][name]).view(np.uint8),
                                      np.asarray(value).view(np.uint8), err_msg=name)


def assert_qemu_steps_equal_host(host_art, qemu_art, tmp_path, size: int, seed: int,
                                 cflags=()) -> None:
    """3 training steps of `host_art` on the host and of `qemu_art` on the Cortex-M7 (QEMU,
    workdirs tmp_path/host and tmp_path/qemu) on the same random int8 samples: bit-identical
    finite losses."""
    from tinytvm.harness import Dataset, run_training

    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, (4, 1, 3, size, size)).astype(np.int8)
    y = rng.integers(0, 10, 4).astype(np.int32)
    train, evaluation = Dataset.int8(x[:3], y[:3]), Dataset.int8(x[3:], y[3:])
    host = run_training(host_art, train, evaluation, 3, where="host", workdir=tmp_path / "host")
    qemu = run_training(qemu_art, train, evaluation, 3, where="qemu", workdir=tmp_path / "qemu",
                        cflags=cflags)
    assert len(host.losses) == 3 and np.isfinite(host.losses).all()
    np.testing.assert_array_equal(qemu.losses.view(np.uint32), host.losses.view(np.uint32))


@pytest.mark.parametrize("inline", [True, False])
def test_fast_training_step_in_qemu_equals_naive_host(tmp_path, inline):
    """The fast step on the Cortex-M7 (assembly paths) against the naive step on the host:
    bit-identical losses over 3 steps; also with the micro-kernel entry points kept out of
    line (-DTT_Q_INLINE_KERNELS=0, the flash-saving build): then they are functions of the
    ELF, else inlined into the layers' kernels."""
    from elftools.elf.elffile import ELFFile

    naive, fast, kinds = _tiny_training_builds("mps2-an500")
    assert_qemu_steps_equal_host(naive, fast, tmp_path, 15, 9,
                                 () if inline else ("-DTT_Q_INLINE_KERNELS=0",))
    with open(tmp_path / "qemu" / "train.elf", "rb") as f:
        symbols = {sym.name.split(".")[0] for sym in ELFFile(f).get_section_by_name(".symtab")
                   .iter_symbols() if sym["st_info"]["type"] == "STT_FUNC"}
    entry_points = {"tt_qconv_im2col", "tt_qconv_dw3x3"}
    assert entry_points <= kinds
    assert (entry_points & symbols) == (set() if inline else entry_points)


# ---- fused kernels: expansion + depthwise, weight gradient + update ----------------------------

EXPAND_CASES = {  # name: (C, H, W, E, k, stride, (pad_h, pad_w))
    "c5_e12_7x7_k3_s1": (5, 7, 7, 12, 3, 1, (1, 1)),
    "c8_e24_9x10_k3_s2": (8, 9, 10, 24, 3, 2, (1, 1)),
    "c16_e20_8x8_k3_s2_nopad": (16, 8, 8, 20, 3, 2, (0, 0)),
    "c8_e16_4x4_k3_s1": (8, 4, 4, 16, 3, 1, (1, 1)),
    "c4_e6_15x15_k3_s2": (4, 15, 15, 6, 3, 2, (1, 1)),
    "c3_e7_11x6_k5_s1": (3, 11, 6, 7, 5, 1, (2, 2)),
    "c9_e10_13x13_k5_s2": (9, 13, 13, 10, 5, 2, (2, 1)),
    "c6_e9_10x9_k7_s1": (6, 10, 9, 9, 7, 1, (3, 3)),
    "c12_e8_12x12_k7_s2": (12, 12, 12, 8, 7, 2, (3, 3)),
    "c8_e36_6x6_k3_s1": (8, 6, 6, 36, 3, 1, (1, 1)),  # channel groups of 16, 16, 4
    "c3_e12_8x100_k7_s2": (3, 8, 100, 12, 7, 2, (3, 3)),  # rings over 8 KB: groups of 5
}

UPDATE_CASES = {  # name: (C, size, O, kernel, stride, groups, padding, rows)
    "pointwise_24to16_4x4": (24, 4, 16, 1, 1, 1, 0, 16),
    "pointwise_13to10_8x8_rows3": (13, 8, 10, 1, 1, 1, 0, 3),
    "pointwise_9to6_9x9_rows4": (9, 9, 6, 1, 1, 1, 0, 4),  # 81 pixels: tiles of 64
    "full3_s2_5to4_11x11": (5, 11, 4, 3, 2, 1, 1, 4),
    "full3_s1_3to5_6x6_rows2": (3, 6, 5, 3, 1, 1, 1, 2),
    "depthwise3_s1_7_6x6_rows5": (7, 6, 7, 3, 1, 7, 1, 5),
    "depthwise3_s2_6_9x9": (6, 9, 6, 3, 2, 6, 1, 6),
    "pointwise_16to5_9x9": (16, 9, 5, 1, 1, 1, 0, 5),  # odd rows, > 64 pixels
    "pointwise_8to3_5x5_rows1": (8, 5, 3, 1, 1, 1, 0, 1),
    "pointwise_24to2_7x7": (24, 7, 2, 1, 1, 1, 0, 2),
    "full3_s1_10to6_9x9_rows3": (10, 9, 6, 3, 1, 1, 1, 3),
    "depthwise5_s1_6_7x7_rows4": (6, 7, 6, 5, 1, 6, 2, 4),
    "depthwise7_s2_5_11x11": (5, 11, 5, 7, 2, 5, 3, 5),
    "depthwise7_s1_3_4x4": (3, 4, 3, 7, 1, 3, 3, 3),
}
UPDATE_LRS = (0.0123456789, 0.05, 3.3)


def expand_kernel(case: str, rng):
    """(naive qexpand_depthwise, its inputs, output shape) with random parameters."""
    from tinytvm.quant.fuse_expand import qexpand_depthwise

    c, h, w, e, k, s, pad = EXPAND_CASES[case]
    zeros = [int(v) for v in rng.integers(-100, 100, 4)]
    prim = qexpand_depthwise((1, c, h, w), (e, c, 1, 1), (e, 1, k, k), stride=s, padding=pad,
                             expand_x_zero=zeros[0], expand_y_zero=zeros[1], dw_x_zero=zeros[2],
                             dw_y_zero=zeros[3])
    x = rng.integers(-128, 128, (1, c, h, w)).astype(np.int8)
    w1 = rng.integers(-128, 128, (e, c, 1, 1)).astype(np.int8)
    w2 = rng.integers(-128, 128, (e, 1, k, k)).astype(np.int8)
    b1, b2 = (rng.integers(-(2**14), 2**14, e).astype(np.int32) for _ in range(2))
    b1[0], b1[-1], b2[1] = INT32_MIN, 2**24 + 3, 2**26 + 1  # the float32 bias paths
    s1 = rng.uniform(0.3, 1.0, e) * 100.0 / (74.0 * 74.0 * np.sqrt(c))
    s2 = rng.uniform(0.3, 1.0, e) * 100.0 / (74.0 * 74.0 * k)
    s1[1], s2[2] = 40 * s1[1], 40 * s2[2]  # mostly saturated channels
    shape = tuple(int(d) for d in prim.params[-1].shape)
    inputs = [x, w1, w2, b1, b2, s1.astype(np.float32), s2.astype(np.float32)]
    return prim, inputs, shape


def update_kernel(case: str, rounding: str, lr: float, rng):
    """(naive weight_grad_update, its inputs, index of the updated input) at random."""
    from tinytvm.quant.qops import ConvGeometry
    from tinytvm.quant.qupdate import weight_grad_update

    c, hw, o, k, s, groups, pad, rows = UPDATE_CASES[case]
    g = ConvGeometry.of((1, c, hw, hw), (o, c // groups, k, k), s, pad, groups)
    x_zero = int(rng.integers(-128, 128))
    salt = int(rng.integers(0, 50))
    prim = weight_grad_update(g, x_zero, rows, rounding, "int8", lr, salt)
    x = rng.integers(-128, 128, g.x_shape).astype(np.int8)
    x.reshape(-1)[::7] = x_zero
    g_acc = (rng.standard_normal(g.y_shape) * 10.0 ** rng.uniform(-3, 1, g.y_shape))
    g_acc = g_acc.astype(np.float32)
    g_acc.reshape(-1)[::5] = 0.0
    g_acc.reshape(-1)[1::11] = -0.0
    factor = rng.uniform(0.1, 30.0, (rows, 1, 1, 1)).astype(np.float32)
    if rounding == "master":
        target = rng.standard_normal((rows, *g.w_shape[1:])).astype(np.float32) * 50
    else:
        target = rng.integers(-128, 128, g.w_shape).astype(np.int8)
        target.reshape(-1)[::3] = rng.choice([-128, 127], target[..., ::3].size)[
            :target.reshape(-1)[::3].size]
    inputs = [x, g_acc, target, factor]
    if rounding == "stochastic":
        inputs.append(np.array([int(rng.integers(0, 2**31))], np.int32))
    return prim, inputs


def _host_library(prims: dict, tmp_path, name: str):
    import ctypes

    from tinytvm.lower import kernels_to_c
    from tinytvm.toolchain import RUNTIME_C, compile_host_library

    src = tmp_path / f"{name}.c"
    src.write_text(KERNELS_PRELUDE + kernels_to_c(tvm.IRModule(prims)))
    return ctypes.CDLL(str(compile_host_library([src], [RUNTIME_C / "kernels"],
                                                tmp_path / f"{name}.so")))


def _call(lib, name, inputs, out):
    import ctypes

    args = [a.ctypes.data_as(ctypes.c_void_p) for a in inputs]
    getattr(lib, f"tt_k_{name}")(*args, out.ctypes.data_as(ctypes.c_void_p))
    return out


def test_fast_expand_depthwise_matches_naive(tmp_path):
    """tt_qconv_expand_dw == fuse_expand.qexpand_depthwise: 3x3 / 5x5 / 7x7, stride 1 and 2,
    odd channel counts and widths, the float32 bias paths, saturated channels."""
    rng = np.random.default_rng(21)
    prims, runs = {}, []
    for case in sorted(EXPAND_CASES):
        naive, inputs, shape = expand_kernel(case, rng)
        fast = fast_version(naive)
        assert str(fast.attrs["tt.fast"]) == "tt_qconv_expand_dw"
        c, _, w, e, k, _, (_, pad_w) = EXPAND_CASES[case]
        assert int(fast.attrs["tt.scratch_bytes"]) == expand_dw_scratch_bytes(c, w, e, k, pad_w)
        prims[f"n_{case}"], prims[f"f_{case}"] = naive, fast
        runs.append((case, inputs, shape))
    lib = _host_library(prims, tmp_path, "expand")
    for case, inputs, shape in runs:
        naive = _call(lib, f"n_{case}", inputs, np.zeros(shape, np.int8))
        fast = _call(lib, f"f_{case}", inputs, np.full(shape, 99, np.int8))
        np.testing.assert_array_equal(fast, naive, err_msg=case)
        assert len(np.unique(naive)) > 20 and (np.abs(naive.astype(int) + 0.5) > 127).any()


def test_fast_weight_update_matches_naive(tmp_path):
    """tt_qgrad_update_* == qupdate.weight_grad_update for every rounding, partial rows,
    groups=1 (1x1, 3x3 s2, > 64 pixels) and depthwise 3x3 / 5x5 / 7x7, three learning rates (the float32
    constant as TVM prints it): to the bit, run out of place and in place (w_new = w)."""
    rng = np.random.default_rng(22)
    prims, runs = {}, []
    for case in sorted(UPDATE_CASES):
        for rounding in ("round", "stochastic", "master"):
            for i, lr in enumerate(UPDATE_LRS):
                naive, inputs = update_kernel(case, rounding, lr, rng)
                fast = fast_version(naive)
                assert str(fast.attrs["tt.fast"]) == f"tt_qgrad_update_{rounding}"
                assert int(fast.attrs["op_pattern"]) == 8
                name = f"{case}_{rounding}_{i}"
                prims[f"n_{name}"], prims[f"f_{name}"] = naive, fast
                runs.append((name, inputs))
    lib = _host_library(prims, tmp_path, "update")
    changed = 0
    for name, inputs in runs:
        target = inputs[2]
        outs = [_call(lib, f"{k}_{name}", inputs, np.zeros_like(target)) for k in "nf"]
        in_place = []
        for k in "nf":
            own = [a.copy() for a in inputs]
            _call(lib, f"{k}_{name}", own, own[2])
            in_place.append(own[2])
        for out in (outs[1], *in_place):
            np.testing.assert_array_equal(out.view(np.uint8), outs[0].view(np.uint8),
                                          err_msg=name)
        changed += int((outs[0] != target).any())
    assert changed > len(runs) * 0.8  # the steps are large enough to move weights


def test_fused_fast_kernels_on_cortex_m7(tmp_path):
    """Both fused kernels on the Cortex-M7 in QEMU (DSP and VMLA paths): naive and fast outputs
    compared with memcmp in the guest."""

    rng = np.random.default_rng(23)
    kernels = []
    for case in ("c8_e24_9x10_k3_s2", "c5_e12_7x7_k3_s1", "c3_e7_11x6_k5_s1",
                 "c12_e8_12x12_k7_s2", "c8_e36_6x6_k3_s1", "c3_e12_8x100_k7_s2"):
        naive, inputs, _ = expand_kernel(case, rng)
        kernels.append((case, naive, inputs))
    for case, rounding in (("pointwise_13to10_8x8_rows3", "stochastic"),
                           ("pointwise_9to6_9x9_rows4", "round"),
                           ("full3_s2_5to4_11x11", "master"),
                           ("depthwise3_s2_6_9x9", "round"),
                           ("pointwise_16to5_9x9", "stochastic"),
                           ("full3_s1_10to6_9x9_rows3", "round"),
                           ("depthwise5_s1_6_7x7_rows4", "stochastic"),
                           ("depthwise7_s2_5_11x11", "master")):
        naive, inputs = update_kernel(case, rounding, 0.05, rng)
        kernels.append((f"{case}_{rounding}", naive, inputs))
    prims, data, calls = {}, "", ""
    for name, naive, inputs in kernels:
        prims[f"n_{name}"], prims[f"f_{name}"] = naive, fast_version(naive)
        out = naive.params[-1]
        size = int(np.prod([int(d) for d in out.shape]))
        ctype = "float" if str(out.dtype) == "float32" else "int8_t"
        args = []
        for i, a in enumerate(inputs):
            a = np.ascontiguousarray(a)
            if a.dtype == np.int32:
                a = a.view(np.float32)  # stored by bit pattern as uint32
            if a.dtype not in (np.int8, np.float32):
                raise AssertionError(a.dtype)
            data += _c_array(f"{name}_in{i}", a)
            args.append(f"(void *){name}_in{i}")
        data += f"static {ctype} {name}_n[{size}], {name}_f[{size}];\n"
        calls += _compare_call(name, args, "(void *)")
    _run_on_m7(tmp_path, "fused", prims, data, calls)


def _compare_call(name: str, args: list[str], cast: str = "") -> str:
    """C that runs the naive (n_) and fast (f_) kernel on the same inputs and counts a
    mismatch of their outputs."""
    return (f"  tt_k_n_{name}({', '.join(args)}, {cast}{name}_n);\n"
            f"  tt_k_f_{name}({', '.join(args)}, {cast}{name}_f);\n"
            f'  if (memcmp({name}_n, {name}_f, sizeof({name}_n))) '
            f'{{ tt_puts("MISMATCH {name}\\n"); bad++; }}\n')


def _run_on_m7(tmp_path, tag: str, prims: dict, data: str, calls: str) -> None:
    """The kernels, their data and the comparison calls as one program on the Cortex-M7 (QEMU,
    DSP paths): every naive/fast pair must agree."""
    from tinytvm.lower import kernels_to_c
    from tinytvm.toolchain import RUNTIME_C, compile_cortex_m, run_qemu

    src = tmp_path / f"{tag}_m7.c"
    src.write_text(KERNELS_PRELUDE + '#include <string.h>\n#include "tt_io.h"\n'
                   + kernels_to_c(tvm.IRModule(prims)) + data
                   + "int main(void)\n{\n  int bad = 0;\n" + calls
                   + '  tt_puts(bad ? "FAIL\\n" : "ALL OK\\n");\n  return bad;\n}\n')
    elf = compile_cortex_m([src], [RUNTIME_C / "kernels"], tmp_path / f"{tag}.elf", "mps2-an500")
    result = run_qemu(elf)
    assert result.returncode == 0 and "ALL OK" in result.stdout, result.stdout


SPARSE_SCHEME = {"bias_last": 4, "weights": ((7, 0.5), (9, 1), (10, 1))}


def _sparse_training_builds(target: str, rounding: str):
    """(default passes, default passes + UseFastKernels) builds of a 3-block tiny int8 model
    with a sparse scheme: the frozen prefix runs qexpand_depthwise, the trained convs
    weight_grad_update (a partial one among them)."""
    from tinytvm.models.int8_random import tiny_int8_model
    from tinytvm.quant.paper_import import paper_to_relax, with_new_head
    from tinytvm.sparse import UpdateScheme

    model = tiny_int8_model(6, hw=15, blocks=3)
    rng = np.random.default_rng(7)
    model = with_new_head(model, rng.normal(0, 0.1, (10, model.classifier.in_channels)),
                          rng.normal(0, 0.1, 10))
    mod = paper_to_relax(model, logits="float32")
    train = tinytvm.TrainConfig(lr=0.02, int8_update=rounding,
                                update=UpdateScheme(**SPARSE_SCHEME))
    naive = tinytvm.build(mod, target=target, train=train,
                          passes=tinytvm.pipeline.default_passes(train, fast_kernels=False))
    fast = tinytvm.build(mod, target=target, train=train)  # the default: fast kernels
    kinds = set(re.findall(r"^  (tt_q\w+)\(", fast.sources["model.c"], re.MULTILINE))
    assert {"tt_qconv_expand_dw", f"tt_qgrad_update_{rounding}"} <= kinds
    updates = re.findall(r"^  tt_k_weight_grad_update\w*\((.*)\);$", fast.sources["model.c"],
                         re.MULTILINE)
    # the output (last buffer before the arena scratch) is the weight itself: updated in place
    assert updates and all(args.split(", ")[2] == args.split(", ")[-2] for args in updates)
    assert all("tt_arena" in args.split(", ")[-1] for args in updates)
    return naive, fast


@pytest.mark.parametrize("rounding", ["round", "stochastic", "master"])
def test_fast_sparse_training_step_equals_default_on_host(rounding):
    """Two steps with the default passes, with and without UseFastKernels: losses and every
    weight (the in-place updates included) bit-identical."""
    naive, fast = _sparse_training_builds("host", rounding)
    x = np.random.default_rng(8).integers(-128, 128, (2, 1, 3, 15, 15)).astype(np.int8)
    sessions = [art.host_session() for art in (naive, fast)]
    before = {k: np.asarray(v).copy() for k, v in sessions[0].params().items()}
    for step, label in enumerate((3, 8)):
        losses = [np.float32(s.train_step(x[step], label)) for s in sessions]
        assert losses[0].view(np.uint32) == losses[1].view(np.uint32)
    after = [s.params() for s in sessions]
    assert any(not np.array_equal(np.asarray(v), before[k]) for k, v in after[0].items())
    for name, value in after[0].items():
        np.testing.assert_array_equal(np.asarray(after[1][name]).view(np.uint8),
                                      np.asarray(value).view(np.uint8), err_msg=name)


def test_fast_sparse_training_step_in_qemu_equals_host(tmp_path):
    """The fast sparse step (stochastic rounding) on the Cortex-M7 against the default step on
    the host: bit-identical losses over 3 steps."""
    naive, _ = _sparse_training_builds("host", "stochastic")
    _, fast = _sparse_training_builds("mps2-an500", "stochastic")
    assert_qemu_steps_equal_host(naive, fast, tmp_path, 15, 9)


def test_fixed_point_kernels_are_not_swapped():
    """The micro-kernels rescale in float32: TFLite-style fixed-point kernels keep their TIR."""
    from tinytvm.quant import qgrad, qops
    from tinytvm.quant.fast import fast_version

    assert fast_version(qops.qconv2d_fixed((1, 8, 6, 6), (16, 8, 1, 1))) is None
    assert fast_version(qgrad.accumulator_grad(16, (6, 6), "int8", False, "fixed")) is None
    assert fast_version(qops.qconv2d((1, 8, 6, 6), (16, 8, 1, 1))) is not None


# (channels, size, stride, padding[, kernel]): in-place depthwise 3x3 (tinytvm/quant/inplace.py)
INPLACE_CASES = [(5, 9, 1, 1), (16, 12, 1, 1), (7, 11, 2, 1), (4, 10, 2, 1), (6, 9, 1, 0),
                 (3, 8, 2, 0), (12, 4, 1, 1), (9, 1, 1, 1), (20, 8, 1, 1), (5, 13, 2, 0),
                 (6, 3, 1, 1), (4, 16, 2, 1)]
# and 5x5 / 7x7 (tt_qconv_dwk): padding (k - 1) / 2 and smaller, planes smaller than the kernel
INPLACE_CASES += [(5, 9, 1, 2, 5), (7, 11, 2, 2, 5), (6, 9, 1, 1, 5), (4, 13, 2, 0, 5),
                  (9, 3, 1, 2, 5), (8, 1, 1, 2, 5), (6, 12, 1, 3, 7), (5, 15, 2, 3, 7),
                  (8, 9, 1, 0, 7), (4, 10, 2, 1, 7), (12, 4, 1, 3, 7), (3, 2, 2, 3, 7)]
# (channels, size, kernel): in-place depthwise 5x5 / 7x7 data gradient, stride 1, padding
# (k - 1) / 2 (tt_qgrad_data_dwk_inplace)
INPLACE_DWK_CASES = [(5, 9, 5), (3, 16, 5), (4, 2, 5), (3, 1, 5), (6, 8, 7), (3, 13, 7),
                     (4, 4, 7), (2, 3, 7), (2, 21, 7)]


def test_fast_inplace_depthwise_kernels_match_naive_when_aliased(tmp_path):
    """The in-place forward and data-gradient kernels, naive and fast, each run with its output
    over its input (as the AOT plan calls them): the same bits as the naive kernel computing
    into a separate buffer."""
    import ctypes

    from tinytvm.lower import kernels_to_c
    from tinytvm.quant import ConvGeometry, qgrad
    from tinytvm.quant.inplace import depthwise_data_grad_inplace, qdepthwise_inplace
    from tinytvm.toolchain import RUNTIME_C, compile_host_library

    rng = np.random.default_rng(21)
    prims, runs = {}, []
    for i, (c, hw, s, pad, *kernel) in enumerate(INPLACE_CASES):
        k = kernel[0] if kernel else 3
        g = ConvGeometry.of((1, c, hw, hw), (c, 1, k, k), s, pad, c)
        x_zero, y_zero = (int(v) for v in rng.integers(-128, 128, 2))
        naive = qdepthwise_inplace(g, x_zero, y_zero)
        prims[f"n{i}"], prims[f"f{i}"] = naive, fast_version(naive)
        prims[f"r{i}"] = qconv2d(g.x_shape, g.w_shape, stride=s, padding=pad, groups=c,
                                 x_zero=x_zero, y_zero=y_zero)
        x = rng.integers(-128, 128, g.x_shape).astype(np.int8)
        inputs = [x, rng.integers(-128, 128, g.w_shape).astype(np.int8),
                  rng.integers(-(2**14), 2**14, c).astype(np.int32),
                  (rng.uniform(0.3, 1.0, c) / (74.0 * k)).astype(np.float32)]
        runs.append((i, inputs, g.y_shape))
        if s == 1 and pad == 1 and k == 3:
            naive = depthwise_data_grad_inplace(g)
            prims[f"nd{i}"], prims[f"fd{i}"] = naive, fast_version(naive)
            prims[f"rd{i}"] = qgrad.data_grad(g)
            g_acc = (rng.standard_normal(g.y_shape) * 10.0).astype(np.float32)
            runs.append((f"d{i}", [g_acc, inputs[1]], g.x_shape))
    for i, (c, hw, k) in enumerate(INPLACE_DWK_CASES):
        g = ConvGeometry.of((1, c, hw, hw), (c, 1, k, k), 1, (k - 1) // 2, c)
        naive = depthwise_data_grad_inplace(g)
        prims[f"nk{i}"], prims[f"fk{i}"] = naive, fast_version(naive)
        assert str(prims[f"fk{i}"].attrs["tt.fast"]) == "tt_qgrad_data_dwk_inplace"
        prims[f"rk{i}"] = qgrad.data_grad(g)
        g_acc = (rng.standard_normal(g.y_shape) * 10.0).astype(np.float32)
        g_acc.reshape(-1)[1::7] = -0.0
        runs.append((f"k{i}", [g_acc, rng.integers(-128, 128, g.w_shape).astype(np.int8)],
                     g.x_shape))
    for name, f in prims.items():
        assert name.startswith("r") or "tt.inplace_input" in f.attrs, name
        if name.startswith("f"):
            assert "tt.fast" in f.attrs, name
    src = tmp_path / "inplace.c"
    src.write_text(KERNELS_PRELUDE + kernels_to_c(tvm.IRModule(prims)))
    lib = ctypes.CDLL(str(compile_host_library([src], [RUNTIME_C / "kernels"],
                                                tmp_path / "inplace.so")))

    def run(kernel, inputs, out_shape, aliased):
        first = inputs[0].copy()
        out = np.zeros(out_shape, first.dtype) if not aliased else None
        args = [a.ctypes.data_as(ctypes.c_void_p) for a in [first, *inputs[1:]]]
        getattr(lib, f"tt_k_{kernel}")(*args, (first if aliased else out).ctypes.data_as(
            ctypes.c_void_p))
        n = int(np.prod(out_shape))
        return (first.reshape(-1)[:n] if aliased else out.reshape(-1)).view(np.uint8).copy()

    for i, inputs, out_shape in runs:
        reference = run(f"r{i}", inputs, out_shape, aliased=False)
        for kind in ("n", "f"):
            got = run(f"{kind}{i}", inputs, out_shape, aliased=True)
            np.testing.assert_array_equal(got, reference, err_msg=f"{kind}{i}")


def _extreme_update_cases(rng):
    """(name, naive kernel, inputs) of fused updates with steps far beyond the int8 range
    (|step| ~ 1e3..1e6, overflow to +-inf, NaN from an inf gradient)."""
    cases = []
    for case in ("pointwise_24to16_4x4", "depthwise3_s1_7_6x6_rows5", "pointwise_16to5_9x9"):
        for rounding in ("round", "stochastic"):
            naive, inputs = update_kernel(case, rounding, 0.05, rng)
            factor = inputs[3]
            factor[0], factor[-1] = 1e38, 5e3  # rows of +-inf steps and of |steps| > 1024
            if len(factor) > 2:
                factor[1] = -1e38
            g_acc = inputs[1]
            g_acc.reshape(-1)[3] = np.inf  # an inf gradient: inf or NaN sums downstream
            cases.append((f"{case}_{rounding}", naive, inputs))
    return cases


def test_fast_weight_update_saturates_extreme_steps_like_naive(tmp_path):
    """Extreme steps: tt_g_apply's int32 clamp gives the naive int64 clamp's bytes."""
    cases = _extreme_update_cases(np.random.default_rng(23))
    prims = {}
    for name, naive, _ in cases:
        prims[f"n_{name}"], prims[f"f_{name}"] = naive, fast_version(naive)
    lib = _host_library(prims, tmp_path, "extreme")
    for name, _, inputs in cases:
        target = inputs[2]
        naive, fast = (_call(lib, f"{k}_{name}", inputs, np.zeros_like(target)) for k in "nf")
        np.testing.assert_array_equal(fast, naive, err_msg=name)
        assert {-128, 127} <= set(naive.reshape(-1).tolist()), name  # saturated both ways


def test_fast_weight_update_extreme_steps_on_cortex_m7(tmp_path):
    """The same extreme steps on the Cortex-M7 (VMINNM / VMAXNM / SSAT in tt_g_apply: a NaN
    step must saturate like the naive kernel's comparisons), naive against fast in QEMU."""
    cases = _extreme_update_cases(np.random.default_rng(23))
    prims, data, calls = {}, "", ""
    for name, naive, inputs in cases:
        prims[f"n_{name}"], prims[f"f_{name}"] = naive, fast_version(naive)
        size = int(np.prod(inputs[2].shape))
        args = []
        for i, a in enumerate(inputs):
            a = np.ascontiguousarray(a)
            data += _c_array(f"{name}_in{i}", a.view(np.float32) if a.dtype == np.int32 else a)
            args.append(f"(void *){name}_in{i}")
        data += f"static int8_t {name}_n[{size}], {name}_f[{size}];\n"
        calls += _compare_call(name, args, "(void *)")
    _run_on_m7(tmp_path, "extreme", prims, data, calls)


# ---- mask-testing element-wise kernels (pack_mask, masked / qadd gradients -> tt_qmask.h) -----

# odd sizes, sizes below 8, per-channel pixel counts that are not multiples of 8 (the mask
# blocks of a channel then start mid-byte), multiples of 8 and 32
MASK_SHAPES = [(1, 5, 3, 3), (1, 8, 4, 4), (1, 3, 7, 5), (1, 13, 1, 1), (1, 2, 8, 8),
               (1, 7, 6, 6), (1, 4, 2, 2), (1, 1, 5, 9), (1, 6, 11, 11), (1, 3, 1, 2),
               (1, 9, 4, 6), (1, 2, 16, 16)]


def _extreme_gradients(rng, shape) -> np.ndarray:
    """Random float32 gradients over many magnitudes, with +-0.0, denormals, values whose
    product overflows to +-inf, no NaN."""
    g = rng.standard_normal(shape) * 10.0 ** rng.uniform(-30, 30, shape)
    g = g.astype(np.float32)
    flat = g.reshape(-1)
    flat[::5] = 0.0
    flat[1::7] = -0.0
    flat[2::11] = np.float32(3.0e38)
    flat[3::13] = np.float32(-1.0e-45)
    flat[4::17] = np.float32(-2.5e38)
    return g


def _saturated_y(rng, shape) -> np.ndarray:
    y = rng.integers(-128, 128, shape).astype(np.int8)
    flat = y.reshape(-1)
    flat[::3] = rng.choice([-128, 127], flat[::3].size)
    flat[1::10] = rng.choice([-127, 126], flat[1::10].size)  # the last values that pass
    return y


def mask_kernels(shape, rng):
    """(name, naive kernel, inputs, index of the gradient input or None) for one shape: the
    pack, the masked accumulator gradient (and its flat form), both qadd gradients."""
    from tinytvm.quant import qgrad

    _, o, h, w = shape
    n = o * h * w
    y = _saturated_y(rng, shape)
    mask = rng.integers(0, 256, (n + 7) // 8).astype(np.uint8)  # garbage past N too
    g = _extreme_gradients(rng, shape)
    scale = rng.uniform(1e-4, 4.0, o).astype(np.float32)
    scale[-1] = -scale[-1]
    scales = rng.uniform(0.01, 3.0, 3).astype(np.float32)
    scales[int(rng.integers(0, 3))] *= -1
    flat_mask = rng.integers(0, 256, (o + 7) // 8).astype(np.uint8)
    return [
        ("pack", qgrad.pack_mask(shape), [y], None),
        ("acc_masked", qgrad.accumulator_grad(o, (h, w), "int8", False, masked=True),
         [mask, g, scale], 1),
        ("acc_masked_flat", qgrad.accumulator_grad(o, (1, 1), "int8", True, masked=True),
         [flat_mask, g.reshape(-1)[:o].reshape(1, o).copy(), scale], None),
        ("acc_s8", qgrad.accumulator_grad(o, (h, w), "int8", False), [y, g, scale], 1),
        ("bias", qgrad.bias_grad(o, (h, w)), [g], None),
        ("acc_f32", qgrad.accumulator_grad(o, (h, w), "float32", False), [g, g, scale], 1),
        ("acc_f32_flat", qgrad.accumulator_grad(o * h, (1, 1), "float32", True),
         [g.reshape(1, -1)[:, :o * h], g.reshape(1, -1)[:, -o * h:], np.resize(scale, o * h)],
         None),
        *[(f"add{k}_masked", qgrad.add_grad(shape, k, masked=True), [mask, g, scales], 1)
          for k in (0, 1)],
        *[(f"add{k}", qgrad.add_grad(shape, k), [y, g, scales], 1) for k in (0, 1)],
    ]


def test_fast_mask_kernels_dispatch_and_attributes():
    """pack_mask, the masked accumulator gradient and both qadd gradients get a tt_qmask_*
    kernel; the masked ones keep their op_pattern (the AOT may write them over g_y), the others
    are opaque; the fixed-point ones stay TIR."""
    from tinytvm.lower import fast_kernel_header
    from tinytvm.quant import qgrad
    from tinytvm.quant.fast import OPAQUE

    rng = np.random.default_rng(30)
    expected = {"pack": "tt_qmask_pack", "acc_masked": "tt_qmask_acc",
                "acc_masked_flat": "tt_qmask_acc", "add0_masked": "tt_qmask_add",
                "add1_masked": "tt_qmask_add", "add0": "tt_qmask_add_s8",
                "add1": "tt_qmask_add_s8"}
    for kind, naive, _, _ in mask_kernels((1, 5, 3, 3), rng):
        if kind not in expected:
            continue
        fast = fast_version(naive)
        assert str(fast.attrs["tt.fast"]) == expected[kind], kind
        assert fast_kernel_header(expected[kind]) == "tt_qmask.h"
        assert "_masked" in kind or int(fast.attrs["op_pattern"]) == OPAQUE, kind
        if "_masked" in kind:
            assert int(fast.attrs["op_pattern"]) == int(naive.attrs["op_pattern"]) == 1, kind
    assert fast_version(qgrad.add_grad((1, 4, 3, 3), 0, "fixed", masked=True)) is None
    assert fast_version(qgrad.accumulator_grad(4, (3, 3), "int8", False, "fixed", True)) is None


def test_fast_mask_kernels_match_qgrad_bit_for_bit(tmp_path):
    """Every tt_qmask kernel (and tt_qgrad_acc_s8 / _f32 / tt_qgrad_bias) on the host against the
    naive kernel, bit for bit: odd shapes, saturated outputs, +-0.0, denormals, overflow to
    inf, garbage mask bits past N; int8 inputs at every byte offset; the gradient kernels also
    run in place (output over g_y), as the AOT plan may call them."""
    rng = np.random.default_rng(31)
    prims, runs = {}, []
    for i, shape in enumerate(MASK_SHAPES):
        for kind, naive, inputs, grad in mask_kernels(shape, rng):
            fast = fast_version(naive)
            assert fast is not None, kind
            name = f"{kind}_{i}"
            prims[f"n_{name}"], prims[f"f_{name}"] = naive, fast
            runs.append((name, inputs, grad, naive.params[-1]))
    lib = _host_library(prims, tmp_path, "masks")

    def call(kernel, inputs, out, offset=0):
        args = []
        for a in inputs:  # int8 arrays shifted by `offset` bytes (unaligned words)
            a = np.ascontiguousarray(a)
            if a.dtype == np.int8 and offset:
                buf = np.zeros(a.nbytes + 8, np.int8)
                buf[offset:offset + a.size] = a.reshape(-1)
                a = buf[offset:offset + a.size]
            args.append(a)
        return _call(lib, kernel, args, out)

    for name, inputs, grad, out_param in runs:
        shape = tuple(int(d) for d in out_param.shape)
        dtype = np.dtype(str(out_param.dtype))
        naive = call(f"n_{name}", inputs, np.full(shape, 0x5A, dtype))
        if dtype == np.float32:
            assert not np.isnan(naive).any(), name
        for offset in (0, 1, 2, 3):
            fast = call(f"f_{name}", inputs, np.full(shape, 0xA5, dtype), offset)
            np.testing.assert_array_equal(fast.view(np.uint8), naive.view(np.uint8),
                                          err_msg=f"{name} offset {offset}")
        if grad is not None:  # in place: the output written over (a copy of) g_y
            ins = [a.copy() for a in inputs]
            call(f"f_{name}", ins, ins[grad])
            np.testing.assert_array_equal(ins[grad].view(np.uint8), naive.view(np.uint8),
                                          err_msg=f"{name} in place")


def test_fast_mask_kernels_on_cortex_m7(tmp_path):
    """The same comparison on the Cortex-M7 in QEMU (VSEL / UADD8 assembly paths): fast
    against naive, separate and in place, y at an odd address."""
    rng = np.random.default_rng(32)
    prims, data, calls = {}, "", ""
    for i, shape in enumerate(MASK_SHAPES):
        for kind, naive, inputs, grad in mask_kernels(shape, rng):
            name = f"{kind}_{i}"
            prims[f"n_{name}"], prims[f"f_{name}"] = naive, fast_version(naive)
            out = naive.params[-1]
            size = int(np.prod([int(d) for d in out.shape]))
            ctype = "float" if str(out.dtype) == "float32" else "uint8_t"
            args = []
            for j, a in enumerate(inputs):
                a = np.ascontiguousarray(a)
                if a.dtype == np.uint8:
                    values = ",".join(str(int(v)) for v in a.reshape(-1))
                    data += (f"static uint8_t {name}_in{j}[{a.size}] "
                             f"__attribute__((aligned(8))) = {{{values}}};\n")
                elif a.dtype == np.int8:  # stored at an odd address
                    values = ",".join(str(int(v)) for v in a.reshape(-1))
                    data += (f"static int8_t {name}_in{j}[{a.size + 1}] "
                             f"__attribute__((aligned(8))) = {{0,{values}}};\n")
                else:
                    data += _c_array(f"{name}_in{j}", a)
                args.append(f"(void *)({name}_in{j} + {int(a.dtype == np.int8)})")
            data += f"static {ctype} {name}_n[{size}], {name}_f[{size}];\n"
            calls += _compare_call(name, args)
            if grad is not None:  # in place over a copy of g_y
                aliased = list(args)
                aliased[grad] = f"(void *){name}_f"
                calls += (f"  memcpy({name}_f, {name}_in{grad}, sizeof({name}_f));\n"
                          f"  tt_k_f_{name}({', '.join(aliased)}, {name}_f);\n"
                          f"  if (memcmp({name}_n, {name}_f, sizeof({name}_n))) "
                          f'{{ tt_puts("MISMATCH in place {name}\\n"); bad++; }}\n')
    _run_on_m7(tmp_path, "masks", prims, data, calls)


def test_fast_kernels_keep_the_naive_in_place_plan():
    """tinytvm.aot writes an output over a dying same-shaped input when TVM classifies the
    kernel element-wise; AnnotateTIROpPattern cannot see through call_extern, so the fast
    kernels state it: the accumulator gradients, 1x1 and depthwise convs may, a 3x3 conv may
    not. A full-update step then plans the naive build's arena plus at most the micro-kernels'
    one-call scratch (it grew by 40 % on MbV2 when the fast kernels lost the classification)."""
    from tinytvm.lower import elementwise_kernels
    from tinytvm.models.int8_random import tiny_int8_model
    from tinytvm.quant import qgrad
    from tinytvm.quant.paper_import import paper_to_relax, with_new_head

    acc = qgrad.accumulator_grad(8, (4, 4), "int8", False)
    kernels = {"acc": acc, "acc_fast": fast_version(acc),
               "pw": qconv2d_fast((1, 8, 6, 6), (8, 8, 1, 1)),
               "dw": qconv2d_fast((1, 8, 6, 6), (8, 1, 3, 3), padding=1, groups=8),
               "full": qconv2d_fast((1, 8, 6, 6), (8, 8, 3, 3), padding=1)}
    assert elementwise_kernels(tvm.IRModule(kernels)) == {"acc", "acc_fast", "pw", "dw"}

    model = tiny_int8_model(6, hw=15, blocks=3)
    rng = np.random.default_rng(7)
    model = with_new_head(model, rng.normal(0, 0.1, (10, model.classifier.in_channels)),
                          rng.normal(0, 0.1, 10))
    mod = paper_to_relax(model, logits="float32")
    train = tinytvm.TrainConfig(lr=0.02, int8_update="stochastic")
    naive = tinytvm.build(mod, target="host", train=train,
                          passes=tinytvm.pipeline.default_passes(train, fast_kernels=False))
    fast = tinytvm.build(mod, target="host", train=train)
    scratch = max((b.size for b in fast.memory.functions[0].problem.buffers
                   if b.end - b.start == 1), default=0)
    assert fast.memory.functions[0].peak <= naive.memory.functions[0].peak + scratch


def test_scratch_macros_match_python_sizes(tmp_path):
    """Each micro-kernel's scratch size is written twice: a TT_*_SCRATCH macro next to the C
    (what the kernel's layout needs) and a Python function in fast.py (what the arena gives
    it). They must agree, or a kernel writes past its arena tensor: the macros evaluated by the
    C compiler against the Python functions, on shapes that hit every branch of the formulas
    (pointwise or not, planes of <= 16 pixels, O over a chunk, expansion groups cut by E, by 16
    and by the 8 KB ring cap, stride-2 ring lengths)."""
    import subprocess

    from tinytvm.quant import ConvGeometry
    from tinytvm.quant import fast as F
    from tinytvm.toolchain import RUNTIME_C, compile_host_executable

    def conv(c, hw, o, k, s, pad, groups=1):
        return ConvGeometry.of((1, c, hw, hw), (o, c // groups, k, k), s, pad, groups)

    checks = []  # (C expression, Python bytes)
    for g in (conv(48, 32, 8, 1, 1, 0), conv(3, 128, 16, 3, 2, 1), conv(10, 11, 3, 3, 1, 1),
              conv(7, 5, 9, 1, 2, 0), conv(13, 9, 5, 5, 1, 2)):
        k = g.in_channels * g.kernel[0] * g.kernel[1]
        pointwise = int(g.kernel == (1, 1) and g.stride == 1 and g.padding == (0, 0))
        checks.append((f"TT_QCONV_IM2COL_SCRATCH({k}, {pointwise})", F.im2col_scratch_bytes(g)))
    for g in (conv(48, 32, 48, 3, 1, 1, 48), conv(5, 9, 5, 3, 2, 0, 5), conv(3, 2, 3, 3, 1, 1, 3)):
        checks.append((f"TT_QCONV_DW3X3_SCRATCH({g.in_hw[1]}, {g.padding[1]})",
                       F.dw3x3_scratch_bytes(g)))
        checks.append((f"TT_QGRAD_WEIGHT_DW3X3_SCRATCH({g.in_hw[1]}, {g.padding[1]})",
                       F.weight_dw3x3_scratch_bytes(g)))
    for hw, k, s, pad in ((16, 5, 1, 2), (32, 7, 2, 3), (13, 7, 2, 2), (9, 5, 2, 1), (4, 7, 1, 3)):
        g = conv(6, hw, 6, k, s, pad, 6)
        checks.append((f"TT_QCONV_DWK_SCRATCH({hw}, {k}, {pad})", F.dwk_scratch_bytes(g)))
        checks.append((f"TT_QGRAD_WEIGHT_DWK_SCRATCH({hw}, {k}, {pad})",
                       F.weight_dwk_scratch_bytes(g)))
        checks.append((f"TT_QGRAD_DATA_DWK_SCRATCH({hw}, {k}, {s}, {pad})",
                       F.data_dwk_scratch_bytes(g)))
    for o, p in ((112, 16), (336, 16), (123, 9), (5, 4), (192, 64), (7, 1), (241, 4)):
        checks.append((f"TT_QGRAD_DATA_1X1_SCRATCH({o}, {p})", F.data_1x1_scratch_bytes(o, p)))
    for o in (1, 32, 112, 123, 600):
        checks.append((f"TT_QGRAD16_DATA_1X1_SCRATCH({o})", F.data_1x1_16_scratch_bytes(o)))
    for p in (16, 64, 100):
        checks.append((f"TT_QGRAD_WEIGHT_SCRATCH({p})", 4 * 8 * min(p, F.WEIGHT_PIX)))
        checks.append((f"TT_QGRAD_UPDATE_SCRATCH({p})",
                       F.update_scratch_bytes(conv(4, int(p ** 0.5), 4, 1, 1, 0))))
    expands = [(c, w, e, k, pad_w) for c, _, w, e, k, _, (_, pad_w) in EXPAND_CASES.values()]
    expands += [(8, 64, 48, 3, 1), (16, 112, 96, 3, 1), (24, 300, 144, 7, 3), (3, 7, 2, 3, 1),
                (3, 700, 12, 7, 3)]  # the last: one channel's rings alone exceed 8 KB
    for c, w, e, k, pad_w in expands:
        checks.append((f"TT_QCONV_EXPAND_DW_SCRATCH({c}, {w}, {e}, {k}, {pad_w})",
                       expand_dw_scratch_bytes(c, w, e, k, pad_w)))
    lines = "\n".join(f'    printf("%ld\\n", (long)({expr}));' for expr, _ in checks)
    src = tmp_path / "scratch.c"
    src.write_text(f'#include <stdio.h>\n#include "tt_qconv.h"\n#include "tt_qgrad.h"\n'
                   f'#include "tt_qgrad16.h"\n'
                   f"int main(void)\n{{\n{lines}\n    return 0;\n}}\n")
    exe = compile_host_executable([src], [RUNTIME_C / "kernels"], tmp_path / "scratch")
    printed = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    got = [int(v) for v in printed.split()]
    assert len(got) == len(checks)
    mismatches = [(expr, c_value, py) for (expr, py), c_value in zip(checks, got) if c_value != py]
    assert not mismatches, mismatches
