"""`tinytvm.build`: model in, C training step + memory report out."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import onnx
import tvm

from . import aot, emit_c, lower
from .errors import BudgetError, UnsupportedModelError
from .frontend import from_onnx
from .ir import FunctionView
from .memory import PLANNERS, validate
from .passes import ReorderForMemory
from .pipeline import MEMORY_PASSES, PassRecorder, default_passes
from .report import FunctionMemory, MemoryReport
from .sparse import UpdateScheme
from .toolchain import BOARDS
from .verify import check_c_compiles

TARGETS = {"host": "host", "mps2-an500": "mps2-an500", "stm32f746": "stm32f746",
           "stm32f746-disco": "stm32f746"}


@dataclass
class TrainConfig:
    """What the training step does: loss, optimizer, and which weights it updates."""

    loss: str = "cross_entropy"
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.0
    trainable: list[str] | None = None  # weight names; None = all
    update: UpdateScheme | None = None  # a sparse-update scheme instead of `trainable`
    qas: bool = True  # int8 graphs: Quantization-Aware Scaling of the integer gradients
    int8_update: str = "master"  # how an int8 weight stores its step: master | round | stochastic
    # int8 graphs: the gradient wide pointwise convs pass back, float32 (the paper's) or int16
    # (per-tensor quantized, summed exactly by SMLAD: passes/int16_gradients.py)
    pointwise_input_grad: str = "float32"

    def __post_init__(self):
        if self.loss != "cross_entropy":
            raise ValueError(f"unknown loss '{self.loss}' (supported: cross_entropy)")
        if self.optimizer != "sgd":
            raise ValueError(f"unknown optimizer '{self.optimizer}' (supported: sgd)")
        if self.update is not None and self.trainable is not None:
            raise ValueError("give either `trainable` names or an `update` scheme, not both")
        if self.int8_update not in ("master", "round", "stochastic"):
            raise ValueError(f"unknown int8_update '{self.int8_update}' (supported: master, "
                             "round, stochastic)")
        if self.pointwise_input_grad not in ("float32", "int16"):
            raise ValueError(f"unknown pointwise_input_grad '{self.pointwise_input_grad}' "
                             "(supported: float32, int16)")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"learning rate must be positive, got {self.lr}")


def parse_bytes(text: str | int | None) -> int | None:
    """'256KB' → 262144; ints pass through."""
    if text is None or isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KkMm]?)i?[Bb]?\s*", str(text))
    if not m:
        raise ValueError(f"cannot read a byte size from '{text}' (e.g. 256KB, 1MB, 65536)")
    scale = {"": 1, "k": 1024, "m": 1024 * 1024}[m.group(2).lower()]
    return int(float(m.group(1)) * scale)


@dataclass
class Artifact:
    """The result of a build: C sources, the lowered IR, and the memory report."""

    name: str
    target: str
    sources: dict[str, str]
    memory: MemoryReport
    ir: tvm.IRModule
    train: TrainConfig | None
    weights: dict[str, aot.Tensor]
    input_shape: tuple[int, ...]
    num_classes: int
    programs: dict[str, aot.Program] = field(default_factory=dict)
    pass_timings: list[tuple[str, float]] = field(default_factory=list)
    model_ir: tvm.IRModule | None = None  # before the memory passes: plain ops, same weights

    def save(self, out_dir: str | Path) -> Path:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for fname, text in self.sources.items():
            (out / fname).write_text(text)
        return out

    def export_library(self, out_dir: str | Path):
        """A drop-in C library (header, sources, Makefile fragment, CMakeLists.txt)."""
        from .micro.library import export_library

        return export_library(self, out_dir)

    def host_session(self):
        from .session import HostSession

        return HostSession(self)


QUANTIZED_ONNX_OPS = {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul"}


def _as_module(model) -> tvm.IRModule:
    """A Relax module from a Relax module, or an ONNX model: float through the frontend, a
    quantized one (QDQ pairs, QLinear ops) as a real int8 graph with float32 logits."""
    if isinstance(model, tvm.IRModule):
        return model
    if isinstance(model, (str, Path, onnx.ModelProto)):
        from .frontend import load_onnx

        proto = load_onnx(model)
        if QUANTIZED_ONNX_OPS & {node.op_type for node in proto.graph.node}:
            from .quant import from_quantized_onnx

            return from_quantized_onnx(proto, logits="float32")
        return from_onnx(proto)
    raise UnsupportedModelError(f"cannot build a {type(model).__name__}: pass an ONNX path, "
                                "an onnx.ModelProto or a Relax IRModule")


def build(model, target: str = "host", train: TrainConfig | None = None, *,
          sram_budget=None, flash_budget=None, stack_bytes: int = 16 * 1024,
          planner: str = "auto", name: str = "model", passes=None,
          dump_ir: str | Path | None = None, reorder: bool = True,
          verify: bool = True, inference_only: bool = False) -> Artifact:
    """Compile `model` to a C training step (`tt_train_step`) and inference (`tt_infer`).

    `passes` replaces the graph pipeline (default: `tinytvm.default_passes(train)`);
    `dump_ir` writes the IR after every pass (graph passes and legalization) into that folder.
    Per-pass times are in `artifact.pass_timings`. `reorder=False` keeps the autodiff order
    (all gradients, then all updates) instead of the memory-aware schedule. `verify` compiles
    the emitted C with -Wall -Wextra -Werror for the host and the target core.
    `inference_only` emits `tt_infer` alone (no autodiff, every weight const in flash).
    """
    if target not in TARGETS:
        raise ValueError(f"unknown target '{target}'; choose one of {', '.join(TARGETS)}")
    board = BOARDS[TARGETS[target]]
    train = None if inference_only else (train if train is not None else TrainConfig())
    if passes is None:
        passes = default_passes(train)
    recorder = PassRecorder(dump_ir)
    mod, lowered, model_ir = _graph(_as_module(model), passes, reorder and not inference_only,
                                    recorder)
    prepared = lower.prepare_kernels(lowered)
    kernels_c = lower.kernels_to_c(prepared, prepared=True)
    weights, constants, programs = _programs(lowered, inference_only,
                                             lower.scratch_buffers(prepared))
    functions, offsets = _plan(programs, planner)
    _relax_baselines(functions, lowered)
    report = MemoryReport(
        target=target, functions=functions,
        trainable_bytes=sum(t.nbytes for t in weights.values() if t.trainable),
        state_bytes=_state_bytes(lowered, weights, inference_only),
        frozen_bytes=sum(t.nbytes for t in weights.values() if not t.trainable),
        constant_bytes=sum(t.nbytes for t in constants),
        stack_bytes=stack_bytes if board.kind != "host" else 0,
        sram_budget=parse_bytes(sram_budget) or board.sram_bytes,
        flash_budget=parse_bytes(flash_budget) or board.flash_bytes)
    problems = report.over_budget()
    if problems:
        raise BudgetError(f"model '{name}' does not fit {target}: " + "; ".join(problems)
                          + f"\n{report}", report)

    main_view = FunctionView.of(mod["main"])
    input_shape = tuple(int(s) for s in main_view.inputs[0].ty.shape)
    num_classes = int(main_view.output.ty.shape[-1])
    sources = emit_c.render(name, {
        "input_elems": int(_prod(input_shape)), "num_classes": num_classes,
        "output_elems": int(_prod(main_view.output.ty.shape)),
        "arena_bytes": max(report.arena_bytes, 16),
        "trainable_bytes": report.trainable_bytes, "frozen_bytes": report.frozen_bytes,
        "input_ctype": aot.C_TYPES[str(main_view.inputs[0].ty.dtype)],
        "output_ctype": aot.C_TYPES[str(main_view.output.ty.dtype)],
        "kernels": kernels_c,
        "weights": emit_c.weight_definitions(weights.values()),
        "constants": emit_c.constant_definitions(constants),
    }, programs, offsets)
    if verify:
        check_c_compiles(sources, f"{name}.c", TARGETS[target])
    return Artifact(name, target, sources, report, mod, train, weights,
                    input_shape, num_classes, programs, recorder.timings, model_ir)


def _graph(mod: tvm.IRModule, passes, reorder: bool, recorder: PassRecorder):
    """Graph passes, legalization and (optionally) reordering: (graph module, lowered module,
    the model as it was before the memory passes rewrote its kernels)."""
    recorder.dump_input(mod)
    model = None
    with tvm.transform.PassContext(instruments=[recorder]):
        for p in passes:
            if model is None and p.info.name in MEMORY_PASSES:
                model = mod
            mod = p(mod)
        lowered = lower.legalize(mod)
        if reorder:
            lowered = ReorderForMemory()(lowered)
    return mod, lowered, model if model is not None else mod


def plan_memory(model, train: TrainConfig, planner: str = "auto", reorder: bool = True):
    """The arena plans `build` would make for this model and config, without emitting any C:
    {function name: FunctionMemory}, plus the trainable (SRAM) bytes."""
    _, lowered, _ = _graph(_as_module(model), default_passes(train), reorder, PassRecorder())
    weights, _, programs = _programs(lowered, False,
                                     lower.scratch_buffers(lower.prepare_kernels(lowered)))
    functions, _ = _plan(programs, planner)
    return {f.name: f for f in functions}, sum(t.nbytes for t in weights.values() if t.trainable)


def _programs(lowered: tvm.IRModule, inference_only: bool, scratch: dict | None = None):
    """Weights, graph constants and the AOT programs of the lowered functions."""
    constants: list[aot.Tensor] = []
    elementwise = lower.elementwise_kernels(lowered)
    inplace = lower.inplace_kernels(lowered)
    if inference_only:
        weights = aot.weight_tensors(lowered["main"], set())
        return weights, constants, {
            "infer": aot.build_program(lowered["main"], weights, constants, "infer", elementwise,
                                   inplace, scratch)}
    train_func = lowered["train_step"]
    weights = aot.weight_tensors(train_func, {str(n) for n in train_func.attrs["updates"]})
    return weights, constants, {
        "train_step": aot.build_program(train_func, weights, constants, "train", elementwise,
                                        inplace, scratch),
        "infer": aot.build_program(lowered["main"], weights, constants, "infer", elementwise,
                                   inplace, scratch),
    }


def _relax_baselines(functions, lowered: tvm.IRModule) -> None:
    """What TVM Relax's own StaticPlanBlockMemory reserves for each function, for the report."""
    from .baselines import relax_static_plan_bytes

    for f in functions:
        try:
            f.relax_bytes = relax_static_plan_bytes(
                lowered, "main" if f.name == "infer" else f.name, legalized=True)
        except Exception:  # noqa: BLE001 — a comparison figure only; never fails a build
            f.relax_bytes = None


def _state_bytes(lowered: tvm.IRModule, weights: dict, inference_only: bool) -> int:
    """Bytes of what the step updates that is not a model weight: the optimizer's state."""
    if inference_only:
        return 0
    model_weights = {str(n) for n in lowered["train_step"].attrs["trainable"]}
    return sum(t.nbytes for name, t in weights.items()
               if t.trainable and name not in model_weights)


def _plan(programs: dict, planner: str):
    """One validated arena plan per program (they share one arena: never alive together)."""
    functions, offsets = [], {}
    for fname, program in programs.items():
        problem = program.memory_problem()
        solution = PLANNERS[planner](problem)
        validate(problem, solution)
        functions.append(FunctionMemory(fname, problem, solution))
        offsets[fname] = solution.offsets
    return functions, offsets


def _prod(shape) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n
