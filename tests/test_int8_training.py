"""int8 training: the generated C's training step against an independent PyTorch reference.

The reference re-states the int8 graph in float64 PyTorch with the paper's training semantics:
each op's value is the exact integer output (tinytvm.quant.reference, numpy), and its gradient
is the straight-through one (rounding passes it, an output at -128 or 127 blocks it); the
classifier writes float logits (acc + bias)·x_scale·w_scale; cross-entropy; autograd gives the
gradients with respect to the integer weights and biases. QAS and the update rule are applied
in numpy. Models: random int8 MobileNetV2-like graphs in the paper's format, and PTQ'd CNNs with
TFLite-style fixed-point requantization.
The C side is tinytvm.build's step run on the host (ctypes) and, once, in QEMU.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import tvm

import tinytvm
from tinytvm.harness import Dataset, run_training
from tinytvm.models import paper
from tinytvm.models.int8_random import tiny_int8_model
from tinytvm.quant import real_scale, run_int8_graph
from tinytvm.quant.paper_import import paper_to_relax, with_new_head


def reference_gradients(mod, x: np.ndarray, label: int,
                        names: list[str]) -> tuple[float, dict[str, np.ndarray]]:
    """Loss and d loss / d (integer weight) for `names`, by PyTorch autograd over `mod`'s int8
    graph: values are the exact integers (tinytvm.quant.reference, numpy), gradients the
    straight-through ones, the requantization scale read from the kernel's parameters
    (float32 `scale`, or fixed-point (multiplier, shift) as qops.real_scale reads it)."""
    main = mod["main"]
    exact = run_int8_graph(mod, x)
    weights = dict(zip([p.name for p in main.params[1:]],
                       [v.numpy() for v in main.attrs["params"]]))
    leaves = {n: torch.tensor(weights[n].astype(np.float64), requires_grad=True) for n in names}
    env = {main.params[0]: torch.tensor(x.astype(np.float64))}

    def value(arg):
        if arg in env:
            return env[arg]
        return leaves.get(arg.name, torch.tensor(weights[arg.name].astype(np.float64)))

    def straight_through(approx, var):
        out = torch.tensor(exact[var.name].astype(np.float64))
        mask = ((out > -128) & (out < 127)).double()
        return out + mask * (approx - approx.detach())

    for binding in main.body.blocks[0].bindings:
        var, call = binding.var, binding.value
        if call.op.name != "relax.call_tir":  # shape-only ops
            env[var] = value(call.args[0]).reshape([int(d) for d in var.ty.shape])
            continue
        prim = mod[call.args[0]]
        attrs, op = prim.attrs, str(prim.attrs["tt.op"])
        args = [value(a) for a in call.args[1].fields]
        fixed = str(attrs.get("tt.requant", "float32")) == "fixed"
        if op in ("qconv2d", "qclassifier"):
            xin, w, b = args[:3]
            ph, pw = (int(p) for p in attrs["tt.padding"])
            shifted = F.pad(xin - int(attrs["tt.x_zero"]), (pw, pw, ph, ph))
            acc = F.conv2d(shifted, w, stride=int(attrs["tt.stride"]),
                           groups=int(attrs["tt.groups"]))
            scale = (torch.tensor(real_scale(args[3].numpy(), args[4].numpy())) if fixed
                     else args[3])
            total = (acc + b[:, None, None]) * scale[:, None, None]
            if str(var.ty.dtype) == "float32":  # dequantized logits
                env[var] = total.reshape(1, -1)
                continue
            env[var] = straight_through(total.reshape([int(d) for d in var.ty.shape]), var)
        elif op == "qadd":
            a, b, q = args
            za, zb = int(attrs["tt.a_zero"]), int(attrs["tt.b_zero"])
            if fixed:
                q = q.numpy()
                out = real_scale(q[4], q[5]) * 2.0**20
                fa, fb = real_scale(q[0], q[1]) * out, real_scale(q[2], q[3]) * out
            else:
                fa, fb = q[0] / q[2], q[1] / q[2]
            env[var] = straight_through((a - za) * fa + (b - zb) * fb, var)
        else:  # qavgpool: rounding is straight-through, no clamp
            approx = args[0].mean(dim=(2, 3), keepdim=True)
            env[var] = torch.tensor(exact[var.name].astype(np.float64)) + approx - approx.detach()
    logits = env[main.body.body]
    loss = F.cross_entropy(logits, torch.tensor([label]))
    loss.backward()
    return float(loss.detach()), {n: leaves[n].grad.numpy() for n in names}


def units(model: paper.PaperModel, name: str) -> np.ndarray:
    conv = next(c for c in paper.conv_list(model) if name.startswith(c.name + "."))
    w = conv.w_scales.astype(np.float32).astype(np.float64)
    unit = w if name.endswith(".weight") else np.float32(conv.x_scale * w).astype(np.float64)
    return unit.reshape((-1,) + (1,) * (3 if name.endswith(".weight") else 0))


def assert_moved(before, master, step, name):
    """master == before - step, up to float32: a master near value v resolves steps of one ulp
    of v only (an int32 bias of 3000 units: 2.4e-4), and the C sums in float32."""
    moved = before.astype(np.float64) - master.astype(np.float64)
    ulp = np.spacing(np.abs(before.astype(np.float32)))
    bound = 2e-3 * np.abs(step) + 1e-5 * np.abs(step).max() + 2 * ulp
    bad = np.abs(moved - step) > bound
    assert not bad.any(), (f"{name}: {bad.sum()} of {bad.size} off, e.g. moved "
                           f"{moved[bad][:3]} vs step {step[bad][:3]}")


def new_head_model(seed=0):
    model = tiny_int8_model(seed)
    rng = np.random.default_rng(seed + 1)
    return with_new_head(model, rng.normal(0, 0.1, (10, model.classifier.in_channels)),
                         rng.normal(0, 0.1, 10))


TRAINABLE = ["blocks.1.depthwise.weight", "blocks.1.depthwise.bias", "blocks.1.pointwise2.weight",
             "blocks.1.pointwise2.bias", "feature_mix.weight", "feature_mix.bias", "head.weight",
             "head.bias"]


def test_int8_step_matches_pytorch_reference_with_qas():
    """One SGD step with QAS and fp32 master copies: each master (int8 weight or int32 bias)
    moves by lr·G/u² as the float64 reference computes it; the integer tensor is its rounding."""
    model = new_head_model()
    lr = 0.05
    art = tinytvm.build(paper_to_relax(model, logits="float32"), target="host",
                        train=tinytvm.TrainConfig(lr=lr, trainable=TRAINABLE))
    session = art.host_session()
    before = session.params()
    x = np.random.default_rng(3).integers(-128, 128, (1, 3, 16, 16)).astype(np.int8)
    loss = session.train_step(x, 4)
    after = session.params()
    ref_loss, grads = reference_gradients(paper_to_relax(model, logits="float32"), x, 4, TRAINABLE)
    assert loss == pytest.approx(ref_loss, rel=1e-5)
    for name in TRAINABLE:
        step = lr * grads[name] / units(model, name) ** 2
        assert_moved(before[name], after[f"{name}.master"], step, name)
        limits = (-128, 127) if name.endswith(".weight") else (-(2**31), 2**31 - 1)
        np.testing.assert_array_equal(after[name],
                                      np.clip(np.rint(after[f"{name}.master"]), *limits))
        assert np.abs(step).max() > 1e-2, f"{name}: the step is too small to test anything"


def test_int8_gradients_without_qas_are_the_integer_gradients():
    """qas=False: the step is lr·G_W̄ itself (the 'int8 SGD' baseline)."""
    model = new_head_model(1)
    lr = 0.5
    names = ["feature_mix.weight", "head.weight"]
    art = tinytvm.build(paper_to_relax(model, logits="float32"), target="host",
                        train=tinytvm.TrainConfig(lr=lr, trainable=names, qas=False))
    session = art.host_session()
    before = session.params()
    x = np.random.default_rng(5).integers(-128, 128, (1, 3, 16, 16)).astype(np.int8)
    session.train_step(x, 7)
    after = session.params()
    _, grads = reference_gradients(paper_to_relax(model, logits="float32"), x, 7, names)
    for name in names:
        assert_moved(before[name], after[f"{name}.master"], lr * grads[name], name)


@pytest.mark.parametrize("rounding", ["round", "stochastic"])
def test_int8_weight_rounding_schemes(rounding):
    """Without a master copy the int8 weight itself moves: 'round' by rint(step) (steps below
    half a unit vanish), 'stochastic' by floor(step) or ceil(step), averaging to the step."""
    model = new_head_model(2)
    names = ["feature_mix.weight", "head.weight", "head.bias"]
    x = np.random.default_rng(6).integers(-128, 128, (1, 3, 16, 16)).astype(np.int8)
    _, grads = reference_gradients(paper_to_relax(model, logits="float32"), x, 1, names)
    qas_grad = grads["head.weight"] / units(model, "head.weight") ** 2
    lr = 0.7 / np.median(np.abs(qas_grad[qas_grad != 0]))  # typical steps: below one unit
    art = tinytvm.build(paper_to_relax(model, logits="float32"), target="host",
                        train=tinytvm.TrainConfig(lr=lr, trainable=names, int8_update=rounding))
    assert not any(n.endswith(".master") for n in art.weights)
    session = art.host_session()
    before = session.params()
    session.train_step(x, 1)
    after = session.params()
    name = "head.weight"
    target = before[name].astype(np.float64) - lr * grads[name] / units(model, name) ** 2
    target = np.clip(target, -128, 127)
    got = after[name].astype(np.float64)
    if rounding == "round":
        off = np.abs(got - np.rint(target))
        assert (off <= 1).all() and (off == 0).mean() > 0.99
        assert (got != before[name]).any()  # only steps beyond half a unit land
    else:  # the C's draws are the murmur3 mix re-stated below, for weight 1 at step 0
        step = before[name].astype(np.float64) - target
        u = np.ldexp((mix32(np.arange(step.size), 0, salt=1) >> 8).astype(np.float64),
                     -24).reshape(step.shape)
        expected = np.clip(before[name] - np.floor(step + u), -128, 127)
        clear = np.abs(step + u - np.rint(step + u)) > 1e-4  # float32 vs float64 at the floor
        assert clear.mean() > 0.95
        np.testing.assert_array_equal(got[clear], expected[clear])


def mix32(index, counter, salt):
    """tinytvm.quant.qupdate._hash in numpy (uint32 wrap-around)."""
    with np.errstate(over="ignore"):
        h = (np.asarray(index, np.uint32) * np.uint32(0x9E3779B1)
             + np.uint32(counter) * np.uint32(0x85EBCA77) + np.uint32(salt))
        for shift, mult in ((16, 0x85EBCA6B), (13, 0xC2B2AE35)):
            h = (h ^ (h >> np.uint32(shift))) * np.uint32(mult)
        return h ^ (h >> np.uint32(16))


def test_stochastic_rounding_draws_are_uniform_and_unbiased():
    """The hash's 24-bit draws: uniform in [0, 1), so floor(step + u) averages to the step."""
    u = np.ldexp((mix32(np.arange(200_000), 3, salt=5) >> 8).astype(np.float64), -24)
    counts, _ = np.histogram(u, bins=20, range=(0, 1))
    assert counts.min() > 0.95 * len(u) / 20 and counts.max() < 1.05 * len(u) / 20
    steps = np.random.default_rng(0).uniform(-3, 3, len(u))
    assert abs(np.mean(np.floor(steps + u) - steps)) < 0.01
    consecutive = mix32(np.arange(1000), 0, 5) != mix32(np.arange(1000), 1, 5)
    assert consecutive.mean() > 0.99  # a new stream every step


