"""The paper's table: MobileNetV2-w0.35, ProxylessNAS-w0.3 and MCUNet-5fps trained at 128×128,
10 classes, batch 1, on the STM32F746 budget — peak training memory per scheme, and the
instructions of one training step on the emulated Cortex-M7.

Per model (the ImageNet-pretrained int8 weights from shared/ when present, else random ones of
the same architecture; a new 10-class head, float logits, QAS, stochastic rounding so trained
int8 weights need no fp32 copy):
- full update: the build fails the 256 KB budget; the figure is what it would need;
- sparse update (the paper's scheme, tinytvm.models.zoo.paper_scheme), three ways: no
  inference-style tricks and no reordering (autodiff order, gradients as tensors); with the
  memory passes (1-bit saved masks, fused gradient application, in-place depthwise, fused
  expansion in the frozen prefix) but the autodiff order; and the default build (+ reordering);
- each SRAM figure = training-step arena + trainable state (int8 weights, int32 biases, the
  rounding counter) + the 16 KB stack reserve, next to the paper's number and the ratio;
- flash: the ELF linked for the STM32F746 (code + frozen weights + the trainable state's
  initial values); the link itself checks 320 KB SRAM / 1 MB flash;
- one training step in QEMU mps2-an500 (Cortex-M7), executed instructions: naive TIR kernels
  (`default_passes(config, fast_kernels=False)`) and with the Cortex-M7 micro-kernels (the
  default); difference of a 2-step and a 1-step
  run of the same program on real data (digits), so start-up and evaluation cancel. QEMU
  counts instructions, not cycles (no pipeline, cache or flash wait states): the paper's
  TTE latency at 216 MHz is shown for scale, not as a like-for-like comparison.

Rerun: `python benchmarks/paper_table.py [--models mbv2-w0.35,...] [--no-qemu]` (~10 min).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

import tinytvm
from tinytvm.datasets import digits_rgb
from tinytvm.errors import BudgetError
from tinytvm.harness import Dataset, dataset_header, run_training
from tinytvm.models import paper
from tinytvm.models.zoo import paper_model, paper_scheme
from tinytvm.pipeline import MEMORY_PASSES, canonicalize, default_passes, pass_names
from tinytvm.quant.paper_import import paper_to_relax, with_new_head
from tinytvm.toolchain import RUNTIME_C, compile_cortex_m, elf_sizes

# Lin et al. 2022, Table 3 / Fig. 9 (peak training memory, KB) and TTE's latency per step
PAPER = {
    "mbv2-w0.35": {"full": 2939, "sparse": 335, "reorder": 141, "latency_ms": 373},
    "proxyless-w0.3": {"full": 2745, "sparse": 326, "reorder": 135, "latency_ms": 443},
    "mcunet-5fps": {"full": 3650, "sparse": 560, "reorder": 173, "latency_ms": 546},
}
BUDGET = 256 * 1024


def int8_model(name: str, seed: int = 0):
    model = paper_model(name, pretrained=None)
    rng = np.random.default_rng(seed)
    head = rng.normal(0, 1 / np.sqrt(model.classifier.in_channels),
                      (10, model.classifier.in_channels))
    return model, paper_to_relax(with_new_head(model, head, np.zeros(10)), logits="float32")


def measure(mod, config, passes=None, reorder=True):
    """A stm32f746 build without the budget check: its report says what it needs."""
    return tinytvm.build(mod, target="stm32f746", train=config, passes=passes, reorder=reorder,
                         verify=False, sram_budget=10**9)


def full_update(mod, name) -> BudgetError | None:
    """The error the full-update build fails with under the 256 KB budget (None if it fits)."""
    config = tinytvm.TrainConfig(lr=0.01, update=paper_scheme(name, "full"),
                                 int8_update="stochastic")
    try:
        tinytvm.build(mod, target="stm32f746", train=config, sram_budget=BUDGET, verify=False)
    except BudgetError as e:
        return e
    return None


def link_for_stm32(art, work: Path) -> dict:
    """The training program linked for the STM32F746 (one sample baked in): sizes of the ELF."""
    out = art.save(work)
    x = np.zeros((1, int(np.prod(art.input_shape))), np.int8)
    one = Dataset.int8(x, np.zeros(1, np.int32))
    (out / "dataset.h").write_text(dataset_header(one, Dataset.int8(x[:0], np.zeros(0)), 1))
    elf = compile_cortex_m([out / f"{art.name}.c", RUNTIME_C / "harness" / "train_main.c"],
                           [out], out / "train.elf", "stm32f746",
                           extra_cflags=[f'-DTT_MODEL_HEADER="{art.name}.h"'])
    return elf_sizes(elf)


def step_instructions(art, model, work: Path) -> int:
    """Instructions of one step: a 2-step run minus a 1-step run, no evaluation."""
    (x, y), _ = digits_rgb(2, 0, seed=1)
    q = np.stack([paper.quantize_input(model, im) for im in x])
    counts = []
    for steps in (1, 2):
        run = run_training(art, Dataset.int8(q[:steps], y[:steps]),
                           Dataset.int8(q[:0], y[:0]), steps, where="qemu",
                           workdir=work / f"s{steps}", timeout=3600)
        counts.append(run.instructions)
    return counts[1] - counts[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(paper.PAPER_MODELS))
    parser.add_argument("--no-qemu", action="store_true")
    args = parser.parse_args()
    console = Console(width=200)
    table = Table(title="128×128, 10 classes, batch 1, int8 + QAS, stochastic rounding; SRAM = "
                        "training arena + trainable state + 16 KB stack (KB); paper's in ( )")
    cols = ["model", "full update", "sparse: plain", "sparse: + memory passes",
            "sparse: + reorder (default)", "of which arena KB", "trainable KB", "fits 256 KB", "flash KB (ELF)"]
    if not args.no_qemu:
        cols += ["step instr. naive", "step instr. fast kernels", "TTE latency"]
    for col in cols:
        table.add_column(col, justify="right")
    for name in args.models.split(","):
        model, mod = int8_model(name)
        config = tinytvm.TrainConfig(lr=0.01, update=paper_scheme(name), int8_update="stochastic")
        console.print(f"[bold]{name}[/bold]: {paper_scheme(name)}")
        full = full_update(mod, name)
        console.print(f"  full update: {str(full).splitlines()[0] if full else 'fits (unexpected)'}")
        passes = default_passes(config)
        plain = [p for p in passes if p.info.name not in MEMORY_PASSES]
        plain_bytes = measure(mod, config, plain, reorder=False).memory.sram_bytes
        passes_bytes = measure(mod, config, passes, reorder=False).memory.sram_bytes
        art = measure(mod, config)  # the default build
        report = art.memory
        final_bytes = report.sram_bytes
        console.print(f"  passes {pass_names(passes)}\n{report}")
        p = PAPER[name]
        with tempfile.TemporaryDirectory() as tmp:
            sizes = link_for_stm32(art, Path(tmp))
            row = [name, f"{full.report.sram_bytes / 1024:.0f} ({p['full']}), over budget"
                   if full else "fits (unexpected)",
                   f"{plain_bytes / 1024:.0f} ({p['sparse']})",
                   f"{passes_bytes / 1024:.0f}",
                   f"{final_bytes / 1024:.0f} ({p['reorder']})",
                   f"{report.arena_bytes / 1024:.0f}", f"{report.trainable_bytes / 1024:.0f}", "yes" if final_bytes <= BUDGET else "NO",
                   f"{sizes['flash_bytes'] / 1024:.0f}"]
            if not args.no_qemu:
                qemu = tinytvm.build(mod, target="mps2-an500", train=config, verify=False,
                                     passes=default_passes(config, fast_kernels=False))
                fast = tinytvm.build(mod, target="mps2-an500", train=config, verify=False)
                naive_n = step_instructions(qemu, model, Path(tmp) / "naive")
                fast_n = step_instructions(fast, model, Path(tmp) / "fast")
                row += [f"{naive_n / 1e6:.1f} M", f"{fast_n / 1e6:.1f} M",
                        f"{p['latency_ms']} ms ≈ {p['latency_ms'] * 216e-3:.0f} M cycles"]
        console.print(row)
        table.add_row(*row)
    console.print(table)
    console.print("canonical passes: " + ", ".join(pass_names(canonicalize())))


if __name__ == "__main__":
    main()
