"""Exact and automatic arena planners: the search of `search.py` driven to the lowest
peak it can find, or prove, within a budget, always starting from a heuristic plan.

The peak is minimised by probing arena sizes ("does everything fit in T bytes?"): first
the lower bound, which is the optimum surprisingly often, then by bisection between the
highest size given up on (or proven too small) and the best peak found so far. The first
probe may spend FIRST_PROBE_SHARE of the budget, each later one half of what is left.
Independent groups of buffers are searched apart, and only the groups whose current plan
does not fit the probe.

Budgets count search nodes, so results are deterministic; a wall-clock limit can be given
instead or as well, and then the plan may depend on the machine's speed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from .bestfit import plan_bestfit
from .problem import Problem, Solution
from .search import Counter, Group, Outcome, components

# A node is one placement tried: some 20-50 thousand a second in CPython on MiniMalloc's
# adversarial instances (more on easy ones), so these cost a few seconds at most.
EXACT_NODE_LIMIT = 50_000
AUTO_NODE_LIMIT = 50_000
AUTO_MAX_BUFFERS = 1_000
AUTO_TOLERANCE = 1e-3
# The lower bound is the optimum more often than not (always, on MiniMalloc's instances
# whose capacity is their bound), so the first probe gets this share of the budget.
FIRST_PROBE_SHARE = 0.75


@dataclass(frozen=True)
class Minimized:
    """A plan, and the largest arena size proven necessary (lower bound or better)."""

    solution: Solution
    bound: int

    @property
    def optimal(self) -> bool:
        return self.solution.peak <= self.bound


def minimize(
    problem: Problem,
    start: Solution,
    node_limit: int,
    time_limit: float | None = None,
    tolerance: float = 0.0,
) -> Minimized:
    """Search for plans below `start` (a valid plan); see the module docstring. Stops
    early once the peak is within `tolerance` (relative) of the proven bound."""
    deadline = None if time_limit is None else time.perf_counter() + time_limit
    counter = Counter(node_limit, deadline)
    plan = _GroupedPlan(problem, start)
    bound = lo = target = problem.lower_bound()

    def settled() -> bool:
        return plan.peak() <= max(lo, bound * (1 + tolerance)) or counter.exhausted()

    share = FIRST_PROBE_SHARE  # of what is left, for the probe at the lower bound
    while not settled():
        nodes = max(int(counter.left * share), 1)
        seconds = None if deadline is None else (deadline - time.perf_counter()) * share
        probe = counter.share(nodes, seconds)
        share = 0.5  # for every later probe
        outcome = plan.fit(target, probe)
        counter.settle(probe, nodes)
        if outcome is not Outcome.FOUND:
            lo = target + 1  # given up on, or proven too small
            bound = lo if outcome is Outcome.INFEASIBLE else bound
        target = (lo + plan.peak()) // 2
    return Minimized(plan.solution(), bound)


class _GroupedPlan:
    """A plan kept per independent group of buffers; a probe replaces a group's part."""

    def __init__(self, problem: Problem, start: Solution):
        self.offsets = dict(start.offsets)
        sized = [b for b in problem.buffers if b.size]
        self.groups = [Group(c) for c in components(sized)]
        self.tops = [self._top(g) for g in self.groups]

    def _top(self, group: Group) -> int:
        return max(self.offsets[b.name] + b.aligned_size for b in group.buffers)

    def peak(self) -> int:
        return max(self.tops, default=0)

    def solution(self) -> Solution:
        return Solution(dict(self.offsets), peak=self.peak())

    def fit(self, cap: int, counter: Counter) -> Outcome:
        """Bring every group under `cap`; stops at the first group that does not fit.
        Groups brought under cap keep their new, lower plans either way."""
        for i, group in enumerate(self.groups):
            if self.tops[i] <= cap:
                continue
            outcome, offsets = group.fit(cap, counter)
            if outcome is not Outcome.FOUND:
                return outcome
            self.offsets.update(offsets)
            self.tops[i] = self._top(group)
        return Outcome.FOUND


def plan_exact(
    problem: Problem,
    *,
    node_limit: int = EXACT_NODE_LIMIT,
    time_limit: float | None = None,
    start: Solution | None = None,
) -> Solution:
    """The lowest-peak plan a MiniMalloc-style branch and bound finds within its limits.

    Starts from `start` (default: plan_bestfit's plan). Without a time_limit (seconds)
    the plan is a deterministic function of the problem and node_limit.

    Requires: node_limit >= 0, time_limit None or >= 0, else ValueError.
    Guarantees: peak <= start's peak (so <= plan_greedy's by default); the peak is
    optimal whenever the search ends inside its limits (`minimize` returns the proof).
    Problems with one alignment mostly end so; mixed alignments with odd sizes can
    leave a few bytes above the bound unproven, at the cost of the whole budget.
    """
    _check_limits("plan_exact", node_limit, time_limit)
    start = start if start is not None else plan_bestfit(problem)
    return minimize(problem, start, node_limit, time_limit).solution


def plan_auto(
    problem: Problem,
    *,
    node_limit: int = AUTO_NODE_LIMIT,
    time_limit: float | None = None,
    max_buffers: int = AUTO_MAX_BUFFERS,
    tolerance: float = AUTO_TOLERANCE,
) -> Solution:
    """plan_bestfit's plan, improved by the exact search when it is more than
    `tolerance` (relative) above the lower bound and the problem has at most
    `max_buffers` buffers. The search stops as soon as it is within tolerance.

    The default node limit costs at most about 2 s; deterministic unless a time_limit
    is given. Requires: limits >= 0 (time_limit may be None), else ValueError.
    Guarantees: peak <= plan_bestfit's peak <= plan_greedy's peak.
    """
    _check_limits("plan_auto", node_limit, time_limit, max_buffers, tolerance)
    best = plan_bestfit(problem)
    bound = problem.lower_bound()
    if best.peak <= bound * (1 + tolerance) or len(problem.buffers) > max_buffers:
        return best
    return minimize(problem, best, node_limit, time_limit, tolerance).solution


def _check_limits(planner: str, *limits: float | None) -> None:
    if any(limit is not None and limit < 0 for limit in limits):
        raise ValueError(f"{planner}: limits must be >= 0, got {limits}")
