"""Model import: ONNX (and Relax modules passed through) into tinytvm's canonical Relax form.

Convention kept by every pass afterwards: the function `main` takes the model inputs first
(`num_input` of them), then every parameter as a named input whose initial value is in the
function attribute `params` (the Relax ONNX frontend's own convention).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from .errors import UnsupportedModelError

# ONNX ops the training pipeline has canonicalization and gradient rules for.
SUPPORTED_ONNX_OPS = frozenset({
    "Conv", "Relu", "Clip", "BatchNormalization", "Add", "GlobalAveragePool", "AveragePool",
    "MaxPool", "Flatten", "Gemm", "MatMul", "Reshape", "Constant", "Identity",
})


def load_onnx(model: str | Path | onnx.ModelProto) -> onnx.ModelProto:
    if isinstance(model, onnx.ModelProto):
        return model
    path = Path(model)
    if not path.exists():
        raise UnsupportedModelError(f"ONNX file not found: {path}")
    try:
        return onnx.load(str(path))
    except Exception as err:  # protobuf raises several unrelated types
        raise UnsupportedModelError(f"{path} is not a readable ONNX model: {err}") from None


MAX_TENSOR_ELEMENTS = 1 << 24  # 64 MB of float32: far beyond any microcontroller


def check_onnx(model: onnx.ModelProto) -> None:
    """Reject what tinytvm cannot compile, naming the node or tensor at fault."""
    graph = model.graph
    for node in graph.node:
        if node.op_type not in SUPPORTED_ONNX_OPS:
            raise UnsupportedModelError(
                f"unsupported op '{node.op_type}' at node '{node.name or node.output[0]}'; "
                f"tinytvm trains models built from: {', '.join(sorted(SUPPORTED_ONNX_OPS))}")
    initializers = {init.name: init for init in graph.initializer}
    _check_inputs(graph, initializers)
    _check_initializers(initializers)
    _check_dataflow(graph, initializers)
    _check_weight_shapes(model, initializers)
    try:
        onnx.checker.check_model(model)
        onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except Exception as err:  # onnx raises checker, inference and protobuf errors alike
        raise UnsupportedModelError(f"invalid ONNX model: {_first_line(err)}") from None


def _first_line(err) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _check_inputs(graph, initializers) -> None:
    for value in graph.input:
        if value.name in initializers:
            continue
        tensor_type = value.type.tensor_type
        if tensor_type.elem_type != onnx.TensorProto.FLOAT:
            raise UnsupportedModelError(
                f"input '{value.name}' has dtype {onnx.TensorProto.DataType.Name(tensor_type.elem_type)}; "
                "tinytvm takes float32 model inputs")
        size = 1
        for axis, dim in enumerate(tensor_type.shape.dim):
            if not dim.HasField("dim_value"):
                label = dim.dim_param or "?"
                raise UnsupportedModelError(
                    f"dynamic shape: input '{value.name}' has dimension {axis} = '{label}'; "
                    "tinytvm compiles static shapes only (export with a fixed batch 1 and size)")
            if dim.dim_value <= 0:
                raise UnsupportedModelError(
                    f"input '{value.name}' has dimension {axis} = {dim.dim_value}: empty tensor")
            size *= dim.dim_value
        if size > MAX_TENSOR_ELEMENTS:
            raise UnsupportedModelError(f"input '{value.name}' has {size} elements, more than "
                                        f"{MAX_TENSOR_ELEMENTS}: far too large for a microcontroller")


def _check_initializers(initializers) -> None:
    for name, init in initializers.items():
        size = int(np.prod(init.dims, dtype=np.int64)) if init.dims else 1
        if size > MAX_TENSOR_ELEMENTS:
            raise UnsupportedModelError(f"weight '{name}' has {size} elements: too large")
        if init.data_type == onnx.TensorProto.INT64:
            continue  # shapes (Reshape); checked by the op that reads them
        if init.data_type != onnx.TensorProto.FLOAT:
            raise UnsupportedModelError(
                f"weight '{name}' has dtype {onnx.TensorProto.DataType.Name(init.data_type)}; "
                "tinytvm takes float32 weights (int8 models come through quantization)")
        try:
            values = numpy_helper.to_array(init)
        except Exception as err:
            raise UnsupportedModelError(f"weight '{name}' cannot be read: {_first_line(err)}") from None
        if values.size != size:
            raise UnsupportedModelError(f"weight '{name}' holds {values.size} values for shape "
                                        f"{list(init.dims)}")
        if not np.isfinite(values).all():
            bad = int((~np.isfinite(values)).sum())
            raise UnsupportedModelError(f"weight '{name}' contains {bad} NaN/inf values")


def _check_weight_shapes(model, initializers) -> None:
    """A conv's or Gemm's weight must fit the tensor it is applied to."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception as err:
        raise UnsupportedModelError(f"invalid ONNX model: {_first_line(err)}") from None
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in [*inferred.graph.value_info, *inferred.graph.input]}
    for node in model.graph.node:
        if node.op_type not in ("Conv", "Gemm") or node.input[1] not in initializers:
            continue
        data, weight = shapes.get(node.input[0]), list(initializers[node.input[1]].dims)
        if not data or not weight:
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Conv":
            expected, got = data[1], weight[1] * attrs.get("group", 1)
        else:
            expected = data[0 if attrs.get("transA", 0) else 1]
            got = weight[1 if attrs.get("transB", 0) else 0]
        if expected != got:
            raise UnsupportedModelError(
                f"node '{node.name or node.output[0]}' ({node.op_type}): weight '{node.input[1]}' "
                f"{weight} takes {got} input channels, the input '{node.input[0]}' {data} has "
                f"{expected}")


def _check_dataflow(graph, initializers) -> None:
    """Every node reads only tensors defined before it: catches cycles and missing weights."""
    defined = set(initializers) | {v.name for v in graph.input}
    for node in graph.node:
        for name in node.input:
            if name and name not in defined:
                produced_later = any(name in later.output for later in graph.node)
                why = ("is produced by a later node (a cycle, or nodes out of order)"
                       if produced_later else "is not a graph input, weight or node output")
                raise UnsupportedModelError(
                    f"node '{node.name or node.output[0]}' ({node.op_type}) reads '{name}', which {why}")
        defined.update(node.output)
    for out in graph.output:
        if out.name not in defined:
            raise UnsupportedModelError(f"graph output '{out.name}' is produced by no node")


def from_onnx(model: str | Path | onnx.ModelProto):
    """Import an ONNX model as a Relax IRModule with parameters as named inputs."""
    from tvm.relax.frontend.onnx import from_onnx as relax_from_onnx

    proto = load_onnx(model)
    check_onnx(proto)
    try:
        return relax_from_onnx(proto, keep_params_in_input=True, sanitize_input_names=False)
    except Exception as err:
        raise UnsupportedModelError(f"the ONNX importer rejected the model: {err}") from None
