"""ReorderForMemory: lower peak, same numbers (bit for bit, host and Cortex-M7)."""

import numpy as np
import pytest

import tinytvm
from tinytvm.harness import Dataset, run_training
from tinytvm.models import mbv2_tiny, resnet_tiny
from tinytvm.passes import ReorderForMemory
from tinytvm.passes.reorder import reorder_for_memory


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_reordering_lowers_full_update_peak(momentum):
    for make in (mbv2_tiny, resnet_tiny):
        cfg = tinytvm.TrainConfig(lr=0.1, momentum=momentum)
        plain = tinytvm.build(make(), train=cfg, reorder=False)
        ordered = tinytvm.build(make(), train=cfg, reorder=True)
        assert ordered.memory.functions[0].peak < plain.memory.functions[0].peak
        assert ordered.memory.functions[0].lower_bound < plain.memory.functions[0].lower_bound
        # every update is still written in place: no copy of a weight at the end
        assert all(new.home is w for new, w in ordered.programs["train_step"].updates)


def test_updates_follow_their_gradients_after_reordering():
    art = tinytvm.build(mbv2_tiny(), train=tinytvm.TrainConfig(lr=0.1))
    calls = art.programs["train_step"].calls
    position = {id(c.output.home): i for i, c in enumerate(calls)}
    last = len(calls) - 1
    # at least one weight is updated well before the end of the step
    first_update = min(position[id(w)] for _, w in art.programs["train_step"].updates
                       if id(w) in position)
    assert first_update < last * 0.75


def test_reorder_never_reads_an_overwritten_weight():
    """After each in-place update, no later kernel reads that weight."""
    art = tinytvm.build(resnet_tiny(), train=tinytvm.TrainConfig(lr=0.1, momentum=0.9))
    program = art.programs["train_step"]
    written_at = {}
    for i, call in enumerate(program.calls):
        for t in call.inputs:
            home = t.home
            if home.storage == "weight" and id(home) in written_at:
                # reading the new value is fine only through the update's own result
                assert t is not home, f"call {i} ({call.kernel}) reads {home.name} after its update"
        if call.output.home.storage == "weight":
            written_at[id(call.output.home)] = i


def test_reordered_step_is_bit_identical_on_host_and_qemu():
    cfg = tinytvm.TrainConfig(lr=0.05, momentum=0.9)
    rng = np.random.default_rng(3)
    data = Dataset.quantize(rng.normal(size=(5, 64)), rng.integers(0, 10, 5), -3, 3)
    runs = {}
    for reorder in (False, True):
        art = tinytvm.build(mbv2_tiny(), target="mps2-an500", train=cfg, reorder=reorder)
        runs[reorder, "host"] = run_training(art, data, data, 6, where="host").losses
        runs[reorder, "qemu"] = run_training(art, data, data, 6, where="qemu").losses
    reference = runs[False, "host"]
    for key, losses in runs.items():
        assert losses.tobytes() == reference.tobytes(), key


def test_reorder_leaves_inference_only_modules_alone():
    import tvm

    from tinytvm.frontend import from_onnx

    mod = from_onnx(mbv2_tiny())
    tvm.ir.assert_structural_equal(ReorderForMemory()(mod)["main"], mod["main"])
    assert callable(reorder_for_memory)


def test_exact_order_is_optimal_on_small_graphs():
    """On random small DAGs the DP order's peak equals the best over all topological orders."""
    import itertools
    import random

    from tinytvm.passes.reorder import _Graph

    class Fake(_Graph):  # a dependence graph without Relax: reads, sizes
        def __init__(self, reads, size):
            self.bindings = list(range(len(reads)))
            self.reads, self.size = reads, size
            self.deps = [set(r) for r in reads]
            self.consumers = [[c for c in range(len(reads)) if i in self.deps[c]]
                              for i in range(len(reads))]
            self.pinned = set()

    rng = random.Random(0)
    for _ in range(30):
        n = rng.randint(3, 7)
        reads = [sorted(rng.sample(range(i), rng.randint(0, min(i, 2)))) for i in range(n)]
        g = Fake(reads, [rng.choice([1, 2, 4, 8]) * 16 for _ in range(n)])
        orders = [p for p in itertools.permutations(range(n))
                  if all(p.index(d) < p.index(i) for i in range(n) for d in reads[i])]
        assert g.peak(g.exact_order()) == min(g.peak(list(p)) for p in orders)
        assert g.peak(g.exact_order()) <= g.peak(g.greedy_order())