def test_int8_training_step_identical_on_host_and_qemu(tmp_path):
    """The same int8 training loop (QAS, master copies, stochastic rounding's counter too) run
    by the host build and by the Cortex-M7 in QEMU: bit-identical losses and accuracies."""
    model = new_head_model(4)
    rng = np.random.default_rng(7)
    x = rng.integers(-128, 128, (12, 1, 3, 16, 16)).astype(np.int8)
    y = rng.integers(0, 10, 12).astype(np.int32)
    train, evaluation = Dataset.int8(x[:8], y[:8]), Dataset.int8(x[8:], y[8:])
    for rounding in ("master", "stochastic"):
        art = tinytvm.build(paper_to_relax(model, logits="float32"), target="mps2-an500",
                            train=tinytvm.TrainConfig(lr=0.02, trainable=TRAINABLE,
                                                      int8_update=rounding))
        host = run_training(art, train, evaluation, 6, where="host",
                            workdir=tmp_path / f"{rounding}-host")
        qemu = run_training(art, train, evaluation, 6, where="qemu",
                            workdir=tmp_path / f"{rounding}-qemu")
        assert len(host.losses) == 6 and np.isfinite(host.losses).all()
        np.testing.assert_array_equal(host.losses.view(np.uint32), qemu.losses.view(np.uint32))
        assert (host.correct_before, host.correct_after) == (qemu.correct_before,
                                                             qemu.correct_after)
        assert host.losses[-1] < host.losses[0] or rounding == "stochastic"


