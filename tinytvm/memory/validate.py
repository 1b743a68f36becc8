"""The one checker of a plan, run by every build and every test (after MiniMalloc's
Validate and TFLite Micro's DoAnyBuffersOverlap)."""

from __future__ import annotations

from tinytvm.errors import PlanError

from .problem import Buffer, Problem, Solution, live_pairs


def validate(problem: Problem, solution: Solution) -> None:
    """Return None if the plan is sound, else raise PlanError naming the first broken rule
    ("missing", "unknown", "offset", "alignment", "overlap", "peak", "capacity") and the
    buffer or pair at fault.

    A buffer occupies bytes [offset, offset + aligned_size); size-0 buffers occupy none.
    """
    _check_names(problem, solution)
    for buf in problem.buffers:
        _check_offset(buf, solution.offsets[buf.name])
    _check_overlaps(problem, solution)
    _check_peak(problem, solution)


def _check_names(problem: Problem, solution: Solution) -> None:
    names = [b.name for b in problem.buffers]
    for name in names:
        if name not in solution.offsets:
            raise PlanError(f"missing: buffer {name!r} has no offset in the solution")
    unknown = sorted(set(solution.offsets) - set(names))
    if unknown:
        raise PlanError(
            f"unknown: the solution places {unknown[0]!r}, not in the problem"
        )


def _check_offset(buf: Buffer, offset: int) -> None:
    if offset < 0:
        raise PlanError(f"offset: {_describe(buf, offset)} has a negative offset")
    if offset % buf.alignment:
        raise PlanError(
            f"alignment: {_describe(buf, offset)} is not aligned to {buf.alignment} bytes"
        )


def _check_overlaps(problem: Problem, solution: Solution) -> None:
    sized = [b for b in problem.buffers if b.size]
    for a, b in live_pairs(sized):
        a_off, b_off = solution.offsets[a.name], solution.offsets[b.name]
        lo = max(a_off, b_off)
        hi = min(a_off + a.aligned_size, b_off + b.aligned_size)
        if lo < hi:
            raise PlanError(
                f"overlap: {_describe(a, a_off)} and {_describe(b, b_off)} share bytes "
                f"[{lo}, {hi}) while both alive over steps "
                f"[{max(a.start, b.start)}, {min(a.end, b.end)})"
            )


def _check_peak(problem: Problem, solution: Solution) -> None:
    def end(buf: Buffer) -> int:
        return solution.offsets[buf.name] + buf.aligned_size

    top = max(problem.buffers, key=end, default=None)
    highest = _describe(top, solution.offsets[top.name]) if top else "no buffer"
    if top is not None and solution.peak < end(top):
        raise PlanError(f"peak: peak {solution.peak} is below the end of {highest}")
    if problem.capacity is not None and solution.peak > problem.capacity:
        raise PlanError(
            f"capacity: peak {solution.peak} bytes exceeds the capacity of "
            f"{problem.capacity} bytes (lower bound {problem.lower_bound()}); "
            f"the highest is {highest}"
        )


def _describe(buf: Buffer, offset: int) -> str:
    return (
        f"buffer {buf.name!r} (steps [{buf.start}, {buf.end}), offset {offset}, "
        f"size {buf.size}, bytes [{offset}, {offset + buf.aligned_size}))"
    )
