"""The paper's pretrained int8 models compiled to C: logits equal paper.forward_int8 bit for bit.

`paper_to_relax` → `tinytvm.build(..., inference_only=True)` → the generated C, run on the host
(gcc + ctypes) for all three models and on the emulated Cortex-M7 (QEMU mps2-an500) for
mbv2-w0.35, on paper.py's synthetic image. The data (shared/data/paper-models) must be
present: these tests fail rather than skip without it. Run with -s to see the memory reports,
flash bytes and the QEMU instruction count.
"""

from __future__ import annotations

import functools
import re

import numpy as np
import pytest
import tvm

import tinytvm
from tinytvm.harness import run_inference_qemu
from tinytvm.ir import FunctionView
from tinytvm.models import paper
from tinytvm.models.paper import PAPER_MODELS, forward_int8, load_paper_model, program
from tinytvm.pipeline import canonicalize
from tinytvm.quant import paper_to_relax, tt_op

QEMU_MODEL = "mbv2-w0.35"


@functools.cache
def model(name: str) -> paper.PaperModel:
    return load_paper_model(name)


@functools.cache
def synthetic_input(name: str, size: int = 128) -> np.ndarray:
    return paper.quantize_input(model(name), paper.synthetic_image(size))


@functools.cache
def built(name: str, target: str = "host", size: int = 128) -> tinytvm.Artifact:
    """Layer by layer (no expansion + depthwise fusion, tests/test_fuse_expand.py has that)."""
    return tinytvm.build(paper_to_relax(model(name), (size, size)), target=target,
                         inference_only=True, passes=canonicalize())


def reference_logits(name: str, size: int = 128) -> np.ndarray:
    return forward_int8(model(name), synthetic_input(name, size))["logits"][0]


def test_paper_models_present():
    assert paper.paper_models_available(), f"paper models missing from {paper.paper_models_dir()}"


def test_module_follows_the_program():
    m = model(QEMU_MODEL)
    mod = paper_to_relax(m)
    view = FunctionView.of(mod["main"])
    ops = program(m)
    calls = [b.value for b in view.bindings]
    assert len(calls) == len(ops)
    kinds = {"conv": "qconv2d", "add": "qadd", "pool": "qavgpool"}
    expected = [kinds[op.kind] for op in ops[:-1]] + ["qclassifier"]
    assert [tt_op(mod[c.args[0]]) for c in calls] == expected
    assert [str(v.ty.dtype) for v in view.inputs] == ["int8"]
    assert [int(s) for s in view.inputs[0].ty.shape] == [1, 3, 128, 128]
    assert [int(s) for s in view.output.ty.shape] == [1, 1000]
    names = [w.name for w in view.weights]
    assert names[:3] == ["first_conv.weight", "first_conv.bias", "first_conv.scale"]
    assert "blocks.3.pointwise1.weight" in names and "blocks.2.residual.scales" in names
    conv = m.blocks[3].pointwise1
    np.testing.assert_array_equal(view.values["blocks.3.pointwise1.weight"], conv.weight)
    np.testing.assert_array_equal(view.values["blocks.3.pointwise1.scale"],
                                  conv.effective_scale.astype(np.float32))
    kernels = [f for f in mod.functions.values() if isinstance(f, tvm.tirx.PrimFunc)]
    assert len(kernels) < len(ops)  # identical kernels are shared


@pytest.mark.parametrize("name", PAPER_MODELS)
def test_host_logits_are_bit_exact(name):
    art = built(name)
    logits = art.host_session().infer(synthetic_input(name))
    np.testing.assert_array_equal(logits, reference_logits(name))
    report = art.memory
    print(f"\n{name}: {report}")
    infer = report.functions[0]
    # every intermediate in one arena; the bound is the paper's layer-by-layer peak
    assert infer.lower_bound == paper.layer_by_layer_peak(model(name))[0]
    assert infer.peak <= 1.1 * infer.lower_bound


def test_other_input_size_is_bit_exact():
    art = built(QEMU_MODEL, size=96)
    logits = art.host_session().infer(synthetic_input(QEMU_MODEL, 96))
    np.testing.assert_array_equal(logits, reference_logits(QEMU_MODEL, 96))


def test_kernels_keep_no_temporaries_on_the_stack():
    source = built(QEMU_MODEL).sources["model.c"]
    sizes = [int(n) for n in re.findall(r"^\s+\w+ \w+\[(\d+)\];", source, re.MULTILINE)]
    assert sizes and max(sizes) == 1  # the one-element accumulators only
    assert "nearbyintf(" in source and "roundf(" not in source


def test_qemu_logits_are_bit_exact(tmp_path):
    art = built(QEMU_MODEL, "mps2-an500")
    run = run_inference_qemu(art, synthetic_input(QEMU_MODEL), tmp_path)
    logits, sizes, stack = run.logits, run.sizes, run.stack_peak
    np.testing.assert_array_equal(logits, reference_logits(QEMU_MODEL))
    print(f"\n{QEMU_MODEL} on QEMU mps2-an500: {run.instructions} instructions, stack peak "
          f"{stack} B, ELF {sizes}\n{art.memory}")
    assert sizes["flash_bytes"] <= 1024 * 1024 and sizes["ram_bytes"] <= 320 * 1024
    assert stack <= art.memory.stack_bytes
