"""Does a set of buffers fit in `cap` bytes? A branch and bound after MiniMalloc
(M. D. Moffitt, "MiniMalloc: A Lightweight Memory Allocator for Hardware-Accelerated
Machine Learning", ASPLOS 2023; google/minimalloc).

The search only builds *canonical* plans: buffers are placed in non-decreasing offset
order, each at the lowest aligned offset on top of the placed buffers alive with it (its
"minimum offset"). Any plan becomes canonical, at no higher peak, by sliding buffers down
until none can move, so nothing is lost, and these rules prune the rest:

- order: successive placements have growing (offset, preorder rank), so a set of
  placements is tried in one order only;
- dominance: no buffer is placed at or above the top another unplaced buffer would have
  at its own minimum offset (that one could slide into the gap below);
- sections: over each span between consecutive lifetime ends (a "section"), the unplaced
  buffers alive there stack above the current offset, above the top of the placed ones,
  and above the lowest minimum offset among them, and must all fit under cap;
- decomposition: once no unplaced buffer is alive across some step, the two sides are
  searched apart, so a dead end on one side never revisits choices on the other.

The search counts nodes (placements tried), so under a node limit it is deterministic; a
wall-clock deadline can be added, at the price of machine-dependent results. Buffers of
size 0 must be left out by the caller.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from enum import Enum

import numpy as np

from .bestfit import breadths
from .problem import Buffer, live_pairs


class Outcome(Enum):
    FOUND = "found"
    INFEASIBLE = "infeasible"  # the whole tree was searched: nothing fits in cap
    ABORTED = "aborted"  # the node limit or the deadline came first


class Counter:
    """Search nodes left, and an optional deadline (a time.perf_counter() value)."""

    def __init__(self, nodes: int, deadline: float | None = None):
        self.left = nodes
        self.deadline = deadline

    def exhausted(self) -> bool:
        if self.left <= 0:
            return True
        return self.deadline is not None and time.perf_counter() > self.deadline

    def share(self, nodes: int, seconds: float | None = None) -> Counter:
        """A counter for one sub-search: at most `nodes` of ours, and at most `seconds`
        from now if given; `settle` it after."""
        deadline = self.deadline
        if seconds is not None:
            end = time.perf_counter() + seconds
            deadline = end if deadline is None else min(deadline, end)
        return Counter(min(nodes, self.left), deadline)

    def settle(self, share: Counter, nodes: int) -> None:
        """Charge us for what `share` (made by share(nodes)) used."""
        self.left -= min(nodes, self.left) - share.left


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


PREORDERS = ("WAT", "TAW", "TWA", "CAT")


def preorders(
    buffers: Sequence[Buffer], letters_list: Sequence[str] = PREORDERS
) -> list[Callable[[Buffer], tuple]]:
    """Static orders tried in turn, after MiniMalloc's defaults; all descending, ties by
    name. T = breadth (most live bytes over the lifetime), W = lifetime in steps,
    C = lifetime in sections, A = area (size x lifetime)."""
    breadth = breadths(buffers)
    times = sorted({t for b in buffers for t in (b.start, b.end)})
    index = {t: i for i, t in enumerate(times)}

    def keys(b: Buffer) -> dict[str, int]:
        return {
            "T": breadth[b.name],
            "W": b.end - b.start,
            "C": index[b.end] - index[b.start],
            "A": b.aligned_size * (b.end - b.start),
        }

    def order(letters: str) -> Callable[[Buffer], tuple]:
        def key(b: Buffer) -> tuple:
            k = keys(b)
            return (*(-k[c] for c in letters), b.name)

        return key

    return [order(letters) for letters in letters_list]


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
        # Per buffer, its neighbours' alignment - 1 and -alignment: with power-of-two
        # alignments, align_up(x, a) == (x + a - 1) & -a.
        self.nb_pad = [self.align[nb] - 1 for nb in self.neighbors]
        self.nb_mask = [-self.align[nb] for nb in self.neighbors]
        # Twins (same lifetime, size and alignment) are interchangeable: each waits for
        # the one before it in the preorder (-1: none), so a plan and its twin-swapped
        # copies are searched once.
        twins: dict[tuple, int] = {}
        self.prev_twin = np.full(n, -1, dtype=np.int64)
        for i, b in enumerate(self.buffers):
            key = (b.start, b.end, b.aligned_size, b.alignment)
            self.prev_twin[i] = twins.get(key, -1)
            twins[key] = i
        self.starts = np.array(self.sec_lo, dtype=np.int64)
        self.ends = np.array(self.sec_hi, dtype=np.int64)
        self.alive = np.zeros((len(self.sec_total), n), dtype=bool)  # [section, buffer]
        for i in range(n):
            self.alive[self.sec_lo[i] : self.sec_hi[i], i] = True


_NEVER = np.iinfo(np.int64).max


class _Search:
    """Depth-first search for a canonical plan of one Instance under `cap` bytes.

    Whenever placing a buffer leaves no unplaced buffer alive across some step
    boundary, the unplaced rest splits into independent parts, each searched on its
    own (MiniMalloc's dynamic decomposition): a dead end in one part then never makes
    the search revisit the choices of another.
    """

    MAX_DEPTH = 64  # nested decompositions; deeper, the search just goes on undivided

    def __init__(self, inst: Instance, cap: int, counter: Counter):
        self.inst, self.cap, self.counter = inst, cap, counter
        n = len(inst.buffers)
        self.ids = np.arange(n)
        self.min_offset = np.zeros(n, dtype=np.int64)
        self.placed = np.zeros(n, dtype=bool)
        self.offset = np.zeros(n, dtype=np.int64)
        self.solution = np.full(n, -1, dtype=np.int64)
        self.floor = np.zeros_like(inst.sec_total)
        self.total = inst.sec_total.copy()
        # cuts[k]: unplaced buffers alive across the boundary of sections k and k+1.
        self.cuts = np.zeros(max(len(self.total) - 1, 0), dtype=np.int64)
        for lo, hi in zip(inst.sec_lo, inst.sec_hi):
            self.cuts[lo : hi - 1] += 1

    def run(self) -> Outcome:
        if self.total.max(initial=0) > self.cap:
            return Outcome.INFEASIBLE
        everyone = np.ones(len(self.placed), dtype=bool)
        return self._part(everyone, 0, len(self.total), depth=0)

    def offsets(self) -> dict[str, int]:
        return {b.name: int(o) for b, o in zip(self.inst.buffers, self.solution)}

    def _part(self, members: np.ndarray, lo: int, hi: int, depth: int) -> Outcome:
        """Place the unplaced `members`, all alive within sections [lo, hi); on FOUND
        their offsets are in self.solution. Leaves the state as it found it."""
        # Each frame: [candidates, next position, undo record of the current choice].
        stack = [[self._candidates(members, lo, hi, -1, -1), 0, None]]
        size = int(members.sum())
        outcome = Outcome.INFEASIBLE
        while stack:
            frame = stack[-1]
            if frame[2] is not None:
                self._undo(frame[2])
                frame[2] = None
            if frame[1] == len(frame[0]):
                stack.pop()
                continue
            if self.counter.exhausted():
                outcome = Outcome.ABORTED
                break
            self.counter.left -= 1
            b = frame[0][frame[1]]
            frame[1] += 1
            offset = int(self.min_offset[b])
            frame[2] = self._place(b, offset)
            if not self._fits(offset, lo, hi):
                continue
            if len(stack) == size:
                outcome = Outcome.FOUND  # every member placed
                break
            result = self._after(b, members, lo, hi, depth)
            if result is None:
                stack.append([self._candidates(members, lo, hi, offset, b), 0, None])
            elif result is not Outcome.INFEASIBLE:
                outcome = result
                break
        if outcome is Outcome.FOUND:
            done = members & self.placed
            self.solution[done] = self.offset[done]
        for frame in reversed(stack):
            if frame[2] is not None:
                self._undo(frame[2])
        return outcome

    def _after(self, b: int, members, lo: int, hi: int, depth: int) -> Outcome | None:
        """After placing b (not the last member): the outcome of the independent parts
        the unplaced members split into, if b split them, else None (search on)."""
        b_lo, b_hi = self.inst.sec_lo[b], self.inst.sec_hi[b]
        if depth >= self.MAX_DEPTH or self.cuts[b_lo : b_hi - 1].all():
            return None
        left = members & ~self.placed
        cutpoints = (
            np.flatnonzero(self.cuts[b_lo : b_hi - 1] == 0) + b_lo + 1
        ).tolist()
        bounds = [lo, *cutpoints, hi]
        starts = self.inst.starts
        parts = []
        for p_lo, p_hi in itertools.pairwise(bounds):
            part = left & (starts >= p_lo) & (starts < p_hi)
            if part.any():
                parts.append((part, p_lo, p_hi))
        if len(parts) < 2:
            return None
        for part, p_lo, p_hi in parts:
            outcome = self._part(part, p_lo, p_hi, depth + 1)
            if outcome is not Outcome.FOUND:
                return outcome
        return Outcome.FOUND

    def _candidates(
        self, members, lo: int, hi: int, last_offset: int, last: int
    ) -> list[int]:
        """Unplaced members that may come next, by (minimum offset, preorder rank).

        Placing any buffer at offset o leaves every section of the part needing
        max(floor, o) + total bytes, and o is above the floor in the buffer's own
        sections; so before the floors are raised the section rule reads
        o + max(total) <= cap for every candidate alike, and is applied here at once.
        """
        mo, unplaced = self.min_offset, members & ~self.placed
        lowest_top = (mo + self.inst.size)[unplaced].min()
        highest = self.cap - int(self.total[lo:hi].max())
        later = (mo > last_offset) | ((mo == last_offset) & (self.ids > last))
        twin = self.inst.prev_twin
        twin_placed = (twin < 0) | self.placed[
            twin
        ]  # placed[-1] is masked out by twin < 0
        cand = np.flatnonzero(
            unplaced & (mo < lowest_top) & (mo <= highest) & later & twin_placed
        )
        return cand[np.lexsort((cand, mo[cand]))].tolist()

    def _place(self, b: int, offset: int):
        """Place b at `offset`, its minimum offset; returns what `_undo` needs."""
        inst, mo = self.inst, self.min_offset
        top = offset + int(inst.size[b])
        nb = inst.neighbors[b]
        old_mo = mo[nb]
        new_mo = np.maximum(old_mo, (inst.nb_pad[b] + top) & inst.nb_mask[b])
        mo[nb] = new_mo
        old_floor = self.floor.copy()
        lo, hi = inst.sec_lo[b], inst.sec_hi[b]
        self.floor[lo:hi] = (
            top  # placements rise, so the newest is the top of its sections
        )
        self.total[lo:hi] -= inst.size[b]
        self.cuts[lo : hi - 1] -= 1
        self.placed[b] = True
        self.offset[b] = offset
        self._raise_floors(nb[(new_mo > old_mo) & ~self.placed[nb]])
        return b, old_mo, old_floor

    def _raise_floors(self, raised: np.ndarray) -> None:
        """No unplaced buffer goes below its minimum offset, so no section's floor is
        below the lowest minimum offset of the unplaced buffers alive in it (MiniMalloc's
        "unallocated floor"); recomputed over the sections of the `raised` buffers."""
        if not raised.size:
            return
        inst = self.inst
        lo, hi = int(inst.starts[raised].min()), int(inst.ends[raised].max())
        cols = np.flatnonzero(~self.placed & (inst.starts < hi) & (inst.ends > lo))
        lowest = np.where(inst.alive[lo:hi, cols], self.min_offset[cols], _NEVER).min(
            axis=1
        )
        lowest[lowest == _NEVER] = 0
        np.maximum(self.floor[lo:hi], lowest, out=self.floor[lo:hi])

    def _undo(self, record) -> None:
        b, old_mo, old_floor = record
        inst = self.inst
        self.min_offset[inst.neighbors[b]] = old_mo
        self.floor = old_floor
        lo, hi = inst.sec_lo[b], inst.sec_hi[b]
        self.total[lo:hi] += inst.size[b]
        self.cuts[lo : hi - 1] += 1
        self.placed[b] = False

    def _fits(self, offset: int, lo: int, hi: int) -> bool:
        """Section rule: what is left of every section of the part still fits under cap."""
        floor = np.maximum(self.floor[lo:hi], offset)
        return int((floor + self.total[lo:hi]).max()) <= self.cap


def search(
    inst: Instance, cap: int, counter: Counter
) -> tuple[Outcome, dict[str, int]]:
    """Whether `inst` fits in `cap` bytes: the outcome, and the offsets if FOUND."""
    s = _Search(inst, cap, counter)
    outcome = s.run()
    return outcome, s.offsets() if outcome is Outcome.FOUND else {}


class Group:
    """One group of buffers (see `components`), searched in several preorders in turn."""

    def __init__(self, buffers: Sequence[Buffer]):
        self.buffers = tuple(buffers)
        self._keys = preorders(self.buffers)
        self._instances: dict[int, Instance] = {}

    def instance(self, k: int) -> Instance:
        if k not in self._instances:
            self._instances[k] = Instance(sorted(self.buffers, key=self._keys[k]))
        return self._instances[k]

    def fit(self, cap: int, counter: Counter) -> tuple[Outcome, dict[str, int]]:
        """Search each preorder with a node limit that doubles every round, as
        MiniMalloc does: a search that is slow in one order is often quick in another."""
        limit = len(self.buffers)
        while True:
            limit *= 2
            for k in range(len(self._keys)):
                if counter.exhausted():
                    return Outcome.ABORTED, {}
                share = counter.share(limit)
                outcome, offsets = search(self.instance(k), cap, share)
                counter.settle(share, limit)
                if outcome is not Outcome.ABORTED:
                    return outcome, offsets
