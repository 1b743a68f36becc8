"""Lowering: Relax training/inference functions → TIR PrimFuncs → plain C kernels.

The kernels come out of TVM's C code generator with an unpacked calling convention (one typed
pointer per buffer, no TVM runtime, no packed calls, no heap). Kernel-local temporaries (the
padded input of a conv, dilated gradients) are inlined into their consumer where TVM's
schedule allows it, because whatever stays becomes a stack array on the MCU.
"""

from __future__ import annotations

import re

import tvm
from tvm import relax, s_tir, tirx
from tvm.target import Target

from .errors import UnsupportedModelError


def legalize(mod: tvm.IRModule) -> tvm.IRModule:
    """Every Relax op becomes a `call_tir` to a PrimFunc in the module."""
    entries = [gv.name_hint for gv, f in mod.functions.items() if isinstance(f, relax.Function)]
    for stage in (relax.transform.LegalizeOps(), relax.transform.DeadCodeElimination(entries)):
        mod = stage(mod)
    for gv, func in mod.functions.items():
        if isinstance(func, relax.Function):
            for name in _unlegalized_ops(func):
                raise UnsupportedModelError(f"op '{name}' in '{gv.name_hint}' has no TIR lowering")
    return mod


def elementwise_kernels(mod: tvm.IRModule) -> set[str]:
    """PrimFuncs TVM classifies as element-wise or broadcast (op pattern ≤ kBroadcast)."""
    annotated = relax.transform.AnnotateTIROpPattern()(mod)
    return {gv.name_hint for gv, f in annotated.functions.items()
            if isinstance(f, tirx.PrimFunc) and f.attrs is not None
            and "op_pattern" in f.attrs and int(f.attrs["op_pattern"]) <= 1}


INPLACE_ATTR = "tt.inplace_input"  # tinytvm/quant/inplace.py


def inplace_kernels(mod: tvm.IRModule) -> dict[str, int]:
    """Kernels whose output may overwrite one input (its index): the in-place depthwise."""
    return {gv.name_hint: int(f.attrs[INPLACE_ATTR]) for gv, f in mod.functions.items()
            if isinstance(f, tirx.PrimFunc) and f.attrs is not None and INPLACE_ATTR in f.attrs}


SCRATCH_ATTR = "tt.scratch_params"  # how many trailing parameters are lifted scratch buffers


def prepare_kernels(mod: tvm.IRModule, lift: bool = True) -> tvm.IRModule:
    """The kernels as they are emitted: temporaries inlined where TVM's schedule can, then
    every function-level scratch buffer left (AllocBuffer statements at the root of the
    PrimFunc, more than one element: e.g. the planes of the channel-by-channel kernels) lifted
    to a trailing parameter, so the AOT planner places it in the arena, not on the C stack."""
    out = {}
    for gv, f in mod.functions.items():
        if isinstance(f, tirx.PrimFunc):
            name = gv.name_hint
            if not _in_place(f):  # an in-place kernel's plane is what makes it in-place
                f = inline_temporaries(tvm.IRModule({name: f}), name)[name]
            if lift:
                f = _lift(f)
        out[gv] = f
    return tvm.IRModule(out, attrs=mod.attrs)


def scratch_buffers(mod: tvm.IRModule) -> dict[str, list[tuple[tuple[int, ...], str]]]:
    """{kernel: [(shape, dtype) of each lifted scratch parameter]} after `prepare_kernels`."""
    found = {}
    for gv, f in mod.functions.items():
        if isinstance(f, tirx.PrimFunc) and f.attrs is not None and SCRATCH_ATTR in f.attrs:
            count = int(f.attrs[SCRATCH_ATTR])
            found[gv.name_hint] = [(tuple(int(d) for d in p.shape), str(p.dtype))
                                   for p in f.params[len(f.params) - count:]]
    return found


def _lift(func: tirx.PrimFunc) -> tirx.PrimFunc:
    from tvm.s_tir.stmt import SBlock, SBlockRealize

    realize = func.body
    if not isinstance(realize, SBlockRealize) or not isinstance(realize.block.body, tirx.SeqStmt):
        return func
    block = realize.block
    lifted = [s for s in block.body.seq if isinstance(s, tirx.AllocBuffer)
              and _elements(s.buffer) > 1]
    if not lifted:
        return func
    rest = [s for s in block.body.seq if not any(s.same_as(a) for a in lifted)]
    body = rest[0] if len(rest) == 1 else tirx.SeqStmt(rest)
    new_block = SBlock(block.iter_vars, block.reads, block.writes, block.name_hint, body,
                       block.init, block.alloc_buffers, block.match_buffers, block.annotations)
    new_realize = SBlockRealize(realize.iter_values, realize.predicate, new_block)
    params = [*func.params, *(a.buffer for a in lifted)]
    return tirx.PrimFunc(params, new_realize, func.ret_type, func.attrs).with_attr(
        SCRATCH_ATTR, len(lifted))


def _elements(buffer) -> int:
    n = 1
    for d in buffer.shape:
        n *= int(d)
    return n


def _in_place(func: tirx.PrimFunc) -> bool:
    return func.attrs is not None and INPLACE_ATTR in func.attrs


def _unlegalized_ops(func):
    found = []

    def visit(expr):
        if isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op):
            if expr.op.name not in ("relax.call_tir",):
                found.append(expr.op.name)

    relax.analysis.post_order_visit(func.body, visit)
    return found