def test_int8_memory_report_counts_integer_weights_and_masters():
    """Trainable SRAM = int8 weights (1 B) + int32 biases (4 B) + float32 masters (4 B each)."""
    model = new_head_model()
    names = ["feature_mix.weight", "feature_mix.bias"]
    art = tinytvm.build(paper_to_relax(model, logits="float32"), target="host",
                        train=tinytvm.TrainConfig(lr=0.01, trainable=names))
    weight = model.feature_mix.weight
    expected = weight.size * (1 + 4) + model.feature_mix.bias.size * (4 + 4)
    assert art.memory.trainable_bytes == expected
    round_art = tinytvm.build(paper_to_relax(model, logits="float32"), target="host",
                              train=tinytvm.TrainConfig(lr=0.01, trainable=names,
                                                        int8_update="round"))
    assert round_art.memory.trainable_bytes == weight.size + model.feature_mix.bias.size * 4


def test_int8_sparse_scheme_partial_channels_match_reference():
    """An UpdateScheme on an int8 graph: layers found from the int8 kernels, a partial-channel
    weight (first half of feature_mix's rows) gets the reference's step on those rows only, and
    its other rows and every frozen weight stay as they were."""
    from tinytvm.sparse import UpdateScheme, trainable_layers

    model = new_head_model(3)
    mod = paper_to_relax(model, logits="float32")
    layers = trainable_layers(mod)
    assert [layer.kind for layer in layers[:3]] == ["conv", "conv", "depthwise"]
    assert layers[-1].kind == "linear" and layers[-1].weight == "head.weight"
    mix = next(i for i, layer in enumerate(layers) if layer.weight == "feature_mix.weight")
    lr = 0.05
    art = tinytvm.build(mod, target="host", train=tinytvm.TrainConfig(
        lr=lr, update=UpdateScheme(2, ((mix, 0.5),), True)))
    assert art.weights["feature_mix.weight.master"].shape == (16, 8, 1, 1)
    session = art.host_session()
    before = session.params()
    x = np.random.default_rng(9).integers(-128, 128, (1, 3, 16, 16)).astype(np.int8)
    session.train_step(x, 2)
    after = session.params()
    _, grads = reference_gradients(paper_to_relax(model, logits="float32"), x, 2, ["feature_mix.weight"])
    step = lr * grads["feature_mix.weight"] / units(model, "feature_mix.weight") ** 2
    assert_moved(before["feature_mix.weight"][:16], after["feature_mix.weight.master"],
                 step[:16], "feature_mix.weight")
    np.testing.assert_array_equal(after["feature_mix.weight"][16:],
                                  before["feature_mix.weight"][16:])
    for name, t in art.weights.items():
        if not t.trainable:
            np.testing.assert_array_equal(after[name], before[name])


