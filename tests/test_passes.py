"""Each pass: IR in, IR out, the invariant its docstring promises."""

import numpy as np
import pytest
import tvm
from tvm import relax

from tinytvm.frontend import from_onnx
from tinytvm.ir import FunctionView, op_name
from tinytvm.models import OnnxBuilder, mbv2_tiny, resnet_tiny
from tinytvm.passes import AppendSGD, Autodiff, FoldBatchNorm, FuseClip


def _ops(func) -> list[str]:
    return [op_name(b.value) for b in FunctionView.of(func).bindings if op_name(b.value)]


def _run_llvm(mod, x):
    vm = relax.VirtualMachine(tvm.compile(mod, target="llvm"), tvm.cpu())
    params = [tvm.runtime.tensor(p.numpy()) for p in mod["main"].attrs["params"]]
    return vm["main"](tvm.runtime.tensor(x), *params).numpy()


def test_fuse_clip_leaves_one_clip_per_onnx_clip():
    model = mbv2_tiny()
    mod = FuseClip()(from_onnx(model))
    ops = _ops(mod["main"])
    assert ops.count("relax.clip") == sum(n.op_type == "Clip" for n in model.graph.node)
    assert not [o for o in ops if "maximum" in o or "minimum" in o or o in ("relax.isnan", "relax.where")]
    names = [p.name for p in mod["main"].params]
    assert not [n for n in names if n.endswith((".min", ".max"))]  # bound parameters are gone


def test_fuse_clip_without_clip_is_unchanged():
    b = OnnxBuilder("plain", [1, 1, 8, 8])
    x = b.flatten(b.global_avg_pool(b.relu(b.conv("input", 1, 4, 3))))
    mod = from_onnx(b.finish(b.gemm(x, 4, 3), [1, 3]))
    tvm.ir.assert_structural_equal(FuseClip()(mod)["main"], mod["main"])


def test_fold_batchnorm_removes_bn_and_keeps_numerics():
    x = np.random.default_rng(0).normal(size=(1, 1, 8, 8)).astype(np.float32)
    for make in (mbv2_tiny, resnet_tiny):
        before = FuseClip()(from_onnx(make()))
        after = FoldBatchNorm()(before)
        assert "relax.nn.batch_norm" not in _ops(after["main"])
        np.testing.assert_allclose(_run_llvm(after, x), _run_llvm(before, x), rtol=1e-5, atol=1e-6)


def test_fold_batchnorm_names_follow_the_conv():
    names = [p.name for p in FoldBatchNorm()(FuseClip()(from_onnx(mbv2_tiny())))["main"].params]
    assert "conv1.weight" in names and "bn2.bias" in names  # conv1 had no bias: BN's β name
    assert not [n for n in names if n.startswith("bn2.") and n != "bn2.bias"]


def _canonical(make=mbv2_tiny):
    return FoldBatchNorm()(FuseClip()(from_onnx(make())))


def test_autodiff_prunes_backward_of_frozen_layers():
    full = Autodiff()(_canonical())["train_step"]
    head = Autodiff(["fc14.weight", "fc14.bias"])(_canonical())["train_step"]
    assert "relax.nn.conv2d_transpose" in _ops(full)
    head_ops = _ops(head)
    assert "relax.nn.conv2d_transpose" not in head_ops
    # only the forward convs remain: no weight-gradient convs either
    assert head_ops.count("relax.nn.conv2d") == _ops(_canonical()["main"]).count("relax.nn.conv2d")


def test_autodiff_stops_at_the_earliest_trainable_layer():
    """Training conv10's bias needs no gradient of anything before conv10."""
    ops = _ops(Autodiff(["conv10.bias"])(_canonical())["train_step"])
    assert "relax.nn.conv2d_transpose" not in ops


def test_sgd_outputs_and_momentum_state():
    mod = AppendSGD(0.1, momentum=0.9)(Autodiff(["fc14.weight", "fc14.bias"])(_canonical()))
    func = mod["train_step"]
    updates = [str(u) for u in func.attrs["updates"]]
    assert updates == ["fc14.weight", "fc14.bias", "fc14.weight.momentum", "fc14.bias.momentum"]
    assert len(func.ret_ty.fields) == 1 + len(updates)
    names = [p.name for p in func.params]
    assert "fc14.weight.momentum" in names


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_updates_are_written_in_place(momentum):
    import tinytvm

    art = tinytvm.build(mbv2_tiny(), train=tinytvm.TrainConfig(lr=0.1, momentum=momentum))
    program = art.programs["train_step"]
    assert program.updates and all(new.home is weight for new, weight in program.updates)
    assert "memcpy(" not in art.sources["model.c"]


def test_build_is_deterministic():
    import tinytvm

    one = tinytvm.build(resnet_tiny(), train=tinytvm.TrainConfig(lr=0.1))
    two = tinytvm.build(resnet_tiny(), train=tinytvm.TrainConfig(lr=0.1))
    assert one.sources == two.sources
    assert one.memory.tensor_table() == two.memory.tensor_table()


def test_arena_plan_is_valid_and_near_lower_bound():
    import tinytvm
    from tinytvm.memory import validate

    art = tinytvm.build(mbv2_tiny(), train=tinytvm.TrainConfig(lr=0.1))
    for f in art.memory.functions:
        validate(f.problem, f.solution)
        assert f.lower_bound <= f.peak <= 1.25 * f.lower_bound
        assert f.peak < f.naive
    assert f"#define TT_ARENA_BYTES {art.memory.arena_bytes}" in art.sources["model.h"]


def test_normalize_head_turns_pool_flatten_into_one_mean():
    from tinytvm.passes import NormalizeHead

    x = np.random.default_rng(1).normal(size=(1, 1, 8, 8)).astype(np.float32)
    before = _canonical()
    after = NormalizeHead()(before)
    assert _ops(after["main"]).count("relax.reshape") == _ops(before["main"]).count("relax.reshape") - 1
    assert "relax.mean" in _ops(after["main"])
    np.testing.assert_allclose(_run_llvm(after, x), _run_llvm(before, x), rtol=1e-6)
    tvm.ir.assert_structural_equal(NormalizeHead()(after)["main"], after["main"])  # idempotent
