"""FuseExpandDepthwise: the frozen prefix's 1x1 expansion and depthwise conv, channel by channel.

Requires: int8 graphs of tinytvm.quant kernels ("tt.op" qconv2d); fp32 graphs pass unchanged.
Guarantees: in every Relax function of the module (`main`, `train_step`), each 1x1 expansion
whose output only the following depthwise conv reads is fused with it into `qexpand_depthwise`
(tinytvm/quant/fuse_expand.py), so the expanded tensor never exists whole; the numbers are the
same bit for bit. Run it after the training passes: in `train_step` a trained block's expanded
tensor is also read by its backward (saved activation), so only blocks the backward does not
reach are fused — the inference-style trick for the frozen part, with no list of layers needed.
"""

from __future__ import annotations

import tvm
from tvm import relax

from tinytvm.quant.fuse_expand import fuse_expand_depthwise


@tvm.transform.module_pass(opt_level=0, name="FuseExpandDepthwise")
class FuseExpandDepthwise:
    """Fuse each 1x1 expansion ``qconv2d`` into the depthwise ``qconv2d`` that alone reads it."""

    def transform_module(self, mod: tvm.IRModule, ctx) -> tvm.IRModule:
        names = [gv.name_hint for gv, f in mod.functions.items() if isinstance(f, relax.Function)]
        for name in names:
            mod = fuse_expand_depthwise(mod, name)
        return mod
