"""Peak training memory of the models in the repo: what reordering and the planners buy.

For each model × update scheme (fp32 and int8): no-reuse bytes, TVM Relax's StaticPlanBlockMemory, and
tinytvm's arena with and without ReorderForMemory — lower bound (max live bytes) and the peak
each registered planner reaches, with its time. Rerun: `python benchmarks/memory_schedule.py`.
"""

from __future__ import annotations

import sys
import time

import numpy as np
from rich.console import Console
from rich.table import Table

import tinytvm
from tinytvm.baselines import relax_static_plan_bytes
from tinytvm.memory import PLANNERS, validate
from tinytvm.models import mbv2_tiny, resnet_tiny, ts_cnn
from tinytvm.models.int8_random import tiny_int8_model
from tinytvm.models.paper import PAPER_MODELS, paper_models_available
from tinytvm.models.paper_fp32 import paper_onnx_fp32
from tinytvm.models.zoo import paper_model, paper_scheme
from tinytvm.quant.paper_import import paper_to_relax, with_new_head
from tinytvm.sparse import UpdateScheme


def schemes():
    """(model name, onnx model, scheme name, trainable names, an UpdateScheme, or None)."""
    yield "mbv2_tiny 8x8", mbv2_tiny(), "full", None
    yield "mbv2_tiny 8x8", mbv2_tiny(), "last conv + head", ["conv10.weight", "conv10.bias",
                                                            "fc14.weight", "fc14.bias"]
    yield "mbv2_tiny 32x32 w16", mbv2_tiny(size=32, width=16), "full", None
    yield "mbv2_tiny 32x32 w16", mbv2_tiny(size=32, width=16), "biases + head", [
        "conv4.bias", "conv6.bias", "conv8.bias", "conv10.bias", "fc14.weight", "fc14.bias"]
    yield "resnet_tiny 8x8", resnet_tiny(), "full", None
    yield "ts_cnn 150", ts_cnn(length=150), "full", None
    if paper_models_available():  # the paper's pretrained MbV2-w0.35, as float32, 128×128
        mbv2 = paper_onnx_fp32("mbv2-w0.35")
        yield "MbV2-w0.35 fp32 128", mbv2, "paper ~100KB scheme", UpdateScheme(
            bias_last=25, weights=tuple(zip([27, 30, 33, 36, 39, 42, 45, 48],
                                            [1, 1, 1, 1, 1, 0.125, 0.5, 1])))
        yield "MbV2-w0.35 fp32 128", mbv2, "last 2 layers", UpdateScheme.last_layers(2, 52)
    # int8 (QAS, stochastic rounding): the random tiny model, the paper's three models
    yield "tiny int8 16x16", int8_graph(tiny_int8_model(0)), "full", None
    for name in PAPER_MODELS:
        yield (f"{name} int8 128", int8_graph(paper_model(name, pretrained=None)), "paper sparse scheme",
               paper_scheme(name))


def int8_graph(model):
    rng = np.random.default_rng(0)
    head = rng.normal(0, 0.1, (10, model.classifier.in_channels))
    return paper_to_relax(with_new_head(model, head, np.zeros(10)), logits="float32")


def measure(model, trainable):
    scheme = trainable if isinstance(trainable, UpdateScheme) else None
    cfg = tinytvm.TrainConfig(lr=0.05, trainable=None if scheme else trainable, update=scheme,
                              int8_update="stochastic")  # (fp32 graphs ignore it)
    row = {}
    for reorder in (False, True):
        art = tinytvm.build(model, train=cfg, reorder=reorder, verify=False)
        problem = art.memory.functions[0].problem
        row[reorder] = {"lb": problem.lower_bound(), "naive": problem.naive_bytes(), "plans": {}}
        for name, planner in PLANNERS.items():
            if name == "linear":
                continue
            start = time.perf_counter()
            solution = planner(problem)
            elapsed = time.perf_counter() - start
            validate(problem, solution)
            row[reorder]["plans"][name] = (solution.peak, elapsed)
    try:
        row["relax"] = f"{relax_static_plan_bytes(art.ir):,}"
    except Exception as e:  # noqa: BLE001 — Relax's planner on hand-written int8 kernels
        row["relax"] = f"n/a ({type(e).__name__})"
    return row


def main():
    console = Console(width=200)
    planners = [p for p in PLANNERS if p != "linear"]
    table = Table(title="training-step arena (batch 1), bytes")
    for col in ["model", "scheme", "no reuse", "Relax StaticPlan", "LB as autodiff orders",
                "LB reordered", "reorder gain"] + [f"{p} (reordered) / LB" for p in planners] \
            + [f"{p} ms" for p in planners]:
        table.add_column(col, justify="right")
    for model_name, model, scheme, trainable in schemes():
        r = measure(model, trainable)
        plain, ordered = r[False], r[True]
        table.add_row(
            model_name, scheme, f"{plain['naive']:,}", r["relax"], f"{plain['lb']:,}",
            f"{ordered['lb']:,}", f"{plain['lb'] / ordered['lb']:.2f}x",
            *[f"{ordered['plans'][p][0]:,} ({ordered['plans'][p][0] / ordered['lb']:.3f})"
              for p in planners],
            *[f"{ordered['plans'][p][1] * 1000:.1f}" for p in planners])
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
