"""The compilation pipeline, in one place.

Graph passes are Relax `IRModule → IRModule` passes, each printed, timed and tested on its own.
`default_passes(train)` is the list `tinytvm.build` runs; pass your own list with
`build(..., passes=...)`, built with `insert_before` / `insert_after` / `replace` by pass name.
The lowering stages after these (legalize to TIR, plan memory, emit C) live in `tinytvm.build`.
"""

from __future__ import annotations

import time
from pathlib import Path

import tvm

from tinytvm import passes


def canonicalize() -> list[tvm.transform.Pass]:
    return [
        passes.FuseClip(),       # ReLU6 as one op: its gradient needs only the output
        passes.FoldBatchNorm(),  # inference BN costs nothing once folded into the conv
        passes.NormalizeHead(),  # pool + flatten as one mean: one kernel and one tensor fewer
        passes.Normalize1DHead(),  # the same for 1-D (time-series) models
    ]


def training(trainable, lr: float, momentum: float, update=None, qas: bool = True,
             int8_update: str = "master", pointwise_input_grad: str = "float32"
             ) -> list[tvm.transform.Pass]:
    return [
        passes.Autodiff(trainable, scheme=update),  # loss + gradients of the trainable set only
        # int8 graphs: integer-unit gradients get fp32's weight/gradient ratio (no-op on fp32)
        *([passes.QuantizationAwareScaling()] if qas else []),
        passes.AppendSGD(lr, momentum, int8_update),  # gradients become in-place weight updates
        # int8, opt-in: wide pointwise convs pass back an int16 gradient (SMLAD, not VMLA.F32)
        *([passes.Int16PointwiseGradients()] if pointwise_input_grad == "int16" else []),
    ]


def memory() -> list[tvm.transform.Pass]:
    return [
        # int8: an output the backward only masks with is saved as 1 bit per element
        passes.PackSavedMasks(),
        # int8: each weight element's gradient is applied as it is summed (no gradient tensor)
        passes.FuseGradientUpdate(),
        # int8: what the backward never reads is computed inference-style (no-op on fp32)
        passes.FuseExpandDepthwise(),
        # int8: a depthwise conv whose input dies there overwrites it (and its input gradient)
        passes.InplaceDepthwise(),
        # fp32: the same two tricks for float graphs' frozen layers
        passes.FrozenPrefixFp32(),
    ]


# passes that rewrite kernels for memory, not the model: `Artifact.model_ir` is taken before them
MEMORY_PASSES = ("PackSavedMasks", "FuseGradientUpdate", "FuseExpandDepthwise",
                 "InplaceDepthwise", "FrozenPrefixFp32")


def speed() -> list[tvm.transform.Pass]:
    return [
        # int8: the Cortex-M7 micro-kernels (runtime_c/kernels/), bit-exact with the TIR ones
        passes.UseFastKernels(),
    ]


def default_passes(train, fast_kernels: bool = True) -> list[tvm.transform.Pass]:
    """The graph passes `build` runs for a TrainConfig (None: inference only), in order;
    `fast_kernels=False` keeps every kernel as TVM's TIR (the reference for the fast ones)."""
    tail = memory() + (speed() if fast_kernels else [])
    if train is None:
        return canonicalize() + tail
    return canonicalize() + training(train.trainable, train.lr, train.momentum, train.update,
                                     train.qas, train.int8_update,
                                     train.pointwise_input_grad) + tail


def pass_names(pass_list) -> list[str]:
    return [p.info.name for p in pass_list]


def _index(pass_list, name: str) -> int:
    names = pass_names(pass_list)
    if name not in names:
        raise ValueError(f"no pass named '{name}' in the pipeline: {', '.join(names)}")
    return names.index(name)


def insert_before(pass_list, name: str, *new) -> list:
    i = _index(pass_list, name)
    return [*pass_list[:i], *new, *pass_list[i:]]


def insert_after(pass_list, name: str, *new) -> list:
    i = _index(pass_list, name) + 1
    return [*pass_list[:i], *new, *pass_list[i:]]


def replace(pass_list, name: str, *new) -> list:
    i = _index(pass_list, name)
    return [*pass_list[:i], *new, *pass_list[i + 1:]]


@tvm.ir.instrument.pass_instrument
class PassRecorder:
    """Times every pass that runs and, with `dump_dir`, writes the IR after each one.

    Files are `NN_<PassName>.py` (TVMScript), numbered in the order the passes ran.
    """

    def __init__(self, dump_dir: str | Path | None = None):
        self.dump_dir = Path(dump_dir) if dump_dir is not None else None
        self.timings: list[tuple[str, float]] = []
        self._started: list[float] = []
        if self.dump_dir is not None:
            self.dump_dir.mkdir(parents=True, exist_ok=True)

    def run_before_pass(self, mod, info):
        self._started.append(time.perf_counter())

    def run_after_pass(self, mod, info):
        self.timings.append((info.name, time.perf_counter() - self._started.pop()))
        if self.dump_dir is not None:
            path = self.dump_dir / f"{len(self.timings):02d}_{info.name}.py"
            path.write_text(mod.script(show_meta=False))

    def dump_input(self, mod):
        if self.dump_dir is not None:
            (self.dump_dir / "00_input.py").write_text(mod.script(show_meta=False))


def run_passes(mod: tvm.IRModule, pass_list) -> tvm.IRModule:
    for p in pass_list:
        mod = p(mod)
    return mod
