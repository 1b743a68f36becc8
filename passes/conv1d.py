"""1-D convolutions and pooling, added the way a user would: only through tinytvm's public API.

Gradient rules for `nn.conv1d`, `nn.max_pool1d` and `nn.avg_pool1d` view the 1-D op as its 2-D
twin with height 1 (reshape in, 2-D rule, reshape out) and reuse the 2-D rule whatever it is,
so they stay right if someone improves the 2-D rules. `Normalize1DHead` is the canonicalization
for 1-D classifier heads (global pool over time + flatten → one `mean`).
Nothing here is imported by the compiler core; importing `tinytvm.passes` registers it.
"""

from __future__ import annotations

from tvm import relax

from tinytvm.ir import FunctionView, op_name, shape_of
from tinytvm.passes.gradients import gradient_rule, register_gradient


def _lift(bb, expr, name):
    """(N, C, W) → (N, C, 1, W) as a new binding."""
    n, c, w = shape_of(expr)
    return bb.emit(relax.op.reshape(expr, (n, c, 1, w)), name_hint=name)


def _lower(expr, like):
    return relax.op.reshape(expr, shape_of(like))


def _twin_gradient(op_2d: str, call_2d, var, grad, bb):
    """Call the registered 2-D rule on a 2-D call; its orig_var only carries the output shape."""
    n, c, w = shape_of(var)
    out_2d = relax.Var(f"{var.name}_2d", relax.TensorType((n, c, 1, w), var.ty.dtype))
    return gradient_rule(op_2d)(out_2d, call_2d, _lift(bb, grad, f"d_{var.name}_2d"), bb)


@register_gradient("relax.nn.conv1d")
def conv1d_gradient(var, call, grad, bb):
    data, weight = call.args
    a = call.attrs
    o, i, k = shape_of(weight)
    data_2d = _lift(bb, data, f"{data.name}_2d")
    weight_2d = bb.emit(relax.op.reshape(weight, (o, i, 1, k)), name_hint=f"{weight.name}_2d")
    left, right = (int(p) for p in a.padding)
    call_2d = relax.op.nn.conv2d(data_2d, weight_2d, strides=(1, int(a.strides[0])),
                                 padding=(0, left, 0, right), dilation=(1, int(a.dilation[0])),
                                 groups=int(a.groups))
    d_data, d_weight = _twin_gradient("relax.nn.conv2d", call_2d, var, grad, bb)
    return [_lower(bb.emit(d_data), data), _lower(bb.emit(d_weight), weight)]


def _pool_gradient(op_1d: str, op_2d: str, make_2d):
    @register_gradient(op_1d)
    def rule(var, call, grad, bb):
        (data,) = call.args[:1]
        a = call.attrs
        left, right = (int(p) for p in a.padding)
        call_2d = make_2d(_lift(bb, data, f"{data.name}_2d"), pool_size=(1, int(a.pool_size[0])),
                          strides=(1, int(a.strides[0])), padding=(0, left, 0, right),
                          dilation=(1, int(a.dilation[0])), ceil_mode=bool(a.ceil_mode),
                          count_include_pad=bool(a.count_include_pad))
        (d_data,) = _twin_gradient(op_2d, call_2d, var, grad, bb)[:1]
        return [_lower(bb.emit(d_data), data)]

    return rule


max_pool1d_gradient = _pool_gradient("relax.nn.max_pool1d", "relax.nn.max_pool2d",
                                     relax.op.nn.max_pool2d)
avg_pool1d_gradient = _pool_gradient("relax.nn.avg_pool1d", "relax.nn.avg_pool2d",
                                     relax.op.nn.avg_pool2d)


def normalize_1d_head(func: relax.Function) -> relax.Function:
    """mean(x, axis=[2], keepdims=True) + reshape to (N, C) → mean(x, axis=[2])."""
    view = FunctionView.of(func)
    defs, uses = view.var_to_value(), view.use_counts()
    out = []
    for binding in view.bindings:
        value = binding.value
        mean = defs.get(value.args[0]) if op_name(value) == "relax.reshape" else None
        if (op_name(mean) == "relax.mean" and mean.attrs.keepdims and uses.get(value.args[0]) == 1
                and [int(a) for a in mean.attrs.axis] == [2] and len(shape_of(mean.args[0])) == 3
                and shape_of(binding.var) == shape_of(mean.args[0])[:2]):
            binding = relax.VarBinding(binding.var, relax.op.mean(mean.args[0], axis=[2]))
        out.append(binding)
    view.bindings = out
    return view.to_function()


@relax.transform.function_pass(opt_level=0, name="Normalize1DHead")
class Normalize1DHead:
    def transform_function(self, func, mod, ctx):
        return normalize_1d_head(func)