def test_memory_report_names_the_optimizer_state():
    model = new_head_model()
    names = ["feature_mix.weight", "feature_mix.bias"]
    art = tinytvm.build(paper_to_relax(model, logits="float32"), target="host",
                        train=tinytvm.TrainConfig(lr=0.01, trainable=names, momentum=0.9))
    w, b = model.feature_mix.weight.size, model.feature_mix.bias.size
    assert art.memory.state_bytes == (w + b) * 4 * 2  # fp32 masters + momenta
    assert art.memory.trainable_bytes == w + 4 * b + art.memory.state_bytes
    assert "of which optimizer" in str(art.memory)


@pytest.mark.parametrize("requant", ["fixed", "float32"])
def test_ptq_model_training_step_matches_reference(requant):
    """A PTQ'd CNN (BatchNorm folded, ReLU6, residual adds; TFLite-style fixed-point or float32
    requantization): one QAS step of every weight and bias equals the reference's."""
    from tinytvm.models import mbv2_tiny
    from tinytvm.quant import quantize, quantize_input

    rng = np.random.default_rng(11)
    calibration = rng.uniform(0, 1, (16, 1, 8, 8)).astype(np.float32)
    mod = quantize(mbv2_tiny(in_ch=1, size=8, width=8), calibration, requant=requant)
    units_of = {k: v.numpy() for k, v in mod["main"].attrs["tt.quant_units"].items()}
    names = list(units_of)
    lr = 0.02
    art = tinytvm.build(mod, target="host", train=tinytvm.TrainConfig(lr=lr, trainable=names))
    session = art.host_session()
    before = session.params()
    x = quantize_input(mod, calibration[3:4])
    loss = session.train_step(x, 6)
    after = session.params()
    ref_loss, grads = reference_gradients(mod, x, 6, names)
    assert loss == pytest.approx(ref_loss, rel=1e-5)
    moved_any = 0
    for name in names:
        unit = units_of[name].astype(np.float64).reshape((-1,) + (1,) * (grads[name].ndim - 1))
        step = lr * grads[name] / unit**2
        assert_moved(before[name], after[f"{name}.master"], step, name)
        moved_any += np.abs(step).max() > 1e-2
    assert moved_any >= len(names) // 2


