"""Board projects: generated folders that build with `make` alone, and the protocol firmware
driven from Python — in QEMU (mps2-an500) over a TCP serial port, as a host program, and the
STM32F746G-DISCO build checked against the chip's memory map.

Needs make, gcc, arm-none-eabi-gcc, qemu-system-arm, pyserial and pyocd: a missing one fails
the tests (never skips them).
"""

import shutil
import struct
import subprocess
import zlib

import numpy as np
import pytest
from conftest import cached_build
from elftools.elf.elffile import ELFFile

import tinytvm
from tinytvm.micro import (
    Client,
    CycleKind,
    DeviceError,
    Project,
    export_library,
    generate_project,
)
from tinytvm.micro.protocol import Cmd, ErrorCode, Msg, cobs_encode, parse_error
from tinytvm.toolchain import require

STM32_FLASH = (0x0800_0000, 1024 * 1024)
STM32_SRAM = (0x2000_0000, 320 * 1024)


def _samples(n=4, seed=7):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 1, 8, 8)).astype(np.float32), [1, 4, 7, 9][:n]


def _host_losses(art, xs, ys, steps):
    sess = art.host_session()
    losses = [sess.train_step(xs[i % len(ys)], ys[i % len(ys)]) for i in range(steps)]
    return np.array(losses, np.float32), sess


def test_mps2_project_builds_with_make_and_trains_over_uart_in_qemu(tmp_path):
    art = cached_build("mbv2_tiny", "mps2-an500", 0.05)
    out = tmp_path / "proj"
    generate_project(art, "mps2-an500", out)
    make = subprocess.run([require("make"), "-C", str(out), "-j2"], capture_output=True,
                          text=True, check=False)
    assert make.returncode == 0, make.stdout[-2000:] + make.stderr[-2000:]
    assert (out / "build" / "firmware.elf").is_file()

    proj = Project.open(out)
    xs, ys = _samples()
    with proj.run(timeout=60) as device:
        client = device.client
        info = client.info()
        assert (info.board, info.model, info.input_elems, info.num_classes) == \
               ("mps2-an500", "model", 64, 10)
        assert info.cycle_kind == CycleKind.INSTRUCTIONS
        initial = client.save_state()
        results = client.fit(xs, ys, 30)
        stats = client.stats()
        trained = proj.library.unpack_state(client.save_state())
        client.load_state(initial)
        again = client.train(xs[0], ys[0])
        assert device.process.poll() is None  # QEMU still running until close()
    assert device.process.poll() is not None  # stopped by close()

    losses = np.array([r.loss for r in results], np.float32)
    assert losses[-4:].mean() < 0.25 * losses[:4].mean(), losses
    host, sess = _host_losses(art, xs, ys, 30)
    np.testing.assert_allclose(losses, host, rtol=1e-5, atol=0)  # same C, same numbers
    for name, value in sess.params().items():
        if name in trained:
            np.testing.assert_allclose(trained[name], value, rtol=1e-5, atol=1e-6)
    assert again.loss == results[0].loss and again.step == 31
    assert [r.step for r in results] == list(range(1, 31))
    assert all(0 <= r.prediction < 10 for r in results)
    assert stats.steps == 30 and stats.arena_bytes == art.memory.arena_bytes
    assert stats.trainable_bytes == art.memory.trainable_bytes
    assert 0 < stats.stack_peak_bytes < stats.stack_bytes == art.memory.stack_bytes
    assert stats.last_train_cycles > 0 and stats.total_train_cycles >= 30 * 40


@pytest.fixture(scope="module")
def host_device(tmp_path_factory):
    art = cached_build("resnet_tiny", "host", 0.05)
    lib = export_library(art, tmp_path_factory.mktemp("lib"))
    proj = generate_project(lib, "host", tmp_path_factory.mktemp("host"))
    proj.build()
    with proj.run(timeout=20) as device:
        yield art, lib, device


def test_host_firmware_matches_the_host_session(host_device):
    art, lib, device = host_device
    client = device.client
    xs, ys = _samples(3, seed=11)
    start = client.save_state()
    results = client.fit(xs, ys, 6)
    host, sess = _host_losses(art, xs, ys, 6)
    assert np.array_equal(np.array([r.loss for r in results], np.float32), host)
    state = lib.unpack_state(client.save_state())
    params = sess.params()
    for name, value in state.items():
        assert np.array_equal(value, params[name]), name
    logits = client.infer(xs[0])
    assert np.array_equal(logits.logits, sess.infer(xs[0]))
    assert logits.prediction == int(np.argmax(logits.logits))
    client.load_state(start)
    assert client.train(xs[0], ys[0]).loss == results[0].loss


def test_protocol_errors_are_reported_not_fatal(host_device):
    device = host_device[2]
    client = device.client
    with pytest.raises(DeviceError, match="ARG") as exc:
        client.request(Cmd.TRAIN, struct.pack("<iB", 12, 0))  # label outside [0, 10)
    assert exc.value.code == ErrorCode.ARG and exc.value.detail == 12
    with pytest.raises(DeviceError, match="UNKNOWN"):
        client.request(0x42)
    with pytest.raises(DeviceError, match="ARG"):
        client.request(Cmd.INPUT, struct.pack("<I", 60) + bytes(4 * 8))  # past the end
    # a frame damaged on the wire: the device says so (with the frame's seq) and keeps serving
    body = bytes([Cmd.INFO, 77])
    client.serial.write(cobs_encode(body + struct.pack("<I", zlib.crc32(body) ^ 0xFFFF)) + b"\0")
    reply = client.read_frame(timeout=5)
    assert (reply.cmd, reply.seq) == (Msg.ERROR, 77)
    assert parse_error(reply.payload).code == ErrorCode.CRC
    # a state whose payload was damaged in transit fails the final check
    original = client.save_state()
    blob = bytearray(original)
    blob[50] ^= 0x10
    for offset in range(0, len(blob), 1000):
        chunk = bytes(blob[offset:offset + 1000])
        client.request(Cmd.STATE_WRITE, struct.pack("<I", offset) + chunk)
    with pytest.raises(DeviceError, match="STATE"):
        client.request(Cmd.STATE_VERIFY)
    client.load_state(original)
    with pytest.raises(ValueError, match="another model"):
        client.load_state(b"TTS1" + b"\0\0\0\0" + bytes(blob[8:]))
    with pytest.raises(ValueError, match="label"):
        client.train(np.zeros(64, np.float32), 10)
    assert client.info().board == "host"  # still answering


