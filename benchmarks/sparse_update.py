"""Sparse update on the paper's pretrained MobileNetV2-w0.35 (fp32 stand-in until int8 lands).

Task as in the paper: new 10-class head, scikit-learn's digits upsampled to 128×128×3, batch 1,
SGD; every run executes tinytvm's generated C on the host. For bias-only, last-k layers, full
update and the searched scheme at several budgets it prints accuracy and memory (training-step
arena, trainable bytes, their sum). The search budget is given on top of the inference arena,
which a float32 model at 128×128 already needs (~1.5 MB; int8 is 4× smaller).

Rerun: `python benchmarks/sparse_update.py [--steps 400] [--eval 200]` (~30 min on 2 cores).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from rich.console import Console
from rich.table import Table
from tinytvm.build import _as_module
from tinytvm.datasets import digits_rgb
from tinytvm.models.paper import paper_models_available
from tinytvm.models.paper_fp32 import paper_onnx_fp32
from tinytvm.pipeline import canonicalize, run_passes
from tinytvm.sparse import UpdateScheme, memory_cost, trainable_layers
from tinytvm.sparse_search import analyze_contributions, fine_tune_accuracy, search_scheme


def digits_128(n_train: int, n_eval: int, seed: int = 0):
    """Digits at 128×128×3 as the fp32 model's input x = 2p − 1 (its dequantized int8 input)."""
    (x, y), (ex, ey) = digits_rgb(n_train, n_eval, seed)
    return (2 * x - 1, y), (2 * ex - 1, ey)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--eval", type=int, default=200)
    parser.add_argument("--lrs", default="0.01,0.003,0.001",
                        help="learning rates tried per scheme; the best is reported (as the "
                             "paper tunes per setting)")
    parser.add_argument("--contrib-lr", type=float, default=0.003)
    parser.add_argument("--budgets-kb", default="100,300,600",
                        help="search budgets on top of the classifier-only cost, KB")
    args = parser.parse_args()
    console = Console(width=160)
    if not paper_models_available():
        raise SystemExit("the paper models are not in ../shared/data/paper-models")
    model = paper_onnx_fp32("mbv2-w0.35", num_classes=10)
    layers = trainable_layers(run_passes(_as_module(model), canonicalize()))
    n = len(layers)
    train, evaluation = digits_128(500, args.eval)

    lrs = [float(v) for v in args.lrs.split(",")]
    contrib = analyze_contributions(
        model, train, (evaluation[0][:100], evaluation[1][:100]), steps=150, lr=args.contrib_lr,
        ratios=(1.0, 0.25), bias_points=[0, 10, 20, 30, 40, n],
        layers=[l.index for l in layers if l.kind == "conv" and l.index >= n // 2])
    base_cost = memory_cost(model, UpdateScheme()).total
    schemes = [("classifier only", UpdateScheme()),
               ("bias-only (all)", UpdateScheme(bias_last=n)),
               ("last 2 layers", UpdateScheme.last_layers(2, n)),
               ("last 6 layers", UpdateScheme.last_layers(6, n)),
               ("paper ~100KB scheme", UpdateScheme(bias_last=25, weights=tuple(zip(
                   [27, 30, 33, 36, 39, 42, 45, 48], [1, 1, 1, 1, 1, 0.125, 0.5, 1])))),
               ("full update", UpdateScheme.full(n))]
    for kb in [int(v) for v in args.budgets_kb.split(",")]:
        found = search_scheme(model, contrib, base_cost + kb * 1024)
        schemes.append((f"searched, classifier-only + {kb} KB", found.scheme))

    table = Table(title=f"MobileNetV2-w0.35 (pretrained, fp32) on digits 128×128, {args.steps} "
                        f"steps, batch 1, best lr of {lrs}")
    for col in ("scheme", "update", "accuracy", "lr", "arena B", "trainable B", "total B", "s"):
        table.add_column(col, justify="right")
    for label, scheme in schemes:
        start = time.perf_counter()
        cost = memory_cost(model, scheme)
        acc, lr = max((fine_tune_accuracy(model, scheme, train, evaluation, steps=args.steps,
                                          lr=lr), lr) for lr in lrs)
        table.add_row(label, str(scheme).removeprefix("UpdateScheme"), f"{acc:.1%}", f"{lr:g}",
                      f"{cost.arena_bytes:,}", f"{cost.trainable_bytes:,}", f"{cost.total:,}",
                      f"{time.perf_counter() - start:.0f}")
        console.print(f"{label}: {acc:.1%}")
    console.print(table)
    console.print(f"contribution analysis: base accuracy {contrib.base_accuracy:.1%}, "
                  f"bias Δ {contrib.bias}")


if __name__ == "__main__":
    main()
