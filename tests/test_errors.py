"""Bad input ends in a tinytvm error that names the culprit, never a traceback from TVM."""

import numpy as np
import onnx
import pytest
from onnx import helper

import tinytvm
from tinytvm import toolchain
from tinytvm.models import OnnxBuilder, mbv2_tiny


def _with_extra_node(op_type: str) -> onnx.ModelProto:
    b = OnnxBuilder("bad", [1, 1, 8, 8])
    x = b.relu(b.conv("input", 1, 4, 3))
    out = "weird.out"
    b.nodes.append(helper.make_node(op_type, [x], [out], name="my_weird_node"))
    x = b.flatten(b.global_avg_pool(out))
    return b.finish(b.gemm(x, 4, 3), [1, 3])


def test_unsupported_op_names_op_and_node():
    with pytest.raises(tinytvm.UnsupportedModelError, match=r"'Sigmoid' at node 'my_weird_node'"):
        tinytvm.build(_with_extra_node("Sigmoid"))


def test_dynamic_shape_names_input_and_dimension():
    model = mbv2_tiny()
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    with pytest.raises(tinytvm.UnsupportedModelError, match=r"input 'input' has dimension 0 = 'batch'"):
        tinytvm.build(model)


def test_missing_file_and_garbage_file(tmp_path):
    with pytest.raises(tinytvm.UnsupportedModelError, match="not found"):
        tinytvm.build(tmp_path / "nope.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00\x01not a protobuf at all" * 10)
    with pytest.raises(tinytvm.UnsupportedModelError, match="junk.onnx"):
        tinytvm.build(junk)


def test_unknown_trainable_weight_is_named():
    with pytest.raises(tinytvm.UnsupportedModelError, match="no_such.weight"):
        tinytvm.build(mbv2_tiny(), train=tinytvm.TrainConfig(trainable=["no_such.weight"]))


def test_over_sram_budget_reports_bytes_and_memory_report():
    with pytest.raises(tinytvm.BudgetError) as err:
        tinytvm.build(mbv2_tiny(), target="stm32f746", sram_budget="20KB")
    message = str(err.value)
    assert "does not fit stm32f746" in message and "over by" in message
    assert "memory report" in message  # the report comes with the error
    report = err.value.report
    assert report.sram_bytes > 20 * 1024
    assert f"over by {report.sram_bytes - 20 * 1024} B" in message


def test_over_flash_budget():
    with pytest.raises(tinytvm.BudgetError, match=r"flash: .* over by \d+ B"):
        tinytvm.build(mbv2_tiny(), target="stm32f746", flash_budget=1000,
                      train=tinytvm.TrainConfig(trainable=["fc14.bias"]))


def test_wide_model_does_not_fit_stm32f746_sram():
    """A real model that needs more than 320 KB: the default budget of the board catches it."""
    from tinytvm.models import mbv2_tiny as make

    with pytest.raises(tinytvm.BudgetError, match=r"SRAM: needs \d+ B .* > budget 327680 B"):
        tinytvm.build(make(size=64, width=32, in_ch=3), target="stm32f746")


def test_missing_cross_compiler_and_qemu(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(tinytvm.ToolchainError, match=r"arm-none-eabi-gcc.*apt-get"):
        toolchain.require("arm-none-eabi-gcc")
    with pytest.raises(tinytvm.ToolchainError, match=r"qemu-system-arm"):
        toolchain.require("qemu-system-arm")


def test_bad_config_values():
    with pytest.raises(ValueError, match="learning rate"):
        tinytvm.TrainConfig(lr=0)
    with pytest.raises(ValueError, match="unknown target"):
        tinytvm.build(mbv2_tiny(), target="esp32")


def test_missing_gradient_rule_names_op():
    import tvm
    from tvm import relax

    from tinytvm.passes import Autodiff

    bb = relax.BlockBuilder()
    x = relax.Var("input", relax.TensorType((1, 4), "float32"))
    w = relax.Var("w", relax.TensorType((4, 4), "float32"))
    with bb.function("main", [x, w], attrs={"num_input": 1,
                                             "params": [tvm.runtime.tensor(np.eye(4, dtype="float32"))]}):
        with bb.dataflow():
            h = bb.emit(relax.op.matmul(x, w))
            out = bb.emit_output(relax.op.strided_slice(h, axes=[1], begin=[0], end=[4]))
        bb.emit_func_output(out)
    with pytest.raises(tinytvm.UnsupportedModelError, match=r"no gradient rule for op 'relax.strided_slice'"):
        Autodiff(["w"])(bb.get())


def test_build_rejects_c_that_does_not_compile_cleanly(monkeypatch):
    """The build compiles its own C with -Werror for host and Cortex-M7; a warning is an error."""
    from tinytvm import emit_c

    real = emit_c.function_body
    monkeypatch.setattr(emit_c, "function_body",
                        lambda *a, **k: real(*a, **k) + "\n  float never_used = 1.0f;")
    with pytest.raises(tinytvm.ToolchainError, match=r"does not compile cleanly .*-Werror"):
        tinytvm.build(mbv2_tiny(), target="stm32f746")
