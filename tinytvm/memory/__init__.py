"""Static arena planning: place every buffer of a training step in one SRAM arena.

The problem is typed and kept apart from the IR (after google/minimalloc); planners are
pure functions registered in PLANNERS (after TFLite Micro's planners); `validate` is the
one checker every build and every test runs on a plan.
"""

from .planners import PLANNERS, plan_greedy, plan_linear
from .problem import Buffer, Problem, Solution, align_up, load_minimalloc_csv
from .validate import validate

__all__ = [
    "PLANNERS",
    "Buffer",
    "Problem",
    "Solution",
    "align_up",
    "load_minimalloc_csv",
    "plan_greedy",
    "plan_linear",
    "validate",
]
