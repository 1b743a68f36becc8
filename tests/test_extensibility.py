"""Researchers extend tinytvm from outside: their passes and gradient rules run."""

import re
from pathlib import Path

import numpy as np
import pytest
import tvm
from tvm import relax

import tinytvm
from tinytvm.models import mbv2_tiny
from tinytvm.passes.gradients import GRADIENT_RULES

DOCS = Path(__file__).resolve().parents[1] / "docs"


SEEN: list[int] = []


@relax.transform.function_pass(opt_level=0, name="CountBindings")
class CountBindings:
    """A user pass that changes nothing and records what it saw."""

    def transform_function(self, func, mod, ctx):
        SEEN.append(len(func.body.blocks[0].bindings))
        return func


def test_user_pass_runs_where_inserted_and_is_timed(tmp_path):
    train = tinytvm.TrainConfig(lr=0.05)
    passes = tinytvm.pipeline.insert_before(tinytvm.default_passes(train), "Autodiff", CountBindings())
    SEEN.clear()
    art = tinytvm.build(mbv2_tiny(), train=train, passes=passes, dump_ir=tmp_path)
    assert SEEN, "the user pass did not run"
    names = [n for n, _ in art.pass_timings]
    assert names.index("CountBindings") == names.index("Autodiff") - 1
    assert all(t >= 0 for _, t in art.pass_timings)
    dumped = sorted(p.name for p in tmp_path.iterdir())
    assert dumped[0] == "00_input.py" and any("CountBindings" in d for d in dumped)
    assert "train_step" in (tmp_path / [d for d in dumped if "Autodiff" in d][0]).read_text()


def test_pipeline_editing_names_the_missing_pass():
    with pytest.raises(ValueError, match="no pass named 'Nope'"):
        tinytvm.pipeline.insert_after(tinytvm.default_passes(tinytvm.TrainConfig()), "Nope")


def test_user_gradient_rule_is_used(monkeypatch):
    calls = []
    original = GRADIENT_RULES["relax.nn.relu"]

    def traced_relu(var, call, grad, bb):
        calls.append(var.name)
        return original(var, call, grad, bb)

    monkeypatch.setitem(GRADIENT_RULES, "relax.nn.relu", traced_relu)
    art = tinytvm.build(mbv2_tiny(), train=tinytvm.TrainConfig(lr=0.05))
    assert calls, "the user's gradient rule was not called"
    # and the step it produced still trains
    sess = art.host_session()
    x = np.random.default_rng(0).normal(size=(1, 1, 8, 8)).astype(np.float32)
    losses = [sess.train_step(x, 2) for _ in range(5)]
    assert losses[-1] < losses[0]


def test_register_gradient_refuses_silent_override():
    with pytest.raises(ValueError, match="already registered"):
        tinytvm.register_gradient("relax.clip")(lambda *a: [])


def _tutorial_code() -> str:
    text = (DOCS / "tutorial_write_a_pass.md").read_text()
    return "\n".join(re.findall(r"```python\n(.*?)```", text, re.S))


def test_tutorial_code_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(GRADIENT_RULES, "relax.nn.silu", raising=False)
    scope: dict = {}
    try:
        exec(compile(_tutorial_code(), "tutorial_write_a_pass.md", "exec"), scope)
    finally:
        GRADIENT_RULES.pop("relax.nn.silu", None)
    art = scope["art"]
    names = [n for n, _ in art.pass_timings]
    assert names.index("ReluToRelu6") == names.index("FoldBatchNorm") + 1
    assert (tmp_path / "build" / "ir-dump").is_dir()
    assert "relax.nn.relu" not in {tinytvm.ir.op_name(b.value)
                                   for b in tinytvm.ir.FunctionView.of(art.ir["main"]).bindings}


