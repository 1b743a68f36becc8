"""Board projects: a self-contained folder that builds with `make` alone and runs the protocol
firmware (docs/protocol.md) on a board, in QEMU, or as a host program.

    proj = tinytvm.micro.generate_project(art, board="mps2-an500", out_dir="build/proj")
    proj.build()
    with proj.run() as device:                     # QEMU, UART0 on a TCP port
        print(device.client.train(x, label).loss)

The project is built on the exported library (lib/), plus the board-independent firmware (app/)
and the board's UART driver, startup code and linker script (board/), all copied from
runtime_c/ so that the folder does not need tinytvm to build.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from string import Template

from ..errors import TinyTVMError, ToolchainError
from ..toolchain import BOARDS, RUNTIME_C, _raise_if_overflow, elf_sizes, require
from .client import DEFAULT_TIMEOUT
from .device import Device, open_serial, start_host, start_qemu
from .library import Library, copy_file, export_library

PROJECT_TEMPLATES = RUNTIME_C / "project"
PROJECT_FILE = "project.json"


@dataclass(frozen=True)
class MicroBoard:
    """A board a project can target. kind: "host" (a program here), "qemu" (runs in QEMU) or
    "mcu" (a real chip: build, flash, then talk over its serial port). chip: the key of
    tinytvm.toolchain.BOARDS giving CPU flags and memory sizes."""

    name: str
    kind: str
    chip: str
    description: str
    pyocd_target: str | None = None

    @property
    def executable(self) -> str:
        return "build/firmware" if self.kind == "host" else "build/firmware.elf"


MICRO_BOARDS: dict[str, MicroBoard] = {
    "host": MicroBoard("host", "host", "host",
                       "the firmware as a host program; its UART is one TCP connection"),
    "mps2-an500": MicroBoard("mps2-an500", "qemu", "mps2-an500",
                             "QEMU's Cortex-M7 (Arm MPS2 AN500), UART0 on a TCP port"),
    "stm32f746-disco": MicroBoard("stm32f746-disco", "mcu", "stm32f746",
                                  "STM32F746G-DISCO: 216 MHz, USART1 on the ST-LINK virtual COM "
                                  "port, flashed with pyOCD", pyocd_target="stm32f746xg"),
}
_ALIASES = {"stm32f746": "stm32f746-disco", "qemu": "mps2-an500"}


def micro_board(name: str | MicroBoard) -> MicroBoard:
    if isinstance(name, MicroBoard):
        return name
    key = _ALIASES.get(name, name)
    if key not in MICRO_BOARDS:
        raise ValueError(f"unknown board '{name}'; choose one of {', '.join(MICRO_BOARDS)}")
    return MICRO_BOARDS[key]


class Project:
    """A generated project folder. build() runs make; run() starts the firmware and connects a
    Client; flash() programs a real board."""

    def __init__(self, path: str | Path, board: MicroBoard, library: Library):
        self.path, self.board, self.library = Path(path), board, library

    @classmethod
    def open(cls, path: str | Path) -> Project:
        """A project generated earlier (reads its project.json)."""
        path = Path(path)
        try:
            meta = json.loads((path / PROJECT_FILE).read_text())
        except FileNotFoundError:
            raise TinyTVMError(f"{path} is not a tinytvm project (no {PROJECT_FILE})") from None
        return cls(path, micro_board(meta["board"]), Library.load(path / "lib"))

    @property
    def executable(self) -> Path:
        """The firmware: build/firmware.elf, or build/firmware for the host board."""
        return self.path / self.board.executable

    def build(self, *, jobs: int = 2) -> Path:
        """Runs make; returns the firmware. BudgetError if it does not fit the chip."""
        make = require("make")
        require("gcc" if self.board.kind == "host" else "arm-none-eabi-gcc")
        proc = subprocess.run([make, "-C", str(self.path), f"-j{jobs}"], capture_output=True,
                              text=True, errors="replace", check=False)
        if proc.returncode != 0:
            output = proc.stderr + proc.stdout
            if self.board.kind != "host":
                chip = BOARDS[self.board.chip]
                ram, flash, stack = _make_sizes(self.path / "Makefile")
                _raise_if_overflow(output, self.executable.name, chip, ram, flash, stack)
            raise ToolchainError(f"make in {self.path} failed (exit {proc.returncode}):\n"
                                 + "\n".join(output.strip().splitlines()[-40:]))
        return self.executable

    def sizes(self) -> dict[str, int]:
        """Section sizes of the built firmware (Cortex-M boards): see toolchain.elf_sizes."""
        return elf_sizes(self.executable)

    def run(self, *, port: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> Device:
        """Starts the firmware (QEMU or host program) and returns the running Device with its
        Client; make runs first, so the firmware is never older than the sources. For a real
        board it opens its serial port instead (`port`, or the ST-LINK's virtual COM port):
        flash it first."""
        if self.board.kind == "mcu":
            return open_serial(port, timeout=timeout)
        self.build()
        if self.board.kind == "qemu":
            return start_qemu(self.executable, timeout=timeout)
        return start_host(self.executable, timeout=timeout)

    def flash(self, *, probe: str | None = None, pack: str | Path | None = None) -> None:
        """Programs the firmware into the board through a debug probe (pyOCD)."""
        from .flash import flash_elf

        if self.board.pyocd_target is None:
            raise ToolchainError(f"board '{self.board.name}' has nothing to flash: "
                                 f"{self.board.description}; use run()")
        self.build()  # incremental: only what changed since the last build
        flash_elf(self.executable, self.board.pyocd_target, probe=probe, pack=pack)

    def __repr__(self) -> str:
        return f"Project({str(self.path)!r}, board={self.board.name!r})"


def generate_project(source, board: str | MicroBoard, out_dir: str | Path) -> Project:
    """Writes a project for `board` into `out_dir` and returns it.

    source: an Artifact (from tinytvm.build), a Library, or the folder of an exported library.
    Regenerating into the same folder rewrites only files that changed, so make stays
    incremental.
    """
    spec = micro_board(board)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    library = _library_into(source, out / "lib")
    app = PROJECT_TEMPLATES / "app"
    for f in sorted(app.iterdir()):
        copy_file(f, out / "app" / f.name)
    copy_file(RUNTIME_C / "tt_io.h", out / "app" / "tt_io.h")
    board_dir = PROJECT_TEMPLATES / "boards" / spec.name
    for f in ("board.c", "board.mk"):
        copy_file(board_dir / f, out / "board" / f)
    if spec.kind != "host":
        chip = BOARDS[spec.chip]
        copy_file(RUNTIME_C / "cortex_m" / "startup_cm7.c", out / "board" / "startup_cm7.c")
        copy_file(RUNTIME_C / "cortex_m" / "tt_core_cm7.c", out / "board" / "tt_core_cm7.c")
        copy_file(chip.linker_script, out / "board" / "board.ld")
        copy_file(chip.linker_script.parent.parent / "cm7_sections.ld",
                  out / "board" / "cm7_sections.ld")
    _write(out / "Makefile", _makefile(spec, library))
    _write(out / PROJECT_FILE, json.dumps({"format": 1, "board": spec.name,
                                           "model": library.name,
                                           "firmware": spec.executable}, indent=1) + "\n")
    return Project(out, spec, library)


def _library_into(source, lib_dir: Path) -> Library:
    if isinstance(source, Library):
        return source.copy_to(lib_dir)
    if isinstance(source, (str, Path)):
        return Library.load(source).copy_to(lib_dir)
    return export_library(source, lib_dir)


def _makefile(spec: MicroBoard, library: Library) -> str:
    if spec.kind == "host":
        return Template((PROJECT_TEMPLATES / "Makefile.host.tmpl").read_text()).substitute(
            name=library.name)
    chip = BOARDS[spec.chip]
    board_help = {"qemu": "make run        QEMU, UART0 on 127.0.0.1:$(PORT) (default 5555)",
                  "mcu": "make flash      program the board through its ST-LINK (pyOCD)"}[spec.kind]
    return Template((PROJECT_TEMPLATES / "Makefile.cortex_m.tmpl").read_text()).substitute(
        name=library.name, board=spec.name, board_help=board_help,
        cpu_flags=" ".join(chip.cpu_flags), ram_bytes=chip.sram_bytes,
        flash_bytes=chip.flash_bytes, stack_bytes=library.stack_bytes)


def _make_sizes(makefile: Path) -> tuple[int, int, int]:
    text = makefile.read_text()
    values = [int(re.search(rf"^{key} \?= (\d+)", text, re.MULTILINE).group(1))
              for key in ("RAM_BYTES", "FLASH_BYTES", "STACK_BYTES")]
    return values[0], values[1], values[2]


def _write(path: Path, text: str) -> None:
    data = text.encode()
    if not (path.is_file() and path.read_bytes() == data):
        path.write_bytes(data)


__all__ = ["MICRO_BOARDS", "MicroBoard", "Project", "generate_project", "micro_board"]
