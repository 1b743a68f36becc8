"""int8 inference: TIR kernels with the paper models' exact semantics, and their import."""

from .paper_import import paper_to_relax
from .qops import ConvGeometry, qadd, qavgpool, qclassifier, qconv2d, tt_op

__all__ = ["ConvGeometry", "paper_to_relax", "qadd", "qavgpool", "qclassifier", "qconv2d",
           "tt_op"]
