"""Arena planners and their validator (tinytvm.memory)."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tinytvm.errors import PlanError
from tinytvm.memory import (
    PLANNERS,
    Buffer,
    Problem,
    Solution,
    load_minimalloc_csv,
    plan_greedy,
    plan_linear,
    validate,
)

MINIMALLOC = (
    Path(__file__).resolve().parents[1].parent / "shared/data/minimalloc-challenging"
)
SEEDS = range(20)


def random_problem(seed: int, n_max: int = 60) -> Problem:
    rng = np.random.default_rng(seed)
    buffers = []
    for i in range(int(rng.integers(1, n_max))):
        start = int(rng.integers(0, 40))
        size = 0 if rng.random() < 0.05 else int(rng.integers(1, 2000))
        alignment = int(rng.choice([1, 4, 16, 64]))
        buffers.append(
            Buffer(f"t{i}", size, start, start + int(rng.integers(1, 15)), alignment)
        )
    return Problem(tuple(buffers))


# --- the validator names the rule and the buffers at fault ---------------------------


def test_validator_names_both_buffers_of_an_overlap():
    problem = Problem((Buffer("act", 64, 0, 3), Buffer("grad", 64, 2, 5)))
    with pytest.raises(PlanError, match=r"overlap: .*'act'.*'grad'.*steps \[2, 3\)"):
        validate(problem, Solution({"act": 0, "grad": 32}, peak=96))


def test_validator_accepts_touching_lifetimes_at_one_address():
    problem = Problem((Buffer("a", 64, 0, 2), Buffer("b", 64, 2, 4)))
    assert validate(problem, Solution({"a": 0, "b": 0}, peak=64)) is None


def test_validator_rejects_misalignment():
    problem = Problem((Buffer("w", 32, 0, 1, alignment=16),))
    with pytest.raises(PlanError, match=r"alignment: buffer 'w'.*16 bytes"):
        validate(problem, Solution({"w": 8}, peak=40))


def test_validator_rejects_over_capacity():
    problem = Problem((Buffer("a", 64, 0, 1),), capacity=32)
    with pytest.raises(PlanError, match=r"capacity: peak 64 .* 32 bytes.*'a'"):
        validate(problem, Solution({"a": 0}, peak=64))


def test_validator_rejects_missing_and_unknown_buffers():
    problem = Problem((Buffer("a", 16, 0, 1), Buffer("b", 16, 0, 1)))
    with pytest.raises(PlanError, match=r"missing: buffer 'b'"):
        validate(problem, Solution({"a": 0}, peak=16))
    with pytest.raises(PlanError, match=r"unknown: .*'c'"):
        validate(problem, Solution({"a": 0, "b": 16, "c": 32}, peak=48))


def test_validator_rejects_peak_below_a_buffer_end():
    problem = Problem((Buffer("a", 16, 0, 1), Buffer("b", 16, 0, 1)))
    with pytest.raises(PlanError, match=r"peak: peak 16 .*'b'"):
        validate(problem, Solution({"a": 0, "b": 16}, peak=16))


def test_validator_rejects_identical_lifetimes_at_one_address():
    problem = Problem((Buffer("x", 16, 1, 4), Buffer("y", 16, 1, 4)))
    with pytest.raises(PlanError, match=r"overlap: .*'x'.*'y'"):
        validate(problem, Solution({"x": 0, "y": 0}, peak=16))


# --- edge cases of the problem itself --------------------------------------------------


@pytest.mark.parametrize("start, end", [(3, 3), (4, 2)])
def test_empty_lifetime_is_rejected_by_name(start, end):
    with pytest.raises(PlanError, match=r"lifetime: buffer 'dead'"):
        Buffer("dead", 16, start, end)


def test_duplicate_names_are_rejected():
    with pytest.raises(PlanError, match=r"names: .*'a'"):
        Problem((Buffer("a", 16, 0, 1), Buffer("a", 16, 1, 2)))


@pytest.mark.parametrize("planner", sorted(PLANNERS))
def test_zero_size_buffer_gets_offset_zero_and_conflicts_with_nothing(planner):
    problem = Problem((Buffer("big", 64, 0, 4), Buffer("empty", 0, 1, 2)))
    solution = PLANNERS[planner](problem)
    assert solution.offsets["empty"] == 0
    assert solution.peak == 64
    validate(problem, solution)


def test_lower_bound_uses_aligned_sizes_and_half_open_lifetimes():
    problem = Problem(
        (Buffer("a", 10, 0, 2), Buffer("b", 20, 1, 3), Buffer("c", 40, 3, 4))
    )
    assert problem.lower_bound() == 16 + 32  # c starts as b ends, so never with it
    assert problem.naive_bytes() == 16 + 32 + 48


def test_interference_graph_links_exactly_the_overlapping_lifetimes():
    problem = Problem(
        (Buffer("a", 1, 0, 2), Buffer("b", 1, 1, 3), Buffer("c", 1, 3, 4))
    )
    graph = problem.interference_graph()
    assert set(graph.nodes) == {"a", "b", "c"}
    assert {frozenset(e) for e in graph.edges} == {frozenset({"a", "b"})}


# --- planners --------------------------------------------------------------------------


@pytest.mark.parametrize("planner", sorted(PLANNERS))
def test_identical_lifetimes_never_share_an_address(planner):
    # TinyEngine's first-fit allocator places two such tensors at one address.
    problem = Problem((Buffer("x", 48, 2, 5), Buffer("y", 48, 2, 5)))
    solution = PLANNERS[planner](problem)
    assert solution.offsets["x"] != solution.offsets["y"]
    validate(problem, solution)


@pytest.mark.parametrize("planner", sorted(PLANNERS))
@pytest.mark.parametrize("seed", SEEDS)
def test_random_plans_validate_and_respect_the_lower_bound(planner, seed):
    problem = random_problem(seed)
    solution = PLANNERS[planner](problem)
    validate(problem, solution)
    assert solution.peak >= problem.lower_bound()


def test_greedy_reaches_the_lower_bound_on_a_chain():
    sizes = [96, 16, 160, 48, 32, 256, 64]
    problem = Problem(tuple(Buffer(f"t{i}", s, i, i + 1) for i, s in enumerate(sizes)))
    solution = plan_greedy(problem)
    validate(problem, solution)
    assert solution.peak == problem.lower_bound() == max(sizes)
    assert set(solution.offsets.values()) == {0}


@pytest.mark.parametrize("seed", SEEDS)
def test_greedy_is_deterministic_and_ignores_buffer_order(seed):
    problem = random_problem(seed)
    shuffled = list(problem.buffers)
    np.random.default_rng(seed + 1000).shuffle(shuffled)
    first = plan_greedy(problem)
    assert plan_greedy(problem) == first
    assert plan_greedy(Problem(tuple(shuffled))) == first


@pytest.mark.parametrize("seed", SEEDS)
def test_linear_peak_is_naive_bytes(seed):
    problem = random_problem(seed)
    solution = plan_linear(problem)
    validate(problem, solution)
    assert solution.peak == problem.naive_bytes()


def test_planners_do_not_change_their_problem():
    problem = random_problem(0)
    before = replace(problem)
    for plan in PLANNERS.values():
        plan(problem)
    assert problem == before


# --- MiniMalloc benchmark data ---------------------------------------------------------


def test_minimalloc_instance_loads_and_greedy_is_within_twice_the_bound():
    problem = load_minimalloc_csv(MINIMALLOC / "A.1048576.csv")
    assert problem.capacity == 1048576
    assert len(problem.buffers) == 154
    assert all(b.alignment == 1 for b in problem.buffers)
    solution = plan_greedy(problem)
    # Greedy is known to miss this capacity; every other rule must still hold.
    validate(replace(problem, capacity=None), solution)
    assert 1.0 <= solution.peak / problem.lower_bound() <= 2.0
