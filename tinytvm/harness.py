"""Run a built model's training loop as a whole program: on the host, or on a Cortex-M7 in QEMU.

Both use `runtime_c/harness/train_main.c` with the dataset baked in as uint8 codes, so the two
runs execute the same C on the same numbers and print comparable text.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from string import Template

import numpy as np

from .errors import ToolchainError
from .toolchain import RUNTIME_C, compile_cortex_m, compile_host_executable, elf_sizes, run_qemu


@dataclass
class Dataset:
    """Samples quantized to uint8 codes with one affine map (x ≈ scale·code + offset), or, for
    an int8 model, its int8 inputs themselves (`Dataset.int8`: scale and offset None)."""

    codes: np.ndarray  # (n, elems) uint8, or int8 model inputs
    labels: np.ndarray  # (n,) int32
    scale: float | None
    offset: float | None

    @classmethod
    def int8(cls, x, y) -> "Dataset":
        """Already-quantized int8 model inputs (e.g. paper.quantize_input's)."""
        x = np.asarray(x)
        if x.dtype != np.int8:
            raise ValueError(f"Dataset.int8 takes int8 model inputs, got {x.dtype}")
        return cls(x.reshape(len(x), int(np.prod(x.shape[1:]))), np.asarray(y, np.int32), None,
                   None)

    @classmethod
    def quantize(cls, x, y, lo=None, hi=None) -> "Dataset":
        x = np.asarray(x, np.float32)
        x = x.reshape(len(x), int(np.prod(x.shape[1:])))
        lo = float(x.min()) if lo is None else lo
        hi = float(x.max()) if hi is None else hi
        scale = np.float32((hi - lo) / 255.0 or 1.0)
        codes = np.clip(np.round((x - lo) / scale), 0, 255).astype(np.uint8)
        return cls(codes, np.asarray(y, np.int32), float(scale), float(np.float32(lo)))

    def floats(self) -> np.ndarray:
        """The exact float32 inputs the C harness computes from the codes."""
        if self.scale is None:
            raise ValueError("an int8 dataset holds model inputs, not float codes")
        return (np.float32(self.scale) * self.codes.astype(np.float32)
                + np.float32(self.offset)).astype(np.float32)


def train_on_host(model, x, y, *, epochs: int, lr: float, seed: int = 1, progress=None):
    """`model` trained for `epochs` passes over (x, y) (shuffled per epoch, batch 1) by the C
    tinytvm generates, on the host; returns the trained inference module (Relax).
    `progress(iterable, description)` may wrap the epoch loop (e.g. rich.progress.track)."""
    from .build import TrainConfig, build

    session = build(model, target="host", train=TrainConfig(lr=lr), verify=False).host_session()
    rng = np.random.default_rng(seed)
    epochs_iter = range(epochs) if progress is None else progress(range(epochs), "pre-training")
    for _ in epochs_iter:
        for i in rng.permutation(len(y)):
            session.train_step(x[i], int(y[i]))
    return session.trained_module()


@dataclass
class TrainingRun:
    where: str
    losses: np.ndarray
    correct_before: int
    correct_after: int
    eval_n: int
    stack_peak: int
    instructions: int | None
    sizes: dict | None
    stdout: str
    profile: dict[str, int] | None = None  # instructions per function (run_training(profile=))

    @property
    def accuracy_before(self) -> float:
        return self.correct_before / max(self.eval_n, 1)

    @property
    def accuracy_after(self) -> float:
        return self.correct_after / max(self.eval_n, 1)


def _rows(codes: np.ndarray) -> str:
    if len(codes) == 0:
        return "  {0}"
    return ",\n".join("  {" + ",".join(str(int(v)) for v in row) + "}" for row in codes)


def dataset_header(train: Dataset, evaluation: Dataset, steps: int) -> str:
    if (train.scale, train.offset) != (evaluation.scale, evaluation.offset):
        raise ValueError("train and eval sets must share one quantization (use Dataset.quantize "
                         "with the same lo/hi)")
    if train.scale is None:
        decode, ctype = "#define TT_SAMPLES_ARE_INPUTS 1", "int8_t"
    else:
        decode = (f"static const float tt_data_scale = {float(np.float32(train.scale)).hex()}f;\n"
                  f"static const float tt_data_offset = {float(np.float32(train.offset)).hex()}f;")
        ctype = "uint8_t"
    return Template((RUNTIME_C / "templates" / "dataset.h.tmpl").read_text()).substitute(
        train_n=len(train.labels), eval_n=len(evaluation.labels), steps=steps,
        decode=decode, code_ctype=ctype,
        train_rows=max(len(train.labels), 1), eval_rows=max(len(evaluation.labels), 1),
        train_x=_rows(train.codes), train_y=",".join(map(str, train.labels)) or "0",
        eval_x=_rows(evaluation.codes), eval_y=",".join(map(str, evaluation.labels)) or "0")


def parse_output(where: str, text: str, instructions=None, sizes=None) -> TrainingRun:
    losses = [np.uint32(int(h, 16)).view(np.float32)
              for h in re.findall(r"^step \d+ loss (0x[0-9a-f]{8})", text, re.M)]
    evals = dict(re.findall(r"^eval (\w+) correct (\d+) of \d+", text, re.M))
    n_eval = re.search(r"^eval \w+ correct \d+ of (\d+)", text, re.M)
    stack = re.search(r"^stack_peak (\d+)", text, re.M)
    if n_eval is None or stack is None:
        raise ToolchainError(f"the {where} run printed no result; its output was:\n{text[-2000:]}")
    return TrainingRun(where, np.array(losses, np.float32), int(evals.get("before", 0)),
                       int(evals.get("after", 0)), int(n_eval.group(1)), int(stack.group(1)),
                       instructions, sizes, text)


def run_training(artifact, train: Dataset, evaluation: Dataset, steps: int, *,
                 where: str = "qemu", workdir: str | Path | None = None,
                 timeout: float = 600, profile: bool = False,
                 cflags: Sequence[str] = ()) -> TrainingRun:
    """Build the harness with `artifact`'s C and run it `where` ('host' or 'qemu').
    profile=True (QEMU): also the instructions executed in each function of the ELF.
    cflags: more compiler flags (e.g. -DTT_Q_INLINE_KERNELS=0)."""
    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="tinytvm-run-")
        workdir = tmp.name
    work = artifact.save(workdir)
    (work / "dataset.h").write_text(dataset_header(train, evaluation, steps))
    sources = [work / f"{artifact.name}.c", RUNTIME_C / "harness" / "train_main.c"]
    flags = [f'-DTT_MODEL_HEADER="{artifact.name}.h"', *cflags]
    try:
        if where == "host":
            exe = compile_host_executable(sources, [work], work / "train_host", extra_cflags=flags)
            proc = subprocess.run([str(exe)], capture_output=True, text=True, timeout=timeout)
            if proc.returncode != 0:
                raise ToolchainError(f"host run exited {proc.returncode}:\n{proc.stderr[-2000:]}")
            return parse_output("host", proc.stdout)
        board = "mps2-an500" if where == "qemu" else where
        elf = compile_cortex_m(sources, [work], work / "train.elf", board,
                               stack_bytes=artifact.memory.stack_bytes or 16384, extra_cflags=flags)
        result = run_qemu(elf, timeout=timeout, icount=True, profile=profile)
        if result.returncode != 0:
            raise ToolchainError(f"QEMU run exited {result.returncode}:\n{result.stdout[-1500:]}"
                                 f"\n{result.stderr[-1500:]}")
        run = parse_output("qemu", result.stdout, result.instructions, elf_sizes(elf))
        run.profile = result.profile
        return run
    finally:
        if tmp is not None:
            tmp.cleanup()


