"""Training on host against an independent PyTorch reference (acceptance criterion).

"After 1 and after 3 SGD steps, parameters produced by the generated C on host match an
independent reference (PyTorch autograd, not TVM) to 1e-4 relative, for at least two different
CNNs using strided conv + relu, depthwise conv + relu6, 1x1 conv, residual add, global average
pool and linear."

The reference is built from the ONNX graph itself, op by op, with torch.nn.functional, in
float64. It does not fold BatchNorm into its graph; instead its trainable parameters are the
*folded* conv weights/biases (computed here in numpy from the initializers, as documented for
tinytvm's canonicalisation), so both sides train the same parameterisation. That the folded
forward equals the unfolded ONNX forward is asserted separately, and the unfolded forward is
itself checked against onnx's own ReferenceEvaluator.
"""

from __future__ import annotations

import functools

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import tinytvm
from tinytvm.models import mbv2_tiny, resnet_tiny

torch = pytest.importorskip("torch")
F = torch.nn.functional

MODELS = {"mbv2_tiny": mbv2_tiny, "resnet_tiny": resnet_tiny}
OPTIMIZERS = {"sgd": dict(lr=0.05, momentum=0.0), "momentum": dict(lr=0.02, momentum=0.9)}
BN_EPS_DEFAULT = 1e-5

PARAM_RTOL = 1e-4  # acceptance criterion: parameters after the steps
PARAM_ATOL = 1e-6  # floor for all-near-zero tensors
DELTA_RTOL = 1e-3  # stricter view: the *change* of each parameter, relative to that change
LOSS_RTOL = 1e-5
LOGITS_RTOL = 1e-5
LOGITS_ATOL = 1e-6
# Inputs ~ N(0, 4^2): large enough that every ReLU6 in both models saturates at 6 for some
# elements (with N(0, 1) nothing reaches 6 and the upper clamp would go untested).
INPUT_SCALE = 4.0


# --- helpers -----------------------------------------------------------------------------


def rel_err(actual, expected) -> float:
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    diff = float(np.max(np.abs(actual - expected))) if actual.size else 0.0
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    return diff / scale if scale > 0 else (0.0 if diff == 0 else np.inf)


def assert_close(actual, expected, rtol, atol, what):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    diff = float(np.max(np.abs(actual - expected))) if actual.size else 0.0
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    assert diff <= max(rtol * scale, atol), (
        f"{what}: max|a-b| = {diff:.3e}, max|b| = {scale:.3e}, "
        f"relative {diff / scale if scale else np.inf:.3e} > {rtol:g} (abs floor {atol:g})")


def _attrs(node) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def step_data(seed: int, steps: int, shape, num_classes: int):
    """A different seeded input and label for every step."""
    rng = np.random.default_rng(seed)
    return [(rng.normal(0, INPUT_SCALE, shape).astype(np.float32),
             int(rng.integers(0, num_classes))) for _ in range(steps)]


# --- the independent reference -----------------------------------------------------------