def inline_temporaries(mod: tvm.IRModule, name: str) -> tvm.IRModule:
    """Inline every intermediate block of one PrimFunc that TVM's schedule can inline."""
    sch = s_tir.Schedule(mod)
    sch.work_on(name)
    outputs = {p.name for p in mod[name].params if isinstance(p, tirx.Buffer)}
    while _inline_one(sch, outputs):
        pass
    return sch.mod


def _inline_one(sch, outputs) -> bool:
    for block in sch.get_child_blocks(sch.get_sblock("root")):
        if any(w.source.name in outputs for w in sch.get(block).writes):
            continue
        for inline in (sch.compute_inline, sch.reverse_compute_inline):
            try:
                inline(block)
                return True
            except s_tir.schedule.ScheduleError:  # not inlineable: it stays a (small) stack temporary
                continue
    return False


def _to_unpacked(func: tirx.PrimFunc, name: str) -> tirx.PrimFunc:
    """Buffer params → typed pointers + DeclBuffer, so the C codegen emits a plain C function."""
    params, decls = [], []
    for p in func.params:
        if isinstance(p, tirx.Buffer):
            handle = tirx.Var(p.name, tvm.ir.PointerType(tvm.ir.PrimType(p.dtype)))
            params.append(handle)
            decls.append(tirx.DeclBuffer(p, data=handle))
        else:
            params.append(p)
    body = tirx.SeqStmt(decls + [func.body])
    out = tirx.PrimFunc(params, body, ret_type=func.ret_type, attrs=func.attrs)
    # an in-place kernel's output and input may be one array: no `restrict` on its pointers
    return (out.with_attr("tirx.noalias", not _in_place(func)).with_attr("global_symbol", name)
            .with_attr("calling_conv", 0))


_LOWER_TO_C = [
    s_tir.transform.LowerInitBlock(), s_tir.transform.ConvertBlocksToOpaque(),
    s_tir.transform.LowerOpaqueBlock(), tirx.transform.StmtSimplify(),
    tirx.transform.FlattenBuffer(), tirx.transform.NarrowDataType(32),
    tirx.transform.StmtSimplify(), tirx.transform.LowerIntrin(),
]


# The hand-written micro-kernels (runtime_c/kernels/) that PrimFuncs with "tt.fast" call: a
# function "tt_qconv_*" lives in tt_qconv.h, "tt_qgrad_*" in tt_qgrad.h (which includes the
# generated tt_qgrad_dw.h: every header here that an included one includes is copied too),
# "tt_qmask_*" in tt_qmask.h, "tt_qgrad16_*" in tt_qgrad16.h (which includes tt_qconv.h).
FAST_KERNELS_HEADER = "tt_qconv.h"
FAST_KERNELS_HEADERS = (FAST_KERNELS_HEADER, "tt_qgrad.h", "tt_qgrad_dw.h", "tt_qmask.h",
                        "tt_qgrad16.h")


def fast_kernel_header(function: str) -> str:
    """The header of the micro-kernel `function` (a "tt.fast" attribute)."""
    header = "_".join(function.split("_")[:2]) + ".h"
    if header not in FAST_KERNELS_HEADERS:
        raise ValueError(f"no header in runtime_c/kernels/ declares '{function}'")
    return header


def kernel_symbol(prim_name: str) -> str:
    return f"tt_k_{prim_name}"


def kernels_to_c(mod: tvm.IRModule, prepared: bool = False) -> str:
    """C source of every PrimFunc in `mod`, as `TVM_DLL void tt_k_<name>(T *a, ...)`
    (`prepared`: `mod` went through `prepare_kernels` already; otherwise temporaries are
    inlined here and any scratch stays a local array: each kernel keeps its own signature)."""
    if not prepared:
        mod = prepare_kernels(mod, lift=False)
    prims = {gv.name_hint: f for gv, f in mod.functions.items() if isinstance(f, tirx.PrimFunc)}
    unpacked = tvm.IRModule({kernel_symbol(n): _to_unpacked(prims[n], kernel_symbol(n))
                             for n in sorted(prims)})
    target = Target("c")
    seq = tvm.transform.Sequential([tirx.transform.BindTarget(target), *_LOWER_TO_C])
    source = tvm.get_global_func("target.build.c")(seq(unpacked), target).inspect_source()
    source = _strip_tvm_runtime(source)
    headers = {fast_kernel_header(str(f.attrs["tt.fast"])) for f in prims.values()
               if f.attrs is not None and "tt.fast" in f.attrs}
    if headers:
        source = "".join(f'#include "{h}"\n' for h in sorted(headers)) + "\n" + source
    return source


def _strip_tvm_runtime(source: str) -> str:
    kept = []
    for line in source.splitlines():
        if line.startswith("#include") or "__tvm_ffi__library_ctx" in line:
            continue
        # TVM re-declares the libm functions it calls; <math.h> already does.
        if re.match(r"TVM_DLL \w+ (?!tt_k_)\w+\(.*\);$", line):
            continue
        kept.append(line)
    text = "\n".join(kept)
    text = re.sub(r"#ifdef __cplusplus\s*extern \"C\"\s*#endif", "", text)
    return text.strip() + "\n"
