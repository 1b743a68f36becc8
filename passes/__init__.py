"""tinytvm's compiler passes, one per file (imported as `tinytvm.passes`)."""

from .fuse_clip import FuseClip
from .fold_batchnorm import FoldBatchNorm
from .autodiff import Autodiff
from .gradients import register_gradient, gradient_rule, GRADIENT_RULES
from . import int8_gradients  # noqa: F401  (registers the int8 kernels' rules)
from .sgd import AppendSGD
from .qas import QuantizationAwareScaling
from .normalize_head import NormalizeHead
from .conv1d import Normalize1DHead
from .reorder import ReorderForMemory

__all__ = ["AppendSGD", "Autodiff", "FoldBatchNorm", "FuseClip", "GRADIENT_RULES", "Normalize1DHead",
           "NormalizeHead", "QuantizationAwareScaling", "ReorderForMemory", "gradient_rule", "register_gradient"]
