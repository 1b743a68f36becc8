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
# function "tt_qconv_*" lives in tt_qconv.h, "tt_qgrad_*" in tt_qgrad.h.
FAST_KERNELS_HEADER = "tt_qconv.h"
FAST_KERNELS_HEADERS = (FAST_KERNELS_HEADER, "tt_qgrad.h")


def fast_kernel_header(function: str) -> str:
    """The header of the micro-kernel `function` (a "tt.fast" attribute)."""
    header = "_".join(function.split("_")[:2]) + ".h"
    if header not in FAST_KERNELS_HEADERS:
        raise ValueError(f"no header in runtime_c/kernels/ declares '{function}'")
    return header


def kernel_symbol(prim_name: str) -> str:
    return f"tt_k_{prim_name}"


def kernels_to_c(mod: tvm.IRModule) -> str:
    """C source of every PrimFunc in `mod`, as `TVM_DLL void tt_k_<name>(T *a, ...)`."""
    prims = {gv.name_hint: f for gv, f in mod.functions.items() if isinstance(f, tirx.PrimFunc)}
    # One small module per kernel: a schedule over the whole module costs O(kernels) to create.
    # (an in-place kernel's scratch plane is what makes it in-place: never inlined away)
    inlined = {n: prims[n] if _in_place(prims[n]) else
               inline_temporaries(tvm.IRModule({n: prims[n]}), n)[n] for n in sorted(prims)}
    unpacked = tvm.IRModule({kernel_symbol(n): _to_unpacked(inlined[n], kernel_symbol(n))
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