def test_int8_graph_trains_weights_and_biases_by_default_and_rejects_scales():
    model = new_head_model()
    mod = paper_to_relax(model, logits="float32")
    art = tinytvm.build(mod, target="host", train=tinytvm.TrainConfig(lr=0.01), verify=False)
    trained = {n for n, t in art.weights.items() if t.trainable and not n.endswith(".master")}
    assert trained == set(mod["main"].attrs["tt.quant_units"].keys())
    with pytest.raises(tinytvm.errors.UnsupportedModelError, match="head.scale"):
        tinytvm.build(mod, target="host",
                      train=tinytvm.TrainConfig(lr=0.01, trainable=["head.scale"]))


def test_small_cnn_transfer_int8_qas_learns_like_fp32():
    """The CI-sized task of benchmarks/int8_training.py (seed 0): a CNN pre-trained on digits
    0-5, PTQ'd (fixed-point), fine-tuned on all digits by the generated C. At the same lr,
    int8 + QAS (stochastic rounding, no fp32 copy) lands near fp32, and int8 SGD without QAS
    barely moves (its integer gradients are ~s_W² too small)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from int8_training import small_task

    from tinytvm.sparse_search import fine_tune_accuracy

    fp32, int8, data = small_task(0)

    def accuracy(model, precision, steps=600, **config):
        return fine_tune_accuracy(model, None, *data[precision], steps=steps, lr=0.03, **config)

    before = accuracy(int8, "int8", steps=0)
    fp32_acc = accuracy(fp32, "fp32")
    qas = accuracy(int8, "int8", int8_update="stochastic")
    plain = accuracy(int8, "int8", qas=False)
    assert qas > before + 0.15, (before, qas)
    assert qas >= fp32_acc - 0.04, (fp32_acc, qas)
    assert plain < qas - 0.15, (plain, qas)


def test_frozen_blocks_are_fused_in_the_training_step_with_identical_numbers():
    """FuseExpandDepthwise runs on train_step too: the frozen block's expansion + depthwise
    become one kernel (its expanded tensor never exists), the trained block's stay apart (its
    backward reads them), and the losses equal the unfused build's bit for bit."""
    from tinytvm.pipeline import default_passes, pass_names

    model = new_head_model(5)
    mod = paper_to_relax(model, logits="float32")
    config = tinytvm.TrainConfig(lr=0.05, trainable=TRAINABLE)  # block 1 onwards
    passes = default_passes(config)
    assert "FuseExpandDepthwise" in pass_names(passes)
    fused = tinytvm.build(mod, target="host", train=config)
    plain = tinytvm.build(mod, target="host", train=config,
                          passes=[p for p in passes if p.info.name != "FuseExpandDepthwise"])
    def fused_calls(function):
        from tinytvm.quant import tt_op

        return [b for b in function.body.blocks[0].bindings
                if getattr(b.value, "op", None) is not None and b.value.op.name == "relax.call_tir"
                and tt_op(fused.ir[b.value.args[0]]) == "qexpand_depthwise"]

    assert len(fused_calls(fused.ir["train_step"])) == 1  # block 0 only
    assert len(fused_calls(fused.ir["main"])) == 2  # inference: both blocks
    def arena_names(art):
        return {b.name for b in art.memory.functions[0].problem.buffers}

    assert "blocks_0_pointwise1" in arena_names(plain) - arena_names(fused)
    assert "blocks_1_pointwise1" in arena_names(fused)  # trained block: saved for backward
    x = np.random.default_rng(12).integers(-128, 128, (4, 1, 3, 16, 16)).astype(np.int8)
    a, b = fused.host_session(), plain.host_session()
    for i, xi in enumerate(x):
        assert np.float32(a.train_step(xi, i)).tobytes() == np.float32(b.train_step(xi, i)).tobytes()


