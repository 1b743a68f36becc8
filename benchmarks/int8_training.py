"""fp32 SGD vs int8 SGD vs int8 + QAS: fine-tuning the paper's int8 MobileNetV2-w0.35.

Two tasks. `--task mbv2` (default) is the paper's experiment (Lin et al. 2022, Table 1 /
Fig. 4) on one transfer task: the
ImageNet-pretrained MobileNetV2-w0.35 from shared/ with a new 10-class head, scikit-learn's
digits upsampled to 128×128×3, batch 1, plain SGD, the last blocks updated (biases of the last
`--bias-last` layers, weights of the last `--weight-last` layers incl. the head). Per seed the
data split and the head's initial weights change; the int8 head is the per-channel
quantization of the same float head the fp32 run starts from.

Methods, each run by the C code tinytvm generates (host session; `--qemu` also runs int8+QAS
for a few steps on the emulated Cortex-M7 and checks its losses equal the host's bit for bit):
- fp32 SGD: the dequantized model (tinytvm.models.paper_fp32), float32 C;
- int8 SGD: the real int8 graph, gradients w.r.t. the integer tensors used as they are;
- int8 + QAS: the same with Quantization-Aware Scaling; and how an int8 weight stores its step:
  an fp32 master copy (default), rounding to nearest, stochastic rounding; and the last two with
  the int16 input gradients of wide pointwise convs (`pointwise_input_grad="int16"`).
The learning rate is the best of a grid per method (mean accuracy over seeds): int8 SGD's
gradients are off by s_W² ~ 1e-4 (weights) and (s_x s_W)² (biases), so its grid is wider.

`--task small` (CI-sized, a minute): the demo's task. A small MobileNetV2-like CNN is
pre-trained in fp32 on digits 0-5 (8x8), post-training quantized (tinytvm.quant.quantize:
per-channel int8, TFLite fixed-point requantization, calibrated on the pre-training data),
then every weight is fine-tuned on all ten digits; 400 held-out digits.

Rerun: `python benchmarks/int8_training.py [--task mbv2|small] [--steps N] [--seeds 3]
[--qemu]` (mbv2: ~25 min on 2 cores; small: ~2 min); `--int16-fidelity` compares the updates of
float32 and int16 input gradients over 3 steps (~1 min).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import onnx
from rich.console import Console
from rich.table import Table

import tinytvm
from tinytvm.datasets import digits_rgb, digits_transfer
from tinytvm.harness import Dataset, run_training, train_on_host
from tinytvm.models import mbv2_tiny, paper
from tinytvm.models.paper import load_paper_model, paper_models_available
from tinytvm.models.paper_fp32 import paper_onnx_fp32
from tinytvm.quant import quantize, quantize_input
from tinytvm.quant.paper_import import paper_to_relax, with_new_head
from tinytvm.sparse import UpdateScheme, memory_cost, trainable_layers
from tinytvm.sparse_search import fine_tune_accuracy

METHODS = {  # label: (precision, TrainConfig fields)
    "fp32 SGD": ("fp32", {}),
    "int8 SGD": ("int8", {"qas": False}),
    "int8 + QAS (fp32 master)": ("int8", {}),
    "int8 + QAS (round)": ("int8", {"int8_update": "round"}),
    "int8 + QAS (stochastic)": ("int8", {"int8_update": "stochastic"}),
    # wide 1x1 convs pass an int16 input gradient back (passes/int16_gradients.py)
    "int8 + QAS (round) + int16 input grads": ("int8", {"int8_update": "round",
                                                       "pointwise_input_grad": "int16"}),
    "int8 + QAS (stochastic) + int16 input grads": ("int8", {"int8_update": "stochastic",
                                                            "pointwise_input_grad": "int16"}),
}


def models_for_seed(seed: int):
    """(fp32 ONNX, int8 Relax) with the same pretrained body and the same new head init."""
    fp32 = paper_onnx_fp32("mbv2-w0.35", num_classes=10, seed=seed)
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in fp32.graph.initializer}
    int8 = with_new_head(load_paper_model("mbv2-w0.35"), inits["head.weight"],
                         inits["head.bias"])
    return fp32, paper_to_relax(int8, logits="float32")


def task(seed: int, n_train: int, n_eval: int):
    """Digits for both precisions: fp32 inputs 2p − 1, int8 inputs as the original quantizes."""
    (x, y), (ex, ey) = digits_rgb(n_train, n_eval, seed)
    model = load_paper_model("mbv2-w0.35")
    q = np.stack([paper.quantize_input(model, im) for im in x])
    eq = np.stack([paper.quantize_input(model, im) for im in ex])
    return {"fp32": ((2 * x - 1, y), (2 * ex - 1, ey)), "int8": ((q, y), (eq, ey))}


def small_task(seed: int):
    """(fp32 module, int8 module, {precision: (train, eval)}) of the small CNN task."""
    (px, py), (tx, ty), (ex, ey) = digits_transfer(seed)
    fp32 = train_on_host(mbv2_tiny(in_ch=1, size=8, width=8), px, py, epochs=3, lr=0.05,
                         seed=seed)
    int8 = quantize(fp32, px[:200], requant="fixed")
    q, eq = quantize_input(int8, tx), quantize_input(int8, ex)
    return fp32, int8, {"fp32": ((tx, ty), (ex, ey)), "int8": ((q, ty), (eq, ey))}


def compare(tasks: dict, scheme, steps: int, grids: dict, methods, console) -> dict:
    """{method: (best lr, accuracies per seed at it, memory cost)}; tasks: seed -> (fp32
    model, int8 model, data)."""
    results = {}
    for label in methods:
        precision, config = METHODS[label]
        start = time.perf_counter()
        per_lr = {}
        for lr in grids["int8 SGD" if label == "int8 SGD" else "default"]:
            per_lr[lr] = [fine_tune_accuracy(
                fp32 if precision == "fp32" else int8, scheme, *data[precision], steps=steps,
                lr=lr, **config) for fp32, int8, data in tasks.values()]
            console.print(f"{label} lr={lr:g}: {np.mean(per_lr[lr]):.1%} {per_lr[lr]}")
        best = max(per_lr, key=lambda lr: np.mean(per_lr[lr]))
        fp32, int8, _ = next(iter(tasks.values()))
        cost = memory_cost(fp32 if precision == "fp32" else int8, scheme, **config)
        results[label] = (best, per_lr[best], cost, time.perf_counter() - start)
    return results


def print_table(console, title: str, results: dict) -> None:
    table = Table(title=title)
    for col in ("method", "accuracy mean ± std", "per seed", "best lr", "arena B",
                "trainable B", "s"):
        table.add_column(col, justify="right")
    for label, (lr, accs, cost, secs) in results.items():
        table.add_row(label, f"{np.mean(accs):.1%} ± {np.std(accs):.1%}",
                      " ".join(f"{a:.1%}" for a in accs), f"{lr:g}", f"{cost.arena_bytes:,}",
                      f"{cost.trainable_bytes:,}", f"{secs:.0f}")
    console.print(table)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=("mbv2", "small"), default="mbv2")
    parser.add_argument("--steps", type=int, default=None, help="mbv2: 400, small: 600")
    parser.add_argument("--train", type=int, default=500)
    parser.add_argument("--eval", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--bias-last", type=int, default=12)
    parser.add_argument("--weight-last", type=int, default=4)
    parser.add_argument("--lrs", default=None, help="mbv2: 0.003,0.01,0.03; small: 0.01,0.03,0.1")
    parser.add_argument("--int8-sgd-lrs", default="0.03,1,30,1000,30000,1000000")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--qemu", action="store_true", help="also run int8+QAS in QEMU")
    parser.add_argument("--qemu-only", action="store_true", help="only the QEMU run (mbv2)")
    parser.add_argument("--int16-fidelity", action="store_true",
                        help="only compare 3 steps' updates with float32 and int16 input "
                             "gradients (mbv2, seed 0, fp32 masters)")
    args = parser.parse_args()
    console = Console(width=170)
    methods = args.methods.split(",")
    grids = {"int8 SGD": [float(v) for v in args.int8_sgd_lrs.split(",")]}
    seeds = list(range(args.seeds))
    if args.task == "small":
        steps = args.steps or 600
        grids["default"] = [float(v) for v in (args.lrs or "0.01,0.03,0.1").split(",")]
        tasks = {s: small_task(s) for s in seeds}
        base = [fine_tune_accuracy(t[1], None, *t[2]["int8"], steps=0, lr=0.01)
                for t in tasks.values()]
        console.print(f"int8 (PTQ) accuracy before fine-tuning: {np.mean(base):.1%} {base}")
        results = compare(tasks, None, steps, grids, methods, console)
        print_table(console, f"small CNN, pre-trained on digits 0-5, PTQ int8 (fixed-point), "
                             f"fine-tuned on all digits: {steps} steps, batch 1, every weight, "
                             f"{len(seeds)} seeds, 400 held-out", results)
        return
    if not paper_models_available():
        raise SystemExit("the paper models are not in ../shared/data/paper-models")
    steps = args.steps or 400
    grids["default"] = [float(v) for v in (args.lrs or "0.003,0.01,0.03").split(",")]
    _, int8_0 = models_for_seed(0)
    n = len(trainable_layers(int8_0))
    scheme = UpdateScheme(args.bias_last, tuple((i, 1.0) for i in range(n - args.weight_last, n)))
    tasks = {s: (*models_for_seed(s), task(s, args.train, args.eval)) for s in seeds}
    if args.qemu_only:
        return qemu_check(console, int8_0, scheme, tasks[0][2]["int8"], {})
    if args.int16_fidelity:
        return int16_fidelity(console, int8_0, scheme, tasks[0][2]["int8"])
    results = compare(tasks, scheme, steps, grids, methods, console)
    print_table(console, f"MobileNetV2-w0.35 (pretrained) → digits 128×128, {steps} steps, "
                         f"batch 1, {scheme}, {len(seeds)} seeds, {args.eval} held-out", results)
    if args.qemu:
        qemu_check(console, int8_0, scheme, tasks[0][2]["int8"], results)


def int16_fidelity(console, model, scheme, data, steps: int = 3):
    """How far int16 input gradients move the updates: the same `steps` samples from the same
    weights with pointwise_input_grad float32 and int16 (fp32 master copies, so every update is
    seen unrounded); per trained tensor, the relative L2 distance of the two total updates."""
    (x, y), _ = data
    sessions = [tinytvm.build(model, verify=False, train=tinytvm.TrainConfig(
        lr=0.005, update=scheme, pointwise_input_grad=grad)).host_session()
        for grad in ("float32", "int16")]
    before = sessions[0].params()
    for k in range(steps):
        for s in sessions:
            s.train_step(x[k], int(y[k]))
    after = [s.params() for s in sessions]
    table = Table(title=f"int16 vs float32 input gradients: {steps} steps' updates (fp32 masters)")
    for col in ("trained tensor", "|update| (L2)", "relative L2 difference"):
        table.add_column(col, justify="right")
    for name, value in before.items():
        if name.endswith(".master"):
            d32, d16 = after[0][name] - value, after[1][name] - value
            norm = np.linalg.norm(d32)
            if norm > 0:
                table.add_row(name, f"{norm:.3g}", f"{np.linalg.norm(d16 - d32) / norm:.2e}")
    console.print(table)


def qemu_check(console, model, scheme, data, results, steps: int = 3, n_eval: int = 2):
    """int8+QAS with stochastic rounding (no fp32 copies: it fits the STM32F746's SRAM) on the
    emulated Cortex-M7: the same C as the host build, the same losses bit for bit. (A few
    samples: each 128x128x3 int8 image is baked into the 1 MB flash with the program.)"""
    label = "int8 + QAS (stochastic)"
    lr = results[label][0] if label in results else 0.01
    (x, y), (ex, ey) = data
    art = tinytvm.build(model, target="mps2-an500", train=tinytvm.TrainConfig(
        lr=lr, update=scheme, int8_update="stochastic"))
    console.print(str(art.memory))
    train, evaluation = Dataset.int8(x[:steps], y[:steps]), Dataset.int8(ex[:n_eval], ey[:n_eval])
    host = run_training(art, train, evaluation, steps, where="host")
    qemu = run_training(art, train, evaluation, steps, where="qemu", timeout=3600)
    same = np.array_equal(host.losses.view(np.uint32), qemu.losses.view(np.uint32))
    console.print(f"QEMU (Cortex-M7) {label}, {steps} steps, lr {lr:g}: losses bit-identical to "
                  f"the host: {same}; {qemu.instructions / 1e6:.0f} M instructions in all "
                  f"({steps} steps + {2 * n_eval} inferences); stack peak {qemu.stack_peak} B; "
                  f"losses {np.round(qemu.losses, 3).tolist()}")


if __name__ == "__main__":
    main()