def test_tutorial_silu_rule_matches_finite_differences():
    scope: dict = {}
    try:
        exec(compile(_tutorial_code(), "tutorial", "exec"), scope)
        from tinytvm.passes import Autodiff

        bb = relax.BlockBuilder()
        x = relax.Var("input", relax.TensorType((1, 4), "float32"))
        w = relax.Var("w", relax.TensorType((4, 3), "float32"))
        w0 = np.random.default_rng(0).normal(size=(4, 3)).astype("float32")
        with bb.function("main", [x, w], attrs={"num_input": 1, "params": [tvm.runtime.tensor(w0)]}):
            with bb.dataflow():
                h = bb.emit(relax.op.nn.silu(relax.op.matmul(x, w)))
                out = bb.emit_output(h)
            bb.emit_func_output(out)
        mod = Autodiff(["w"])(bb.get())
        vm = relax.VirtualMachine(tvm.compile(mod, target="llvm"), tvm.cpu())
        xv = np.random.default_rng(1).normal(size=(1, 4)).astype("float32")
        label = np.array([2], "int32")

        def loss(wv):
            z = xv.astype(np.float64) @ wv
            z = z / (1 + np.exp(-z))
            z -= z.max()
            return -(z[0, 2] - np.log(np.exp(z).sum()))

        grad = vm["train_step"](tvm.runtime.tensor(xv), tvm.runtime.tensor(label),
                                tvm.runtime.tensor(w0))[1].numpy()
        eps = 1e-4
        fd = np.zeros_like(w0, dtype=np.float64)
        for idx in np.ndindex(w0.shape):
            d = np.zeros_like(w0, dtype=np.float64)
            d[idx] = eps
            fd[idx] = (loss(w0 + d) - loss(w0 - d)) / (2 * eps)
        np.testing.assert_allclose(grad, fd, rtol=1e-3, atol=1e-5)
    finally:
        GRADIENT_RULES.pop("relax.nn.silu", None)


def test_conv1d_support_uses_only_the_public_api():
    source = (Path(tinytvm.passes.__file__).parent / "conv1d.py").read_text()
    imports = re.findall(r"^from (\S+) import", source, re.M)
    assert set(imports) <= {"__future__", "tvm", "tinytvm.ir", "tinytvm.passes.gradients"}


def test_cli_build_dump_ir(tmp_path):
    from typer.testing import CliRunner

    from tinytvm.cli import app
    from tinytvm.models import mbv2_tiny

    model = tmp_path / "m.onnx"
    model.write_bytes(mbv2_tiny().SerializeToString())
    result = CliRunner().invoke(app, ["build", str(model), "--target", "host", "-o",
                                      str(tmp_path / "out"), "--dump-ir", str(tmp_path / "ir")])
    assert result.exit_code == 0, result.output
    dumped = sorted(p.name for p in (tmp_path / "ir").iterdir())
    assert dumped[0] == "00_input.py" and any("Autodiff" in d for d in dumped)


def test_gradient_rules_can_key_on_hand_written_kernels(monkeypatch):
    """A call_tir to a PrimFunc with attribute "tt.op" = "double" looks up rule 'tt.double'."""
    from tvm import te

    from tinytvm.passes import Autodiff

    a = te.placeholder((1, 4), "float32", "a")
    doubled = te.compute((1, 4), lambda i, j: a[i, j] * 2.0, name="d")
    prim = te.create_prim_func([a, doubled]).with_attr("tt.op", "double").with_attr(
        "global_symbol", "double")
    calls = []

    def double_rule(var, call, grad, bb):
        calls.append(var.name)
        return [relax.op.multiply(grad, relax.const(2.0, "float32"))]

    monkeypatch.setitem(GRADIENT_RULES, "tt.double", double_rule)
    bb = relax.BlockBuilder()
    x = relax.Var("input", relax.TensorType((1, 4), "float32"))
    w = relax.Var("w", relax.TensorType((4, 4), "float32"))
    w0 = np.eye(4, dtype="float32")
    with bb.function("main", [x, w], attrs={"num_input": 1, "params": [tvm.runtime.tensor(w0)]}):
        gv = bb.add_func(prim, "double")
        with bb.dataflow():
            h = bb.emit(relax.op.matmul(x, w))
            out = bb.emit_output(bb.emit(relax.call_tir(gv, [h], relax.TensorType((1, 4), "float32"))))
        bb.emit_func_output(out)
    mod = Autodiff(["w"])(bb.get())
    assert calls, "the rule registered for tt.double was not used"
    vm = relax.VirtualMachine(tvm.compile(mod, target="llvm"), tvm.cpu())
    xv = np.arange(4, dtype="float32").reshape(1, 4) / 4
    grad = vm["train_step"](tvm.runtime.tensor(xv), tvm.runtime.tensor(np.array([1], "int32")),
                            tvm.runtime.tensor(w0))[1].numpy()
    z = 2 * xv @ w0
    p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    p[0, 1] -= 1
    np.testing.assert_allclose(grad, 2 * xv.T @ p, rtol=1e-5)
