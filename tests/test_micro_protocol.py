"""The UART protocol without a device: COBS framing, CRC, layouts, and the C side's numbers.

The C framing and CRC (runtime_c/project/app/tt_proto.c, runtime_c/library/tt_crc32.c) are
checked against the Python ones through a small host library, so a frame either side builds
is one the other reads.
"""

import ctypes
import re
import struct
import zlib

import numpy as np
import pytest

from tinytvm.micro import protocol as p
from tinytvm.toolchain import RUNTIME_C, compile_host_library

PROTO_H = RUNTIME_C / "project" / "app" / "tt_proto.h"


def _c_defines(path) -> dict[str, int]:
    text = path.read_text()
    return {name: int(value, 0) for name, value in
            re.findall(r"^#define (TT_\w+) \(?(-?0x[0-9A-Fa-f]+|-?\d+)\)?", text, re.MULTILINE)}


def test_python_and_c_use_the_same_numbers():
    c = _c_defines(PROTO_H)
    assert c["TT_PROTO_VERSION"] == p.VERSION
    assert c["TT_REPLY"] == p.REPLY
    assert c["TT_TRAIN_PREDICT"] == p.TRAIN_PREDICT
    for cmd in p.Cmd:
        assert c[f"TT_CMD_{cmd.name}"] == cmd.value, cmd
    for msg in p.Msg:
        assert c[f"TT_MSG_{msg.name}"] == msg.value, msg
    for code in p.ErrorCode:
        assert c[f"TT_ERR_{code.name}"] == code.value, code
    for kind in p.CycleKind:
        assert c[f"TT_CYCLES_{kind.name}"] == kind.value, kind


@pytest.mark.parametrize("data", [
    b"", b"\x00", b"\x00\x00", b"\x11\x22\x00\x33", bytes(range(1, 255)), bytes(range(1, 256)),
    bytes(253) + b"\x01", b"\x01" * 254, b"\x01" * 255, b"\x01" * 508 + b"\x00", bytes(600),
])
def test_cobs_round_trip_and_no_zero_bytes(data):
    encoded = p.cobs_encode(data)
    assert 0 not in encoded
    assert len(encoded) <= len(data) + len(data) // 254 + 1
    assert p.cobs_decode(encoded) == data


def test_cobs_random_round_trip():
    rng = np.random.default_rng(0)
    for n in rng.integers(0, 2000, 50):
        data = rng.choice([0, 1, 7, 255], size=int(n)).astype(np.uint8).tobytes()
        assert p.cobs_decode(p.cobs_encode(data)) == data


def test_frame_round_trip_and_damage_is_detected():
    frame = p.encode_frame(p.Cmd.TRAIN, 300, b"\x00\x01payload\x00")
    assert frame.endswith(b"\x00") and frame.count(0) == 1
    decoded = p.decode_frame(frame[:-1])
    assert (decoded.cmd, decoded.seq, decoded.payload) == (p.Cmd.TRAIN, 300 & 0xFF,
                                                           b"\x00\x01payload\x00")
    damaged = bytearray(frame[:-1])
    damaged[3] ^= 0x40
    with pytest.raises(p.ProtocolError, match="CRC|COBS"):
        p.decode_frame(bytes(damaged))
    with pytest.raises(p.ProtocolError, match="shorter"):
        p.decode_frame(p.cobs_encode(b"\x01\x02"))


def test_documented_example_frame():
    assert p.encode_frame(0x01, 1) == bytes.fromhex("07 01 01 28 13 c5 2f 00")


def test_reply_layouts():
    info = struct.pack("<HHIIIIIB", 1, 1024, 64, 10, 7452, 0xBA13370F, 216_000_000, 1) \
        + b"\x0fstm32f746-disco" + b"\x05model"
    parsed = p.DeviceInfo.parse(info)
    assert (parsed.board, parsed.model, parsed.cycle_kind) == ("stm32f746-disco", "model",
                                                               p.CycleKind.CORE)
    assert parsed.input_elems == 64 and parsed.model_id == 0xBA13370F
    train = p.TrainResult.parse(struct.pack("<fiIQ", 1.5, 3, 7, 123456789012))
    assert train == p.TrainResult(1.5, 3, 7, 123456789012)
    infer = p.InferResult.parse(struct.pack("<iQ", 2, 5) + np.arange(10, dtype="<f4").tobytes())
    assert infer.prediction == 2 and np.array_equal(infer.logits, np.arange(10, dtype=np.float32))
    stats = p.DeviceStats.parse(struct.pack("<7I3Q", *range(1, 8), 8, 9, 10))
    assert stats.stack_peak_bytes == 5 and stats.total_train_cycles == 10
    error = p.parse_error(struct.pack("<Bi", 4, -7) + b"TRAIN: label out of range")
    assert error.code == p.ErrorCode.ARG and error.detail == -7
    assert "ARG" in str(error) and "label out of range" in str(error)
    with pytest.raises(p.ProtocolError, match="TRAIN reply"):
        p.TrainResult.parse(b"\x00" * 8)


