"""A numpy interpreter for int8 Relax graphs made of ``qops`` kernels, independent of TVM's codegen.

``run_int8_graph(mod, x)`` walks ``main``'s bindings in order. A ``call_tir`` to a PrimFunc
is dispatched on its ``"tt.op"`` / ``"tt.requant"`` / ``"tt.*"`` attributes (never on its TIR
body) and computed with ``tinytvm.models.paper``'s integer kernels; weights are read from
``main``'s ``"params"`` attribute. ``reshape`` / ``flatten`` / ``squeeze`` are shape-only.

Arithmetic per kernel (that of ``qops``):

- ``qconv2d`` / ``qclassifier``: ``paper.conv_accumulate`` (per group for grouped convs);
  ``tt.requant`` "float32" → ``paper.requantize(..., "float32")`` with ``M`` = the scale
  tensor; "fixed" → ``saturate_int32(acc + bias) * M`` by ``fixed_multiply``; a float32 output
  → ``(f32(acc) + f32(bias)) * scale``.
- ``qadd``: float → ``paper.residual_add``; "fixed" → TFLite's int8 add (``qops.qadd_fixed``).
- ``qavgpool``: ``paper.avg_pool``.
"""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax

from ..errors import UnsupportedModelError
from ..models import paper
from ..models.paper import INT32_MAX, INT32_MIN, QConv, QResidual
from . import qops

SHAPE_OPS = ("relax.reshape", "relax.flatten", "relax.squeeze")


