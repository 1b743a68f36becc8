"""Property tests of every arena planner (tinytvm.memory), on random lifetime sets.

The exact search runs with small node limits here: these tests are about soundness
(every plan validates, no planner loses to greedy, no peak beats the lower bound),
and about exactness only on problems small enough to check by brute force.
"""

import itertools
from functools import partial

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinytvm.memory import (
    PLANNERS,
    Buffer,
    Problem,
    plan_auto,
    plan_bestfit,
    plan_exact,
    plan_greedy,
    validate,
)
from tinytvm.memory.bestfit import FITS, place_in_order
from tinytvm.memory.exact import minimize

ALIGNMENTS = st.sampled_from([1, 4, 16])
# No example database: the tests leave no files behind.
FAST = settings(max_examples=200, deadline=None, database=None)

# PLANNERS with budgets sized for hundreds of examples.
SMALL = {
    **PLANNERS,
    "exact": partial(plan_exact, node_limit=300),
    "auto": partial(plan_auto, node_limit=300),
}


def buffer(i: int, size: int, start: int, length: int, alignment: int) -> Buffer:
    return Buffer(f"t{i}", size, start, start + length, alignment)


@st.composite
def lifetime_sets(draw, max_buffers: int = 16, max_start: int = 16) -> Problem:
    """Random overlapping lifetimes; sizes include 0, alignments 1/4/16."""
    n = draw(st.integers(1, max_buffers))
    sizes = st.one_of(st.just(0), st.integers(1, 300), st.sampled_from([16, 64, 256]))
    return Problem(
        tuple(
            buffer(
                i,
                draw(sizes),
                draw(st.integers(0, max_start)),
                draw(st.integers(1, 8)),
                draw(ALIGNMENTS),
            )
            for i in range(n)
        )
    )


@st.composite
def dag_lifetimes(draw, max_nodes: int = 16) -> Problem:
    """One tensor per node of a random DAG, nodes in topological order (their index):
    tensor i lives over [i, last consumer + 1), or [i, i + 1) if nothing reads it."""
    n = draw(st.integers(1, max_nodes))
    last_use = list(range(n))
    for node in range(1, n):
        inputs = draw(st.sets(st.integers(0, node - 1), max_size=3))
        for producer in inputs:
            last_use[producer] = max(last_use[producer], node)
    return Problem(
        tuple(
            Buffer(
                f"t{i}", draw(st.integers(1, 400)), i, last_use[i] + 1, draw(ALIGNMENTS)
            )
            for i in range(n)
        )
    )


def check_plans(problem: Problem) -> dict[str, int]:
    """Every planner's plan validates and respects the bound; returns the peaks."""
    bound = problem.lower_bound()
    peaks = {}
    for name, plan in SMALL.items():
        solution = plan(problem)
        validate(problem, solution)
        assert solution.peak >= bound, name
        peaks[name] = solution.peak
    greedy = peaks["greedy"]
    assert peaks["bestfit"] <= greedy
    assert peaks["exact"] <= peaks["bestfit"]
    assert peaks["auto"] <= peaks["bestfit"]
    return peaks


# --- soundness on random lifetimes ---------------------------------------------------


@settings(max_examples=1000, deadline=None, database=None)
@given(lifetime_sets())
def test_every_planner_validates_and_none_loses_to_greedy(problem):
    check_plans(problem)


@FAST
@given(dag_lifetimes())
def test_dag_derived_lifetimes_validate(problem):
    check_plans(problem)


@FAST
@given(lifetime_sets(max_buffers=40, max_start=30))
def test_larger_problems_validate(problem):
    check_plans(problem)


# --- where the lower bound is reachable, the planners reach it -----------------------


@FAST
@given(st.lists(st.tuples(st.integers(0, 500), ALIGNMENTS), min_size=1, max_size=15))
def test_disjoint_lifetimes_share_one_address(specs):
    problem = Problem(tuple(buffer(i, s, i, 1, a) for i, (s, a) in enumerate(specs)))
    for name, plan in SMALL.items():
        if name == "linear":
            continue
        solution = plan(problem)
        validate(problem, solution)
        assert solution.peak == problem.lower_bound(), name


