"""tinytvm: compile a trained network into a C program that trains itself on a Cortex-M7."""

from . import frontend, pipeline
from .build import Artifact, TrainConfig, build
from .pipeline import default_passes
from .sparse import UpdateScheme
from .sparse_search import SparseUpdate
from .passes.gradients import register_gradient
from .errors import BudgetError, PlanError, TinyTVMError, ToolchainError, UnsupportedModelError
from . import micro  # after build: micro needs nothing from it, but keep TVM's import first

__all__ = ["Artifact", "BudgetError", "PlanError", "TinyTVMError", "ToolchainError", "TrainConfig",
           "UnsupportedModelError", "build", "default_passes", "frontend", "micro", "pipeline",
           "register_gradient", "SparseUpdate", "UpdateScheme"]
