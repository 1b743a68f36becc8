"""NormalizeHead: the classifier head in one canonical form, whatever the exporter wrote.

Guarantees: global average pooling followed by Flatten (ONNX `GlobalAveragePool` + `Flatten`,
imported as `mean(keepdims=True)` + `reshape`) is one `mean(axis=[2, 3])` giving (N, C); a Gemm
with transB=0 keeps `matmul(x, W)`, with transB=1 `matmul(x, permute_dims(W))` — the form the
gradient rules expect. One kernel and one saved (N, C, 1, 1) tensor fewer per step.
"""

from __future__ import annotations

from tvm import relax

from tinytvm.ir import FunctionView, op_name, shape_of


def _is_flatten_of_pool(value, defs, uses) -> relax.Var | None:
    """The pooled input if `value` is reshape(mean(x, [2, 3], keepdims)) to (N, C)."""
    if op_name(value) != "relax.reshape":
        return None
    pooled = value.args[0]
    mean = defs.get(pooled)
    if op_name(mean) != "relax.mean" or uses.get(pooled) != 1 or not mean.attrs.keepdims:
        return None
    axes = sorted(int(a) for a in mean.attrs.axis)
    source = mean.args[0]
    n, c = shape_of(source)[:2]
    if axes != [2, 3] or len(shape_of(source)) != 4 or shape_of(value.args[0])[2:] != (1, 1):
        return None
    return source if tuple(int(s) for s in value.ty.shape) == (n, c) else None


def normalize_head(func: relax.Function) -> relax.Function:
    view = FunctionView.of(func)
    defs, uses = view.var_to_value(), view.use_counts()
    out = []
    for binding in view.bindings:
        source = _is_flatten_of_pool(binding.value, defs, uses)
        if source is not None:
            binding = relax.VarBinding(binding.var, relax.op.mean(source, axis=[2, 3], keepdims=False))
        out.append(binding)
    view.bindings = out
    return view.to_function()


@relax.transform.function_pass(opt_level=0, name="NormalizeHead")
class NormalizeHead:
    def transform_function(self, func, mod, ctx):
        return normalize_head(func)