@pytest.fixture(scope="module")
def c_proto(tmp_path_factory):
    """tt_proto.c + tt_crc32.c on the host, with a board that reads and writes memory."""
    work = tmp_path_factory.mktemp("proto")
    board = work / "mem_board.c"
    board.write_text(r"""
#include <setjmp.h>
#include <string.h>
#include "tt_board.h"
#include "tt_proto.h"
const tt_board_info tt_board = {"test", 0u, 0u};
static const uint8_t *in; static size_t in_len, in_pos;
static uint8_t out[8192]; static size_t out_len;
void tt_test_feed(const uint8_t *data, size_t n) { in = data; in_len = n; in_pos = 0; out_len = 0; }
const uint8_t *tt_test_out(size_t *n) { *n = out_len; return out; }
void tt_board_init(void) {}
void tt_board_write(const uint8_t *d, size_t n) { memcpy(out + out_len, d, n); out_len += n; }
int tt_board_read(void) { return in_pos < in_len ? in[in_pos++] : -1; }
uint64_t tt_board_cycles(void) { return 0u; }
uint32_t tt_board_stack_bytes(void) { return 0u; }
static jmp_buf halted; static int exit_code;
void tt_board_exit(int code) { exit_code = code; longjmp(halted, 1); }
int tt_test_halt(int code) { if (setjmp(halted) == 0) tt_proto_halt(code); return exit_code; }
""")
    app = RUNTIME_C / "project" / "app"
    lib = compile_host_library(
        [board, app / "tt_proto.c", RUNTIME_C / "library" / "tt_crc32.c"],
        [app, RUNTIME_C / "library"], work / "libproto.so")
    c = ctypes.CDLL(str(lib))
    c.tt_crc32.restype = ctypes.c_uint32
    c.tt_crc32.argtypes = [ctypes.c_uint32, ctypes.c_char_p, ctypes.c_size_t]
    c.tt_test_out.restype = ctypes.POINTER(ctypes.c_uint8)
    return c


def test_c_crc32_is_zlib_crc32(c_proto):
    rng = np.random.default_rng(1)
    for n in (0, 1, 5, 64, 1000):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        assert c_proto.tt_crc32(0, data, n) == zlib.crc32(data)
    half = c_proto.tt_crc32(0, b"hello ", 6)
    assert c_proto.tt_crc32(half, b"world", 5) == zlib.crc32(b"hello world")


def _c_send(c_proto, cmd, seq, payload):
    c_proto.tt_test_feed(b"", 0)
    c_proto.tt_proto_send(cmd, seq, payload, len(payload))
    n = ctypes.c_size_t()
    ptr = c_proto.tt_test_out(ctypes.byref(n))
    return bytes(ptr[:n.value])


def _c_receive(c_proto, wire: bytes):
    c_proto.tt_test_feed(wire, len(wire))
    cmd, seq = ctypes.c_uint8(), ctypes.c_uint8()
    payload = ctypes.create_string_buffer(1024)
    n = c_proto.tt_proto_receive(ctypes.byref(cmd), ctypes.byref(seq), payload)
    return n, cmd.value, seq.value, payload.raw[:max(n, 0)]


@pytest.mark.parametrize("size", [0, 3, 250, 254, 255, 600, 1024])
def test_c_frames_decode_in_python_and_back(c_proto, size):
    payload = bytes((i * 7) % 256 for i in range(size))
    wire = _c_send(c_proto, 0x83, 42, payload)
    assert wire == p.encode_frame(0x83, 42, payload)  # byte for byte the same encoder
    frame = p.decode_frame(wire[:-1])
    assert (frame.cmd, frame.seq, frame.payload) == (0x83, 42, payload)
    n, cmd, seq, got = _c_receive(c_proto, b"\x00" + p.encode_frame(0x05, 9, payload))
    assert (n, cmd, seq, got) == (size, 0x05, 9, payload)


def test_c_receiver_rejects_damaged_and_oversized_frames(c_proto):
    wire = bytearray(p.encode_frame(0x03, 5, b"\x01\x02\x03\x04\x05"))
    wire[4] ^= 0x10
    n, _, seq, _ = _c_receive(c_proto, bytes(wire))
    assert n == -p.ErrorCode.CRC and seq == 5
    n, *_ = _c_receive(c_proto, p.encode_frame(0x02, 1, bytes(1100)))
    assert n == -p.ErrorCode.FRAME
    n, *_ = _c_receive(c_proto, b"")
    assert n == -100  # TT_PROTO_CLOSED


def _frames(wire: bytes) -> list:
    return [p.decode_frame(part) for part in wire.split(b"\0") if part]


def test_c_halt_answers_the_pending_and_every_later_request(c_proto):
    """After tt_exit (e.g. a CPU fault: code 250) the firmware keeps answering, with HALTED."""
    wire = p.encode_frame(p.Cmd.TRAIN, 3, bytes(5)) + p.encode_frame(p.Cmd.STATS, 4)
    n, cmd, seq, _ = _c_receive(c_proto, wire)  # the TRAIN is being served when the fault hits
    assert (n, cmd, seq) == (5, p.Cmd.TRAIN, 3)
    assert c_proto.tt_test_halt(250) == 250  # returns once the link closes (test board)
    out = ctypes.c_size_t()
    ptr = c_proto.tt_test_out(ctypes.byref(out))
    replies = _frames(bytes(ptr[:out.value]))
    assert [(f.cmd, f.seq) for f in replies] == [(p.Msg.ERROR, 3), (p.Msg.ERROR, 4)]
    for frame in replies:
        error = p.parse_error(frame.payload)
        assert (error.code, error.detail) == (p.ErrorCode.HALTED, 250)
        assert "CPU fault" in str(error)