def run_int8_graph(mod: tvm.IRModule, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every binding's value of ``mod["main"]`` run on ``x`` (by binding name), the input under
    its parameter name, and the function's result under ``"output"``."""
    main = mod["main"]
    params = list(main.params)
    weights = [np.asarray(v.numpy()) for v in main.attrs["params"]]
    num_input = len(params) - len(weights)
    if num_input != 1:
        raise ValueError(f"main takes {num_input} inputs besides its weights; expected 1")
    env: dict[relax.Var, np.ndarray] = {params[0]: np.asarray(x)}
    env.update(zip(params[1:], weights))
    values = {params[0].name: env[params[0]]}
    for block in main.body.blocks:
        for binding in block.bindings:
            env[binding.var] = _evaluate(mod, binding, env)
            values[binding.var.name] = env[binding.var]
    values["output"] = env[main.body.body]
    return values


def _evaluate(mod: tvm.IRModule, binding, env) -> np.ndarray:
    call = binding.value
    if isinstance(call, relax.Var):
        return env[call]
    if not isinstance(call, relax.Call) or not isinstance(call.op, tvm.ir.Op):
        raise UnsupportedModelError(f"binding '{binding.var.name}' is not an op call")
    name = call.op.name
    if name in SHAPE_OPS:
        shape = [int(s) for s in binding.var.ty.shape]
        return env[call.args[0]].reshape(shape)
    if name != "relax.call_tir":
        raise UnsupportedModelError(f"op '{name}' (binding '{binding.var.name}') is not an int8 "
                                    "kernel the reference knows")
    prim = mod[call.args[0]]
    args = [env[a] for a in call.args[1].fields]
    return run_kernel(prim, args)


def run_kernel(prim: tvm.tirx.PrimFunc, args: list[np.ndarray]) -> np.ndarray:
    """One ``qops`` kernel's output from its input arrays, by its ``tt.*`` attributes."""
    op = qops.tt_op(prim)
    attrs = prim.attrs
    out = prim.params[-1]
    out_shape = tuple(int(s) for s in out.shape)
    if op in ("qconv2d", "qclassifier"):
        y = _conv(attrs, args, str(out.dtype))
    elif op == "qadd":
        y = _add(attrs, *args)
    elif op == "qavgpool":
        y = paper.avg_pool(args[0])
    else:
        raise UnsupportedModelError(f"kernel with tt.op {op!r} is not known to the reference")
    return y.reshape(out_shape)


def _attr(attrs, key: str, default=None):
    return attrs.get(key, default)


def _qconv(attrs, weight: np.ndarray, bias: np.ndarray, x_shape) -> QConv:
    """A ``paper.QConv`` carrying the kernel's geometry and zero points (scales unused)."""
    pad = tuple(int(p) for p in _attr(attrs, "tt.padding", [0, 0]))
    o, _, kh, kw = weight.shape
    g = qops.ConvGeometry.of(x_shape, weight.shape, int(_attr(attrs, "tt.stride", 1)), pad,
                             int(_attr(attrs, "tt.groups", 1)))
    return QConv("conv", g.in_channels, o, (kh, kw), g.stride, g.groups, pad, g.in_hw,
                 g.out_hw, weight, bias, np.ones(o, np.float32), 1.0,
                 int(attrs["tt.x_zero"]), 1.0, int(attrs["tt.y_zero"]))


def accumulate(conv: QConv, x: np.ndarray) -> np.ndarray:
    """int64 ``conv(x - x_zero, W)`` for any groups (paper's kernel handles 1 and depthwise)."""
    g = conv.groups
    if g == 1 or g == conv.in_channels == conv.out_channels:
        return paper.conv_accumulate(conv, x)
    cin, opg = conv.in_channels // g, conv.out_channels // g
    parts = []
    for i in range(g):
        sub = QConv(**{**conv.__dict__, "groups": 1, "in_channels": cin, "out_channels": opg,
                       "weight": conv.weight[i * opg:(i + 1) * opg]})
        parts.append(paper.conv_accumulate(sub, x[:, i * cin:(i + 1) * cin]))
    return np.concatenate(parts, axis=1)


def _conv(attrs, args: list[np.ndarray], out_dtype: str) -> np.ndarray:
    x, weight, bias = args[:3]
    conv = _qconv(attrs, weight, bias, x.shape)
    acc = accumulate(conv, x)
    per_channel = (slice(None), None, None)
    if out_dtype == "float32":
        total = acc.astype(np.float32) + bias.astype(np.float32)[per_channel]
        return total * args[3].astype(np.float32)[per_channel]
    if str(_attr(attrs, "tt.requant", "float32")) == "fixed":
        multiplier, shift = (a[per_channel] for a in args[3:5])
        total = np.clip(acc + bias.astype(np.int64)[per_channel], INT32_MIN, INT32_MAX)
        return _clamp_int8(fixed_multiply(total, multiplier, shift) + conv.y_zero)
    scaled = QConv(**{**conv.__dict__, "w_scales": args[3].astype(np.float32)})
    return paper.requantize(scaled, acc, "float32")


def fixed_multiply(x: np.ndarray, multiplier, shift) -> np.ndarray:
    """``qops``' fixed-point ``x * M``: ``saturate_int32(x * 2**max(-shift, 0))``, then
    ``paper.multiply_by_quantized_multiplier`` (double rounding) for the right shift."""
    shift = np.asarray(shift, np.int64)
    left = np.maximum(-shift, 0)
    scaled = np.clip(np.asarray(x, np.int64) << left, INT32_MIN, INT32_MAX)
    return paper.multiply_by_quantized_multiplier(scaled, multiplier, np.maximum(shift, 0))


def _add(attrs, a: np.ndarray, b: np.ndarray, qp: np.ndarray) -> np.ndarray:
    za, zb, zo = (int(attrs[k]) for k in ("tt.a_zero", "tt.b_zero", "tt.out_zero"))
    if str(_attr(attrs, "tt.requant", "float32")) == "fixed":
        left = qops.FIXED_ADD_LEFT_SHIFT
        ta = fixed_multiply((a.astype(np.int64) - za) << left, qp[0], qp[1])
        tb = fixed_multiply((b.astype(np.int64) - zb) << left, qp[2], qp[3])
        return _clamp_int8(fixed_multiply(ta + tb, qp[4], qp[5]) + zo)
    sa, sb, so = (float(s) for s in qp)
    res = QResidual("add", sb, zb, so, zo)
    producer = QConv("a", 1, 1, (1, 1), 1, 1, (0, 0), (1, 1), (1, 1), np.zeros((1, 1, 1, 1),
                     np.int8), np.zeros(1, np.int32), np.ones(1, np.float32), 1.0, 0, sa, za)
    return paper.residual_add(res, producer, a, b, "float32")


def _clamp_int8(v: np.ndarray) -> np.ndarray:
    return np.clip(v, paper.INT8_MIN, paper.INT8_MAX).astype(np.int8)