class Reference:
    """The ONNX graph evaluated op by op with torch.nn.functional (float64).

    `params` holds the folded parameterisation (name -> np.float64 array): every conv weight
    and bias with its following BatchNorm folded in (names as tinytvm documents them) and the
    Gemm weights/biases.
    """

    def __init__(self, model: onnx.ModelProto):
        graph = model.graph
        self.graph = graph
        self.input_name = graph.input[0].name
        self.inits = {i.name: numpy_helper.to_array(i).astype(np.float64) for i in graph.initializer}
        consumers: dict[str, list] = {}
        for node in graph.node:
            for name in node.input:
                consumers.setdefault(name, []).append(node)
        producer = {out: node for node in graph.node for out in node.output}
        graph_outputs = {o.name for o in graph.output}

        self.bn_of_conv: dict[str, onnx.NodeProto] = {}  # conv node name -> BN folded into it
        for node in graph.node:
            if node.op_type != "BatchNormalization":
                continue
            conv = producer.get(node.input[0])
            assert conv is not None and conv.op_type == "Conv", f"BN {node.name} not after a conv"
            assert len(consumers[conv.output[0]]) == 1 and conv.output[0] not in graph_outputs
            self.bn_of_conv[conv.name] = node
        self.folded_bns = {bn.name for bn in self.bn_of_conv.values()}

        self.params: dict[str, np.ndarray] = {}
        self.conv_bias_name: dict[str, str | None] = {}  # conv node name -> folded bias name
        for node in graph.node:
            if node.op_type == "Conv":
                w_name = node.input[1]
                b_name = node.input[2] if len(node.input) > 2 and node.input[2] else None
                w = self.inits[w_name]
                b = self.inits[b_name] if b_name else None
                bn = self.bn_of_conv.get(node.name)
                if bn is not None:
                    gamma, beta, mean, var = (self.inits[n] for n in bn.input[1:5])
                    eps = _attrs(bn).get("epsilon", BN_EPS_DEFAULT)
                    s = gamma / np.sqrt(var + eps)
                    w = w * s[:, None, None, None]
                    b = ((b if b is not None else np.zeros_like(s)) - mean) * s + beta
                    b_name = b_name or bn.input[2]
                self.params[w_name] = w
                if b_name:
                    self.params[b_name] = b
                self.conv_bias_name[node.name] = b_name
            elif node.op_type == "Gemm":
                for name in node.input[1:]:
                    if name:
                        self.params[name] = self.inits[name]

    # Structure queries used to pick trainable subsets.
    def last_conv(self):
        return [n for n in self.graph.node if n.op_type == "Conv"][-1]

    def last_gemm(self):
        return [n for n in self.graph.node if n.op_type == "Gemm"][-1]

    def first_depthwise_conv(self):
        for n in self.graph.node:
            if n.op_type == "Conv" and _attrs(n).get("group", 1) > 1:
                if _attrs(n)["group"] == self.inits[n.input[1]].shape[0]:
                    return n
        raise AssertionError("no depthwise conv")

    def folded_bn_bias(self) -> str:
        conv_name = next(iter(self.bn_of_conv))
        return self.conv_bias_name[conv_name]

    # Forward passes.
    def forward(self, x, tensors: dict, folded: bool, trace: dict | None = None):
        """Logits (1, classes). `tensors`: name -> torch tensor for every initializer used;
        in folded mode conv weights/biases are the folded values and BNs are skipped.
        `trace`, if given, receives every intermediate value by ONNX tensor name."""
        env = {self.input_name: torch.as_tensor(np.asarray(x), dtype=torch.float64)}

        def get(name):
            return env[name] if name in env else tensors[name]

        for node in self.graph.node:
            op, a = node.op_type, _attrs(node)
            if op == "Conv":
                w = get(node.input[1])
                if folded:
                    b_name = self.conv_bias_name[node.name]
                else:
                    b_name = node.input[2] if len(node.input) > 2 and node.input[2] else None
                b = get(b_name) if b_name else None
                assert a.get("auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET")
                pads = list(a.get("pads", [0, 0, 0, 0]))
                xin = get(node.input[0])
                if pads[:2] != pads[2:]:
                    xin = F.pad(xin, (pads[1], pads[3], pads[0], pads[2]))
                    pads = [0, 0, 0, 0]
                y = F.conv2d(xin, w, b, stride=tuple(a.get("strides", [1, 1])),
                             padding=tuple(pads[:2]), dilation=tuple(a.get("dilations", [1, 1])),
                             groups=a.get("group", 1))
                bn = self.bn_of_conv.get(node.name)
                out = bn.output[0] if (folded and bn is not None) else node.output[0]
                env[out] = y
            elif op == "BatchNormalization":
                if folded:
                    continue  # already folded into the conv before it
                gamma, beta, mean, var = (get(n) for n in node.input[1:5])
                env[node.output[0]] = F.batch_norm(
                    get(node.input[0]), mean, var, gamma, beta, training=False,
                    eps=a.get("epsilon", BN_EPS_DEFAULT))
            elif op == "Relu":
                env[node.output[0]] = F.relu(get(node.input[0]))
            elif op == "Clip":
                lo = get(node.input[1]) if len(node.input) > 1 and node.input[1] else a.get("min")
                hi = get(node.input[2]) if len(node.input) > 2 and node.input[2] else a.get("max")
                lo = float(lo) if lo is not None else None
                hi = float(hi) if hi is not None else None
                env[node.output[0]] = torch.clamp(get(node.input[0]), lo, hi)
            elif op == "Add":
                env[node.output[0]] = get(node.input[0]) + get(node.input[1])
            elif op == "GlobalAveragePool":
                env[node.output[0]] = get(node.input[0]).mean(dim=(2, 3), keepdim=True)
            elif op == "Flatten":
                axis = a.get("axis", 1)
                t = get(node.input[0])
                env[node.output[0]] = t.reshape(int(np.prod(t.shape[:axis])), -1)
            elif op == "Gemm":
                A, B = get(node.input[0]), get(node.input[1])
                A = A.T if a.get("transA", 0) else A
                B = B.T if a.get("transB", 0) else B
                y = a.get("alpha", 1.0) * (A @ B)
                if len(node.input) > 2 and node.input[2]:
                    y = y + a.get("beta", 1.0) * get(node.input[2])
                env[node.output[0]] = y
            else:
                raise NotImplementedError(f"reference has no op {op}")
        if trace is not None:
            trace.update(env)
        return env[self.graph.output[0].name]

    def forward_unfolded(self, x) -> np.ndarray:
        tensors = {k: torch.tensor(v) for k, v in self.inits.items()}
        with torch.no_grad():
            return self.forward(x, tensors, folded=False).numpy()

    def forward_folded(self, x, params: dict | None = None) -> np.ndarray:
        params = self.params if params is None else params
        tensors = {k: torch.tensor(v) for k, v in self.inits.items()}
        tensors.update({k: torch.tensor(np.asarray(v, np.float64)) for k, v in params.items()})
        with torch.no_grad():
            return self.forward(x, tensors, folded=True).numpy()

    def train(self, data, lr: float, momentum: float, trainable=None):
        """Run len(data) SGD steps (torch.optim.SGD); return (losses, params, momentum buffers)."""
        trainable = list(self.params) if trainable is None else list(trainable)
        tensors = {k: torch.tensor(v) for k, v in self.inits.items()}
        leaves = {k: torch.tensor(v.copy(), requires_grad=k in trainable)
                  for k, v in self.params.items()}
        tensors.update(leaves)
        opt = torch.optim.SGD([leaves[k] for k in trainable], lr=lr, momentum=momentum,
                              dampening=0.0, weight_decay=0.0, nesterov=False)
        losses = []
        for x, label in data:
            opt.zero_grad()
            logits = self.forward(x, tensors, folded=True)
            loss = F.cross_entropy(logits, torch.tensor([label]), reduction="mean")
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        params = {k: v.detach().numpy().copy() for k, v in leaves.items()}
        buffers = {}
        if momentum:
            for k in trainable:
                buffers[k] = opt.state[leaves[k]]["momentum_buffer"].detach().numpy().copy()
        return losses, params, buffers


