"""The tinytvm UART protocol, host side: framing, message numbers, and reply layouts.

docs/protocol.md describes it; runtime_c/project/app/tt_proto.h is the device side, and a test
checks that both use the same numbers. A frame is the COBS encoding of

    cmd (u8) | seq (u8) | payload | CRC-32 of cmd..payload (u32, little-endian)

followed by one 0x00 byte. Nothing here does I/O: `Client` (client.py) moves the bytes.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from ..errors import TinyTVMError

VERSION = 1
DELIMITER = b"\x00"
REPLY = 0x80
_FRAME_OVERHEAD = 6  # cmd, seq, CRC-32


class Cmd(IntEnum):
    """Requests; the reply to one has `cmd | REPLY` and the same seq."""

    INFO = 0x01
    INPUT = 0x02
    TRAIN = 0x03
    INFER = 0x04
    STATS = 0x05
    STATE_READ = 0x06
    STATE_WRITE = 0x07
    STATE_VERIFY = 0x08


class Msg(IntEnum):
    """Device-to-host frames that are not replies."""

    ERROR = 0x7F
    LOG = 0x7E


class ErrorCode(IntEnum):
    CRC = 1
    FRAME = 2
    UNKNOWN = 3
    ARG = 4
    STATE = 5
    HALTED = 6


class CycleKind(IntEnum):
    NONE = 0  # no counter
    CORE = 1  # core clock cycles (DWT) at core_hz
    INSTRUCTIONS = 2  # guest instructions (QEMU -icount shift=0)


TRAIN_PREDICT = 0x01


class ProtocolError(TinyTVMError):
    """The link is broken: no reply in time, a damaged frame, or a reply that makes no sense."""


class DeviceError(TinyTVMError):
    """The device answered a request with an ERROR frame (`code`, `detail`)."""

    def __init__(self, code: int, detail: int, message: str):
        try:
            name = ErrorCode(code).name
        except ValueError:
            name = f"error {code}"
        super().__init__(f"device refused the request: {name} ({message}; detail {detail})")
        self.code, self.detail = code, detail


# --- framing ------------------------------------------------------------------------------------


def cobs_encode(data: bytes) -> bytes:
    """Consistent Overhead Byte Stuffing: `data` without any 0x00, at most 1 byte per 254 more."""
    out = bytearray()
    block = bytearray()
    for byte in data:
        if byte == 0:
            out += bytes([len(block) + 1]) + block
            block.clear()
            continue
        block.append(byte)
        if len(block) == 254:
            out += b"\xff" + block
            block.clear()
    out += bytes([len(block) + 1]) + block
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i < len(data):
        code = data[i]
        if code == 0 or i + code > len(data):
            raise ProtocolError(f"bad COBS block at byte {i} of a {len(data)}-byte frame")
        out += data[i + 1:i + code]
        i += code
        if code != 0xFF and i < len(data):
            out.append(0)
    return bytes(out)


def encode_frame(cmd: int, seq: int, payload: bytes = b"") -> bytes:
    """The bytes to send, delimiter included."""
    body = bytes([cmd, seq & 0xFF]) + payload
    return cobs_encode(body + struct.pack("<I", zlib.crc32(body))) + DELIMITER


@dataclass(frozen=True)
class Frame:
    cmd: int
    seq: int
    payload: bytes


def decode_frame(encoded: bytes) -> Frame:
    """One frame without its delimiter; ProtocolError if it is damaged."""
    raw = cobs_decode(encoded)
    if len(raw) < _FRAME_OVERHEAD:
        raise ProtocolError(f"frame of {len(raw)} bytes is shorter than {_FRAME_OVERHEAD}")
    body, (crc,) = raw[:-4], struct.unpack("<I", raw[-4:])
    if zlib.crc32(body) != crc:
        raise ProtocolError(f"CRC mismatch in a frame with cmd 0x{body[0]:02x}")
    return Frame(body[0], body[1], bytes(body[2:]))


def parse_error(payload: bytes) -> DeviceError:
    if len(payload) < 5:
        return DeviceError(0, 0, "malformed ERROR frame")
    code, detail = struct.unpack("<Bi", payload[:5])
    return DeviceError(code, detail, payload[5:].decode("ascii", "replace"))


# --- requests -----------------------------------------------------------------------------------


def train_request(label: int, x: np.ndarray | None, predict: bool) -> bytes:
    flags = TRAIN_PREDICT if predict else 0
    head = struct.pack("<iB", int(label), flags)
    return head if x is None else head + float_payload(x)


def input_request(offset: int, x: np.ndarray) -> bytes:
    return struct.pack("<I", offset) + float_payload(x)


def state_read_request(offset: int, length: int) -> bytes:
    return struct.pack("<IH", offset, length)


def state_write_request(offset: int, data: bytes) -> bytes:
    return struct.pack("<I", offset) + data


def float_payload(x: np.ndarray) -> bytes:
    return np.ascontiguousarray(x, dtype="<f4").tobytes()


# --- replies ------------------------------------------------------------------------------------


def _unpack(fmt: str, payload: bytes, what: str) -> tuple:
    size = struct.calcsize(fmt)
    if len(payload) < size:
        raise ProtocolError(f"{what} reply has {len(payload)} bytes, expected at least {size}")
    return struct.unpack(fmt, payload[:size])


@dataclass(frozen=True)
class DeviceInfo:
    """INFO: what runs on the device."""

    version: int
    max_payload: int
    input_elems: int
    num_classes: int
    state_bytes: int
    model_id: int
    core_hz: int
    cycle_kind: CycleKind
    board: str
    model: str

    @classmethod
    def parse(cls, payload: bytes) -> DeviceInfo:
        fixed = "<HHIIIIIB"
        values = _unpack(fixed, payload, "INFO")
        rest = payload[struct.calcsize(fixed):]
        board, rest = _text(rest)
        model, _ = _text(rest)
        *head, kind = values
        return cls(*head, CycleKind(kind), board, model)


def _text(data: bytes) -> tuple[str, bytes]:
    if not data or len(data) < 1 + data[0]:
        raise ProtocolError("INFO reply: truncated name")
    n = data[0]
    return data[1:1 + n].decode("ascii", "replace"), data[1 + n:]


@dataclass(frozen=True)
class TrainResult:
    """TRAIN: the loss before the update, the prediction before it (-1 if not asked), the
    number of steps so far, and the step's cycles (unit: DeviceInfo.cycle_kind)."""

    loss: float
    prediction: int
    step: int
    cycles: int

    @classmethod
    def parse(cls, payload: bytes) -> TrainResult:
        loss, prediction, step, cycles = _unpack("<fiIQ", payload, "TRAIN")
        return cls(loss, prediction, step, cycles)


@dataclass(frozen=True)
class InferResult:
    prediction: int
    cycles: int
    logits: np.ndarray

    @classmethod
    def parse(cls, payload: bytes) -> InferResult:
        prediction, cycles = _unpack("<iQ", payload, "INFER")
        logits = np.frombuffer(payload[12:], dtype="<f4").astype(np.float32)
        return cls(prediction, cycles, logits)


@dataclass(frozen=True)
class DeviceStats:
    """STATS: memory (bytes) and time (cycles, unit: DeviceInfo.cycle_kind)."""

    arena_bytes: int
    trainable_bytes: int
    frozen_bytes: int
    stack_bytes: int  # reserved by the linker script (0 on the host)
    stack_peak_bytes: int  # deepest use so far, from the painted stack (0 on the host)
    state_bytes: int
    steps: int
    last_train_cycles: int
    last_infer_cycles: int
    total_train_cycles: int

    @classmethod
    def parse(cls, payload: bytes) -> DeviceStats:
        return cls(*_unpack("<7I3Q", payload, "STATS"))
