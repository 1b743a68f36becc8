"""Every build checks its own output: the emitted C compiles cleanly for where it will run."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from .errors import ToolchainError
from .toolchain import BOARDS, RUNTIME_C, require

STRICT = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-fsyntax-only"]


def check_c_compiles(sources: dict[str, str], c_file: str, target_board: str) -> None:
    """Compile `c_file` (syntax and warnings only) with host gcc and, for a device target, with
    arm-none-eabi-gcc for that core; raise ToolchainError with the compiler's message."""
    compilers = [("gcc", [])]
    board = BOARDS[target_board]
    if board.kind != "host":
        compilers.append(("arm-none-eabi-gcc", list(board.cpu_flags)))
    with tempfile.TemporaryDirectory(prefix="tinytvm-verify-") as tmp:
        for name, text in sources.items():
            (Path(tmp) / name).write_text(text)
        for compiler, flags in compilers:
            cmd = [require(compiler), *flags, *STRICT, f"-I{tmp}", f"-I{RUNTIME_C}",
                   str(Path(tmp) / c_file)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                head = "\n".join(proc.stderr.splitlines()[:30])
                raise ToolchainError(f"the generated {c_file} does not compile cleanly with "
                                     f"{compiler} -Wall -Wextra -Werror:\n{head}")
