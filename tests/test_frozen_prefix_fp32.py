"""FrozenPrefixFp32: fp32 expansion + depthwise fused and depthwise in place, bit for bit."""

from __future__ import annotations

import numpy as np

import tinytvm
from tinytvm.models import mbv2_tiny
from tinytvm.pipeline import default_passes


def _builds(train):
    model = mbv2_tiny(size=16, width=8)
    passes = default_passes(train)
    kwargs = {"train": train, "inference_only": train is None}
    plain = [p for p in passes if p.info.name != "FrozenPrefixFp32"]
    return tinytvm.build(model, **kwargs), tinytvm.build(model, passes=plain, **kwargs)


def test_inference_fused_bit_identical_and_smaller():
    fused, plain = _builds(None)
    kernels = [c.kernel for c in fused.programs["infer"].calls]
    assert any(k.startswith("expand_depthwise_fp32") for k in kernels)
    assert fused.memory.functions[0].peak < plain.memory.functions[0].peak
    a, b = fused.host_session(), plain.host_session()
    for x in np.random.default_rng(0).normal(size=(4, 1, 1, 16, 16)).astype(np.float32):
        np.testing.assert_array_equal(a.infer(x).view(np.uint32), b.infer(x).view(np.uint32))


def test_training_fuses_only_the_frozen_part_with_identical_losses():
    train = tinytvm.TrainConfig(lr=0.05, trainable=["conv10.weight", "conv10.bias",
                                                    "fc14.weight", "fc14.bias"])
    fused, plain = _builds(train)
    assert any(c.kernel.startswith("expand_depthwise_fp32")
               for c in fused.programs["train_step"].calls)
    a, b = fused.host_session(), plain.host_session()
    for i, x in enumerate(np.random.default_rng(1).normal(size=(5, 1, 1, 16, 16))
                          .astype(np.float32)):
        assert np.float32(a.train_step(x, i)).tobytes() == np.float32(b.train_step(x, i)).tobytes()
    pa, pb = a.params(), b.params()
    for name in pa:
        np.testing.assert_array_equal(pa[name], pb[name], err_msg=name)


def test_trained_depthwise_is_left_alone():
    """A trained block's ops stay separate: its backward reads their intermediate values."""
    full = tinytvm.TrainConfig(lr=0.05)
    fused, _ = _builds(full)
    assert not any(c.kernel.startswith(("expand_depthwise_fp32", "depthwise_fp32"))
                   for c in fused.programs["train_step"].calls)


def test_trained_module_is_the_model_not_its_memory_kernels():
    """HostSession.trained_module gives the model's plain ops with the trained weights (what
    PTQ and a rebuild read), not the fused kernels the memory passes made for this build."""
    from tinytvm.pipeline import MEMORY_PASSES, memory, pass_names

    assert pass_names(memory()) == list(MEMORY_PASSES)
    fused, _ = _builds(tinytvm.TrainConfig(lr=0.05, trainable=["fc14.weight", "fc14.bias"]))
    session = fused.host_session()
    x = np.random.default_rng(2).normal(size=(1, 1, 16, 16)).astype(np.float32)
    session.train_step(x, 1)
    trained = session.trained_module()
    calls = [str(b.value.args[0].name_hint) for b in trained["main"].body.blocks[0].bindings
             if getattr(b.value, "op", None) is not None and b.value.op.name == "relax.call_tir"]
    assert not any(c.startswith(("expand_depthwise_fp32", "depthwise_fp32")) for c in calls)
    again = tinytvm.build(trained, inference_only=True).host_session()
    np.testing.assert_array_equal(again.infer(x), session.infer(x))
