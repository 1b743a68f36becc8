"""int8 inference: TIR kernels with the paper models' exact semantics, and their import."""

from .paper_import import paper_to_relax
from .ptq import quantize, quantize_input
from .qdq_import import from_quantized_onnx
from .qops import (
    ConvGeometry,
    fixed_add_params,
    qadd,
    qadd_fixed,
    qavgpool,
    qclassifier,
    qclassifier_fixed,
    qconv2d,
    qconv2d_fixed,
    real_scale,
    tt_op,
)
from .reference import run_int8_graph

__all__ = ["ConvGeometry", "fixed_add_params", "from_quantized_onnx", "paper_to_relax", "qadd",
           "qadd_fixed", "qavgpool", "qclassifier", "qclassifier_fixed", "qconv2d",
           "qconv2d_fixed", "quantize", "quantize_input", "real_scale", "run_int8_graph",
           "tt_op"]
