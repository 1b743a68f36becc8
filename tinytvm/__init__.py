"""tinytvm: compile a trained network into a C program that trains itself on a Cortex-M7."""

from . import frontend, pipeline
from .build import Artifact, TrainConfig, build
from .pipeline import default_passes
from .passes.gradients import register_gradient
from .errors import BudgetError, PlanError, TinyTVMError, ToolchainError, UnsupportedModelError

__all__ = ["Artifact", "BudgetError", "PlanError", "TinyTVMError", "ToolchainError", "TrainConfig",
           "UnsupportedModelError", "build", "default_passes", "frontend", "pipeline", "register_gradient"]
