"""Demo: fine-tune a small CNN on real data (scikit-learn's bundled digits) on an emulated Cortex-M7.

1. A MobileNetV2-like CNN (ONNX) is pre-trained on the host on digits 0-5 only, with the very
   C code tinytvm generates (host build through ctypes).
2. The pre-trained model is compiled for the Cortex-M7 (QEMU mps2-an500, STM32F746 memory
   sizes) and fine-tuned on the device on all ten digits, one sample per step.
3. Per-step losses, accuracy on held-out digits before and after, and the memory report are
   printed; the loss curve is saved as a plot.

Run:  python examples/train_digits.py [--steps 600] [--out build/digits]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import track

import tinytvm
from tinytvm.datasets import digits_transfer
from tinytvm.harness import Dataset, run_training, train_on_host
from tinytvm.models import mbv2_tiny

console = Console(width=110)


def plot_losses(losses, path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    window = 25
    smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(losses, lw=0.6, alpha=0.4, label="per step")
    ax.plot(np.arange(window - 1, len(losses)), smooth, lw=2, label=f"mean of {window}")
    ax.set_xlabel("training step on the Cortex-M7 (QEMU)")
    ax.set_ylabel("cross-entropy loss")
    ax.set_title("fine-tuning on digits, on device")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--pretrain-epochs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("build/digits"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    (px, py), (tx, ty), (ex, ey) = digits_transfer()
    pretrained = train_on_host(
        mbv2_tiny(in_ch=1, size=8, width=8), px, py, epochs=args.pretrain_epochs, lr=0.05,
        progress=lambda it, what: track(it, description=f"{what} on host (digits 0-5)",
                                        console=console))

    console.rule("compile for the Cortex-M7 (mps2-an500, STM32F746 memory sizes)")
    art = tinytvm.build(pretrained, target="mps2-an500",
                        train=tinytvm.TrainConfig(lr=0.03, momentum=0.0))
    console.print(str(art.memory))
    art.save(args.out / "c")
    art.memory.plot(args.out / "memory.png")

    console.rule(f"fine-tune on device: {args.steps} steps on all ten digits")
    train = Dataset.quantize(tx, ty, 0.0, 1.0)
    test = Dataset.quantize(ex, ey, 0.0, 1.0)
    with console.status("running in QEMU (Cortex-M7)..."):
        run = run_training(art, train, test, args.steps, where="qemu", workdir=args.out / "qemu")
    for start in range(0, len(run.losses), 50):
        chunk = run.losses[start:start + 50]
        console.print(f"steps {start:>4}-{start + len(chunk) - 1:<4} loss "
                      + " ".join(f"{v:.2f}" for v in chunk[:10])
                      + (" ..." if len(chunk) > 10 else "")
                      + f"  (mean {chunk.mean():.3f})")
    plot_losses(run.losses, args.out / "loss.png")
    console.rule("result")
    console.print(f"accuracy on {run.eval_n} held-out digits: before {run.accuracy_before:.1%} "
                  f"-> after {run.accuracy_after:.1%}")
    console.print(f"loss: first 50 steps mean {run.losses[:50].mean():.3f}, "
                  f"last 50 steps mean {run.losses[-50:].mean():.3f}")
    per_step = run.instructions / max(args.steps, 1) if run.instructions else None
    if per_step:
        console.print(f"QEMU executed {run.instructions:,} instructions in all "
                      f"(~{per_step:,.0f} per training step incl. evaluation)")
    console.print(f"stack peak {run.stack_peak} B; ELF sizes {run.sizes}")
    console.print(f"plots: {args.out / 'loss.png'}, {args.out / 'memory.png'}; "
                  f"generated C: {args.out / 'c'}")


if __name__ == "__main__":
    main()
