"""The paper's setting on the emulated Cortex-M7: int8 MobileNetV2-w0.35 at 128×128, trained.

The ImageNet-pretrained int8 model from ../shared/data/paper-models/ (random weights of the same
architecture if absent) gets a new 10-class head and is compiled for the STM32F746's budget
(256 KB SRAM counted with the trained weights and the stack, 1 MB flash) with the paper's sparse
update scheme, QAS and stochastic rounding; then it fine-tunes for a few steps on digits
(upsampled to 128×128×3) on the Cortex-M7 in QEMU, and the host build runs the same C to show
the losses agree bit for bit. The images are baked into flash with the program (49 KB each),
which is what limits the number of samples here.

Run:  python examples/train_paper_mbv2.py [--steps 4]
"""

from __future__ import annotations

import argparse

import numpy as np
from rich.console import Console

import tinytvm
from tinytvm.datasets import digits_rgb
from tinytvm.harness import Dataset, run_training
from tinytvm.models import paper
from tinytvm.models.zoo import paper_model, paper_scheme
from tinytvm.quant.paper_import import paper_to_relax, with_new_head

console = Console(width=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--lr", type=float, default=0.005)
    args = parser.parse_args()

    model = paper_model("mbv2-w0.35", pretrained=None)
    console.print(f"model: mbv2-w0.35, {'pretrained' if paper.paper_models_available() else 'random'}"
                  f" int8 weights; scheme {paper_scheme('mbv2-w0.35')}")
    head = np.random.default_rng(0).normal(0, 1 / np.sqrt(model.classifier.in_channels),
                                           (10, model.classifier.in_channels))
    mod = paper_to_relax(with_new_head(model, head, np.zeros(10)), logits="float32")
    config = tinytvm.TrainConfig(lr=args.lr, update=paper_scheme("mbv2-w0.35"),
                                 int8_update="stochastic")
    art = tinytvm.build(mod, target="mps2-an500", train=config, sram_budget="256KB")
    console.print(str(art.memory))

    (x, y), (ex, ey) = digits_rgb(args.steps, 2, seed=3)
    quantize = lambda images: np.stack([paper.quantize_input(model, im) for im in images])
    train, evaluation = Dataset.int8(quantize(x), y), Dataset.int8(quantize(ex), ey)
    with console.status(f"training {args.steps} steps on the Cortex-M7 (QEMU)..."):
        device = run_training(art, train, evaluation, args.steps, where="qemu", timeout=3600)
    host = run_training(art, train, evaluation, args.steps, where="host")
    console.print(f"labels {y.tolist()}; losses on the Cortex-M7: "
                  + " ".join(f"{v:.3f}" for v in device.losses))
    same = np.array_equal(device.losses.view(np.uint32), host.losses.view(np.uint32))
    console.print(f"host build, same C: bit-identical losses: {same}")
    console.print(f"QEMU: {device.instructions:,} instructions in all ({args.steps} steps + "
                  f"{2 * len(ey)} inferences); stack peak {device.stack_peak} B; "
                  f"ELF {device.sizes}")


if __name__ == "__main__":
    main()
