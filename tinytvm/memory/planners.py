"""Arena planners: pure, deterministic functions from a Problem to a Solution.

All share one signature so they are interchangeable (PLANNERS) and comparable in the
benchmarks; none checks its own output, `validate` does that.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from typing import NamedTuple

from .problem import Buffer, Problem, Solution, align_up


def plan_linear(problem: Problem) -> Solution:
    """Bump allocation, no reuse: the baseline every other planner must beat.

    Guarantees peak == problem.naive_bytes().
    """
    offsets: dict[str, int] = {}
    cursor = 0
    # Largest alignment first: every aligned size is then a multiple of all later
    # (smaller, power-of-two) alignments, so the cursor never needs padding.
    for buf in sorted(problem.buffers, key=lambda b: -b.alignment):
        offsets[buf.name] = cursor if buf.size else 0
        cursor += buf.aligned_size
    return Solution(offsets, peak=cursor)


class _Placed(NamedTuple):
    lo: int
    hi: int
    buffer: Buffer


def plan_greedy(problem: Problem) -> Solution:
    """TFLite Micro's GreedyMemoryPlanner: largest buffer first, each at the lowest
    aligned offset clear of every already-placed buffer alive at the same time.

    Ties in size go by name, so the plan does not depend on the order of the buffers
    in the problem. O(n²) time.
    """
    offsets: dict[str, int] = {}
    placed: list[_Placed] = []  # kept sorted by offset, so first fit is one scan
    for buf in sorted(problem.buffers, key=lambda b: (-b.size, b.name)):
        if buf.size == 0:
            offsets[buf.name] = 0
            continue
        offset = _first_fit(buf, placed)
        offsets[buf.name] = offset
        bisect.insort(placed, _Placed(offset, offset + buf.aligned_size, buf), key=_lo)
    return Solution(offsets, peak=max((p.hi for p in placed), default=0))


def _lo(placed: _Placed) -> int:
    return placed.lo


def _first_fit(buf: Buffer, placed: list[_Placed]) -> int:
    offset = 0
    for other in placed:
        if not other.buffer.lives_with(buf):
            continue
        if offset + buf.aligned_size <= other.lo:
            break  # the gap below `other` holds buf; later neighbours start higher still
        offset = max(offset, align_up(other.hi, buf.alignment))
    return offset


PLANNERS: dict[str, Callable[[Problem], Solution]] = {
    "greedy": plan_greedy,
    "linear": plan_linear,
}
