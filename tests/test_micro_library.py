"""The exported C library: its files, tt_save_state / tt_load_state, and use from a CMake project
outside the repository, built for the host and for a Cortex-M7 (run in QEMU).

These tests need gcc, cmake, arm-none-eabi-gcc and qemu-system-arm; a missing tool fails them
with the ToolchainError that says how to install it.
"""

import ctypes
import re
import subprocess

import numpy as np
import pytest
from conftest import cached_build

from tinytvm.micro import Library, export_library
from tinytvm.toolchain import RUNTIME_C, compile_host_library, require, run_qemu

STATE_E = {"SIZE": -1, "MAGIC": -2, "MODEL": -3, "CRC": -4, "RANGE": -5}


@pytest.fixture(scope="module")
def art():
    return cached_build("mbv2_tiny", "mps2-an500", 0.05, 0.9)  # momentum: state tensors too


@pytest.fixture(scope="module")
def lib(art, tmp_path_factory):
    return export_library(art, tmp_path_factory.mktemp("lib"))


def test_library_files_and_defines(art, lib):
    names = {p.name for p in lib.path.rglob("*") if p.is_file()}
    assert {"tinytvm.h", "model.h", "model.c", "tt_state.c", "tt_crc32.c", "tt_crc32.h",
            "tinytvm.mk", "CMakeLists.txt", "arm-none-eabi-cortex-m7.cmake",
            "metadata.json"} <= names
    header = (lib.path / "tinytvm.h").read_text()
    for fn in ("tt_train_step", "tt_infer", "tt_save_state", "tt_load_state"):
        assert re.search(rf"\b{fn}\(", header), fn
    model_h = (lib.path / "model.h").read_text()
    defines = dict(re.findall(r"#define (TT_\w+) (\d+)\b", header + model_h))
    assert int(defines["TT_ARENA_BYTES"]) == art.memory.arena_bytes
    assert int(defines["TT_STACK_BYTES"]) == art.memory.stack_bytes
    assert int(defines["TT_STATE_BYTES"]) == lib.state_bytes
    # every trainable array (weights and momentum) is in the state, frozen ones are not
    assert [t.symbol for t in lib.state] == [w.name for w in art.weights.values() if w.trainable]
    assert lib.state_payload_bytes == art.memory.trainable_bytes
    assert Library.load(lib.path) == lib
    makefile = (lib.path / "tinytvm.mk").read_text()
    assert "-ffp-contract=off" in makefile and "$(TT_DIR)/tt_state.c" in makefile


@pytest.fixture(scope="module")
def clib(lib, tmp_path_factory):
    so = compile_host_library(lib.sources, [lib.path], tmp_path_factory.mktemp("so") / "lib.so")
    c = ctypes.CDLL(str(so))
    c.tt_train_step.restype = ctypes.c_float
    c.tt_train_step.argtypes = [ctypes.c_void_p, ctypes.c_int32]
    c.tt_save_state.restype = ctypes.c_size_t
    c.tt_state_read.restype = ctypes.c_size_t
    for fn in ("tt_save_state", "tt_state_read"):
        getattr(c, fn).argtypes = ([ctypes.c_void_p, ctypes.c_size_t] if fn == "tt_save_state"
                                   else [ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t])
    c.tt_load_state.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    c.tt_state_write.argtypes = [ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t]
    return c


def _save(c, size) -> bytes:
    buf = ctypes.create_string_buffer(size)
    assert c.tt_save_state(buf, size) == size
    assert c.tt_save_state(buf, size - 1) == 0  # too small: nothing written
    return buf.raw


def test_save_and_load_state_in_c(art, lib, clib):
    initial = _save(clib, lib.state_bytes)
    values = lib.unpack_state(initial)
    for t in lib.state:
        np.testing.assert_array_equal(values[t.name], art.weights[t.name].value)
    assert lib.pack_state(values) == initial

    x = np.random.default_rng(0).normal(size=64).astype(np.float32)
    first = [clib.tt_train_step(x.ctypes.data, 3) for _ in range(3)]
    trained = _save(clib, lib.state_bytes)
    assert trained != initial and first[2] < first[0]
    assert clib.tt_load_state(initial, len(initial)) == 0
    assert _save(clib, lib.state_bytes) == initial
    assert clib.tt_train_step(x.ctypes.data, 3) == first[0]  # same weights, same loss, bit for bit

    before = _save(clib, lib.state_bytes)
    damaged = bytearray(trained)
    damaged[100] ^= 1
    assert clib.tt_load_state(bytes(damaged), len(damaged)) == STATE_E["CRC"]
    other_model = bytearray(trained)
    other_model[4] ^= 1
    assert clib.tt_load_state(bytes(other_model), len(other_model)) == STATE_E["MODEL"]
    assert clib.tt_load_state(b"XXXX" + trained[4:], len(trained)) == STATE_E["MAGIC"]
    assert clib.tt_load_state(trained[:-1], len(trained) - 1) == STATE_E["SIZE"]
    assert _save(clib, lib.state_bytes) == before  # refused loads change nothing


