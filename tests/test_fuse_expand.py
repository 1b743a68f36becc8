"""The fused 1x1 expansion + depthwise kernel (tinytvm.quant.fuse_expand), compiled to C.

- ``qexpand_depthwise`` on random shapes (stride 1 and 2, kernel 3 and 5) equals the two
  ``qconv2d`` kernels run one after the other, bit for bit (both sides as generated C on host);
- ``FuseExpandDepthwise`` on mbv2-w0.35: the logits stay equal to ``paper.forward_int8`` bit for
  bit, and the arena peak drops strictly below the unfused one (the layer-by-layer bound).
Run with -s to see the peaks.
"""

from __future__ import annotations

import functools
import re

import numpy as np
import pytest
import tvm
from tinytvm.passes import FuseExpandDepthwise
from tvm import relax

import tinytvm
from tinytvm.ir import FunctionView
from tinytvm.models import paper
from tinytvm.quant import paper_to_relax, qconv2d, tt_op
from tinytvm.quant.fuse_expand import qexpand_depthwise

MODEL = "mbv2-w0.35"


def module(calls, x: np.ndarray, weights: dict[str, np.ndarray]) -> tvm.IRModule:
    """main(x, *weights) chaining ``calls`` = [(prim, weight names, out shape)], the last
    output flattened to (1, N) (an artifact's output is read as (1, classes))."""
    bb = relax.BlockBuilder()
    xv = relax.Var("input", relax.TensorType(x.shape, "int8"))
    env = {n: relax.Var(n, relax.TensorType(a.shape, str(a.dtype))) for n, a in weights.items()}
    with bb.function("main", [xv, *env.values()]):
        with bb.dataflow():
            y = xv
            for prim, names, out_shape in calls:
                gv = bb.add_func(prim, tt_op(prim))
                y = bb.emit(relax.call_tir(gv, [y, *(env[n] for n in names)],
                                           relax.TensorType(out_shape, "int8")))
            y = bb.emit(relax.op.reshape(y, (1, int(np.prod(out_shape)))))
            out = bb.emit_output(y)
        bb.emit_func_output(out)
    mod = bb.get()
    params = [tvm.runtime.tensor(np.ascontiguousarray(a)) for a in weights.values()]
    main = mod["main"].with_attrs({"num_input": 1, "params": params})
    mod.update_func(mod.get_global_var("main"), main)
    return mod


def run(mod: tvm.IRModule, x: np.ndarray) -> tuple[np.ndarray, str]:
    art = tinytvm.build(mod, target="host", inference_only=True, passes=[])
    return art.host_session().infer(x).reshape(-1), art.sources["model.c"]


def random_scale(rng, n, fan_in) -> np.ndarray:
    """Per-channel M that spreads (acc + bias) * M over the int8 range (and clips some)."""
    spread = 60.0 / (70.0 * 70.0 * np.sqrt(fan_in))
    return (spread * rng.uniform(0.3, 2.0, n)).astype(np.float32)


CASES = [  # (C, (H, W), E, k, stride)
    (3, (9, 7), 8, 3, 1),
    (4, (8, 8), 6, 3, 2),
    (5, (7, 10), 4, 5, 1),
    (2, (11, 9), 5, 5, 2),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"c{c[0]}-{c[1][0]}x{c[1][1]}-e{c[2]}-k{c[3]}-s{c[4]}")
def test_fused_kernel_equals_the_two_kernels(case):
    c, (h, w), e, k, stride = case
    rng = np.random.default_rng(hash(case) % 2**32)
    pad = (k - 1) // 2
    zx, z1, z2x, z2y = (int(v) for v in rng.integers(-20, 20, 4))
    x = rng.integers(-128, 128, (1, c, h, w), dtype=np.int8)
    weights = {
        "w1": rng.integers(-128, 128, (e, c, 1, 1), dtype=np.int8),
        "w2": rng.integers(-128, 128, (e, 1, k, k), dtype=np.int8),
        "b1": rng.integers(-3000, 3000, e, dtype=np.int32),
        "b2": rng.integers(-3000, 3000, e, dtype=np.int32),
        "s1": random_scale(rng, e, c),
        "s2": random_scale(rng, e, k * k),
    }
    expand = qconv2d(x.shape, (e, c, 1, 1), x_zero=zx, y_zero=z1)
    mid = tuple(int(s) for s in expand.params[-1].shape)
    # the depthwise's x_zero differs from the expansion's y_zero on purpose: each is wired
    # to its own use (padding/subtraction vs requantization), as in the two-kernel chain
    depthwise = qconv2d(mid, (e, 1, k, k), stride=stride, padding=pad, groups=e, x_zero=z2x,
                        y_zero=z2y)
    out = tuple(int(s) for s in depthwise.params[-1].shape)
    fused = qexpand_depthwise(x.shape, (e, c, 1, 1), (e, 1, k, k), stride=stride, padding=pad,
                              expand_x_zero=zx, expand_y_zero=z1, dw_x_zero=z2x, dw_y_zero=z2y)
    assert tt_op(fused) == "qexpand_depthwise"
    reference, _ = run(module([(expand, ["w1", "b1", "s1"], mid),
                               (depthwise, ["w2", "b2", "s2"], out)], x, weights), x)
    got, source = run(module([(fused, ["w1", "w2", "b1", "b2", "s1", "s2"], out)], x, weights), x)
    np.testing.assert_array_equal(got, reference)
    assert len(np.unique(reference)) > 50  # the rescale spreads values, not all clamped
    assert np.any(reference == 127) and np.any(reference == -128)
    # the only temporary beyond the one-element accumulators is the one-channel H x W int8
    # scratch, which the build lifts into the arena: no array on the stack
    sizes = [int(n) for n in re.findall(r"^\s+\w+ \w+\[(\d+)\];", source, re.MULTILINE)]
    assert sorted(set(sizes)) == [1]
    art = tinytvm.build(module([(fused, ["w1", "w2", "b1", "b2", "s1", "s2"], out)], x, weights),
                        target="host", inference_only=True, passes=[])
    scratch = [t for call in art.programs["infer"].calls for t in call.scratch]
    assert [t.nbytes for t in scratch] == [h * w]
    assert "nearbyintf(" in source and "roundf(" not in source