# --- cached builds (training mutates a session's state, so sessions are never shared) ----


@functools.lru_cache(maxsize=None)
def model_proto(name: str) -> onnx.ModelProto:
    return MODELS[name]()


@functools.lru_cache(maxsize=None)
def reference(name: str) -> Reference:
    return Reference(model_proto(name))


@functools.lru_cache(maxsize=None)
def artifact(name: str, optimizer: str, trainable: tuple[str, ...] | None = None):
    cfg = tinytvm.TrainConfig(**OPTIMIZERS[optimizer],
                              trainable=list(trainable) if trainable is not None else None)
    return tinytvm.build(model_proto(name), target="host", train=cfg, name=name)


def model_weight_names(art) -> set[str]:
    """Weights of the model itself (not the optimizer's momentum state)."""
    return {n for n in art.weights if not n.endswith(".momentum")}


def sparse_subset(ref: Reference, kind: str) -> tuple[str, ...]:
    if kind == "head":  # last conv's bias + the linear layer
        return (ref.conv_bias_name[ref.last_conv().name], *ref.last_gemm().input[1:3])
    if kind == "middle":  # a BN-folded bias and a depthwise weight, deep inside the net
        return (ref.folded_bn_bias(), ref.first_depthwise_conv().input[1])
    raise KeyError(kind)


