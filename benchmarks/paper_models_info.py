"""Facts of the paper's three int8 models, the numbers later issues compare with the paper.

Usage: python benchmarks/paper_models_info.py [--layers] [--no-rescale]
Reads shared/data/paper-models beside the repository (or $TINYTVM_PAPER_MODELS).

Per model: convs, blocks, residual adds, int8 weight and int32 bias bytes, forward MACs
(convs, 128x128 input), the largest int8 activation and the most int8 activation bytes
alive during one op when running op after op (no in-place or fused execution). Then how
far fixed-point requantization is from the original float32 semantics on a synthetic image.
"""

from __future__ import annotations

import argparse

import numpy as np

from tinytvm.models.paper import (
    PAPER_MODELS,
    activation_sizes,
    architecture_facts,
    compare_rescale,
    forward_int8,
    layer_by_layer_peak,
    load_paper_model,
    program,
    quantize_input,
    synthetic_image,
)


def print_table(headers: list[str], rows: list[list]) -> None:
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    def line(row: list[str]) -> str:  # first column (names) left, the rest right
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(row, widths)))

    print(line(headers))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print(line(row))


def summary_row(model) -> list:
    _, totals = architecture_facts(model)
    size, where = max((s, n) for n, s in activation_sizes(model).items())
    peak, peak_at = layer_by_layer_peak(model)
    return [model.name, totals["convs"], totals["blocks"], totals["residuals"],
            f"{totals['weight_bytes']:,}", f"{totals['bias_bytes']:,}",
            f"{totals['macs'] / 1e6:.2f} M", f"{size:,} @ {where}", f"{peak:,} @ {peak_at}"]


def rescale_row(model) -> list:
    x = quantize_input(model, synthetic_image())
    reference = forward_int8(model, x)
    names = [op.name for op in program(model)]
    total = sum(reference[n].size for n in names)
    row = [model.name, f"{total:,}"]
    for mode in ("fixed", "fixed-single", "float64"):
        isolated = sum(compare_rescale(model, x, mode).values())
        other = forward_int8(model, x, rescale=mode)
        spread = sum(int(np.count_nonzero(other[n] != reference[n])) for n in names)
        logits = int(np.count_nonzero(other["logits"] != reference["logits"]))
        row.append(f"{isolated} / {spread / total:.1%} / {logits}")
    return row


def print_layers(model) -> None:
    rows, _ = architecture_facts(model)
    print(f"\n{model.name}")
    print_table(["#", "name", "kind", "in", "out", "k", "s", "in HW", "out HW", "MACs"],
                [[r["index"], r["name"], r["kind"], r["in_channels"], r["out_channels"],
                  r["kernel"], r["stride"], "x".join(map(str, r["in_hw"])),
                  "x".join(map(str, r["out_hw"])), f"{r['macs']:,}"] for r in rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", action="store_true", help="also print every conv")
    parser.add_argument("--no-rescale", action="store_true", help="skip the rescale table")
    args = parser.parse_args()
    models = [load_paper_model(name) for name in PAPER_MODELS]
    print_table(["model", "convs", "blocks", "adds", "weights B (int8)", "bias B (int32)",
                 "MACs", "largest activation B", "layer-by-layer peak B"],
                [summary_row(m) for m in models])
    if not args.no_rescale:
        print("\nvs the original float32 rescale, synthetic image: isolated mismatches / "
              "activations differing end to end / logits differing (of 1000)")
        print_table(["model", "activations", "fixed (TFLite, CMSIS-NN default)",
                     "fixed single rounding", "float64"],
                    [rescale_row(m) for m in models])
    if args.layers:
        for m in models:
            print_layers(m)


if __name__ == "__main__":
    main()