@FAST
@given(
    st.lists(st.integers(1, 500), min_size=2, max_size=14),
    st.integers(2, 3),
    ALIGNMENTS,
)
def test_overlapping_chains_reach_the_lower_bound(sizes, length, alignment):
    # Buffer i lives over [i, i + length): each overlaps the next length - 1 ones; with
    # one alignment, stacking in a repeating pattern of `length` slots reaches the bound.
    problem = Problem(
        tuple(buffer(i, s, i, length, alignment) for i, s in enumerate(sizes))
    )
    for plan in (plan_exact, plan_auto):
        solution = plan(problem, node_limit=20_000)
        validate(problem, solution)
        assert solution.peak == problem.lower_bound()


# --- exactness, against brute force on tiny problems ---------------------------------


def brute_force_peak(problem: Problem) -> int:
    """The optimum: first fit (lowest offset) in some order reproduces any optimal plan
    pushed down as far as it goes, so the best over all orders is optimal."""
    return min(
        place_in_order(order, "first").peak
        for order in itertools.permutations(problem.buffers)
    )


@settings(max_examples=300, deadline=None, database=None)
@given(lifetime_sets(max_buffers=6, max_start=6))
def test_exact_is_optimal_and_proves_it_on_tiny_problems(problem):
    optimum = brute_force_peak(problem)
    result = minimize(problem, plan_bestfit(problem), node_limit=10**6)
    validate(problem, result.solution)
    assert result.solution.peak == optimum
    assert result.optimal  # the search finished, so the bound was raised to the optimum
    assert plan_exact(problem).peak == optimum


@settings(max_examples=100, deadline=None, database=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.integers(1, 3), st.sampled_from([16, 32, 48])),
        min_size=1,
        max_size=6,
    )
)
def test_exact_is_optimal_with_many_twins(specs):
    # Few distinct (lifetime, size) pairs: many interchangeable buffers.
    problem = Problem(
        tuple(buffer(i, s, t, n, 16) for i, (t, n, s) in enumerate(specs))
    )
    assert plan_exact(problem).peak == brute_force_peak(problem)


# --- purity and determinism ----------------------------------------------------------


@FAST
@given(lifetime_sets(), st.randoms(use_true_random=False))
def test_plans_do_not_depend_on_buffer_order(problem, rng):
    shuffled = list(problem.buffers)
    rng.shuffle(shuffled)
    other = Problem(tuple(shuffled))
    for name, plan in SMALL.items():
        if name == "linear":
            continue  # bump allocation follows the given order by design
        assert plan(other) == plan(problem), name


def test_fit_rules_and_planner_names():
    assert set(FITS) == {"first", "best", "lowest"}
    assert {"greedy", "linear", "bestfit", "exact", "auto"} <= set(PLANNERS)


def test_time_limit_zero_returns_the_heuristic_plan():
    problem = Problem(
        tuple(buffer(i, 100 + 37 * i, i % 5, 3, [1, 4, 16][i % 3]) for i in range(30))
    )
    start = plan_bestfit(problem)
    assert plan_exact(problem, time_limit=0.0, start=start) == start


def test_negative_limits_are_rejected_by_name():
    with pytest.raises(ValueError, match="plan_exact"):
        plan_exact(Problem(()), node_limit=-1)
    with pytest.raises(ValueError, match="plan_auto"):
        plan_auto(Problem(()), tolerance=-0.1)


def test_auto_skips_the_search_above_max_buffers():
    problem = Problem(tuple(buffer(i, 10 + i, i % 4, 2, 1) for i in range(12)))
    assert plan_auto(problem, max_buffers=0) == plan_bestfit(problem)


def test_exact_beats_greedy_where_greedy_is_known_to_lose():
    # Equal sizes, so greedy goes by name: w and x at 0, y above x, z above w and y.
    problem = Problem(
        (
            Buffer("w", 20, 3, 6, 1),
            Buffer("x", 20, 0, 1, 1),
            Buffer("y", 20, 0, 2, 1),
            Buffer("z", 20, 1, 4, 1),
        )
    )
    assert plan_greedy(problem).peak == 60
    for plan in (plan_exact, plan_auto):
        solution = plan(problem)
        validate(problem, solution)
        assert solution.peak == problem.lower_bound() == 40
