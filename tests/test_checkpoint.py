"""Trained weights survive a reset, and a power cut during a save loses at most that save
(QEMU Cortex-M7, checkpoint slots as semihosting files)."""

import re

import numpy as np
import pytest

from conftest import cached_build
from tinytvm.harness import Dataset, dataset_header
from tinytvm.toolchain import RUNTIME_C, compile_cortex_m, run_qemu

SLOT = 16384  # bytes per slot: the test model's state (weights + momenta) is ~15 KB


def _library(folder, samples: int, steps: int, seed: int):
    """The test model exported as a C library, with `samples` random samples baked in."""
    art = cached_build("mbv2_tiny", "mps2-an500", 0.05, 0.9)
    art.export_library(folder)
    rng = np.random.default_rng(seed)
    data = Dataset.quantize(rng.normal(size=(samples, 64)), rng.integers(0, 10, samples), -3, 3)
    (folder / "dataset.h").write_text(dataset_header(data, data, steps))
    return folder


def _sources(lib, backend):
    """The library, the checkpoint code, one storage backend and the checkpoint harness."""
    return [lib / "model.c", lib / "tt_state.c", lib / "tt_crc32.c",
            RUNTIME_C / "checkpoint" / "tt_checkpoint.c", RUNTIME_C / backend,
            RUNTIME_C / "harness" / "checkpoint_main.c"]


@pytest.fixture(scope="module")
def firmware(tmp_path_factory):
    """build(cut_after=None) → ELF path; the library is exported once."""
    art = cached_build("mbv2_tiny", "mps2-an500", 0.05, 0.9)
    lib = tmp_path_factory.mktemp("lib")
    art.export_library(lib)
    rng = np.random.default_rng(0)
    data = Dataset.quantize(rng.normal(size=(8, 64)), rng.integers(0, 10, 8), -3, 3)
    state_bytes = int(re.search(r"#define TT_STATE_BYTES (\d+)", (lib / "tinytvm.h").read_text())[1])
    elfs = {}

    def build(steps: int, cut_after: int | None = None):
        key = (steps, cut_after)
        if key not in elfs:
            work = tmp_path_factory.mktemp("fw")
            (work / "dataset.h").write_text(dataset_header(data, data, steps))
            flags = [f"-DTT_NV_SLOT_BYTES={SLOT}"]
            if cut_after is not None:
                flags.append(f"-DTT_NV_CUT_AFTER={cut_after}")
            elfs[key] = compile_cortex_m(_sources(lib, "cortex_m/tt_nv_semihost.c"), [work, lib, RUNTIME_C / "checkpoint",
                                                   RUNTIME_C / "cortex_m"],
                                         work / "fw.elf", "mps2-an500", extra_cflags=flags)
        return elfs[key]

    build.state_bytes = state_bytes
    return build


def _boot(elf, flash_dir):
    result = run_qemu(elf, cwd=flash_dir, timeout=120)
    lines = result.stdout.splitlines()
    boot = re.match(r"boot (fresh|restored) seq (\d+) crc (0x[0-9a-f]+)", lines[0])
    saves = [(int(s), c) for s, c in re.findall(r"^saved seq (\d+) crc (0x[0-9a-f]+)",
                                                result.stdout, re.M)]
    return result.returncode, (boot[1], int(boot[2]), boot[3]), saves


def test_trained_weights_survive_a_reset(firmware, tmp_path):
    rc, boot, saves = _boot(firmware(3), tmp_path)
    assert rc == 0 and boot[:2] == ("fresh", 0) and [s for s, _ in saves] == [1, 2, 3]
    assert len({c for _, c in saves} | {boot[2]}) == 4  # every step changed the state
    rc, boot, more = _boot(firmware(2), tmp_path)
    assert rc == 0 and boot == ("restored", 3, saves[-1][1])
    assert [s for s, _ in more] == [4, 5]


@pytest.mark.parametrize("where", ["erase", "state", "header", "after-commit"])
def test_power_cut_during_a_save_loses_at_most_that_save(firmware, tmp_path, where):
    rc, _, saves = _boot(firmware(2), tmp_path)  # two good checkpoints: seq 1 and 2
    assert rc == 0 and [s for s, _ in saves] == [1, 2]
    per_save = SLOT + firmware.state_bytes + 16  # erase, state, header (the commit)
    offset = {"erase": SLOT // 2, "state": SLOT + firmware.state_bytes // 2,
              "header": SLOT + firmware.state_bytes + 8, "after-commit": per_save}[where]
    # this run saves seq 3 completely, then loses power inside the save of seq 4
    rc, boot, cut_saves = _boot(firmware(3, cut_after=per_save + offset), tmp_path)
    assert rc == 99 and boot[1] == 2
    expected = [3] + ([4] if where == "after-commit" else [])
    assert [s for s, _ in cut_saves] == expected
    rc, boot, _ = _boot(firmware(1), tmp_path)
    assert rc == 0 and boot[0] == "restored"
    assert boot[1] == expected[-1] and boot[2] == cut_saves[-1][1]


def test_stm32f746_flash_backend_links(firmware, tmp_path):
    """The real-board backend (flash sectors 6/7) compiles and links with the checkpoint code."""
    lib = _library(tmp_path / "lib", samples=2, steps=1, seed=0)
    elf = compile_cortex_m(_sources(lib, "boards/stm32f746/tt_nv_flash.c"),
                           [lib, RUNTIME_C / "checkpoint"], tmp_path / "board.elf", "stm32f746")
    from elftools.elf.elffile import ELFFile

    with open(elf, "rb") as f:
        symbols = ELFFile(f).get_section_by_name(".symtab")
        assert symbols.get_symbol_by_name("tt_nv_erase") and symbols.get_symbol_by_name("tt_checkpoint_save")


def test_host_file_backend_restores_after_restart(tmp_path):
    import subprocess

    from tinytvm.toolchain import compile_host_executable

    lib = _library(tmp_path / "lib", samples=4, steps=2, seed=1)
    exe = compile_host_executable(_sources(lib, "host/tt_nv_file.c"),
                                  [lib, RUNTIME_C / "checkpoint"], tmp_path / "ckpt",
                                  extra_cflags=[f"-DTT_NV_SLOT_BYTES={SLOT}"])
    first = subprocess.run([str(exe)], cwd=tmp_path, capture_output=True, text=True)
    second = subprocess.run([str(exe)], cwd=tmp_path, capture_output=True, text=True)
    assert first.returncode == second.returncode == 0
    last_crc = re.findall(r"^saved seq 2 crc (0x[0-9a-f]+)", first.stdout, re.M)[0]
    assert second.stdout.startswith(f"boot restored seq 2 crc {last_crc}")