def test_piecewise_state_access_in_c(lib, clib):
    whole = _save(clib, lib.state_bytes)
    for offset, length in ((0, 5), (7, 30), (16, 1000), (lib.state_bytes - 9, 50)):
        buf = ctypes.create_string_buffer(length)
        n = clib.tt_state_read(offset, buf, length)
        assert buf.raw[:n] == whole[offset:offset + length]
    target = lib.pack_state({k: v + 1 for k, v in lib.unpack_state(whole).items()})
    for offset in range(0, len(target), 333):
        chunk = target[offset:offset + 333]
        assert clib.tt_state_write(offset, chunk, len(chunk)) == 0
    assert clib.tt_state_verify() == 0
    assert _save(clib, lib.state_bytes) == target
    assert clib.tt_state_write(len(target) - 2, b"abc", 3) == STATE_E["RANGE"]
    assert clib.tt_state_write(0, b"TTS2", 4) == STATE_E["MAGIC"]
    clib.tt_state_write(len(target) - 4, b"\0\0\0\0", 4)
    assert clib.tt_state_verify() == STATE_E["CRC"]
    assert clib.tt_load_state(whole, len(whole)) == 0


# --- a CMake project outside the repository -----------------------------------------------------

CONSUMER_MAIN = r"""
#include "tinytvm.h"
#include "tt_io.h"

static float x[TT_INPUT_ELEMS];
static uint8_t state[TT_STATE_BYTES];

static uint32_t bits(float f) { union { float f; uint32_t u; } b = {f}; return b.u; }

int main(void)
{
    for (int i = 0; i < TT_INPUT_ELEMS; i++) x[i] = (float)((i * 7) % 13) / 13.0f - 0.5f;
    if (tt_save_state(state, sizeof state) != TT_STATE_BYTES) return 3;
    float first = 0.0f;
    for (int step = 0; step < 5; step++) {
        float loss = tt_train_step(x, 4);
        if (step == 0) first = loss;
        tt_puts("loss ");
        tt_put_hex32(bits(loss));
        tt_puts("\n");
    }
    if (tt_load_state(state, sizeof state) != TT_STATE_OK) return 4;
    if (bits(tt_train_step(x, 4)) != bits(first)) return 5;
    state[40] ^= 1;
    if (tt_load_state(state, sizeof state) != TT_STATE_E_CRC) return 6;
    tt_puts("arena ");
    tt_put_int(TT_ARENA_BYTES);
    tt_puts(" stack ");
    tt_put_int(TT_STACK_BYTES);
    tt_puts("\nok\n");
    return 0;
}
"""

CONSUMER_CMAKE = """
cmake_minimum_required(VERSION 3.13)
project(consumer C)
add_subdirectory(${TT_LIB} tinytvm_model)
set(RT ${TT_RUNTIME})
if(CMAKE_CROSSCOMPILING)
  add_executable(app main.c ${RT}/tt_io_format.c ${RT}/cortex_m/tt_io_semihost.c
                 ${RT}/cortex_m/tt_core_cm7.c ${RT}/cortex_m/startup_cm7.c)
  target_link_options(app PRIVATE -L${RT}/boards -T${RT}/boards/mps2-an500/board.ld)
else()
  add_executable(app main.c ${RT}/tt_io_format.c ${RT}/host/tt_io_host.c)
endif()
target_include_directories(app PRIVATE ${RT})
target_link_libraries(app PRIVATE tinytvm::model)
"""


def _cmake_build(lib, src, build, *extra):
    cmake = require("cmake")
    src.mkdir(exist_ok=True)
    (src / "main.c").write_text(CONSUMER_MAIN)
    (src / "CMakeLists.txt").write_text(CONSUMER_CMAKE)
    for cmd in ([cmake, "-S", str(src), "-B", str(build), f"-DTT_LIB={lib.path}",
                 f"-DTT_RUNTIME={RUNTIME_C}", "-DCMAKE_BUILD_TYPE=Release", *extra],
                [cmake, "--build", str(build), "-j2"]):
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return build / "app"


def _losses(text):
    return re.findall(r"^loss (0x[0-9a-f]{8})$", text, re.MULTILINE)


def test_cmake_project_links_the_library_on_host_and_cortex_m7(lib, tmp_path):
    host_exe = _cmake_build(lib, tmp_path / "src", tmp_path / "host")
    host = subprocess.run([str(host_exe)], capture_output=True, text=True, timeout=60, check=False)
    assert host.returncode == 0, host.stdout + host.stderr
    assert host.stdout.endswith("ok\n") and len(_losses(host.stdout)) == 5

    require("arm-none-eabi-gcc")
    toolchain = lib.path / "cmake" / "arm-none-eabi-cortex-m7.cmake"
    m7_exe = _cmake_build(lib, tmp_path / "src", tmp_path / "m7",
                          f"-DCMAKE_TOOLCHAIN_FILE={toolchain}", "-DTT_CM7_FPU=fpv5-d16")
    with open(m7_exe, "rb") as f:
        assert f.read(20)[18] == 40  # e_machine = EM_ARM
    m7 = run_qemu(m7_exe, timeout=60)
    assert m7.returncode == 0, m7.stdout + m7.stderr
    # the same C, built by CMake for two machines: the same text, losses bit for bit
    assert m7.stdout == host.stdout
