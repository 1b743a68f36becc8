"""The `tinytvm` command: build, run, flash, report, through typer's CliRunner, and one real
`tinytvm run` in a subprocess (QEMU over the UART protocol)."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from typer.testing import CliRunner

from tinytvm.cli import app
from tinytvm.micro import Library
from tinytvm.models import mbv2_tiny
from tinytvm.report import MemoryReport

runner = CliRunner()
STEP_LINE = re.compile(r"^step +(\d+)/(\d+) +loss +([0-9.]+) +predicted +(\d+) +label +(\d+)",
                       re.MULTILINE)


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "mbv2.onnx"
    onnx.save(mbv2_tiny(), str(path))
    return path


@pytest.fixture(scope="module")
def built(model_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "out"
    result = invoke("build", model_file, "--target", "mps2-an500", "--lr", "0.05",
                    "--budget", "256KB", "-o", out, "--dump-ir", out / "ir")
    assert result.exit_code == 0, result.output
    return out, result


def test_help_reads_like_a_manual():
    top = invoke("--help")
    assert top.exit_code == 0
    for command in ("build", "run", "flash", "report"):
        assert command in top.output
    assert "Examples" in top.output
    for command, words in {"build": ("--target", "--trainable", "--budget", "--lr", "--dump-ir",
                                     "memory.png", "Example"),
                           "run": ("--data", "--steps", "--board", "--save-state", "digits"),
                           "flash": ("--probe", "pyOCD", "ST-LINK"),
                           "report": ("--top", "--plot", "lifetime")}.items():
        page = invoke(command, "--help")
        assert page.exit_code == 0, page.output
        for word in words:
            assert word in page.output, (command, word)
    assert invoke("--version").output.startswith("tinytvm ")


def test_build_writes_library_report_and_settings(built, model_file):
    out, result = built
    assert "memory report (mps2-an500)" in result.output and "arena peak" in result.output
    for name in ("model.c", "model.h", "tinytvm.h", "tt_state.c", "CMakeLists.txt",
                 "tinytvm.mk", "memory.txt", "memory.png", "memory.json", "build.json"):
        assert (out / name).is_file(), name
    assert (out / "memory.png").read_bytes()[:4] == b"\x89PNG"
    assert any((out / "ir").iterdir())  # --dump-ir
    settings = json.loads((out / "build.json").read_text())
    assert settings["model"] == str(model_file.resolve())
    assert settings["target"] == "mps2-an500" and settings["train"]["lr"] == 0.05
    assert settings["sram_budget"] == 256 * 1024 and settings["stack_bytes"] == 16 * 1024
    assert settings["result"]["num_classes"] == 10
    assert Library.load(out).input_shape == (1, 1, 8, 8)
    memory = MemoryReport.from_dict(json.loads((out / "memory.json").read_text()))
    assert str(memory) + "\n" == (out / "memory.txt").read_text()  # `report` needs no rebuild


def test_build_trainable_subset_and_errors(model_file, tmp_path):
    ok = invoke("build", model_file, "-t", "stm32f746", "--trainable", "fc14.weight",
                "--trainable", "fc14.bias", "-o", tmp_path / "sparse")
    assert ok.exit_code == 0, ok.output
    lib = Library.load(tmp_path / "sparse")
    assert [t.name for t in lib.state] == ["fc14.weight", "fc14.bias"]
    assert lib.frozen_bytes > 0

    over = invoke("build", model_file, "--budget", "20KB", "-o", tmp_path / "over")
    assert over.exit_code == 1
    assert "error:" in over.output and "over by" in over.output
    assert "Traceback" not in over.output and not (tmp_path / "over").exists()

    missing = invoke("build", tmp_path / "nope.onnx", "-o", tmp_path / "x")
    assert missing.exit_code == 2 and "does not exist" in missing.output

    bad_size = invoke("build", model_file, "--budget", "lots", "-o", tmp_path / "y")
    assert bad_size.exit_code == 1 and "cannot read a byte size" in bad_size.output


def test_report_prints_the_table_and_draws_the_plot(built, tmp_path):
    out, _ = built
    result = invoke("report", out, "--top", "3", "--plot", tmp_path / "t.png")
    assert result.exit_code == 0, result.output
    assert "memory report" in result.output and "arena tensors" in result.output
    assert "train_step" in result.output and "infer" in result.output
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"
    assert "lr 0.05" in result.output
    not_a_build = invoke("report", tmp_path)
    assert not_a_build.exit_code == 1 and "memory.json" in not_a_build.output


def test_run_on_host_prints_a_loss_per_step_and_saves_state(built, tmp_path):
    out, _ = built
    state = tmp_path / "trained.bin"
    result = invoke("run", out, "--board", "host", "--data", "random", "--steps", "32",
                    "--save-state", state, "--project", tmp_path / "proj")
    assert result.exit_code == 0, result.output
    steps = STEP_LINE.findall(result.output)
    assert [int(s[0]) for s in steps] == list(range(1, 33))
    losses = [float(s[2]) for s in steps]
    assert sum(losses[-8:]) < 0.5 * sum(losses[:8])  # 4 passes over 8 fixed samples
    assert "device statistics" in result.output and "saved the state" in result.output
    assert len(state.read_bytes()) == Library.load(out).state_bytes

    resumed = invoke("run", out, "--board", "host", "--data", "random", "--steps", "1",
                     "--load-state", state, "--project", tmp_path / "proj")
    assert resumed.exit_code == 0, resumed.output
    first_again = float(STEP_LINE.findall(resumed.output)[0][2])
    assert first_again < losses[0]  # it starts from the trained weights

    wrong = invoke("run", out, "--board", "host", "--data", "missing.npz",
                   "--project", tmp_path / "proj")
    assert wrong.exit_code == 1 and ".npz" in wrong.output


def test_flash_without_a_probe_fails_cleanly(built, tmp_path):
    out, _ = built
    result = invoke("flash", out, "--project", tmp_path / "disco")
    assert result.exit_code == 1
    assert "no debug probe found" in result.output and "pyocd list" in result.output
    assert "Traceback" not in result.output
    assert (tmp_path / "disco" / "build" / "firmware.elf").is_file()  # it did build


def test_tinytvm_run_in_a_subprocess_trains_in_qemu(built, tmp_path):
    """The installed entry point (or `python -m tinytvm.cli`), as a user types it."""
    out, _ = built
    exe = Path(sys.executable).with_name("tinytvm")
    cmd = [str(exe)] if exe.is_file() else [sys.executable, "-m", "tinytvm.cli"]
    proc = subprocess.run([*cmd, "run", str(out), "--data", "digits", "--steps", "30",
                           "--project", str(tmp_path / "qemu")],
                          capture_output=True, text=True, timeout=170, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    steps = STEP_LINE.findall(proc.stdout)
    assert len(steps) == 30
    assert "device: mps2-an500" in proc.stdout and "instructions" in proc.stdout
    assert "done building the mps2-an500 firmware" in proc.stderr
    assert shutil.which("qemu-system-arm")


def test_sparse_search_then_build_with_the_scheme(tmp_path, monkeypatch):
    """`tinytvm sparse-search` writes a scheme within budget that `tinytvm build --update` uses."""
    import json

    from typer.testing import CliRunner

    from tinytvm.cli import app
    from tinytvm.models import mbv2_tiny
    from tinytvm.sparse import UpdateScheme, memory_cost

    monkeypatch.setenv("HOME", str(tmp_path))  # the contribution cache goes to a fresh place
    model = tmp_path / "m.onnx"
    model.write_bytes(mbv2_tiny().SerializeToString())
    budget = memory_cost(mbv2_tiny(), UpdateScheme(bias_last=3)).total + 2048
    runner = CliRunner()
    found = runner.invoke(app, ["sparse-search", str(model), "--budget", str(budget), "-o",
                                str(tmp_path / "scheme.json"), "--steps", "20", "--eval", "40",
                                "--generations", "3"])
    assert found.exit_code == 0, found.output
    scheme = UpdateScheme.from_json((tmp_path / "scheme.json").read_text())
    assert memory_cost(mbv2_tiny(), scheme).total <= budget
    built = runner.invoke(app, ["build", str(model), "--target", "mps2-an500", "--update",
                                str(tmp_path / "scheme.json"), "-o", str(tmp_path / "out")])
    assert built.exit_code == 0, built.output
    settings = json.loads((tmp_path / "out" / "build.json").read_text())
    assert UpdateScheme.from_json(settings["train"]["update"]) == scheme


def test_build_int8_from_calibration(model_file, tmp_path):
    """--int8 CALIBRATION.npz: the float model is post-training quantized and its int8 graph
    built (QAS, stochastic rounding here); the settings record it; a bad file is an error."""
    import numpy as np

    calibration = tmp_path / "calib.npz"
    np.savez(calibration, x=np.random.default_rng(0).uniform(0, 1, (8, 1, 8, 8)))
    ok = invoke("build", model_file, "-t", "stm32f746", "--int8", calibration,
                "--int8-update", "stochastic", "--pointwise-input-grad", "int16",
                "-o", tmp_path / "int8")
    assert ok.exit_code == 0, ok.output
    settings = json.loads((tmp_path / "int8" / "build.json").read_text())
    assert settings["train"]["int8_update"] == "stochastic" and settings["train"]["qas"]
    assert settings["train"]["pointwise_input_grad"] == "int16"
    wrong = invoke("build", model_file, "--pointwise-input-grad", "int8", "-o", tmp_path / "x")
    assert wrong.exit_code == 2 and "int8" in wrong.output
    assert settings["int8_calibration"] == str(calibration.resolve())
    assert "int8_t" in (tmp_path / "int8" / "model.h").read_text()
    bad = tmp_path / "bad.npz"
    np.savez(bad, y=np.zeros(3))
    err = invoke("build", model_file, "--int8", bad, "-o", tmp_path / "bad")
    assert err.exit_code == 1 and "no array `x`" in err.output and "Traceback" not in err.output