# --- the reference itself ------------------------------------------------------------------


@pytest.mark.parametrize("model", sorted(MODELS))
def test_models_cover_the_required_ops(model):
    proto = model_proto(model)
    ops = [n.op_type for n in proto.graph.node]
    convs = [(n, _attrs(n)) for n in proto.graph.node if n.op_type == "Conv"]
    assert any(a.get("strides", [1, 1]) != [1, 1] for _, a in convs), "strided conv"
    assert any(a.get("group", 1) > 1 for _, a in convs), "depthwise/grouped conv"
    assert any(a.get("kernel_shape") == [1, 1] for _, a in convs), "1x1 conv"
    for op in ("Relu", "Clip", "Add", "GlobalAveragePool", "Gemm", "BatchNormalization"):
        assert op in ops, op


@pytest.mark.parametrize("model", sorted(MODELS))
def test_reference_folding_equals_the_unfolded_onnx_graph(model):
    from onnx.reference import ReferenceEvaluator

    ref = reference(model)
    # onnx's evaluator runs opset-9..13 BatchNormalization with batch statistics (it fills in
    # the `momentum` default and then takes its training branch), so it is given the same graph
    # at opset 15, where inference mode is explicit (training_mode = 0) and no other op used
    # here changed semantics.
    proto = onnx.ModelProto()
    proto.CopyFrom(model_proto(model))
    del proto.opset_import[:]
    proto.opset_import.append(onnx.helper.make_opsetid("", 15))
    evaluator = ReferenceEvaluator(proto)
    for x, _ in step_data(123, 3, (1, 1, 8, 8), 10):
        unfolded = ref.forward_unfolded(x)
        folded = ref.forward_folded(x)
        onnx_out = evaluator.run(None, {ref.input_name: x})[0]
        assert_close(folded, unfolded, 1e-5, 1e-7, "folded vs unfolded reference")
        # The reference's op semantics agree with onnx's own evaluator (float32 there).
        assert_close(unfolded, onnx_out, 1e-5, 1e-6, "reference vs onnx ReferenceEvaluator")


@pytest.mark.parametrize("model", sorted(MODELS))
def test_test_inputs_exercise_both_sides_of_every_activation(model):
    """The data the training tests use drives every ReLU below 0 and every ReLU6 above 6."""
    ref = reference(model)
    tensors = {k: torch.tensor(v) for k, v in ref.inits.items()}
    seen: dict[str, list] = {}
    for x, _ in step_data(1003, 3, (1, 1, 8, 8), 10):
        trace: dict = {}
        with torch.no_grad():
            ref.forward(x, tensors, folded=False, trace=trace)
        for node in ref.graph.node:
            if node.op_type in ("Relu", "Clip"):
                seen.setdefault(node.name, []).append(trace[node.input[0]].numpy().ravel())
    for node in ref.graph.node:
        if node.op_type in ("Relu", "Clip"):
            values = np.concatenate(seen[node.name])
            assert (values < 0).any() and (values > 0).any(), node.name
            if node.op_type == "Clip":
                assert (values > 6).any(), f"{node.name} never saturates at 6"


# --- tinytvm against the reference ---------------------------------------------------------


@pytest.mark.parametrize("model", sorted(MODELS))
def test_folded_initial_weights_match_the_documented_folding(model):
    ref, art = reference(model), artifact(model, "sgd")
    assert model_weight_names(art) == set(ref.params)
    sess = art.host_session()
    initial = sess.params()
    for name, expected in ref.params.items():
        assert art.weights[name].trainable
        assert_close(art.weights[name].value, expected, 1e-6, 1e-7, f"folded {name}")
        # The C arrays hold exactly the artifact's values.
        assert np.array_equal(initial[name], art.weights[name].value), name


