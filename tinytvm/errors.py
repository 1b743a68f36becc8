"""Errors that tinytvm shows to its users.

Every failure a user can cause (bad model, over budget, missing tool) ends in one of
these, with a message that names the node, op, tensor, budget or tool at fault.
"""


class TinyTVMError(Exception):
    """Base class of every error tinytvm raises on purpose."""


class UnsupportedModelError(TinyTVMError):
    """The model uses an op, dtype or shape tinytvm cannot compile."""


class BudgetError(TinyTVMError):
    """The compiled program does not fit the SRAM or flash budget."""

    def __init__(self, message, report=None):
        super().__init__(message)
        self.report = report


class PlanError(TinyTVMError):
    """A memory plan broke one of its rules (overlap, alignment, capacity)."""


class ToolchainError(TinyTVMError):
    """A required external tool (cross compiler, QEMU, probe) is missing or failed."""


def _register_with_tvm_ffi() -> None:
    """Let these errors cross TVM's FFI (raised inside a pass) and come back as themselves."""
    try:
        import tvm_ffi
    except ImportError:  # errors stay importable without TVM
        return
    for cls in (TinyTVMError, UnsupportedModelError, BudgetError, PlanError, ToolchainError):
        tvm_ffi.register_error(cls.__name__, cls)


_register_with_tvm_ffi()
