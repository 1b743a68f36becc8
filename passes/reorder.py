"""ReorderForMemory: order the training step's kernels to lower its peak of live bytes.

Requires: a legalized `train_step` (one dataflow block of `call_tir` bindings) whose attribute
`updates` names the weight each returned tensor overwrites.
Guarantees: the bindings are a topological order of the data dependences plus one extra rule
— an update `w_new = f(w, ...)` comes after every other reader of `w`, so the AOT emitter can
write it in place (its storage is `w`'s own, costing no arena byte). Each update is thereby free
to run as soon as its gradient exists, and its gradient buffer dies right there (the paper's
"operator reordering" / in-place gradient application). The order is a greedy list schedule
(at each step the ready kernel that grows live memory least, ties in the original order), or
for steps of at most 12 kernels the exact optimum (dynamic programming over scheduled sets);
it is kept only if its peak of live bytes is below the original order's, so the pass never
makes a step worse. Every update also waits for the loss, so the step can still be rejected on a NaN/inf loss
before any weight changes. Numerics are unchanged: the same kernels run on the same values.
"""

from __future__ import annotations

import heapq

import numpy as np
import tvm
from tvm import relax

from tinytvm.aot import DTYPE_BYTES
from tinytvm.ir import FunctionView


def _nbytes(var) -> int:
    ty = var.ty
    if not isinstance(ty, relax.TensorType):
        return 0
    return int(np.prod([int(s) for s in ty.shape], dtype=np.int64)) * DTYPE_BYTES.get(str(ty.dtype), 4)


class _Graph:
    """Bindings as a dependence graph with byte sizes (in-place updates cost nothing)."""

    def __init__(self, view: FunctionView, updates: dict):
        self.bindings = view.bindings
        index = {b.var: i for i, b in enumerate(self.bindings)}
        self.reads = [[index[v] for v in relax.analysis.free_vars(b.value) if v in index]
                      for b in self.bindings]
        self.size = [0 if b.var in updates else _nbytes(b.var) for b in self.bindings]
        self.deps = [set(r) for r in self.reads]
        readers_of: dict = {}
        for i, b in enumerate(self.bindings):
            for v in relax.analysis.free_vars(b.value):
                readers_of.setdefault(v, []).append(i)
        loss = index.get(view.bindings[-1].value.fields[0]) if updates else None
        for new_var in updates:  # a non-finite loss must be seen before any weight changes
            if loss is not None:
                self.deps[index[new_var]].add(loss)
        for new_var, weight in updates.items():  # write-after-read: an update goes last
            u = index[new_var]
            self.deps[u] |= {r for r in readers_of.get(weight, []) if r != u and r not in self._after(u)}
        self.consumers = [[] for _ in self.bindings]
        for i, deps in enumerate(self.deps):
            for d in deps:
                self.consumers[d].append(i)
        self.pinned = {i for i, b in enumerate(self.bindings) if b.var == view.output}

    def _after(self, u) -> set:
        """Bindings that (transitively) read u's result: they cannot be forced before u."""
        seen, stack = set(), [u]
        while stack:
            n = stack.pop()
            for i, reads in enumerate(self.reads):
                if n in reads and i not in seen:
                    seen.add(i)
                    stack.append(i)
        return seen

    def peak(self, order) -> int:
        """Max over time of the bytes of binding results that are still to be read."""
        remaining = [len([c for c in self.consumers[i] if i in self.reads[c]]) for i in range(len(order))]
        live = peak = 0
        for n in order:
            live += self.size[n]
            peak = max(peak, live)
            for d in set(self.reads[n]):
                remaining[d] -= 1
                if remaining[d] == 0:
                    live -= self.size[d]
        return peak

    def greedy_order(self) -> list[int]:
        n = len(self.bindings)
        waiting = [len(d) for d in self.deps]
        data_left = [len([c for c in self.consumers[i] if i in self.reads[c]]) for i in range(n)]
        ready = [(self._cost(i, data_left), i) for i in range(n) if waiting[i] == 0]
        heapq.heapify(ready)
        order = []
        while ready:
            _, i = heapq.heappop(ready)
            order.append(i)
            for d in set(self.reads[i]):
                data_left[d] -= 1
            for c in self.consumers[i]:
                waiting[c] -= 1
                if waiting[c] == 0:
                    heapq.heappush(ready, (self._cost(c, data_left), c))
            # costs of ready kernels change as their inputs' other readers run
            ready = [(self._cost(j, data_left), j) for _, j in ready]
            heapq.heapify(ready)
        return order

    def exact_order(self, limit: int = 12) -> list[int] | None:
        """The order with the lowest peak, by dynamic programming over scheduled sets (the peak
        after a set depends only on the set); None above `limit` kernels (2^n sets)."""
        n = len(self.bindings)
        if n > limit:
            return None
        dep_mask = [sum(1 << d for d in deps) for deps in self.deps]
        readers = [sum(1 << c for c in self.consumers[i] if i in self.reads[c]) for i in range(n)]

        def live(done: int) -> int:  # results still to be read (or never read: kept)
            return sum(self.size[i] for i in range(n)
                       if done >> i & 1 and (readers[i] & ~done or not readers[i]))

        best = {0: (0, [])}
        for _ in range(n):
            layer = {}
            for done, (peak, order) in best.items():
                base = live(done)
                for i in range(n):
                    if not done >> i & 1 and dep_mask[i] & ~done == 0:
                        cand = (max(peak, base + self.size[i]), order + [i])
                        key = done | 1 << i
                        if key not in layer or cand < layer[key]:
                            layer[key] = cand
            best = layer
        return best[(1 << n) - 1][1]

    def sink_sources(self, order: list[int]) -> list[int]:
        """Move kernels that read no intermediate (only weights or nothing, e.g. the momentum
        decay μ·m, a zeros fill) to just before their first consumer: computing them early
        only holds their result longer."""
        order = list(order)
        for n in [i for i in order if not self.reads[i] and i not in self.pinned]:
            order.remove(n)
            consumers = set(self.consumers[n])
            first = next((k for k, i in enumerate(order) if i in consumers), len(order))
            order.insert(first, n)
        return order

    def _cost(self, i, data_left) -> tuple:
        freed = sum(self.size[d] for d in set(self.reads[i]) if data_left[d] == 1)
        return (i in self.pinned, self.size[i] - freed, i)


def reorder_for_memory(func: relax.Function) -> relax.Function:
    view = FunctionView.of(func)
    outputs = view.bindings[-1].value
    names = [str(n) for n in func.attrs.get("updates", [])]
    weights = {w.name: w for w in view.weights}
    updates = {}
    if isinstance(outputs, relax.Tuple):
        updates = {var: weights[name] for var, name in zip(outputs.fields[1:], names)}
    graph = _Graph(view, updates)
    original = list(range(len(view.bindings)))
    candidates = [graph.sink_sources(graph.greedy_order()), graph.exact_order()]
    order = min((o for o in candidates if o is not None and sorted(o) == original),
                key=graph.peak)
    if graph.peak(order) >= graph.peak(original):
        return func
    view.bindings = [view.bindings[i] for i in order]
    return view.to_function()


@tvm.transform.module_pass(opt_level=0, name="ReorderForMemory")
class ReorderForMemory:
    def transform_module(self, mod, ctx):
        if "train_step" not in [gv.name_hint for gv in mod.get_global_vars()]:
            return mod
        mod = tvm.IRModule(dict(mod.functions), attrs=mod.attrs)
        mod["train_step"] = reorder_for_memory(mod["train_step"])
        return mod
