"""The gradient rule table the autodiff pass reads.

A rule has Relax's `FPrimalGradient` signature: `rule(out_var, call, out_grad, bb) -> list`,
one gradient expression (or None) per argument of `call`, built from Relax ops so it is
lowered like the forward graph. Rules registered here win over Relax's own; ops with no rule
here fall back to the gradient Relax registers for them. Later work (int8 ops) adds rules
through `register_gradient` without touching the autodiff pass.
"""

from __future__ import annotations

from typing import Callable

import tvm
from tvm import relax

GradientRule = Callable[[relax.Var, relax.Call, relax.Var, relax.BlockBuilder], list]
GRADIENT_RULES: dict[str, GradientRule] = {}


def register_gradient(op_name: str, *, override: bool = False):
    """Decorator: register `rule` as the gradient of the Relax op `op_name`."""

    def register(rule: GradientRule) -> GradientRule:
        if op_name in GRADIENT_RULES and not override:
            raise ValueError(f"a gradient rule for {op_name} is already registered")
        GRADIENT_RULES[op_name] = rule
        return rule

    return register


def gradient_rule(op_name: str) -> GradientRule | None:
    """The rule for `op_name`: the project's table first, then Relax's registered gradient."""
    if op_name in GRADIENT_RULES:
        return GRADIENT_RULES[op_name]
    try:
        relax_rule = tvm.ir.Op.get(op_name).get_attr("FPrimalGradient")
    except AttributeError:  # no such op registered
        return None
    if relax_rule is None:
        return None
    return lambda var, call, grad, bb: list(relax_rule(var, call, grad, bb))


@register_gradient("relax.clip")
def _clip_gradient(var, call, grad, bb):
    """Pass the gradient where the output is strictly inside (lo, hi): needs only the output."""
    lo = relax.const(float(call.args[1].value), var.ty.dtype)
    hi = relax.const(float(call.args[2].value), var.ty.dtype)
    inside = relax.op.logical_and(relax.op.greater(var, lo), relax.op.less(var, hi))
    return [relax.op.where(inside, grad, relax.op.zeros_like(grad)), None, None]


@register_gradient("relax.nn.relu")
def _relu_gradient(var, call, grad, bb):
    """Written on the output, not the input, so the input need not be kept for backward."""
    zero = relax.const(0.0, var.ty.dtype)
    return [relax.op.where(relax.op.greater(var, zero), grad, relax.op.zeros_like(grad))]
