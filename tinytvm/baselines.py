"""What others get on the same graph, for the memory report and the benchmarks."""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax

from .aot import DTYPE_BYTES
from .lower import legalize


def relax_static_plan_bytes(graph_mod: tvm.IRModule, func: str = "train_step",
                            legalized: bool = False) -> int:
    """Bytes TVM Relax's own `StaticPlanBlockMemory` reserves for `func` (planned storages plus
    the function outputs it leaves unplanned), on the same legalized kernels tinytvm emits
    (`legalized`: `graph_mod` already is the legalized module)."""
    mod = graph_mod if legalized else legalize(graph_mod)
    mod = tvm.IRModule({gv: f for gv, f in mod.functions.items()
                        if not isinstance(f, relax.Function) or gv.name_hint == func})
    for stage in (relax.transform.ToNonDataflow(), relax.transform.RemovePurityChecking(),
                  relax.transform.CallTIRRewrite(), relax.transform.StaticPlanBlockMemory()):
        mod = stage(mod)
    total = 0

    def visit(expr):
        nonlocal total
        if not isinstance(expr, relax.Call) or not hasattr(expr.op, "name"):
            return
        if expr.op.name == "relax.memory.alloc_storage":
            total += int(expr.args[0].values[0])
        elif expr.op.name == "relax.builtin.alloc_tensor":
            shape = [int(v) for v in expr.args[0].values]
            total += int(np.prod(shape, dtype=np.int64)) * DTYPE_BYTES[str(expr.args[1].value)]

    relax.analysis.post_order_visit(mod[func].body, visit)
    return total
