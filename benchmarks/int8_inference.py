"""The paper's int8 models as int8 inference in generated C: arena with and without the
channel-by-channel fusion of 1×1 expansion + depthwise, and logits checked bit-exact against the
numpy integer reference — on the host, and with --qemu also on the Cortex-M7 in QEMU (executed
instructions and stack peak). Rerun: `python benchmarks/int8_inference.py [--qemu]`.
"""

from __future__ import annotations

import argparse
import tempfile

import numpy as np
from rich.console import Console
from rich.table import Table
from tinytvm.passes import FuseExpandDepthwise

import tinytvm
from tinytvm.harness import run_inference_qemu
from tinytvm.models import paper
from tinytvm.quant import paper_to_relax


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qemu", action="store_true", help="also run each build in QEMU")
    args = parser.parse_args()
    table = Table(title="int8 inference, 128×128, generated C (bit-exact logits)")
    cols = ["model", "arena (layer by layer)", "arena (fused)", "lower bound (fused)",
            "weights in flash B", "bit-exact"]
    if args.qemu:
        cols += ["QEMU instr. (layer by layer)", "QEMU instr. (fused)", "stack B (fused)"]
    for col in cols:
        table.add_column(col, justify="right")
    for name in paper.PAPER_MODELS:
        model = paper.load_paper_model(name)
        x = paper.quantize_input(model, paper.synthetic_image(128))
        expected = paper.forward_int8(model, x)["logits"].reshape(-1)
        peaks, exact, qemu = [], True, []
        for fuse in (False, True):
            mod = paper_to_relax(model)
            if fuse:
                mod = FuseExpandDepthwise()(mod)
            art = tinytvm.build(mod, target="stm32f746", inference_only=True, passes=[],
                                verify=False)
            exact &= bool(np.array_equal(art.host_session().infer(x).reshape(-1), expected))
            peaks.append(art.memory.functions[0])
            if args.qemu:
                device = tinytvm.build(mod, target="mps2-an500", inference_only=True, passes=[],
                                       verify=False)
                with tempfile.TemporaryDirectory() as tmp:
                    run = run_inference_qemu(device, x, tmp)
                exact &= bool(np.array_equal(run.logits, expected))
                qemu.append(run)
        row = [name, f"{peaks[0].peak:,}", f"{peaks[1].peak:,}", f"{peaks[1].lower_bound:,}",
               f"{art.memory.frozen_bytes:,}", "yes" if exact else "NO"]
        if qemu:
            row += [f"{qemu[0].instructions:,}", f"{qemu[1].instructions:,}",
                    f"{qemu[1].stack_peak:,}"]
        table.add_row(*row)
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
