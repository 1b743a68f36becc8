"""1-D CNNs (added through the public API) train correctly, on host and on the Cortex-M7."""

import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from onnx import numpy_helper

import tinytvm
from tinytvm.models import ts_cnn

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _torch_reference(model, data, lr):
    """SGD on the ONNX graph in float64 torch, BN folded into the conv as tinytvm documents."""
    inits = {i.name: torch.tensor(numpy_helper.to_array(i).astype(np.float64))
             for i in model.graph.initializer}
    nodes = list(model.graph.node)
    params = {}
    for i, node in enumerate(nodes):
        if node.op_type == "Conv":
            w, b = inits[node.input[1]], inits[node.input[2]]
            nxt = nodes[i + 1] if i + 1 < len(nodes) else None
            if nxt is not None and nxt.op_type == "BatchNormalization":
                g, beta, mean, var = (inits[n] for n in nxt.input[1:5])
                s = g / torch.sqrt(var + 1e-5)
                w, b = w * s[:, None, None], (b - mean) * s + beta
            params[node.input[1]], params[node.input[2]] = w.clone(), b.clone()
        elif node.op_type == "Gemm":
            params[node.input[1]], params[node.input[2]] = inits[node.input[1]], inits[node.input[2]]
    leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}

    def forward(x):
        env = {"input": torch.tensor(x, dtype=torch.float64).reshape(1, 1, -1)}
        for node in nodes:
            a = {at.name: at for at in node.attribute}
            get = lambda n: env[n] if n in env else inits[n]  # noqa: E731
            x0, out = get(node.input[0]), node.output[0]
            if node.op_type == "Conv":
                env[out] = F.conv1d(x0, leaves[node.input[1]], leaves[node.input[2]],
                                    stride=a["strides"].ints[0], padding=a["pads"].ints[0],
                                    groups=a["group"].i)
            elif node.op_type == "BatchNormalization":
                env[out] = x0  # folded above
            elif node.op_type == "Relu":
                env[out] = F.relu(x0)
            elif node.op_type == "Clip":
                env[out] = torch.clamp(x0, 0.0, 6.0)
            elif node.op_type == "MaxPool":
                env[out] = F.max_pool1d(x0, a["kernel_shape"].ints[0], a["strides"].ints[0])
            elif node.op_type == "AveragePool":
                env[out] = F.avg_pool1d(x0, a["kernel_shape"].ints[0], a["strides"].ints[0])
            elif node.op_type == "Add":
                env[out] = x0 + get(node.input[1])
            elif node.op_type == "GlobalAveragePool":
                env[out] = x0.mean(dim=2, keepdim=True)
            elif node.op_type == "Flatten":
                env[out] = x0.reshape(1, -1)
            elif node.op_type == "Gemm":
                env[out] = x0 @ leaves[node.input[1]].T + leaves[node.input[2]]
            else:
                raise NotImplementedError(node.op_type)
        return env[model.graph.output[0].name]

    opt = torch.optim.SGD(list(leaves.values()), lr=lr)
    losses = []
    for x, y in data:
        opt.zero_grad()
        loss = F.cross_entropy(forward(x), torch.tensor([y]))
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses, {k: v.detach().numpy() for k, v in leaves.items()}


def test_ts_cnn_training_matches_pytorch():
    model = ts_cnn(length=48, width=4)
    rng = np.random.default_rng(0)
    data = [(rng.normal(size=48).astype(np.float32), int(rng.integers(0, 2))) for _ in range(3)]
    art = tinytvm.build(model, train=tinytvm.TrainConfig(lr=0.1))
    sess = art.host_session()
    losses = [sess.train_step(x, y) for x, y in data]
    ref_losses, ref_params = _torch_reference(model, data, 0.1)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-5)
    got = sess.params()
    for name, expected in ref_params.items():
        err = np.abs(got[name] - expected).max() / max(np.abs(expected).max(), 1e-6)
        assert err < 1e-4, f"{name}: relative error {err:.2e}"
        assert not np.allclose(got[name], art.weights[name].value), f"{name} did not change"


def test_gunpoint_example_short_run_on_device():
    sys.path.insert(0, str(EXAMPLES))
    try:
        from train_timeseries import load_gunpoint, train_on_device
    finally:
        sys.path.remove(str(EXAMPLES))
    (xtr, ytr), (xte, _) = load_gunpoint()
    assert xtr.shape == (50, 1, 150) and xte.shape == (150, 1, 150) and set(ytr) == {0, 1}
    art, qemu = train_on_device(steps=40, eval_limit=30)
    assert len(qemu.losses) == 40 and np.isfinite(qemu.losses).all()
    assert qemu.eval_n == 30 and 0 <= qemu.correct_after <= 30
    assert qemu.instructions > 0
