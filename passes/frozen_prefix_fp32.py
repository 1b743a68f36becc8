"""FrozenPrefixFp32: the inference-style memory tricks for float32 graphs' frozen layers.

Requires: canonical fp32 Relax functions (FuseClip: conv2d → add(reshape(bias)) → clip).
Guarantees: in every Relax function, a 1x1 expansion layer whose output only the following
depthwise layer reads is fused with it (`expand_depthwise_fp32`: channel by channel, the
expanded tensor never exists), and any other depthwise layer whose input dies there runs in
place (`depthwise_inplace_fp32`); layers with a trainable weight or bias, or whose
intermediate values the backward reads, keep their separate ops (they have more readers). The
numbers are the legalized ops' bit for bit (tinytvm/fp32_frozen.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import tvm
from tvm import relax

from tinytvm.fp32_frozen import depthwise_inplace_fp32, expand_depthwise_fp32
from tinytvm.ir import FunctionView, op_name, rewrite_functions, shape_of
from tinytvm.quant.qops import ConvGeometry


@dataclass
class _Layer:
    """clip(conv2d(x, weight) + reshape(bias)): its output var and what the rewrite removes."""

    out: relax.Var
    x: relax.Expr
    weight: relax.Var
    bias: relax.Var
    geometry: ConvGeometry
    clip: tuple[float, float] | None
    internal: list  # bindings only this layer reads


def _layer(out, defs, uses, weights) -> _Layer | None:
    value, clip, internal = defs.get(out), None, []
    if op_name(value) == "relax.clip":
        clip = (float(value.args[1].value), float(value.args[2].value))
        inner = value.args[0]
        if uses.get(inner) != 1:
            return None
        internal.append(inner)
        value = defs.get(inner)
    if op_name(value) != "relax.add":
        return None
    conv_var, bias_term = value.args
    conv, reshape = defs.get(conv_var), defs.get(bias_term)
    if op_name(conv) != "relax.nn.conv2d" or op_name(reshape) != "relax.reshape":
        return None
    weight, bias = conv.args[1], reshape.args[0]
    if not (weight in weights and bias in weights and uses.get(conv_var) == 1
            and uses.get(bias_term) == 1 and str(out.ty.dtype) == "float32"):
        return None
    a = conv.attrs
    top, left, bottom, right = (int(p) for p in a.padding)
    strides = {int(st) for st in a.strides}
    if any(int(d) != 1 for d in a.dilation) or len(strides) != 1 or (top, left) != (bottom,
                                                                                   right):
        return None  # symmetric padding, one stride, no dilation: what the kernels implement
    g = ConvGeometry.of(shape_of(conv.args[0]), shape_of(weight), strides.pop(), (top, left),
                        int(a.groups))
    return _Layer(out, conv.args[0], weight, bias, g, clip, internal + [conv_var, bias_term])


def _is_depthwise(g: ConvGeometry) -> bool:
    return g.groups == g.in_channels == g.out_channels > 1


def _is_expansion(g: ConvGeometry) -> bool:
    return g.groups == 1 and g.kernel == (1, 1) and g.stride == 1 and g.padding == (0, 0)


def rewrite(mod: tvm.IRModule, name: str, bb: relax.BlockBuilder) -> relax.Function:
    view = FunctionView.of(mod[name])
    defs, uses = view.var_to_value(), view.use_counts()
    weights = set(view.weights)
    replace, drop = {}, set()
    for binding in view.bindings:
        layer = _layer(binding.var, defs, uses, weights)
        if layer is None or not _is_depthwise(layer.geometry) or uses.get(layer.x) != 1:
            continue
        producer = _layer(layer.x, defs, uses, weights) if isinstance(layer.x, relax.Var) else None
        if producer is not None and _is_expansion(producer.geometry):
            kernel = expand_depthwise_fp32(producer.geometry, layer.geometry, producer.clip,
                                           layer.clip)
            args = [producer.x, producer.weight, producer.bias, layer.weight, layer.bias]
            drop |= {*producer.internal, producer.out}
            gv = bb.add_func(kernel, "expand_depthwise_fp32")
        else:
            kernel = depthwise_inplace_fp32(layer.geometry, layer.clip)
            args = [layer.x, layer.weight, layer.bias]
            gv = bb.add_func(kernel, "depthwise_fp32_inplace")
        replace[layer.out] = relax.call_tir(gv, args, layer.out.ty)
        drop |= set(layer.internal)
    if not replace:
        return mod[name]
    view.bindings = [relax.VarBinding(b.var, replace.get(b.var, b.value))
                     for b in view.bindings if b.var not in drop]
    return view.to_function()


@tvm.transform.module_pass(opt_level=0, name="FrozenPrefixFp32")
class FrozenPrefixFp32:
    """fp32: expansion + depthwise fused, other depthwise layers in place, where only they read."""

    def transform_module(self, mod, ctx):
        return rewrite_functions(mod, rewrite)
