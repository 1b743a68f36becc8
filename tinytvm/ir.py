"""Small helpers over Relax functions in tinytvm's convention.

A model function has one dataflow block; its parameters are the model inputs (`num_input`
of them) followed by the weights, whose values live in the attribute `params`. Passes read
and rebuild functions through these helpers so that convention is kept in one place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import tvm
from tvm import relax

from .errors import UnsupportedModelError


@dataclass
class FunctionView:
    """A Relax function opened up: inputs, weights with values, bindings, output."""

    inputs: list[relax.Var]
    weights: list[relax.Var]
    values: dict[str, np.ndarray]
    bindings: list[relax.VarBinding]
    output: relax.Expr
    attrs: dict

    @classmethod
    def of(cls, func: relax.Function) -> "FunctionView":
        attrs = dict(func.attrs) if func.attrs is not None else {}
        num_input = int(attrs.get("num_input", len(func.params)))
        weights = list(func.params[num_input:])
        raw = list(attrs.get("params", []))
        if raw and len(raw) != len(weights):
            raise UnsupportedModelError(
                f"function has {len(weights)} weight parameters but {len(raw)} values")
        values = {w.name: arr.numpy() for w, arr in zip(weights, raw)}
        body = func.body
        if not isinstance(body, relax.SeqExpr) or len(body.blocks) != 1:
            raise UnsupportedModelError("expected a function with exactly one dataflow block "
                                        "(control flow is not supported)")
        return cls(list(func.params[:num_input]), weights, values,
                   list(body.blocks[0].bindings), body.body, attrs)

    def to_function(self) -> relax.Function:
        bb = relax.BlockBuilder()
        bindings = [relax.VarBinding(b.var, bb.normalize(b.value)) for b in self.bindings]
        block = relax.DataflowBlock(bindings)
        body = relax.SeqExpr([block], self.output)
        attrs = dict(self.attrs)
        attrs["num_input"] = len(self.inputs)
        attrs["params"] = [tvm.runtime.tensor(np.ascontiguousarray(self.values[w.name]))
                           for w in self.weights]
        func = relax.Function(self.inputs + self.weights, body, self.output.ty)
        func = func.with_attrs(attrs)
        return relax.analysis.remove_all_unused(func)

    def var_to_value(self) -> dict[relax.Var, relax.Expr]:
        return {b.var: b.value for b in self.bindings}

    def use_counts(self) -> dict[relax.Var, int]:
        counts: dict[relax.Var, int] = {}
        for expr in [b.value for b in self.bindings] + [self.output]:
            for var in relax.analysis.free_vars(expr):
                counts[var] = counts.get(var, 0) + 1
        return counts


def bind(name: str, call: relax.Expr) -> relax.VarBinding:
    """A new dataflow binding for a call whose arguments are already variables or constants."""
    value = relax.BlockBuilder().normalize(call)
    return relax.VarBinding(relax.DataflowVar(name, value.ty), value)


def const_array(expr) -> np.ndarray | None:
    """The value of a Relax constant, or None for anything else."""
    if isinstance(expr, tvm.ir.expr.Constant):
        return expr.value.numpy()
    return None


def tensor_var(name: str, shape, dtype: str = "float32") -> relax.Var:
    return relax.Var(name, relax.TensorType([int(s) for s in shape], dtype))


def shape_of(expr: relax.Expr) -> tuple[int, ...]:
    return tuple(int(s) for s in expr.ty.shape)


def dtype_of(expr: relax.Expr) -> str:
    return str(expr.ty.dtype)


def op_name(value: relax.Expr) -> str | None:
    """'relax.nn.conv2d' for an op call, 'call_tir:<prim>' for a call_tir, else None."""
    if isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.Op):
        if value.op.name == "relax.call_tir":
            return f"call_tir:{value.args[0].name_hint}"
        return value.op.name
    return None


def call_tir_kernel(mod: tvm.IRModule, value: relax.Expr):
    """The PrimFunc a `call_tir` binding value calls, or None for any other value."""
    name = op_name(value)
    return mod[value.args[0]] if name and name.startswith("call_tir:") else None


def rewrite_function(mod: tvm.IRModule, name: str, rewrite) -> tvm.IRModule:
    """`mod` with function `name` replaced by `rewrite(mod, bb)`, where `bb` is a BlockBuilder
    over `mod` that receives any kernels the rewrite adds; `mod` unchanged if it has no `name`."""
    if name not in [gv.name_hint for gv in mod.functions]:
        return mod
    bb = relax.BlockBuilder(mod)
    func = rewrite(mod, bb)
    out = bb.get()
    out[name] = func
    return out


def rewrite_functions(mod: tvm.IRModule, rewrite) -> tvm.IRModule:
    """`mod` with every Relax function `name` replaced by `rewrite(mod, name, bb)` (one
    BlockBuilder over `mod` collects the kernels all the rewrites add)."""
    names = [gv.name_hint for gv, f in mod.functions.items() if isinstance(f, relax.Function)]
    bb = relax.BlockBuilder(mod)
    new = {name: rewrite(mod, name, bb) for name in names}
    out = bb.get()
    for name, func in new.items():
        out[name] = func
    return out


def drop_unused_weights(func: relax.Function) -> relax.Function:
    """Remove weight parameters nothing reads any more (and their values)."""
    view = FunctionView.of(func)
    used = view.use_counts()
    view.weights = [w for w in view.weights if w in used]
    view.values = {w.name: view.values[w.name] for w in view.weights}
    return view.to_function()


def c_identifier(name: str) -> str:
    """A C identifier for a tensor or parameter name (ONNX names may hold '.', '/', ':')."""
    ident = re.sub(r"[^0-9A-Za-z_]", "_", name)
    return ident if not ident[:1].isdigit() else f"_{ident}"
