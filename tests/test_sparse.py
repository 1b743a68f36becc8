"""Sparse update schemes: what they train, what they prune, what they cost."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import tinytvm
from tinytvm.frontend import from_onnx
from tinytvm.ir import FunctionView, op_name
from tinytvm.models import mbv2_tiny
from tinytvm.pipeline import canonicalize, run_passes
from tinytvm.sparse import UpdateScheme, memory_cost, trainable_layers


def _layers():
    return trainable_layers(run_passes(from_onnx(mbv2_tiny()), canonicalize()))


def test_layers_are_counted_from_the_input():
    layers = _layers()
    assert [l.kind for l in layers] == ["conv", "conv", "depthwise", "conv", "conv", "linear"]
    assert layers[0].bias == "bn2.bias" and layers[-1].weight == "fc14.weight"


def test_scheme_resolves_serialises_and_prints():
    scheme = UpdateScheme(bias_last=2, weights=((1, 0.25), (4, 1.0)), classifier=True)
    names, channels = scheme.resolve(_layers())
    assert names == ["conv10.bias", "fc14.bias", "conv4.weight", "conv10.weight", "fc14.weight"]
    assert channels == {"conv4.weight": 4}
    assert UpdateScheme.from_json(scheme.to_json()) == scheme
    assert str(scheme) == "UpdateScheme(biases of last 2, weights [1@0.25, 4], classifier)"
    with pytest.raises(tinytvm.UnsupportedModelError, match="layer 9"):
        UpdateScheme(weights=((9, 1.0),)).resolve(_layers())


def _ops(art):
    return [op_name(b.value) for b in FunctionView.of(art.ir["train_step"]).bindings]


def test_pruned_graph_has_no_backward_for_frozen_layers():
    bias_only = tinytvm.build(mbv2_tiny(), train=tinytvm.TrainConfig(
        lr=0.1, update=UpdateScheme(bias_last=2, classifier=True)))
    ops = _ops(bias_only)
    forward_convs = sum(o == "relax.nn.conv2d" for o in _ops_main(bias_only))
    # only conv10's input gradient is needed (for conv10.bias nothing before it): no weight-grad conv
    assert sum(o == "relax.nn.conv2d" for o in ops) == forward_convs
    assert "relax.nn.conv2d_transpose" not in ops
    c = bias_only.sources["model.c"]
    for frozen in ("conv1_weight", "conv4_weight", "conv10_weight", "conv4_bias"):
        assert f"\nconst float tt_w_{frozen}[" in c


def _ops_main(art):
    return [op_name(b.value) for b in FunctionView.of(art.ir["main"]).bindings]


def _torch_partial_reference(art, scheme, data, lr, momentum):
    """Train the same weights in torch; rows beyond a partial weight's channels get no grad."""
    from test_reference import Reference  # the independent ONNX-walking reference

    ref = Reference(mbv2_tiny())
    names, channels = scheme.resolve(_layers())
    tensors = {k: torch.tensor(v) for k, v in ref.inits.items()}
    leaves = {k: torch.tensor(v.copy(), requires_grad=k in names) for k, v in ref.params.items()}
    tensors.update(leaves)
    for name, rows in channels.items():
        mask = torch.zeros_like(leaves[name])
        mask[:rows] = 1
        leaves[name].register_hook(lambda g, m=mask: g * m)
    opt = torch.optim.SGD([leaves[n] for n in names], lr=lr, momentum=momentum)
    losses = []
    for x, y in data:
        opt.zero_grad()
        loss = F.cross_entropy(ref.forward(x, tensors, folded=True), torch.tensor([y]))
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses, {k: v.detach().numpy() for k, v in leaves.items()}


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_partial_channels_train_only_their_rows_and_match_torch(momentum):
    scheme = UpdateScheme(bias_last=1, weights=((1, 0.25), (3, 0.5)), classifier=True)
    art = tinytvm.build(mbv2_tiny(), train=tinytvm.TrainConfig(lr=0.05, momentum=momentum,
                                                               update=scheme))
    sess = art.host_session()
    before = sess.params()
    rng = np.random.default_rng(7)
    data = [(rng.normal(0, 2, (1, 1, 8, 8)).astype(np.float32), int(rng.integers(0, 10)))
            for _ in range(3)]
    losses = [sess.train_step(x, y) for x, y in data]
    after = sess.params()
    ref_losses, ref = _torch_partial_reference(art, scheme, data, 0.05, momentum)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-5)
    names, channels = scheme.resolve(_layers())
    for name in before:
        if name.endswith(".momentum"):
            continue
        if name not in names:
            assert before[name].tobytes() == after[name].tobytes(), f"frozen {name} changed"
            continue
        rows = channels.get(name, before[name].shape[0])
        assert not np.array_equal(before[name][:rows], after[name][:rows]), f"{name} did not train"
        assert before[name][rows:].tobytes() == after[name][rows:].tobytes(), f"{name} frozen rows"
        err = np.abs(after[name] - ref[name]).max() / max(np.abs(ref[name]).max(), 1e-6)
        assert err < 1e-4, f"{name}: {err:.2e}"
    if momentum:
        assert after["conv4.weight.momentum"].shape[0] == channels["conv4.weight"]
    assert "memcpy(" not in art.sources["model.c"]  # partial updates run in place too


def test_memory_cost_agrees_with_the_build_and_orders_schemes():
    layers = _layers()
    schemes = [UpdateScheme(bias_last=1), UpdateScheme(bias_last=3, weights=((4, 0.5),)),
               UpdateScheme.full(len(layers))]
    costs = []
    for scheme in schemes:
        cost = memory_cost(mbv2_tiny(), scheme, lr=0.1)
        art = tinytvm.build(mbv2_tiny(), train=tinytvm.TrainConfig(lr=0.1, update=scheme))
        assert cost.arena_bytes == art.memory.arena_bytes
        assert cost.trainable_bytes == art.memory.trainable_bytes
        costs.append(cost.total)
    assert costs[0] < costs[1] < costs[2]