@dataclass
class InferenceRun:
    logits: np.ndarray
    stack_peak: int
    instructions: int | None
    sizes: dict
    stdout: str


def run_inference_qemu(artifact, x: np.ndarray, workdir: str | Path, *,
                       timeout: float = 300) -> InferenceRun:
    """One `tt_infer` on the Cortex-M7 in QEMU (runtime_c/harness/infer_main.c.tmpl, the input
    baked in); integer logits as printed, stack peak, instruction count and ELF sizes."""
    from .aot import C_TYPES

    work = artifact.save(workdir)
    values = np.asarray(x).reshape(-1)
    rows = ",\n".join("  " + ", ".join(str(int(v)) for v in values[i:i + 16])
                      for i in range(0, values.size, 16))
    main = Template((RUNTIME_C / "harness" / "infer_main.c.tmpl").read_text()).substitute(
        input_ctype=C_TYPES[str(values.dtype)], output_ctype="int8_t", input_values=rows)
    (work / "infer_main.c").write_text(main)
    elf = compile_cortex_m([work / f"{artifact.name}.c", work / "infer_main.c"], [work],
                           work / "infer.elf", "mps2-an500",
                           stack_bytes=artifact.memory.stack_bytes or 16384,
                           extra_cflags=[f'-DTT_MODEL_HEADER="{artifact.name}.h"'])
    result = run_qemu(elf, icount=True, timeout=timeout)
    found = re.search(r"^logits((?: -?\d+)+)$", result.stdout, re.MULTILINE)
    stack = re.search(r"^stack_peak (\d+)", result.stdout, re.MULTILINE)
    if result.returncode != 0 or not found or not stack:
        raise ToolchainError(f"QEMU inference run failed (exit {result.returncode}):\n"
                             f"{result.stdout[-1000:]}{result.stderr[-1000:]}")
    return InferenceRun(np.array(found.group(1).split(), np.int64), int(stack.group(1)),
                        result.instructions, elf_sizes(elf), result.stdout)
