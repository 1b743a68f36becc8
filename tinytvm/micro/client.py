"""`Client`: talk to the protocol firmware over a serial link (pyserial).

Any pyserial URL works: a real port ("/dev/ttyACM0", the STM32F746G-DISCO's ST-LINK virtual COM
port), a TCP socket ("socket://127.0.0.1:5555", QEMU's `-serial tcp:...` or the host firmware),
or a pty. One request at a time; each waits for its reply.
"""

from __future__ import annotations

import struct
import time
import zlib
from collections.abc import Callable, Sequence

import numpy as np

from ..errors import ToolchainError
from . import protocol as p
from .protocol import (
    Cmd,
    DeviceError,
    DeviceInfo,
    DeviceStats,
    InferResult,
    Msg,
    ProtocolError,
    TrainResult,
)

DEFAULT_TIMEOUT = 30.0


class Client:
    """One connection to a device running the tinytvm protocol firmware.

    Raises ProtocolError when the link fails (timeout, damaged frame) and DeviceError when the
    device refuses a request. Use as a context manager, or call close().
    """

    def __init__(self, port, *, baudrate: int = 115200, timeout: float = DEFAULT_TIMEOUT):
        self.timeout = timeout
        self.logs: list[str] = []  # text the firmware sent with tt_puts
        self._seq = 0
        self._rx = bytearray()
        self._info: DeviceInfo | None = None
        self.serial = port if not isinstance(port, str) else _open(port, baudrate)
        self.serial.write(p.DELIMITER)  # ends any half frame the device holds from before

    # --- requests ----------------------------------------------------------------------------

    def info(self) -> DeviceInfo:
        """Board, model and protocol facts (asked once, then cached)."""
        if self._info is None:
            info = DeviceInfo.parse(self.request(Cmd.INFO))
            if info.version != p.VERSION:
                raise ProtocolError(f"device speaks protocol version {info.version}, this client "
                                    f"{p.VERSION}: rebuild the firmware with this tinytvm")
            self._info = info
        return self._info

    def train(self, x, label: int, *, predict: bool = True) -> TrainResult:
        """One training step on the device. predict=True also returns the argmax of the model
        before the update (one more forward pass on the device)."""
        x = self._input(x)
        if not 0 <= int(label) < self.info().num_classes:
            raise ValueError(f"label {label} is outside [0, {self.info().num_classes})")
        if 5 + x.nbytes <= self.info().max_payload:
            reply = self.request(Cmd.TRAIN, p.train_request(label, x, predict))
        else:
            self._upload(x)
            reply = self.request(Cmd.TRAIN, p.train_request(label, None, predict))
        return TrainResult.parse(reply)

    def infer(self, x) -> InferResult:
        x = self._input(x)
        if x.nbytes <= self.info().max_payload:
            return InferResult.parse(self.request(Cmd.INFER, p.float_payload(x)))
        self._upload(x)
        return InferResult.parse(self.request(Cmd.INFER))

    def stats(self) -> DeviceStats:
        return DeviceStats.parse(self.request(Cmd.STATS))

    def save_state(self) -> bytes:
        """The trainable state as tt_save_state writes it (Library.unpack_state reads it)."""
        info = self.info()
        chunk = info.max_payload
        blob = bytearray()
        while len(blob) < info.state_bytes:
            want = min(chunk, info.state_bytes - len(blob))
            part = self.request(Cmd.STATE_READ, p.state_read_request(len(blob), want))
            if not part:
                raise ProtocolError(f"STATE_READ at {len(blob)} returned nothing")
            blob += part
        crc, = struct.unpack("<I", blob[-4:])
        if zlib.crc32(bytes(blob[:-4])) != crc:
            raise ProtocolError("the state read from the device fails its CRC")
        return bytes(blob)

    def load_state(self, blob: bytes) -> None:
        """Writes a saved state into the device's weights; the device checks the CRC at the end."""
        info = self.info()
        if len(blob) != info.state_bytes or blob[:4] != b"TTS1":
            raise ValueError(f"not a state of this model: {len(blob)} bytes, the device's "
                             f"model '{info.model}' saves {info.state_bytes}")
        model_id, = struct.unpack("<I", blob[4:8])
        if model_id != info.model_id:
            raise ValueError(f"state was saved from another model (id {model_id:08x}; the "
                             f"device runs '{info.model}', id {info.model_id:08x})")
        chunk = info.max_payload - 4
        for offset in range(0, len(blob), chunk):
            part = blob[offset:offset + chunk]
            self.request(Cmd.STATE_WRITE, p.state_write_request(offset, part))
        self.request(Cmd.STATE_VERIFY)

    def fit(self, xs: Sequence, ys: Sequence[int], steps: int, *,
            on_step: Callable[[int, TrainResult], None] | None = None) -> list[TrainResult]:
        """`steps` training steps over (xs, ys), cycling in order."""
        results = []
        for step in range(steps):
            i = step % len(ys)
            result = self.train(xs[i], int(ys[i]))
            results.append(result)
            if on_step is not None:
                on_step(step, result)
        return results

    # --- link --------------------------------------------------------------------------------

    def request(self, cmd: int, payload: bytes = b"", timeout: float | None = None) -> bytes:
        """Sends one request and returns its reply's payload."""
        self._seq = (self._seq + 1) & 0xFF
        seq = self._seq
        self.serial.write(p.encode_frame(cmd, seq, payload))
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            frame = self._next_frame(deadline, cmd)
            if frame.cmd == Msg.LOG:
                self.logs.append(frame.payload.decode("utf-8", "replace"))
            elif frame.seq != seq:
                continue  # a late reply to an earlier, timed-out request
            elif frame.cmd == Msg.ERROR:
                raise p.parse_error(frame.payload)
            elif frame.cmd == cmd | p.REPLY:
                return frame.payload
            else:
                raise ProtocolError(f"reply 0x{frame.cmd:02x} to request 0x{cmd:02x}")

    def read_frame(self, timeout: float | None = None) -> p.Frame:
        """The next frame from the device, whatever it is (low level: request() is the normal
        way; this one serves tests and tools that send raw bytes through `serial`)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        return self._next_frame(deadline, 0)

    def _next_frame(self, deadline: float, cmd: int) -> p.Frame:
        while True:
            end = self._rx.find(0)
            if end >= 0:
                encoded = bytes(self._rx[:end])
                del self._rx[:end + 1]
                if encoded:
                    return p.decode_frame(encoded)
                continue
            if time.monotonic() > deadline:
                what = f"no reply to {_name(cmd)}" if cmd else "no frame"
                raise ProtocolError(f"{what} within {self.timeout:g} s; is the firmware running "
                                    "and the link right (port, baud rate)?")
            self.serial.timeout = min(0.2, max(deadline - time.monotonic(), 0.01))
            data = self.serial.read(max(1, self.serial.in_waiting))
            if data:
                self._rx += data

    def _input(self, x) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
        if x.size != self.info().input_elems:
            raise ValueError(f"input has {x.size} values; the model takes "
                             f"{self.info().input_elems}")
        return x

    def _upload(self, x: np.ndarray) -> None:
        per_frame = (self.info().max_payload - 4) // 4
        for start in range(0, x.size, per_frame):
            self.request(Cmd.INPUT, p.input_request(start, x[start:start + per_frame]))

    def close(self) -> None:
        self.serial.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _name(cmd: int) -> str:
    try:
        return Cmd(cmd).name
    except ValueError:
        return f"0x{cmd:02x}"


def _open(url: str, baudrate: int):
    serial = _pyserial()
    try:
        return serial.serial_for_url(url, baudrate=baudrate, timeout=0.2)
    except (serial.SerialException, OSError, ValueError) as exc:
        raise ProtocolError(f"cannot open {url}: {exc}") from None


def _pyserial():
    try:
        import serial
    except ImportError:
        raise ToolchainError("the protocol client needs pyserial: pip install pyserial") from None
    return serial


__all__ = ["Client", "DeviceError", "ProtocolError"]