@functools.cache
def mbv2():
    m = paper.load_paper_model(MODEL)
    x = paper.quantize_input(m, paper.synthetic_image(128))
    return m, x, paper.forward_int8(m, x)["logits"][0]


def test_pass_rewrites_every_expansion():
    m, _, _ = mbv2()
    mod = paper_to_relax(m)
    fused = FuseExpandDepthwise()(mod)
    ops = [tt_op(fused[c.args[0]]) for c in
           (b.value for b in FunctionView.of(fused["main"]).bindings)]
    expansions = sum(1 for b in m.blocks if b.pointwise1 is not None)
    assert ops.count("qexpand_depthwise") == expansions > 0
    before = [tt_op(mod[c.args[0]]) for c in
              (b.value for b in FunctionView.of(mod["main"]).bindings)]
    assert len(ops) == len(before) - expansions
    # every PrimFunc left is called; the 1x1 expansion kernels are gone
    kernels = {gv.name_hint for gv, f in fused.functions.items()
               if isinstance(f, tvm.tirx.PrimFunc)}
    called = {c.args[0].name_hint for c in
              (b.value for b in FunctionView.of(fused["main"]).bindings)}
    assert kernels == called


def test_mbv2_logits_bit_exact_and_peak_lower():
    m, x, reference = mbv2()
    mod = paper_to_relax(m)
    plain = tinytvm.build(mod, target="host", inference_only=True, passes=[])
    fused = tinytvm.build(FuseExpandDepthwise()(mod), target="host", inference_only=True,
                          passes=[])
    np.testing.assert_array_equal(fused.host_session().infer(x).reshape(-1), reference)
    before, after = plain.memory.functions[0], fused.memory.functions[0]
    print(f"\n{MODEL}: arena peak {before.peak} B (bound {before.lower_bound}) unfused, "
          f"{after.peak} B (bound {after.lower_bound}) fused\n{fused.memory}")
    assert before.lower_bound == paper.layer_by_layer_peak(m)[0]
    assert after.peak < before.peak
    assert after.peak < paper.layer_by_layer_peak(m)[0]


def test_expansion_read_twice_is_not_fused():
    """A 1x1 output that a second op also reads must exist whole: the pass leaves it alone."""
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, (1, 3, 6, 6), dtype=np.int8)
    expand = qconv2d(x.shape, (4, 3, 1, 1))
    depthwise = qconv2d((1, 4, 6, 6), (4, 1, 3, 3), padding=1, groups=4)
    bb = relax.BlockBuilder()
    xv = relax.Var("input", relax.TensorType(x.shape, "int8"))
    shapes = {"w1": (4, 3, 1, 1), "b1": (4,), "s1": (4,), "w2": (4, 1, 3, 3), "b2": (4,),
              "s2": (4,)}
    dtypes = {"w": "int8", "b": "int32", "s": "float32"}
    env = {n: relax.Var(n, relax.TensorType(s, dtypes[n[0]])) for n, s in shapes.items()}
    with bb.function("main", [xv, *env.values()]):
        with bb.dataflow():
            g1, g2 = bb.add_func(expand, "qconv2d"), bb.add_func(depthwise, "qconv2d")
            t = relax.TensorType((1, 4, 6, 6), "int8")
            e = bb.emit(relax.call_tir(g1, [xv, env["w1"], env["b1"], env["s1"]], t))
            d = bb.emit(relax.call_tir(g2, [e, env["w2"], env["b2"], env["s2"]], t))
            out = bb.emit_output(relax.Tuple([e, d]))
        bb.emit_func_output(out)
    mod = bb.get()
    fused = FuseExpandDepthwise()(mod)
    assert fused["main"].same_as(mod["main"])
    assert not any(tt_op(f) == "qexpand_depthwise" for f in fused.functions.values()
                   if isinstance(f, tvm.tirx.PrimFunc))