@pytest.mark.parametrize("model", sorted(MODELS))
def test_infer_matches_reference_forward(model):
    ref = reference(model)
    sess = artifact(model, "sgd").host_session()
    for x, _ in step_data(7, 4, (1, 1, 8, 8), 10):
        logits = sess.infer(x)
        assert logits.shape == (10,)
        assert_close(logits, ref.forward_unfolded(x)[0], LOGITS_RTOL, LOGITS_ATOL, "logits")


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("steps", [1, 3])
@pytest.mark.parametrize("model", sorted(MODELS))
def test_training_matches_pytorch_reference(model, steps, optimizer):
    ref, art = reference(model), artifact(model, optimizer)
    cfg = OPTIMIZERS[optimizer]
    data = step_data(1000 + steps, steps, art.input_shape, art.num_classes)

    sess = art.host_session()
    losses = [sess.train_step(x, label) for x, label in data]
    after = sess.params()
    ref_losses, ref_params, ref_buffers = ref.train(data, **cfg)

    for i, (got, want) in enumerate(zip(losses, ref_losses)):
        assert abs(got - want) <= LOSS_RTOL * abs(want), f"loss of step {i}: {got} vs {want}"
    assert set(ref_params) == model_weight_names(art)
    for name, want in ref_params.items():
        assert_close(after[name], want, PARAM_RTOL, PARAM_ATOL, f"{name} after {steps} steps")
        # Stricter: the update itself, not diluted by the size of the initial weight.
        assert_close(after[name] - ref.params[name], want - ref.params[name], DELTA_RTOL,
                     PARAM_ATOL, f"change of {name} after {steps} steps")
        assert not np.array_equal(after[name], art.weights[name].value), f"{name} never updated"
    for name, want in ref_buffers.items():
        assert_close(after[f"{name}.momentum"], want, PARAM_RTOL, PARAM_ATOL, f"{name}.momentum")
    # Inference reads the updated weights.
    x = step_data(99, 1, art.input_shape, art.num_classes)[0][0]
    assert_close(sess.infer(x), ref.forward_folded(x, ref_params)[0], LOGITS_RTOL, LOGITS_ATOL,
                 "logits after training")


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("subset", ["head", "middle"])
@pytest.mark.parametrize("model", sorted(MODELS))
def test_sparse_update_trains_only_the_subset(model, subset, optimizer):
    ref = reference(model)
    trainable = sparse_subset(ref, subset)
    art = artifact(model, optimizer, trainable)
    cfg = OPTIMIZERS[optimizer]
    data = step_data(2000, 3, art.input_shape, art.num_classes)

    assert model_weight_names(art) == set(ref.params)
    for name in ref.params:
        assert art.weights[name].trainable == (name in trainable), name

    sess = art.host_session()
    losses = [sess.train_step(x, label) for x, label in data]
    after = sess.params()
    ref_losses, ref_params, ref_buffers = ref.train(data, **cfg, trainable=trainable)

    for i, (got, want) in enumerate(zip(losses, ref_losses)):
        assert abs(got - want) <= LOSS_RTOL * abs(want), f"loss of step {i}: {got} vs {want}"
    for name in ref.params:
        if name in trainable:
            assert_close(after[name], ref_params[name], PARAM_RTOL, PARAM_ATOL, name)
            assert_close(after[name] - ref.params[name], ref_params[name] - ref.params[name],
                         DELTA_RTOL, PARAM_ATOL, f"change of {name}")
            assert not np.array_equal(after[name], art.weights[name].value), f"{name} not updated"
        else:
            initial = art.weights[name].value
            assert after[name].dtype == initial.dtype and np.array_equal(
                after[name].view(np.uint32), np.asarray(initial).view(np.uint32)), \
                f"frozen {name} changed"
    momenta = {n[: -len(".momentum")] for n in art.weights if n.endswith(".momentum")}
    assert momenta == (set(trainable) if cfg["momentum"] else set())
    for name, want in ref_buffers.items():
        assert_close(after[f"{name}.momentum"], want, PARAM_RTOL, PARAM_ATOL, f"{name}.momentum")