def test_a_large_input_goes_in_chunks(tmp_path):
    """Inputs bigger than one frame are uploaded with INPUT; TRAIN then carries no input."""
    art = cached_build("mbv2_tiny", "host", 0.05)
    proj = generate_project(art, "host", tmp_path / "p")
    # a 64-byte frame limit: every sample needs several INPUT frames
    (tmp_path / "p" / "Makefile").write_text((tmp_path / "p" / "Makefile").read_text().replace(
        "CFLAGS := ", "CFLAGS := -DTT_PROTO_MAX_PAYLOAD=64 "))
    proj.build()
    xs, ys = _samples(2)
    with proj.run(timeout=20) as device:
        assert device.client.info().max_payload == 64
        losses = [device.client.train(xs[i], ys[i]).loss for i in range(2)]
        blob = device.client.save_state()
    host, _ = _host_losses(art, xs, ys, 2)
    assert np.array_equal(np.array(losses, np.float32), host)
    assert len(blob) == proj.library.state_bytes


def test_stm32f746_disco_firmware_fits_the_chip_and_flash_needs_a_probe(tmp_path):
    art = cached_build("mbv2_tiny", "stm32f746", 0.05)
    proj = generate_project(art, "stm32f746-disco", tmp_path / "disco")
    elf = proj.build()
    with open(elf, "rb") as f:
        e = ELFFile(f)
        vectors = e.get_section_by_name(".isr_vector")
        assert vectors["sh_addr"] == STM32_FLASH[0]
        initial_sp, reset = struct.unpack("<II", vectors.data()[:8])
        for segment in e.iter_segments():
            if segment["p_type"] == "PT_LOAD" and segment["p_filesz"]:
                assert STM32_FLASH[0] <= segment["p_paddr"] < sum(STM32_FLASH)
        symbols = e.get_section_by_name(".symtab")
        board_name = symbols.get_symbol_by_name("tt_board")[0]
    assert STM32_SRAM[0] < initial_sp <= sum(STM32_SRAM) and initial_sp % 8 == 0
    assert reset & 1 and STM32_FLASH[0] <= reset < sum(STM32_FLASH)  # Thumb, in flash
    assert board_name["st_size"] > 0
    sizes = proj.sizes()
    assert sizes["flash_bytes"] <= STM32_FLASH[1] and sizes["ram_bytes"] <= STM32_SRAM[1]
    assert sizes["data"] >= art.memory.trainable_bytes and sizes["bss"] >= art.memory.arena_bytes
    assert "-mfpu=fpv5-sp-d16" in (proj.path / "Makefile").read_text()

    with pytest.raises(tinytvm.ToolchainError, match="no debug probe found") as exc:
        proj.flash()
    assert "pyocd list" in str(exc.value) and "Traceback" not in str(exc.value)

    # the linker checks the chip: a firmware that does not fit is a BudgetError with the bytes
    makefile = proj.path / "Makefile"
    makefile.write_text(makefile.read_text().replace("RAM_BYTES ?= 327680", "RAM_BYTES ?= 32768"))
    with pytest.raises(tinytvm.BudgetError, match=r"SRAM \(32 KB\): over by \d+ bytes"):
        proj.build()


def test_unknown_board_and_missing_library_are_clear(tmp_path):
    art = cached_build("mbv2_tiny", "host", 0.05)
    with pytest.raises(ValueError, match="unknown board 'esp32'.*stm32f746-disco"):
        generate_project(art, "esp32", tmp_path / "x")
    with pytest.raises(tinytvm.TinyTVMError, match="not a tinytvm library"):
        generate_project(tmp_path, "host", tmp_path / "y")
    with pytest.raises(tinytvm.ToolchainError, match="nothing to flash"):
        generate_project(art, "mps2-an500", tmp_path / "z").flash()


def test_client_times_out_with_a_clear_message():
    """A link where nothing answers: ProtocolError naming the request, not a hang."""
    import socket

    from tinytvm.micro import ProtocolError

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        client = Client(f"socket://127.0.0.1:{port}", timeout=0.5)
        try:
            with pytest.raises(ProtocolError, match="no reply to INFO within 0.5 s"):
                client.info()
        finally:
            client.close()


def test_generated_project_is_self_contained(tmp_path):
    """Copied elsewhere (no tinytvm, no runtime_c next to it), the folder still builds."""
    art = cached_build("mbv2_tiny", "mps2-an500", 0.05)
    generate_project(art, "mps2-an500", tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    shutil.rmtree(tmp_path / "a")
    make = subprocess.run([require("make"), "-C", str(tmp_path / "b"), "-j2"],
                          capture_output=True, text=True, check=False)
    assert make.returncode == 0, make.stderr[-2000:]
    assert "RUNTIME_C" not in (tmp_path / "b" / "Makefile").read_text()