@pytest.mark.parametrize("rounding", ["master", "round", "stochastic"])
def test_fused_gradient_update_is_bit_identical_and_frees_the_gradient(rounding):
    """FuseGradientUpdate: every int8 weight's gradient, QAS, lr and update in one kernel.
    Same weights bit for bit as the unfused chain after several steps, and no weight-gradient
    tensor left in the arena."""
    from tinytvm.pipeline import default_passes, pass_names

    model = new_head_model(6)
    mod = paper_to_relax(model, logits="float32")
    config = tinytvm.TrainConfig(lr=0.05, trainable=TRAINABLE, int8_update=rounding)
    passes = default_passes(config)
    unfused_passes = [p for p in passes if p.info.name != "FuseGradientUpdate"]
    assert "FuseGradientUpdate" in pass_names(passes)
    fused = tinytvm.build(mod, target="host", train=config)
    plain = tinytvm.build(mod, target="host", train=config, passes=unfused_passes)
    kernels = [str(f.attrs["tt.op"]) for f in fused.ir.functions.values()
               if isinstance(f, tvm.tirx.PrimFunc) and f.attrs is not None and "tt.op" in f.attrs]
    weights = [n for n in TRAINABLE if n.endswith(".weight")]
    assert kernels.count("weight_grad_update") >= 1 and "qconv2d_weight_grad" not in kernels
    names = {b.name for b in fused.memory.functions[0].problem.buffers}
    assert not any(n.startswith("d_") and n.endswith("_weight") for n in names), names
    a, b = fused.host_session(), plain.host_session()
    x = np.random.default_rng(13).integers(-128, 128, (4, 1, 3, 16, 16)).astype(np.int8)
    for i, xi in enumerate(x):
        assert a.train_step(xi, i) == b.train_step(xi, i)
    pa, pb = a.params(), b.params()
    for name in pa:
        np.testing.assert_array_equal(pa[name], pb[name], err_msg=name)
    assert all(not np.array_equal(pa[n], fused.weights[n].value) for n in weights)  # trained
    # no gradient tensor, but the fused kernel's own scratch (a one-call arena tensor, up to
    # 2 KB of converted inputs) may land at the peak: at most that much above the plain build
    scratch = max(b.size for b in fused.memory.functions[0].problem.buffers
                  if b.name.endswith("_scratch"))
    assert fused.memory.functions[0].peak <= plain.memory.functions[0].peak + scratch


