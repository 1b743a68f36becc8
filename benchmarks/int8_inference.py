"""The paper's int8 models as int8 inference in generated C: arena with and without the
channel-by-channel fusion of 1×1 expansion + depthwise, and logits checked bit-exact against the
numpy integer reference. Rerun: `python benchmarks/int8_inference.py`.
"""

from __future__ import annotations

import numpy as np
from rich.console import Console
from rich.table import Table

import tinytvm
from tinytvm.models import paper
from tinytvm.quant import paper_to_relax
from tinytvm.quant.fuse_expand import FuseExpandDepthwise


def main():
    table = Table(title="int8 inference, 128×128, generated C on the host (bit-exact logits)")
    for col in ("model", "arena (layer by layer)", "arena (fused)", "lower bound (fused)",
                "weights in flash B", "bit-exact"):
        table.add_column(col, justify="right")
    for name in paper.PAPER_MODELS:
        model = paper.load_paper_model(name)
        x = paper.quantize_input(model, paper.synthetic_image(128))
        expected = paper.forward_int8(model, x)["logits"].reshape(-1)
        peaks, exact = [], True
        for fuse in (False, True):
            mod = paper_to_relax(model)
            if fuse:
                mod = FuseExpandDepthwise()(mod)
            art = tinytvm.build(mod, target="stm32f746", inference_only=True, passes=[],
                                verify=False)
            exact &= bool(np.array_equal(art.host_session().infer(x).reshape(-1), expected))
            peaks.append(art.memory.functions[0])
        table.add_row(name, f"{peaks[0].peak:,}", f"{peaks[1].peak:,}", f"{peaks[1].lower_bound:,}",
                      f"{art.memory.frozen_bytes:,}", "yes" if exact else "NO")
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
