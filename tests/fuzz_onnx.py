"""A corpus of broken ONNX models, made by mutating valid ones.

Each case is (case id, model, culprit): building the model must end in a tinytvm error whose
message names the culprit (a node, tensor or op name).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from tinytvm.models import mbv2_tiny, resnet_tiny, ts_cnn

BASES = {"mbv2": mbv2_tiny, "resnet": resnet_tiny, "ts": lambda: ts_cnn(length=32, width=4)}


def _copy(model) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out


def _node_name(node) -> str:
    return node.name or node.output[0]


def _weights(model):
    return [i for i in model.graph.initializer if len(i.dims) > 1]


def wrong_weight_shape(model):
    for k, init in enumerate(_weights(model)):
        m = _copy(model)
        target = m.graph.initializer[list(model.graph.initializer).index(init)]
        bigger = numpy_helper.to_array(init)
        bigger = np.concatenate([bigger, bigger[:, :1]], axis=1)
        target.CopyFrom(numpy_helper.from_array(bigger.astype(np.float32), init.name))
        consumer = next(n for n in m.graph.node if init.name in n.input)
        yield f"shape-{k}", m, (init.name, _node_name(consumer))


def missing_initializer(model):
    for k, init in enumerate(model.graph.initializer):
        m = _copy(model)
        del m.graph.initializer[k]
        yield f"missing-{k}", m, (init.name,)


def unknown_op(model):
    for k, node in enumerate(model.graph.node):
        m = _copy(model)
        m.graph.node[k].op_type = "FancyNewOp"
        yield f"unknown-{k}", m, ("FancyNewOp", _node_name(node))


def cycle(model):
    nodes = model.graph.node
    for k in range(1, len(nodes) - 1, 2):
        m = _copy(model)
        later = m.graph.node[min(len(nodes) - 1, k + 1 + k % 3)].output[0]  # strictly after k
        m.graph.node[k].input[0] = later
        yield f"cycle-{k}", m, (later, _node_name(nodes[k]))


def nan_weight(model):
    for k, init in enumerate(model.graph.initializer):
        if init.data_type != TensorProto.FLOAT:
            continue
        for bad in (np.nan, np.inf):
            m = _copy(model)
            values = numpy_helper.to_array(init).copy()
            values.reshape(-1)[0] = bad
            m.graph.initializer[k].CopyFrom(numpy_helper.from_array(values, init.name))
            yield f"{'nan' if bad != np.inf else 'inf'}-{k}", m, (init.name,)


def input_dims(model):
    name = model.graph.input[0].name
    rank = len(model.graph.input[0].type.tensor_type.shape.dim)
    for axis in range(rank):
        for label, edit in (("zero", lambda d: d.ClearField("dim_param") or setattr(d, "dim_value", 0)),
                            ("dynamic", lambda d: setattr(d, "dim_param", "n")),
                            ("huge", lambda d: setattr(d, "dim_value", 1 << 26))):
            m = _copy(model)
            edit(m.graph.input[0].type.tensor_type.shape.dim[axis])
            yield f"dim{axis}-{label}", m, (name,)


def wrong_dtypes(model):
    for elem in (TensorProto.INT64, TensorProto.DOUBLE, TensorProto.UINT8):
        m = _copy(model)
        m.graph.input[0].type.tensor_type.elem_type = elem
        yield f"input-dtype-{elem}", m, (m.graph.input[0].name,)
    for k, init in enumerate(_weights(model)[:3]):
        m = _copy(model)
        idx = list(model.graph.initializer).index(init)
        m.graph.initializer[idx].CopyFrom(
            numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float64), init.name))
        yield f"weight-dtype-{k}", m, (init.name,)


def dangling_output(model):
    m = _copy(model)
    m.graph.output[0].name = "nobody_makes_this"
    yield "output", m, ("nobody_makes_this",)


MUTATIONS = [wrong_weight_shape, missing_initializer, unknown_op, cycle, nan_weight, input_dims,
             wrong_dtypes, dangling_output]


def corpus():
    for base_name, make in BASES.items():
        base = make()
        for mutate in MUTATIONS:
            for case, model, culprits in mutate(base):
                yield f"{base_name}-{case}", model, culprits