def test_saved_outputs_only_masked_are_packed_to_bits_with_identical_numbers():
    """PackSavedMasks: layers trained for their bias only (and frozen layers the gradient goes
    through) keep a bit per element of their output, not the int8 output; same weights bit
    for bit as without the pass, and a lower arena."""
    from tinytvm.pipeline import default_passes
    from tinytvm.sparse import UpdateScheme

    model = new_head_model(7)
    mod = paper_to_relax(model, logits="float32")
    config = tinytvm.TrainConfig(lr=0.05, update=UpdateScheme(8, ((7, 1.0),), True),
                                 int8_update="stochastic")
    passes = default_passes(config)
    packed = tinytvm.build(mod, target="host", train=config)
    plain = tinytvm.build(mod, target="host", train=config,
                          passes=[p for p in passes if p.info.name != "PackSavedMasks"])
    masks = [b for b in packed.memory.functions[0].problem.buffers if b.name.endswith("_mask")]
    assert len(masks) >= 4
    a, b = packed.host_session(), plain.host_session()
    x = np.random.default_rng(14).integers(-128, 128, (4, 1, 3, 16, 16)).astype(np.int8)
    for i, xi in enumerate(x):
        assert a.train_step(xi, i) == b.train_step(xi, i)
    pa, pb = a.params(), b.params()
    for name in pa:
        np.testing.assert_array_equal(pa[name], pb[name], err_msg=name)
    assert packed.memory.functions[0].lower_bound < plain.memory.functions[0].lower_bound


def test_inplace_depthwise_kernels_are_bit_exact_and_share_storage():
    """InplaceDepthwise: the paper's block-0 pattern (a conv, then a depthwise conv of it)
    computes the same logits and training losses as the plain kernels, with the depthwise
    output (and, in the backward, its stride-1 input gradient) written over its input."""
    from tinytvm.pipeline import default_passes

    model = new_head_model(8)
    mod = paper_to_relax(model, logits="float32")
    x = np.random.default_rng(15).integers(-128, 128, (3, 1, 3, 16, 16)).astype(np.int8)
    # (without the expansion fusion, which would absorb these depthwise convs)
    unfused = [p for p in default_passes(None) if p.info.name != "FuseExpandDepthwise"]
    infer = tinytvm.build(mod, target="host", inference_only=True, passes=unfused)
    infer_plain = tinytvm.build(mod, target="host", inference_only=True,
                                passes=[p for p in unfused if p.info.name != "InplaceDepthwise"])
    for xi in x:
        np.testing.assert_array_equal(infer.host_session().infer(xi),
                                      infer_plain.host_session().infer(xi))
    program = infer.programs["infer"]
    inplace = [c for c in program.calls if "inplace" in c.kernel]
    assert inplace and any(c.output.alias_of is not None for c in inplace)
    assert "restrict" not in _kernel_source(infer, inplace[0].kernel)
    assert infer.memory.functions[0].peak <= infer_plain.memory.functions[0].peak

    config = tinytvm.TrainConfig(lr=0.05, trainable=["blocks.0.pointwise1.bias", "head.weight"])
    passes = default_passes(config)
    step = tinytvm.build(mod, target="host", train=config)
    step_plain = tinytvm.build(mod, target="host", train=config,
                               passes=[p for p in passes if p.info.name != "InplaceDepthwise"])
    kernels = [c.kernel for c in step.programs["train_step"].calls]
    assert any("data_grad_inplace" in k for k in kernels)
    a, b = step.host_session(), step_plain.host_session()
    for i, xi in enumerate(x):
        assert a.train_step(xi, i) == b.train_step(xi, i)
    pa, pb = a.params(), b.params()
    for name in pa:
        np.testing.assert_array_equal(pa[name], pb[name], err_msg=name)


