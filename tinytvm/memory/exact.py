"""Exact arena placement: a branch and bound after MiniMalloc (Moffitt, ASPLOS 2024).

The search answers "do all buffers fit in `cap` bytes?" and only ever builds *canonical*
plans: buffers are placed in non-decreasing offset order, each at the lowest aligned
offset clear of the buffers placed before it (its "minimum offset"). Every plan can be
turned into such a plan with no higher peak by sliding buffers down until none can
move, so searching canonical plans loses nothing, and three rules prune the rest:

- order: the (offset, preorder rank) of successive placements only grows, so a set of
  placements is tried in one order only;
- dominance: a buffer is never placed at or above the top another unplaced buffer would
  have at its own minimum offset (that one could slide into the gap below);
- sections: at each step of time (a "section"), the unplaced buffers alive there stack
  above both the current offset and the top of the placed ones, and must fit under cap.

Buffers whose lifetimes never chain together are independent subproblems, solved apart.
The search counts nodes, so with a node limit it is deterministic; a wall-clock limit
can be added but makes the result depend on the machine.

Requires: a Problem; size-0 buffers are not searched (they get offset 0).
Guarantees: the returned plan is canonical, validates, and its peak is <= cap.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np

from .bestfit import breadths
from .problem import Buffer, Problem, live_pairs


class Outcome(Enum):
    FOUND = "found"
    INFEASIBLE = "infeasible"  # the whole tree was searched: nothing fits in cap
    ABORTED = "aborted"  # the node or time limit ran out first


@dataclass(frozen=True)
class Budget:
    """Search limits shared by every search of one planning call.

    `nodes` bounds the placements tried (deterministic); `deadline` is an absolute
    time.perf_counter() value or None.
    """

    nodes: int
    deadline: float | None = None


class Counter:
    """Nodes left in a Budget, spent by successive searches."""

    def __init__(self, budget: Budget):
        self.left = budget.nodes
        self.deadline = budget.deadline

    def exhausted(self) -> bool:
        if self.left <= 0:
            return True
        return self.deadline is not None and time.perf_counter() > self.deadline


def components(buffers: Sequence[Buffer]) -> list[tuple[Buffer, ...]]:
    """Groups of buffers whose lifetimes chain together; no buffer spans two groups.

    Groups come in time order, buffers in each group by (start, name).
    """
    groups: list[list[Buffer]] = []
    end = None
    for buf in sorted(buffers, key=lambda b: (b.start, b.name)):
        if end is None or buf.start >= end:
            groups.append([])
            end = buf.end
        groups[-1].append(buf)
        end = max(end, buf.end)
    return [tuple(g) for g in groups]


def _preorders(buffers: Sequence[Buffer]) -> list[Callable[[Buffer], tuple]]:
    """MiniMalloc's default static orders, all descending, ties by name:
    T = breadth (most live bytes over the lifetime), W = width in sections,
    A = area (size x duration)."""
    breadth = breadths(buffers)
    times = sorted({t for b in buffers for t in (b.start, b.end)})
    index = {t: i for i, t in enumerate(times)}

    def width(b: Buffer) -> int:
        return index[b.end] - index[b.start]

    def area(b: Buffer) -> int:
        return b.aligned_size * (b.end - b.start)

    return [
        lambda b: (-width(b), -area(b), -breadth[b.name], b.name),  # WAT
        lambda b: (-breadth[b.name], -area(b), -width(b), b.name),  # TAW
        lambda b: (-breadth[b.name], -width(b), -area(b), b.name),  # TWA
    ]


class Instance:
    """One group of sized buffers as arrays, indexed in one preorder.

    Section k is the time span [times[k], times[k+1]); buffer i covers sections
    [sec_lo[i], sec_hi[i]).
    """

    def __init__(self, buffers: Sequence[Buffer]):
        self.buffers = tuple(buffers)
        times = sorted({t for b in self.buffers for t in (b.start, b.end)})
        index = {t: i for i, t in enumerate(times)}
        n = len(self.buffers)
        self.size = np.array([b.aligned_size for b in self.buffers], dtype=np.int64)
        self.align = np.array([b.alignment for b in self.buffers], dtype=np.int64)
        self.sec_lo = [index[b.start] for b in self.buffers]
        self.sec_hi = [index[b.end] for b in self.buffers]
        self.sec_total = np.zeros(max(len(times) - 1, 0), dtype=np.int64)
        for i in range(n):
            self.sec_total[self.sec_lo[i] : self.sec_hi[i]] += self.size[i]
        position = {b.name: i for i, b in enumerate(self.buffers)}
        neighbors: list[list[int]] = [[] for _ in range(n)]
        for a, b in live_pairs(self.buffers):
            neighbors[position[a.name]].append(position[b.name])
            neighbors[position[b.name]].append(position[a.name])
        self.neighbors = [np.array(sorted(nb), dtype=np.int64) for nb in neighbors]


class _Search:
    """Depth-first search for a canonical plan of one Instance under `cap` bytes."""

    def __init__(self, inst: Instance, cap: int):
        self.inst, self.cap = inst, cap
        n = len(inst.buffers)
        self.ids = np.arange(n)
        self.min_offset = np.zeros(n, dtype=np.int64)
        self.placed = np.zeros(n, dtype=bool)
        self.offset = np.zeros(n, dtype=np.int64)
        self.floor = np.zeros_like(inst.sec_total)
        self.total = inst.sec_total.copy()

    def run(self, counter: Counter) -> Outcome:
        if self.total.max(initial=0) > self.cap:
            return Outcome.INFEASIBLE
        # Each frame: (candidates, next position, undo record of the current choice).
        stack = [[self._candidates(-1, -1), 0, None]]
        while stack:
            frame = stack[-1]
            if frame[2] is not None:
                self._undo(frame[2])
                frame[2] = None
            if frame[1] == len(frame[0]):
                stack.pop()
                continue
            b = frame[0][frame[1]]
            frame[1] += 1
            if counter.exhausted():
                return Outcome.ABORTED
            counter.left -= 1
            undo = self._place(b)
            if not self._fits(int(self.offset[b])):
                self._undo(undo)
                continue
            frame[2] = undo
            if self.placed.all():
                return Outcome.FOUND
            stack.append([self._candidates(int(self.offset[b]), b), 0, None])
        return Outcome.INFEASIBLE

    def offsets(self) -> dict[str, int]:
        return {b.name: int(o) for b, o in zip(self.inst.buffers, self.offset)}

    def _candidates(self, last_offset: int, last: int) -> list[int]:
        """Unplaced buffers that may come next, by (minimum offset, preorder rank)."""
        mo, unplaced = self.min_offset, ~self.placed
        lowest_top = (mo + self.inst.size)[unplaced].min()
        later = (mo > last_offset) | ((mo == last_offset) & (self.ids > last))
        cand = np.flatnonzero(unplaced & (mo < lowest_top) & later)
        return cand[np.lexsort((cand, mo[cand]))].tolist()

    def _place(self, b: int):
        inst, mo = self.inst, self.min_offset
        offset = int(mo[b])
        top = offset + int(inst.size[b])
        nb = inst.neighbors[b]
        old_mo = mo[nb]
        align = inst.align[nb]
        mo[nb] = np.maximum(old_mo, -(-top // align) * align)
        lo, hi = inst.sec_lo[b], inst.sec_hi[b]
        old_floor = self.floor[lo:hi].copy()
        self.floor[lo:hi] = top  # placements rise, so the newest is the top of its sections
        self.total[lo:hi] -= inst.size[b]
        self.placed[b] = True
        self.offset[b] = offset
        return b, old_mo, old_floor

    def _undo(self, record) -> None:
        b, old_mo, old_floor = record
        inst = self.inst
        self.min_offset[inst.neighbors[b]] = old_mo
        lo, hi = inst.sec_lo[b], inst.sec_hi[b]
        self.floor[lo:hi] = old_floor
        self.total[lo:hi] += inst.size[b]
        self.placed[b] = False

    def _fits(self, offset: int) -> bool:
        """Section rule: what is left of every section still fits under cap."""
        return int((np.maximum(self.floor, offset) + self.total).max()) <= self.cap


def search(inst: Instance, cap: int, counter: Counter) -> tuple[Outcome, dict[str, int]]:
    """Whether `inst` fits in `cap` bytes: the outcome, and the offsets if FOUND."""
    s = _Search(inst, cap)
    outcome = s.run(counter)
    return outcome, s.offsets() if outcome is Outcome.FOUND else {}
