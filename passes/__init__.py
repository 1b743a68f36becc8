"""tinytvm's compiler passes, one per file (imported as `tinytvm.passes`)."""

from tinytvm.quant.fast import UseFastKernels  # the pass lives with its kernels

from . import int8_gradients  # noqa: F401  (registers the int8 kernels' rules)
from .autodiff import Autodiff
from .conv1d import Normalize1DHead
from .fold_batchnorm import FoldBatchNorm
from .frozen_prefix_fp32 import FrozenPrefixFp32
from .fuse_clip import FuseClip
from .fuse_expand_depthwise import FuseExpandDepthwise
from .fuse_gradient_update import FuseGradientUpdate
from .gradients import GRADIENT_RULES, gradient_rule, register_gradient
from .inplace_depthwise import InplaceDepthwise
from .int16_gradients import Int16PointwiseGradients
from .normalize_head import NormalizeHead
from .pack_saved_masks import PackSavedMasks
from .qas import QuantizationAwareScaling
from .reorder import ReorderForMemory
from .sgd import AppendSGD

__all__ = [
           "GRADIENT_RULES",
           "AppendSGD",
           "Autodiff",
           "FoldBatchNorm",
           "FrozenPrefixFp32",
           "FuseClip",
           "FuseExpandDepthwise",
           "FuseGradientUpdate",
           "InplaceDepthwise",
           "Int16PointwiseGradients",
           "Normalize1DHead",
           "NormalizeHead",
           "PackSavedMasks",
           "QuantizationAwareScaling",
           "ReorderForMemory",
           "UseFastKernels",
           "gradient_rule",
           "register_gradient",
]
