"""Model import: ONNX (and Relax modules passed through) into tinytvm's canonical Relax form.

Convention kept by every pass afterwards: the function `main` takes the model inputs first
(`num_input` of them), then every parameter as a named input whose initial value is in the
function attribute `params` (the Relax ONNX frontend's own convention).
"""

from __future__ import annotations

from pathlib import Path

import onnx

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


def check_onnx(model: onnx.ModelProto) -> None:
    """Reject what tinytvm cannot compile, naming the node or tensor at fault."""
    graph = model.graph
    for node in graph.node:
        if node.op_type not in SUPPORTED_ONNX_OPS:
            raise UnsupportedModelError(
                f"unsupported op '{node.op_type}' at node '{node.name or node.output[0]}'; "
                f"tinytvm trains models built from: {', '.join(sorted(SUPPORTED_ONNX_OPS))}")
    initializers = {init.name for init in graph.initializer}
    for value in graph.input:
        if value.name in initializers:
            continue
        dims = value.type.tensor_type.shape.dim
        for axis, dim in enumerate(dims):
            if not dim.HasField("dim_value") or dim.dim_value <= 0:
                label = dim.dim_param or "?"
                raise UnsupportedModelError(
                    f"dynamic shape: input '{value.name}' has dimension {axis} = '{label}'; "
                    "tinytvm compiles static shapes only (export with a fixed batch 1 and size)")


def from_onnx(model: str | Path | onnx.ModelProto):
    """Import an ONNX model as a Relax IRModule with parameters as named inputs."""
    from tvm.relax.frontend.onnx import from_onnx as relax_from_onnx

    proto = load_onnx(model)
    check_onnx(proto)
    try:
        return relax_from_onnx(proto, keep_params_in_input=True, sanitize_input_names=False)
    except Exception as err:
        raise UnsupportedModelError(f"the ONNX importer rejected the model: {err}") from None
