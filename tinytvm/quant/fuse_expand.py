"""The paper's inference trick: a MobileNet block's 1x1 expansion fused with its depthwise conv.

``qexpand_depthwise`` computes, for each expanded channel ``c``, that channel of the 1x1
expansion (requantized exactly like ``qops.qconv2d``: its own bias, scale and zero points) into
a one-channel scratch buffer of H x W int8, then the depthwise conv of that channel (stride 1 or
2, any odd kernel, the padding read as the depthwise's ``x_zero``) into output channel ``c``.
The expanded (1, E, H, W) tensor never exists whole: the only temporary is the H x W int8
scratch (a stack array in the generated C, e.g. 64 x 64 = 4096 B for mbv2-w0.35's block 1)
next to the one-element int32 accumulators. The result is bit-exact with running the two
``qconv2d`` kernels one after the other: same integer accumulation, same float32 rescale.

``fuse_expand_depthwise(mod, func_name)`` rewrites one Relax function: every ``call_tir`` of a
1x1, stride 1, unpadded, groups=1 ``qconv2d`` whose output is used only by a depthwise
``qconv2d`` ``call_tir`` becomes one ``call_tir`` of ``qexpand_depthwise`` with the inputs
``(x, w_expand, w_depthwise, b_expand, b_depthwise, s_expand, s_depthwise)``. The pass that
applies it is ``passes/fuse_expand_depthwise.py``.
"""

from __future__ import annotations

import functools
from collections import Counter

import tvm
from tvm import relax, tirx
from tvm.script import tirx as T

from .qops import ConvGeometry, _requantize, tt_op

OP = "qexpand_depthwise"


def qexpand_depthwise(x_shape, expand_w_shape, depthwise_w_shape, *, stride: int = 1,
                      padding=0, expand_x_zero: int = 0, expand_y_zero: int = 0,
                      dw_x_zero: int = 0, dw_y_zero: int = 0) -> tirx.PrimFunc:
    """The fused kernel ``(x, w1, w2, b1, b2, s1, s2) -> y``.

    x int8 (1, C, H, W); w1 int8 (E, C, 1, 1) (the expansion: stride 1, no padding); w2 int8
    (E, 1, k, k) (the depthwise: ``stride``, ``padding`` filled with ``dw_x_zero``); b1, b2
    int32 (E,); s1, s2 float32 (E,); y int8 (1, E, Ho, Wo).
    """
    expand = ConvGeometry.of(x_shape, expand_w_shape)
    if expand.kernel != (1, 1):
        raise ValueError(f"the expansion must be 1x1, got weight {tuple(expand_w_shape)}")
    e = expand.out_channels
    depthwise = ConvGeometry.of(expand.y_shape, depthwise_w_shape, stride, padding, groups=e)
    if depthwise.out_channels != e:
        raise ValueError(f"the depthwise weight {tuple(depthwise_w_shape)} is not {e} channels")
    return _fused(expand, depthwise, int(expand_x_zero), int(expand_y_zero), int(dw_x_zero),
                  int(dw_y_zero))


@functools.cache
def _fused(g1: ConvGeometry, g2: ConvGeometry, x1_zero: int, y1_zero: int, x2_zero: int,
           y2_zero: int) -> tirx.PrimFunc:
    cin, e = g1.in_channels, g1.out_channels
    h, w = g1.in_hw
    (kh, kw), (ph, pw), s = g2.kernel, g2.padding, g2.stride
    ho, wo = g2.out_hw
    attrs = {"tt.op": OP, "tt.stride": s, "tt.padding": [ph, pw], "tt.groups": e,
             "tt.x_zero": int(x1_zero), "tt.y_zero": int(y2_zero),
             "tt.expand_y_zero": int(y1_zero), "tt.depthwise_x_zero": int(x2_zero),
             "tt.scratch_bytes": h * w}

    def requant(acc, bias, scale, c, zero):
        total = acc.astype("float32") + bias[c].astype("float32")
        return _requantize(total * scale[c], zero)

    def tap(scratch, row, col):
        value = scratch[row, col].astype("int32") - x2_zero
        if ph == 0 and pw == 0:
            return value
        inside = tirx.all(row >= 0, row < h, col >= 0, col < w)
        return tirx.if_then_else(inside, value, 0)

    @T.prim_func(private=True, s_tir=True)
    def kernel(x: T.Buffer(g1.x_shape, "int8"), w1: T.Buffer(g1.w_shape, "int8"),
               w2: T.Buffer(g2.w_shape, "int8"), b1: T.Buffer((e,), "int32"),
               b2: T.Buffer((e,), "int32"), s1: T.Buffer((e,), "float32"),
               s2: T.Buffer((e,), "float32"), y: T.Buffer(g2.y_shape, "int8")):
        T.func_attr(attrs)
        scratch = T.alloc_buffer((h, w), "int8")
        for c in range(e):
            for i, j in T.grid(h, w):
                with T.sblock("expand"):
                    vc, vi, vj = T.axis.remap("SSS", [c, i, j])
                    acc = T.sblock_alloc_buffer((1,), "int32")
                    acc[0] = 0
                    for rc in range(cin):
                        acc[0] = acc[0] + (T.Cast("int32", x[0, rc, vi, vj]) - x1_zero) * T.Cast(
                            "int32", w1[vc, rc, 0, 0])
                    scratch[vi, vj] = requant(acc[0], b1, s1, vc, y1_zero)
            for i, j in T.grid(ho, wo):
                with T.sblock("depthwise"):
                    vc, vi, vj = T.axis.remap("SSS", [c, i, j])
                    acc = T.sblock_alloc_buffer((1,), "int32")
                    acc[0] = 0
                    for ry, rx in T.grid(kh, kw):
                        acc[0] = acc[0] + tap(scratch, vi * s + ry - ph, vj * s + rx - pw) * T.Cast(
                            "int32", w2[vc, 0, ry, rx])
                    y[0, vc, vi, vj] = requant(acc[0], b2, s2, vc, y2_zero)

    return kernel


