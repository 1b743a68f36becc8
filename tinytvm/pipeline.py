"""The compilation pipeline, in one place.

Graph passes are Relax `IRModule → IRModule` passes, printed and tested one by one; the
lowering stages after them (legalize to TIR, plan memory, emit C) live in `tinytvm.build`.
"""

from __future__ import annotations

import tvm

from tinytvm import passes


def canonicalize() -> list[tvm.transform.Pass]:
    return [
        passes.FuseClip(),       # ReLU6 as one op: its gradient needs only the output
        passes.FoldBatchNorm(),  # inference BN costs nothing once folded into the conv
        passes.NormalizeHead(),  # pool + flatten as one mean: one kernel and one tensor fewer
    ]


def training(trainable, lr: float, momentum: float) -> list[tvm.transform.Pass]:
    return [
        passes.Autodiff(trainable),      # loss + gradients of the trainable set only
        passes.AppendSGD(lr, momentum),  # gradients become in-place weight updates
    ]


def default_passes(train) -> list[tvm.transform.Pass]:
    stages = canonicalize()
    if train is not None:
        stages += training(train.trainable, train.lr, train.momentum)
    return stages


def run_passes(mod: tvm.IRModule, pass_list) -> tvm.IRModule:
    for p in pass_list:
        mod = p(mod)
    return mod
