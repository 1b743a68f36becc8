"""FuseClip: every clamp to constant bounds becomes one `relax.clip` op.

Guarantees: no `maximum`/`minimum` pair (as `call_tir` from the ONNX importer, or as Relax
ops) that clamps a tensor to constant bounds is left; ReLU6 is `clip(x, 0, 6)`, a single op
whose gradient needs only its output. The ONNX importer's NaN guards on the bounds
(`where(isnan(b), ±inf, b)`) and the bound parameters go away with it.
"""

from __future__ import annotations

import numpy as np
from tvm import relax

from tinytvm.ir import FunctionView, const_array, drop_unused_weights, op_name


def _const_value(expr, view: FunctionView, defs) -> float | None:
    """The scalar behind a clip bound: a constant, a weight, or a NaN guard around either."""
    while isinstance(expr, relax.Var) and expr in defs:
        value = defs[expr]
        if op_name(value) != "relax.where":
            return None
        expr = value.args[2]
    array = const_array(expr)
    if array is not None:
        pass
    elif isinstance(expr, relax.Var) and expr.name in view.values:
        array = view.values[expr.name]
    else:
        return None
    return float(array) if array.size == 1 else None


def _clamp_parts(value, defs, kind: str):
    """(tensor, bound) if value is maximum/minimum of a tensor and a bound, else None."""
    name = op_name(value)
    if name == f"relax.{kind}":
        return value.args[0], value.args[1]
    if name and name.startswith(f"call_tir:{kind}"):
        args = value.args[1].fields
        return args[0], args[1]
    return None


def fuse_clip(func: relax.Function) -> relax.Function:
    view = FunctionView.of(func)
    defs = view.var_to_value()
    new_bindings = []
    for binding in view.bindings:
        value = binding.value
        outer = _clamp_parts(value, defs, "minimum")
        inner = _clamp_parts(defs.get(outer[0]), defs, "maximum") if outer else None
        if inner is not None:
            lo = _const_value(inner[1], view, defs)
            hi = _const_value(outer[1], view, defs)
            if lo is not None and hi is not None and np.isfinite([lo, hi]).all():
                value = relax.op.clip(inner[0], lo, hi)
        new_bindings.append(relax.VarBinding(binding.var, value))
    view.bindings = new_bindings
    return drop_unused_weights(view.to_function())


@relax.transform.function_pass(opt_level=0, name="FuseClip")
class FuseClip:
    def transform_function(self, func, mod, ctx):
        return fuse_clip(func)
