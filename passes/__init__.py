"""tinytvm's compiler passes, one per file (imported as `tinytvm.passes`)."""

from .fuse_clip import FuseClip
from .fold_batchnorm import FoldBatchNorm
