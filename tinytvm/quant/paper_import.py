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

``main`` also carries ``"tt.quant_units"``: for every int8 weight and int32 bias, the real value
of one integer unit per output channel (``w_scales``; ``x_scale * w_scales``). Training reads
it: Quantization-Aware Scaling rescales each gradient by its units⁻².
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import tvm
from tvm import relax

from ..ir import c_identifier
from ..models.paper import Op, PaperModel, QConv, QResidual, program
from . import qops


@dataclass
class KernelStep:
    """One call: its kernel (qops caches them: equal parameters give the same PrimFunc, which
    the module then holds once), its inputs, and its output."""

    name: str
    kernel: tvm.tirx.PrimFunc
    inputs: list[str]  # activation names, then weight names

    @property
    def out_type(self) -> relax.TensorType:
        out = self.kernel.params[-1]  # the output buffer
        return relax.TensorType([int(s) for s in out.shape], str(out.dtype))

    @property
    def out_shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.out_type.shape)


@dataclass
class KernelPlan:
    steps: list[KernelStep] = field(default_factory=list)
    weights: dict[str, np.ndarray] = field(default_factory=dict)  # insertion order = params
    units: dict[str, np.ndarray] = field(default_factory=dict)  # "tt.quant_units"


def paper_to_relax(model: PaperModel, input_hw: tuple[int, int] | None = None, *,
                   logits: str = "int8") -> tvm.IRModule:
    """``main(input: int8 (1, C, H, W), *weights) -> (1, classes)`` for ``model``.

    ``input_hw`` defaults to the model's native resolution (128x128); the models are fully
    convolutional up to the global pool, so any size the strides allow works. ``logits``:
    "int8" as the original, or "float32", the dequantized ``(acc + bias) * x_scale * w_scale``
    a training loss needs (int8 logits saturate and quantize the loss's gradient).
    """
    h, w = input_hw if input_hw is not None else model.input_shape[1:]
    in_shape = (1, model.input_shape[0], int(h), int(w))
    if logits not in ("int8", "float32"):
        raise ValueError(f"logits must be 'int8' or 'float32', not {logits!r}")
    plan = _plan(model, in_shape, logits)
    return emit_plan(plan, in_shape)


def with_new_head(model: PaperModel, weight: np.ndarray, bias: np.ndarray,
                  name: str = "head") -> PaperModel:
    """``model`` with its classifier replaced by the float head ``weight`` (O, C), ``bias`` (O,),
    quantized as the original quantizes weights: per output channel, symmetric,
    ``w_scale = max|W_o| / 127``, bias in units of ``x_scale * w_scale``. The head reads the
    pooled features with the old classifier's input quantization; its output quantization is
    unit (``y_scale`` 1, ``y_zero`` 0): meant for float32 logits."""
    old = model.classifier
    weight, bias = np.asarray(weight, np.float64), np.asarray(bias, np.float64)
    if weight.ndim != 2 or weight.shape[1] != old.in_channels or bias.shape != weight.shape[:1]:
        raise ValueError(f"head weight must be (classes, {old.in_channels}) with a (classes,) "
                         f"bias, got {weight.shape} and {bias.shape}")
    w_scales = np.maximum(np.abs(weight).max(axis=1), 1e-12) / 127.0
    q_weight = np.clip(np.rint(weight / w_scales[:, None]), -127, 127).astype(np.int8)
    q_bias = np.rint(bias / (old.x_scale * w_scales)).astype(np.int32)
    head = dataclasses.replace(old, name=name, out_channels=weight.shape[0],
                               weight=q_weight[:, :, None, None], bias=q_bias,
                               w_scales=w_scales.astype(np.float32), y_scale=1.0, y_zero=0)
    return dataclasses.replace(model, classifier=head)


def _plan(model: PaperModel, in_shape: tuple[int, ...], logits: str = "int8") -> KernelPlan:
    plan, shapes = KernelPlan(), {"input": in_shape}
    producers = {b.residual.name: b.pointwise2 for b in model.blocks if b.residual is not None}
    for op in program(model):
        x_shape = shapes[op.inputs[0]]
        if op.kind == "conv":
            classifier = op.layer is model.classifier
            step = _conv_step(plan, op, x_shape, classifier, logits if classifier else "int8")
        elif op.kind == "add":
            step = _add_step(plan, op, producers[op.name], x_shape)
        else:
            step = KernelStep(op.name, qops.qavgpool(x_shape), list(op.inputs))
        shapes[op.name] = step.out_shape
        plan.steps.append(step)
    return plan


def _conv_step(plan: KernelPlan, op: Op, x_shape, classifier: bool, out_dtype: str) -> KernelStep:
    conv: QConv = op.layer
    names = [f"{conv.name}.{part}" for part in ("weight", "bias", "scale")]
    w_scales = conv.w_scales.astype(np.float64)
    scale = conv.effective_scale if out_dtype == "int8" else conv.x_scale * w_scales
    values = [conv.weight, conv.bias, scale.astype(np.float32)]
    plan.weights.update(zip(names, values))
    plan.units[names[0]] = w_scales.astype(np.float32)
    plan.units[names[1]] = (conv.x_scale * w_scales).astype(np.float32)
    zeros = {"x_zero": conv.x_zero, "y_zero": conv.y_zero}
    if classifier:
        kernel = qops.qclassifier(x_shape, conv.weight.shape, out_dtype=out_dtype, **zeros)
    else:
        kernel = qops.qconv2d(x_shape, conv.weight.shape, stride=conv.stride,
                              padding=conv.padding, groups=conv.groups, **zeros)
    return KernelStep(op.name, kernel, [*op.inputs, *names])


def _add_step(plan: KernelPlan, op: Op, producer: QConv, shape) -> KernelStep:
    res: QResidual = op.layer
    name = f"{res.name}.scales"
    plan.weights[name] = np.array([producer.y_scale, res.in_scale, res.out_scale], np.float32)
    zeros = {"a_zero": producer.y_zero, "b_zero": res.in_zero, "out_zero": res.out_zero}
    return KernelStep(op.name, qops.qadd(shape, **zeros), [*op.inputs, name])


def emit_plan(plan: KernelPlan, in_shape: tuple[int, ...]) -> tvm.IRModule:
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
                                      step.out_type)
                emit = bb.emit_output if i == len(plan.steps) - 1 else bb.emit
                env[step.name] = emit(call, name_hint=c_identifier(step.name))
        bb.emit_func_output(env[plan.steps[-1].name])
    mod = bb.get()
    values = [tvm.runtime.tensor(np.ascontiguousarray(v)) for v in plan.weights.values()]
    units = {name: tvm.runtime.tensor(u) for name, u in plan.units.items()}
    main = mod["main"].with_attrs({"num_input": 1, "params": values, "tt.quant_units": units})
    mod.update_func(mod.get_global_var("main"), main)
    return mod
