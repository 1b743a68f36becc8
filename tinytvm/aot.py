"""AOT program: a legalized Relax function as a flat list of kernel calls over named tensors.

This is the form the memory planner and the C emitter share. Each tensor has one storage
class: an arena slot (planned), a weight array (frozen → flash, trainable → SRAM), a graph
constant, or a caller pointer (input, label, logits). Updated weights are written in place when
it is safe, so the step needs no second copy of the trainable state.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx
import numpy as np
from tvm import relax

from .errors import PlanError, UnsupportedModelError
from .ir import c_identifier, const_array, shape_of
from .memory import Buffer, Problem

DTYPE_BYTES = {"float32": 4, "int32": 4, "int64": 8, "int16": 2, "bool": 1, "int8": 1,
               "uint8": 1}
C_TYPES = {"float32": "float", "int32": "int32_t", "int64": "int64_t", "int16": "int16_t",
           "bool": "bool", "int8": "int8_t", "uint8": "uint8_t"}
# Kernels whose output element i reads only element i of the weight they update, so writing the
# output over that weight while it runs is safe (subtract_rows: passes/sgd.py; subtract_round,
# subtract_stochastic, requantize_rows, weight_grad_update: tinytvm/quant/qupdate.py).
ELEMENTWISE_KERNELS = ("add", "subtract", "multiply", "requantize_rows", "weight_grad_update")


@dataclass(eq=False)
class Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: str
    storage: str  # "arena" | "weight" | "const" | "input" | "label" | "logits"
    value: np.ndarray | None = None  # weights and constants
    alias_of: "Tensor | None" = None  # an update written in place into a weight
    trainable: bool = False  # weights only: SRAM and updated, else const in flash
    relax_name: str = ""

    @property
    def nbytes(self) -> int:
        if self.dtype not in DTYPE_BYTES:
            raise UnsupportedModelError(f"tensor '{self.name}' has unsupported dtype {self.dtype}")
        return int(np.prod(self.shape, dtype=np.int64)) * DTYPE_BYTES[self.dtype]

    @property
    def home(self) -> "Tensor":
        return self.alias_of.home if self.alias_of is not None else self


@dataclass(eq=False)
class KernelCall:
    kernel: str  # PrimFunc name in the lowered module
    inputs: list[Tensor]
    output: Tensor
    scratch: list[Tensor] = field(default_factory=list)  # arena buffers live for this call only


@dataclass
class Program:
    name: str
    calls: list[KernelCall]
    outputs: list[Tensor]
    updates: list[tuple[Tensor, Tensor]] = field(default_factory=list)  # (new value, weight)

    def arena_tensors(self) -> list[Tensor]:
        seen, out = set(), []
        for call in self.calls:
            for t in [*call.inputs, call.output, *call.scratch]:
                if t.home.storage == "arena" and id(t.home) not in seen:
                    seen.add(id(t.home))
                    out.append(t.home)
        return out

    def dataflow_graph(self) -> nx.DiGraph:
        """Bipartite graph: call index → tensor it writes, tensor → call index that reads it.

        Tensor nodes are the storage homes (an in-place update and its weight are one node);
        the node `"end"` (index len(calls)) reads the function's results.
        """
        g = nx.DiGraph()
        for i, call in enumerate(self.calls):
            g.add_node(i, call=call)
            for t in call.inputs:
                g.add_edge(t.home.name, i)
            g.add_edge(i, call.output.home.name)
            for t in call.scratch:  # written and read by this call alone
                g.add_edge(i, t.home.name)
        g.add_node(len(self.calls), call=None)
        for t in [*self.outputs, *(new for new, _ in self.updates)]:
            g.add_edge(t.home.name, len(self.calls))
        return g

    def memory_problem(self, alignment: int = 16) -> Problem:
        """Lifetimes over call indices: [first writing call, last reading call + 1)."""
        g = self.dataflow_graph()
        buffers = []
        for t in self.arena_tensors():
            writers, readers = list(g.predecessors(t.name)), list(g.successors(t.name))
            start = min(writers)
            end = max(readers, default=max(writers)) + 1
            buffers.append(Buffer(t.name, t.nbytes, start, max(end, start + 1), alignment))
        return Problem(tuple(buffers))


class _Builder:
    """Walks one legalized Relax function and builds its Program."""

    def __init__(self, func: relax.Function, weights: dict[str, Tensor], constants: list[Tensor],
                 kind: str, scratch: dict | None = None):
        self.func, self.weights, self.constants, self.kind = func, weights, constants, kind
        self.scratch = scratch or {}
        self.tensors: dict[relax.Var, Tensor] = {}
        self.names: set[str] = set()

    def unique(self, name: str) -> str:
        base, n = c_identifier(name), 0
        candidate = base
        while candidate in self.names:
            n += 1
            candidate = f"{base}_{n}"
        self.names.add(candidate)
        return candidate

    def bind_params(self):
        attrs = self.func.attrs
        num_input = int(attrs["num_input"])
        inputs = list(self.func.params[:num_input])
        self.tensors[inputs[0]] = Tensor("input", shape_of(inputs[0]), str(inputs[0].ty.dtype), "input")
        if self.kind == "train":
            self.tensors[inputs[1]] = Tensor("label_buf", (1,), "int32", "label")
        for var in self.func.params[num_input:]:
            self.tensors[var] = self.weights[var.name]

    def tensor_of(self, expr) -> Tensor:
        if isinstance(expr, relax.Var):
            return self.tensors[expr]
        array = const_array(expr)
        if array is not None:
            t = Tensor(f"tt_c{len(self.constants)}", tuple(array.shape), str(array.dtype), "const",
                       value=array)
            self.constants.append(t)
            return t
        raise UnsupportedModelError(f"unsupported argument {type(expr).__name__} in {self.func}")

    def build(self) -> Program:
        self.bind_params()
        calls = []
        block = self.func.body.blocks[0]
        for binding in block.bindings:
            var, value = binding.var, binding.value
            if isinstance(value, relax.Var):
                self.tensors[var] = self.tensors[value]
            elif isinstance(value, relax.Tuple):
                self.tensors[var] = [self.tensor_of(f) for f in value.fields]
            elif isinstance(value, relax.Call) and getattr(value.op, "name", "") == "relax.call_tir":
                args = [self.tensor_of(a) for a in value.args[1].fields]
                out = Tensor(self.unique(var.name), shape_of(var), str(var.ty.dtype), "arena")
                self.tensors[var] = out
                kernel = value.args[0].name_hint
                scratch = [Tensor(self.unique(f"{var.name}_scratch"), shape, dtype, "arena")
                           for shape, dtype in self.scratch.get(kernel, [])]
                calls.append(KernelCall(kernel, args, out, scratch))
            else:
                raise UnsupportedModelError(f"cannot emit binding '{var.name}' = {value}")
        result = self.tensors[self.func.body.body]
        outputs = result if isinstance(result, list) else [result]
        program = Program(self.func.attrs.get("global_symbol", self.kind), calls, outputs[:1])
        if self.kind == "train":
            names = [str(n) for n in self.func.attrs["updates"]]
            program.updates = [(new, self.weights[n]) for new, n in zip(outputs[1:], names)]
            _write_updates_in_place(program)
            _check_loss_before_updates(program)
        else:
            outputs[0].storage = "logits"
        return program


def _write_updates_in_place(program: Program) -> None:
    """Alias an updated weight onto its weight array when no later call reads the old value."""
    last_read: dict[int, int] = {}
    producer: dict[int, int] = {}
    for i, call in enumerate(program.calls):
        for t in call.inputs:
            last_read[id(t.home)] = i
        producer[id(call.output)] = i
    for new, weight in program.updates:
        at = producer.get(id(new))
        if at is None or new.storage != "arena" or new.alias_of is not None:
            continue
        read = last_read.get(id(weight), -1)
        call = program.calls[at]
        same_index = (call.kernel.startswith(ELEMENTWISE_KERNELS) and new.shape == weight.shape)
        if read < at or (read == at and same_index):
            new.alias_of = weight


def _check_loss_before_updates(program: Program) -> None:
    """The emitted step rejects a non-finite loss; that only works if no weight was written yet."""
    loss = program.outputs[0]
    at = next((i for i, c in enumerate(program.calls) if c.output is loss), None)
    writes = [i for i, c in enumerate(program.calls) if c.output.home.storage == "weight"]
    if at is None or (writes and min(writes) < at):
        raise PlanError(f"internal: a weight is updated (call {min(writes) if writes else '?'}) "
                        f"before the loss is known (call {at})")


def build_program(func, weights, constants, kind, elementwise: set[str] | None = None,
                  inplace: dict[str, int] | None = None, scratch: dict | None = None) -> Program:
    """`elementwise`: kernels whose output element i reads element i of every same-shaped input
    (TVM's op patterns kElemWise/kBroadcast); their output may take over a dying input's storage.
    `inplace`: kernels that may write their output over input number k (no larger than it),
    e.g. the in-place depthwise (tinytvm/quant/inplace.py). `scratch`: {kernel: [(shape, dtype)]}
    of the scratch parameters `lower.lift_scratch` gave it (planned in the arena too)."""
    program = _Builder(func, weights, constants, kind, scratch).build()
    if elementwise or inplace:
        _reuse_dying_inputs(program, elementwise or set(), inplace or {})
    return program


def _reuse_dying_inputs(program: Program, elementwise: set[str], inplace: dict[str, int]) -> None:
    """In-place element-wise ops: relu, clip, bias add, ... write over an input that no later
    call reads, so an activation and its pre-activation never need two buffers; in-place
    kernels likewise over their one designated input."""
    last_read: dict[int, int] = {}
    for i, call in enumerate(program.calls):
        for t in call.inputs:
            last_read[id(t)] = i
    results = {id(t) for t in program.outputs} | {id(new) for new, _ in program.updates}
    for i, call in enumerate(program.calls):
        out = call.output
        if ((call.kernel not in elementwise and call.kernel not in inplace)
                or out.alias_of is not None or id(out) in results or out.storage != "arena"):
            continue
        if call.kernel in inplace:
            t = call.inputs[inplace[call.kernel]]
            if (t.home.storage == "arena" and last_read.get(id(t)) == i and t.dtype == out.dtype
                    and out.nbytes <= t.home.nbytes and id(t) not in results):
                out.alias_of = t.home
            continue
        for t in call.inputs:
            home = t.home
            if (home.storage == "arena" and last_read.get(id(t)) == i and t.shape == out.shape
                    and t.dtype == out.dtype and id(t) not in results):
                out.alias_of = home
                break


def weight_tensors(func: relax.Function, trainable: set[str]) -> dict[str, Tensor]:
    num_input = int(func.attrs["num_input"])
    values = [v.numpy() for v in func.attrs["params"]]
    out = {}
    for var, value in zip(func.params[num_input:], values):
        out[var.name] = Tensor(f"tt_w_{c_identifier(var.name)}", shape_of(var), str(var.ty.dtype),
                               "weight", value=value, trainable=var.name in trainable,
                               relax_name=var.name)
    return out
