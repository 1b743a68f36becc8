"""QuantizationAwareScaling (QAS): give int8 gradients the weight/gradient ratio of fp32.

Requires: `train_step` returning `(loss, *grads)` (Autodiff's form) and, on the function, the
attribute "tt.quant_units" (name -> real value of one integer unit per output channel), which
int8 graphs carry (tinytvm.quant.paper_import, tinytvm.quant.ptq).
Guarantees: every gradient of a weight with units u is multiplied by u⁻² per output channel;
other gradients are unchanged.

Why u⁻²: with W = s_W·W̄ the gradient of the integer weight is G_W̄ = s_W·G_W, so the ratio
‖W̄‖/‖G_W̄‖ is s_W⁻² times fp32's ‖W‖/‖G_W‖. Scaling G_W̄ by s_W⁻² makes the int8 SGD step
W̄ ← W̄ − lr·s_W⁻²·G_W̄ exactly fp32's W ← W − lr·G_W, in integer units, with the same lr; the
int32 bias (units s_x·s_W) likewise gets (s_x·s_W)⁻² (Lin et al. 2022, Sec. 2.1).
"""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax

from tinytvm.ir import FunctionView, bind, rewrite_function, shape_of

# a dead channel (units ~ 0) must not turn its gradient into inf
MAX_FACTOR = 1e30


def qas_factor(units: np.ndarray, grad_shape: tuple[int, ...]) -> np.ndarray:
    """u⁻² for the leading `grad_shape[0]` channels, shaped to broadcast over the gradient."""
    u = np.asarray(units, np.float64)[: grad_shape[0]]
    factor = np.minimum(1.0 / np.maximum(u * u, 1e-300), MAX_FACTOR).astype(np.float32)
    return factor.reshape((grad_shape[0],) + (1,) * (len(grad_shape) - 1))


def scale_gradients(func: relax.Function) -> relax.Function:
    view = FunctionView.of(func)
    units = view.attrs.get("tt.quant_units")
    if not units:
        return func
    trainable = [str(n) for n in view.attrs["trainable"]]
    out_binding = view.bindings[-1]
    loss, *grads = out_binding.value.fields
    new_bindings, scaled = [], []
    for name, grad in zip(trainable, grads):
        if name not in units:
            scaled.append(grad)
            continue
        factor = qas_factor(units[name].numpy(), shape_of(grad))
        b = bind(f"{name}.qas", relax.op.multiply(grad, relax.const(factor)))
        new_bindings.append(b)
        scaled.append(b.var)
    result = relax.BlockBuilder().normalize(relax.Tuple([loss, *scaled]))
    out_var = relax.Var(out_binding.var.name, result.ty)
    view.bindings = view.bindings[:-1] + new_bindings + [relax.VarBinding(out_var, result)]
    view.output = out_var
    view.attrs["gradient_scaling"] = "qas"
    return view.to_function()


@tvm.transform.module_pass(opt_level=0, name="QuantizationAwareScaling")
class QuantizationAwareScaling:
    """Multiplies each int8 weight / int32 bias gradient of `train_step` by units⁻²."""

    def transform_module(self, mod, ctx):
        return rewrite_function(mod, "train_step", lambda m, bb: scale_gradients(m["train_step"]))
