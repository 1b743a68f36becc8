"""The paper's int8 models as Relax modules in tinytvm's convention, built from ``qops`` kernels.

``paper_to_relax(model)`` follows ``paper.program(model)`` op by op: every conv, residual add
and pool becomes a ``call_tir`` to a ``qops`` PrimFunc (kernels with identical parameters are
shared), the classifier writes the (1, classes) int8 logits. Weights are named parameters of
``main`` with their values in the attribute ``params``:

- ``<conv>.weight`` int8 [O, I/groups, kh, kw], ``<conv>.bias`` int32 [O],
  ``<conv>.scale`` float32 [O] = ``x_scale * w_scales / y_scale`` (float64, then float32: M);
- ``<block>.residual.scales`` float32 [3] = (pointwise2's y_scale, the residual's x_scale,
  its y_scale), the ``(sa, sb, so)`` of ``qops.qadd``.

Layer names are paper.py's (``first_conv``, ``blocks.3.pointwise1``, ``classifier``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import tvm
from tvm import relax

from ..ir import c_identifier
from ..models.paper import Op, PaperModel, QConv, QResidual, program
from . import qops


@dataclass
class _Step:
    """One call: its kernel (qops caches them: equal parameters give the same PrimFunc, which
    the module then holds once), its inputs, and its output."""

    name: str
    kernel: tvm.tirx.PrimFunc
    inputs: list[str]  # activation names, then weight names

    @property
    def out_shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.kernel.params[-1].shape)  # the output buffer


@dataclass
class _Plan:
    steps: list[_Step] = field(default_factory=list)
    weights: dict[str, np.ndarray] = field(default_factory=dict)  # insertion order = params


def paper_to_relax(model: PaperModel, input_hw: tuple[int, int] | None = None) -> tvm.IRModule:
    """``main(input: int8 (1, C, H, W), *weights) -> int8 (1, classes)`` for ``model``.

    ``input_hw`` defaults to the model's native resolution (128x128); the models are fully
    convolutional up to the global pool, so any size the strides allow works.
    """
    h, w = input_hw if input_hw is not None else model.input_shape[1:]
    in_shape = (1, model.input_shape[0], int(h), int(w))
    plan = _plan(model, in_shape)
    return _emit(plan, in_shape)


def _plan(model: PaperModel, in_shape: tuple[int, ...]) -> _Plan:
    plan, shapes = _Plan(), {"input": in_shape}
    producers = {b.residual.name: b.pointwise2 for b in model.blocks if b.residual is not None}
    for op in program(model):
        x_shape = shapes[op.inputs[0]]
        if op.kind == "conv":
            step = _conv_step(plan, op, x_shape, classifier=op.layer is model.classifier)
        elif op.kind == "add":
            step = _add_step(plan, op, producers[op.name], x_shape)
        else:
            step = _Step(op.name, qops.qavgpool(x_shape), list(op.inputs))
        shapes[op.name] = step.out_shape
        plan.steps.append(step)
    return plan


def _conv_step(plan: _Plan, op: Op, x_shape, classifier: bool) -> _Step:
    conv: QConv = op.layer
    names = [f"{conv.name}.{part}" for part in ("weight", "bias", "scale")]
    values = [conv.weight, conv.bias, conv.effective_scale.astype(np.float32)]
    plan.weights.update(zip(names, values))
    zeros = {"x_zero": conv.x_zero, "y_zero": conv.y_zero}
    if classifier:
        kernel = qops.qclassifier(x_shape, conv.weight.shape, **zeros)
    else:
        kernel = qops.qconv2d(x_shape, conv.weight.shape, stride=conv.stride,
                              padding=conv.padding, groups=conv.groups, **zeros)
    return _Step(op.name, kernel, [*op.inputs, *names])


def _add_step(plan: _Plan, op: Op, producer: QConv, shape) -> _Step:
    res: QResidual = op.layer
    name = f"{res.name}.scales"
    plan.weights[name] = np.array([producer.y_scale, res.in_scale, res.out_scale], np.float32)
    zeros = {"a_zero": producer.y_zero, "b_zero": res.in_zero, "out_zero": res.out_zero}
    return _Step(op.name, qops.qadd(shape, **zeros), [*op.inputs, name])


def _emit(plan: _Plan, in_shape: tuple[int, ...]) -> tvm.IRModule:
    bb = relax.BlockBuilder()
    x = relax.Var("input", relax.TensorType(in_shape, "int8"))
    env: dict[str, relax.Var] = {"input": x}
    for name, value in plan.weights.items():
        env[name] = relax.Var(name, relax.TensorType(value.shape, str(value.dtype)))
    params = [x, *(env[name] for name in plan.weights)]
    kernels: dict[tvm.tirx.PrimFunc, relax.GlobalVar] = {}  # by identity
    with bb.function("main", params):
        with bb.dataflow():
            for i, step in enumerate(plan.steps):
                if step.kernel not in kernels:
                    kernels[step.kernel] = bb.add_func(step.kernel, qops.tt_op(step.kernel))
                call = relax.call_tir(kernels[step.kernel], [env[n] for n in step.inputs],
                                      relax.TensorType(step.out_shape, "int8"))
                emit = bb.emit_output if i == len(plan.steps) - 1 else bb.emit
                env[step.name] = emit(call, name_hint=c_identifier(step.name))
        bb.emit_func_output(env[plan.steps[-1].name])
    mod = bb.get()
    values = [tvm.runtime.tensor(np.ascontiguousarray(v)) for v in plan.weights.values()]
    main = mod["main"].with_attrs({"num_input": 1, "params": values})
    mod.update_func(mod.get_global_var("main"), main)
    return mod