# --- the pass -------------------------------------------------------------------------------


def _int(attrs, key):
    return int(attrs[key])


def _pair_attr(attrs, key):
    return tuple(int(v) for v in attrs[key])


def _call_tir(mod: tvm.IRModule, value):
    """(PrimFunc, args) if ``value`` is a ``call_tir`` to a PrimFunc of ``mod``, else None."""
    if not isinstance(value, relax.Call) or not isinstance(value.op, tvm.ir.Op):
        return None
    if value.op.name != "relax.call_tir":
        return None
    gv, args = value.args[0], value.args[1]
    func = mod[gv]
    if not isinstance(func, tirx.PrimFunc) or not isinstance(args, relax.Tuple):
        return None
    return func, list(args.fields)


def _shape(func: tirx.PrimFunc, i: int) -> tuple[int, ...]:
    return tuple(int(v) for v in func.params[i].shape)


def _float_requant(func: tirx.PrimFunc) -> bool:
    """The fused kernel rescales in float32 (fixed-point convs are not fused yet)."""
    return str(func.attrs.get("tt.requant", "float32")) == "float32"


def _is_expansion(func: tirx.PrimFunc) -> bool:
    a = func.attrs
    return (tt_op(func) == "qconv2d" and _float_requant(func) and _int(a, "tt.groups") == 1 and _int(a, "tt.stride") == 1
            and _pair_attr(a, "tt.padding") == (0, 0) and _shape(func, 1)[2:] == (1, 1))


def _is_depthwise(func: tirx.PrimFunc) -> bool:
    if tt_op(func) != "qconv2d" or not _float_requant(func):
        return False
    x_shape, w_shape = _shape(func, 0), _shape(func, 1)
    groups = _int(func.attrs, "tt.groups")
    return groups == x_shape[1] == w_shape[0] and w_shape[1] == 1


def _fused_for(expand: tirx.PrimFunc, depthwise: tirx.PrimFunc) -> tirx.PrimFunc:
    a1, a2 = expand.attrs, depthwise.attrs
    return qexpand_depthwise(
        _shape(expand, 0), _shape(expand, 1), _shape(depthwise, 1),
        stride=_int(a2, "tt.stride"), padding=_pair_attr(a2, "tt.padding"),
        expand_x_zero=_int(a1, "tt.x_zero"), expand_y_zero=_int(a1, "tt.y_zero"),
        dw_x_zero=_int(a2, "tt.x_zero"), dw_y_zero=_int(a2, "tt.y_zero"))


def _uses(func: relax.Function) -> Counter:
    """How many bindings (and the function's result) read each variable."""
    counts: Counter = Counter()
    for block in func.body.blocks:
        for binding in block.bindings:
            counts.update(relax.analysis.free_vars(binding.value))
    counts.update(relax.analysis.free_vars(func.body.body))
    return counts


def fuse_expand_depthwise(mod: tvm.IRModule, func_name: str = "main") -> tvm.IRModule:
    """``mod`` with every fusable (expansion, depthwise) pair of ``func_name`` fused."""
    main = mod[func_name]
    uses = _uses(main)
    by_var = {}
    for block in main.body.blocks:
        for binding in block.bindings:
            by_var[binding.var] = binding
    bb = relax.BlockBuilder(mod)  # adds the fused kernels with typed, unique GlobalVars
    kernels: dict[tirx.PrimFunc, relax.GlobalVar] = {}
    fused_away: set = set()
    replacement: dict = {}
    for block in main.body.blocks:
        for binding in block.bindings:
            call = _call_tir(mod, binding.value)
            if call is None or not _is_depthwise(call[0]):
                continue
            dw_func, (dw_in, w2, b2, s2) = call
            producer = by_var.get(dw_in)
            if producer is None or uses[dw_in] != 1:
                continue
            inner = _call_tir(mod, producer.value)
            if inner is None or not _is_expansion(inner[0]):
                continue
            ex_func, (x, w1, b1, s1) = inner
            fused = _fused_for(ex_func, dw_func)
            if fused not in kernels:
                kernels[fused] = bb.add_func(fused, OP)
            replacement[binding.var] = relax.call_tir(
                kernels[fused], [x, w1, w2, b1, b2, s1, s2], binding.var.ty)
            fused_away.add(producer.var)
    if not replacement:
        return mod
    mod = bb.get()
    blocks = []
    for block in main.body.blocks:
        bindings = [relax.VarBinding(b.var, replacement[b.var]) if b.var in replacement else b
                    for b in block.bindings if b.var not in fused_away]
        cls = relax.DataflowBlock if isinstance(block, relax.DataflowBlock) else relax.BindingBlock
        blocks.append(cls(bindings))
    body = relax.SeqExpr(blocks, main.body.body)
    new_main = relax.Function(main.params, body, main.ret_ty, main.is_pure, main.attrs)
    mod[mod.get_global_var(func_name)] = new_main
    return _drop_unused_prim_funcs(mod)


def _drop_unused_prim_funcs(mod: tvm.IRModule) -> tvm.IRModule:
    used = set()
    for func in mod.functions.values():
        if isinstance(func, relax.Function):
            used.update(gv.name_hint for gv in relax.analysis.all_global_vars(func))
    keep = {gv: f for gv, f in mod.functions.items()
            if not isinstance(f, tirx.PrimFunc) or gv.name_hint in used}
    return tvm.IRModule(keep, attrs=mod.attrs)