def _kernel_source(art, kernel: str) -> str:
    """The definition of one kernel in model.c (not its prototype)."""
    source = art.sources["model.c"]
    start = next(m.start() for m in re.finditer(rf"tt_k_{kernel}\(.*\) {{$", source, re.M))
    return source[start:source.index("\n}", start)]


def test_int8_reordered_in_place_plan_is_bit_identical_host_and_qemu(tmp_path):
    """The default int8 build (reordered, updates and depthwise in place, masks packed) and the
    autodiff-order build give the same losses bit for bit, on the host and in QEMU."""
    from tinytvm.sparse import UpdateScheme

    model = new_head_model(9)
    mod = paper_to_relax(model, logits="float32")
    config = tinytvm.TrainConfig(lr=0.05, update=UpdateScheme(6, ((6, 1.0), (7, 0.5)), True),
                                 int8_update="stochastic")
    rng = np.random.default_rng(16)
    x = rng.integers(-128, 128, (6, 1, 3, 16, 16)).astype(np.int8)
    y = rng.integers(0, 10, 6).astype(np.int32)
    train, evaluation = Dataset.int8(x[:4], y[:4]), Dataset.int8(x[4:], y[4:])
    runs = []
    for reorder in (True, False):
        art = tinytvm.build(mod, target="mps2-an500", train=config, reorder=reorder)
        runs.append(art.memory.functions[0].lower_bound)
        for where in ("host", "qemu"):
            run = run_training(art, train, evaluation, 4, where=where,
                               workdir=tmp_path / f"{reorder}-{where}")
            runs.append(run.losses.view(np.uint32).tolist())
    reordered_lb, a_host, a_qemu, plain_lb, b_host, b_qemu = runs
    assert a_host == a_qemu == b_host == b_qemu
    assert reordered_lb < plain_lb


def test_kernel_scratch_planes_are_planned_in_the_arena():
    """Kernel scratch is arena tensors, not stack arrays: the naive channel-by-channel kernels'
    planes and the micro-kernels' row buffers are parameters of the C kernel, and the plan
    gives each a one-call lifetime; no kernel body declares a local array."""
    from tinytvm.pipeline import default_passes

    model = new_head_model(8)
    mod = paper_to_relax(model, logits="float32")
    unfused = [p for p in default_passes(None) if p.info.name != "FuseExpandDepthwise"]
    naive = [p for p in default_passes(None, fast_kernels=False)
             if p.info.name != "FuseExpandDepthwise"]
    for passes, kernel_text in ((unfused, "scratch"), (naive, "plane[")):
        art = tinytvm.build(mod, target="host", inference_only=True, passes=passes)
        calls = [c for c in art.programs["infer"].calls if "inplace" in c.kernel]
        assert calls and all(len(c.scratch) == 1 for c in calls)
        buffers = {b.name: b for b in art.memory.functions[0].problem.buffers}
        for call in (c for c in art.programs["infer"].calls if c.scratch):
            for scratch in call.scratch:
                assert buffers[scratch.name].end - buffers[scratch.name].start == 1
        assert kernel_text in _kernel_source(art, calls[0].kernel)
        local_arrays = re.findall(r"^\s+(?:u?int\d+_t|float) \w+\[(?!1\])\d+\];",
                                  art.sources["model.c"], re.MULTILINE)  # ([1]: a register)
        assert not local_arrays
