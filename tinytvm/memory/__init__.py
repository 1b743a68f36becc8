"""Static arena planning: place every buffer of a training step in one SRAM arena.

The problem is typed and kept apart from the IR (after google/minimalloc); planners are
pure functions registered in PLANNERS (after TFLite Micro's planners); `validate` is the
one checker every build and every test runs on a plan.
"""

from .bestfit import plan_bestfit
from .exact import plan_auto, plan_exact
from .planners import PLANNERS, plan_greedy, plan_linear
from .problem import Buffer, Problem, Solution, align_up, load_minimalloc_csv
from .validate import validate

# planners.py holds the baselines; the stronger planners build on them, so they are
# registered here, where both are imported.
PLANNERS.update({"bestfit": plan_bestfit, "exact": plan_exact, "auto": plan_auto})

__all__ = [
    "PLANNERS",
    "Buffer",
    "Problem",
    "Solution",
    "align_up",
    "load_minimalloc_csv",
    "plan_auto",
    "plan_bestfit",
    "plan_exact",
    "plan_greedy",
    "plan_linear",
    "validate",
]
