"""Start the protocol firmware and connect a Client to it: QEMU (mps2-an500), a host process,
or a real board's serial port. Every process started here is stopped by Device.close()."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from ..errors import ToolchainError
from ..toolchain import require
from .client import DEFAULT_TIMEOUT, Client
from .protocol import ProtocolError

_START_TIMEOUT = 20.0
_HANDSHAKE_TIMEOUT = 2.0
_PORT_ATTEMPTS = 5
ST_VENDOR_ID = 0x0483  # STMicroelectronics: the ST-LINK's virtual COM port


class Device:
    """A running firmware and the Client connected to it. close() (or leaving `with`) closes
    the link and stops the process, if this object started one."""

    def __init__(self, client: Client, url: str, process: subprocess.Popen | None = None,
                 log_file=None):
        self.client, self.url, self.process = client, url, process
        self._log = log_file

    def output(self) -> str:
        """What the process (QEMU, or the host firmware) wrote to stdout/stderr so far."""
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            _stop(self.process)
            if self._log is not None:
                self._log.close()

    def __enter__(self) -> Device:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def start_qemu(elf: Path, *, timeout: float = DEFAULT_TIMEOUT) -> Device:
    """QEMU mps2-an500 with UART0 on a TCP port of 127.0.0.1 (a free one, chosen here)."""
    qemu = require("qemu-system-arm")
    for _ in range(_PORT_ATTEMPTS):
        url = f"socket://127.0.0.1:{_free_port()}"
        cmd = [qemu, "-M", "mps2-an500", "-nographic", "-monitor", "none",
               "-icount", "shift=0",  # the timer then counts guest instructions
               # nodelay: the UART sends byte by byte; Nagle would hold each reply back
               "-serial", f"tcp:{url.removeprefix('socket://')},server=on,wait=off,nodelay=on",
               "-kernel", str(elf)]
        try:
            return _launch(cmd, lambda process, url=url: url, timeout)
        except _PortTaken:  # another program took the port between our check and QEMU's bind
            continue
    raise ToolchainError(f"QEMU could not listen on a free port of 127.0.0.1 in "
                         f"{_PORT_ATTEMPTS} attempts")


def start_host(exe: Path, *, timeout: float = DEFAULT_TIMEOUT) -> Device:
    """The host build of the firmware; it picks its own port and prints it."""

    def url_from_output(process) -> str:
        line = _first_line(process, _START_TIMEOUT)
        if not line.startswith("listening on "):
            raise ToolchainError(f"the host firmware did not start: {line or 'no output'}")
        return "socket://" + line.split()[-1]

    return _launch([str(exe)], url_from_output, timeout, stdout=subprocess.PIPE,
                   env={**os.environ, "TT_PORT": "0"})


def _launch(cmd, url_of, timeout: float, **popen) -> Device:
    """Starts `cmd` and connects to it; on any failure (Ctrl-C included) the process is
    stopped again before the error goes on."""
    log = tempfile.TemporaryFile(prefix="tinytvm-")  # noqa: SIM115 (Device closes it)
    try:
        process = _spawn(cmd, log, **popen)
    except BaseException:
        log.close()
        raise
    try:
        url = url_of(process)
        client = _connect(url, process, log, timeout)
    except BaseException:
        _stop(process)
        log.close()
        raise
    return Device(client, url, process, log)


def open_serial(port: str | None, *, baudrate: int = 115200,
                timeout: float = DEFAULT_TIMEOUT) -> Device:
    """A board on a serial port; port=None looks for an ST-LINK virtual COM port."""
    url = port or find_stlink_port()
    client = Client(url, baudrate=baudrate, timeout=timeout)
    return Device(client, url)


def find_stlink_port() -> str:
    from serial.tools import list_ports

    ports = [p.device for p in list_ports.comports() if p.vid == ST_VENDOR_ID]
    if not ports:
        raise ToolchainError(
            "no ST-LINK virtual COM port found: connect the STM32F746G-DISCO's ST-LINK USB "
            "connector (CN14) to this computer, or pass the serial port (e.g. /dev/ttyACM0)")
    return ports[0]


# --- processes ----------------------------------------------------------------------------------


class _PortTaken(Exception):
    pass


def _spawn(cmd, log, stdout=None, env=None) -> subprocess.Popen:
    try:
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=stdout or log,
                                stderr=log, env=env)
    except OSError as exc:
        raise ToolchainError(f"could not start {cmd[0]}: {exc}") from None


def _connect(url: str, process: subprocess.Popen, log, timeout: float) -> Client:
    """Connects once the process listens; fails if it exits first."""
    deadline = time.monotonic() + _START_TIMEOUT
    while True:
        if process.poll() is not None:
            text = _read_log(log)
            if "Address already in use" in text or "Failed to bind" in text:
                raise _PortTaken()
            name = Path(process.args[0]).name
            raise ToolchainError(f"{name} exited with status {process.returncode} before "
                                 f"serving the protocol:\n{text[-1500:]}")
        client = None
        try:
            client = Client(url, timeout=_HANDSHAKE_TIMEOUT)
            client.info()
            client.timeout = timeout
            return client
        except ProtocolError:
            if client is not None:
                client.close()
            if time.monotonic() > deadline:
                raise ToolchainError(f"no protocol firmware answered on {url} within "
                                     f"{_START_TIMEOUT:.0f} s:\n{_read_log(log)[-1500:]}") from None
            time.sleep(0.05)


def _first_line(process: subprocess.Popen, timeout: float) -> str:
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    if not ready:
        return ""
    return process.stdout.readline().decode(errors="replace").strip()


def _read_log(log) -> str:
    log.seek(0)
    return log.read().decode(errors="replace")


def _stop(process: subprocess.Popen | None) -> None:
    if process is None:
        return
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
    if process.stdout is not None:
        process.stdout.close()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
