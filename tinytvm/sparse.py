"""Sparse update: which biases, which conv weights (and how many of their output channels) a
training step updates — the paper's `UpdateScheme` — and what a scheme costs in memory.

Layers are counted from the input in execution order over the canonical model: every conv
(including depthwise) and the final linear classifier, as the paper counts its convs.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

import tvm
from tvm import relax

from .errors import UnsupportedModelError
from .ir import FunctionView, call_tir_kernel, op_name, shape_of

CONVS = ("relax.nn.conv2d", "relax.nn.conv1d")


@dataclass(frozen=True)
class Layer:
    index: int
    kind: str  # "conv" | "depthwise" | "linear"
    weight: str
    bias: str | None
    out_channels: int


def trainable_layers(mod: tvm.IRModule) -> list[Layer]:
    """Convs and linear layers of the canonical `main`, in execution order, with their biases."""
    view = FunctionView.of(mod["main"])
    weights = {w.name for w in view.weights}
    defs = view.var_to_value()
    bias_of = {}  # layer output var -> bias weight name
    for b in view.bindings:
        if op_name(b.value) == "relax.add":
            x, y = b.value.args
            bias = defs.get(y)
            bias_var = bias.args[0] if op_name(bias) == "relax.reshape" else y
            if isinstance(bias_var, relax.Var) and bias_var.name in weights:
                bias_of[x] = bias_var.name
    layers = []
    for b in view.bindings:
        name = op_name(b.value)
        int8 = _int8_layer(mod, b.value, weights, len(layers))
        if int8 is not None:
            layers.append(int8)
        elif name in CONVS and b.value.args[1].name in weights:
            w = b.value.args[1]
            kind = "depthwise" if int(b.value.attrs.groups) > 1 else "conv"
            layers.append(Layer(len(layers), kind, w.name, bias_of.get(b.var), shape_of(w)[0]))
        elif name == "relax.matmul":
            w = defs.get(b.value.args[1])
            w = w.args[0] if op_name(w) == "relax.permute_dims" else b.value.args[1]
            if isinstance(w, relax.Var) and w.name in weights:
                layers.append(Layer(len(layers), "linear", w.name, bias_of.get(b.var),
                                    shape_of(b.var)[-1]))
    if not layers:
        raise UnsupportedModelError("the model has no conv or linear layer to train")
    return layers


INT8_LAYER_OPS = ("qconv2d", "qclassifier")  # tinytvm.quant.qops kernels: (x, weight, bias, ...)


def _int8_layer(mod, call, weights: set[str], index: int) -> Layer | None:
    """An int8 conv / classifier call_tir (its kernel's "tt.op"), as a Layer."""
    kernel = call_tir_kernel(mod, call)
    if kernel is None:
        return None
    op = str(kernel.attrs["tt.op"]) if kernel.attrs is not None and "tt.op" in kernel.attrs else ""
    if op not in INT8_LAYER_OPS:
        return None
    _, weight, bias = call.args[1].fields[:3]
    if weight.name not in weights:
        return None
    kind = ("linear" if op == "qclassifier" else
            "depthwise" if int(kernel.attrs["tt.groups"]) > 1 else "conv")
    return Layer(index, kind, weight.name, bias.name if bias.name in weights else None,
                 shape_of(weight)[0])


@dataclass(frozen=True)
class UpdateScheme:
    """What one training step updates.

    bias_last:  biases of the last n layers (the classifier is the last layer);
    weights:    (layer index, channel ratio) pairs — the weight of that layer, its first
                ceil(ratio·out_channels) output channels (ratio 1 = the whole weight);
    classifier: the classifier's weight (and bias) too.
    """

    bias_last: int = 0
    weights: tuple[tuple[int, float], ...] = field(default_factory=tuple)
    classifier: bool = True

    @classmethod
    def full(cls, num_layers: int) -> "UpdateScheme":
        return cls(num_layers, tuple((i, 1.0) for i in range(num_layers)), True)

    @classmethod
    def last_layers(cls, k: int, num_layers: int) -> "UpdateScheme":
        return cls(k, tuple((i, 1.0) for i in range(num_layers - k, num_layers)), True)

    def resolve(self, layers: list[Layer]) -> tuple[list[str], dict[str, int]]:
        """(trainable weight names, {weight name: leading channels}) for these layers."""
        names, channels = [], {}
        for layer in layers[max(len(layers) - self.bias_last, 0):]:
            if layer.bias is not None:
                names.append(layer.bias)
        for index, ratio in self.weights:
            if not 0 <= index < len(layers):
                raise UnsupportedModelError(f"update scheme names layer {index}; the model has "
                                            f"layers 0..{len(layers) - 1}")
            if not 0 < ratio <= 1:
                raise UnsupportedModelError(f"channel ratio {ratio} of layer {index} not in (0, 1]")
            layer = layers[index]
            names.append(layer.weight)
            rows = math.ceil(ratio * layer.out_channels)
            if rows < layer.out_channels:
                channels[layer.weight] = rows
        if self.classifier:
            last = layers[-1]
            names += [last.weight] + ([last.bias] if last.bias else [])
        return list(dict.fromkeys(names)), channels

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "UpdateScheme":
        raw = json.loads(text)
        return cls(int(raw["bias_last"]), tuple((int(i), float(r)) for i, r in raw["weights"]),
                   bool(raw["classifier"]))

    def __str__(self) -> str:
        weights = ", ".join(f"{i}" + (f"@{r:g}" if r < 1 else "") for i, r in self.weights)
        return (f"UpdateScheme(biases of last {self.bias_last}, weights [{weights}]"
                f"{', classifier' if self.classifier else ''})")


@dataclass(frozen=True)
class MemoryCost:
    arena_bytes: int      # planned peak of the training step's arena
    lower_bound: int      # max live bytes of that step
    trainable_bytes: int  # weights (and momentum) the step writes, in SRAM

    @property
    def total(self) -> int:
        return self.arena_bytes + self.trainable_bytes


def memory_cost(model, scheme: UpdateScheme, lr: float = 0.01, momentum: float = 0.0,
                planner: str = "auto", **config) -> MemoryCost:
    """What a scheme costs: the same plan `tinytvm.build` makes (same passes, order, planner),
    without generating C — so it agrees with the build by construction. `config`: more
    TrainConfig fields (int8 graphs: `int8_update` decides whether fp32 masters exist)."""
    from .build import TrainConfig, plan_memory

    plans, trainable = plan_memory(
        model, TrainConfig(lr=lr, momentum=momentum, update=scheme, **config), planner)
    step = plans["train_step"]
    return MemoryCost(max(step.peak, plans["infer"].peak), step.lower_bound, trainable)
