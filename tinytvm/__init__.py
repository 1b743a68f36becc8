"""tinytvm: compile a trained network into a C program that trains itself on a Cortex-M7."""

from . import frontend
from .build import Artifact, TrainConfig, build
from .errors import BudgetError, PlanError, TinyTVMError, ToolchainError, UnsupportedModelError

__all__ = ["Artifact", "BudgetError", "PlanError", "TinyTVMError", "ToolchainError", "TrainConfig",
           "UnsupportedModelError", "build", "frontend"]
