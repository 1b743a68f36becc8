"""Find a sparse-update scheme: contribution analysis on the user's data, then an evolutionary
search that maximises the summed contribution under a memory budget (the paper's method).

Contribution analysis fine-tunes the model on the host with the project's own compiled training
step (the C the device runs) for each candidate: Δaccuracy of updating the biases of the last k
layers, and Δaccuracy of each layer's weight at each channel ratio. The search then assumes the
contributions add up, as the paper does, and checks each candidate's memory with `memory_cost`
(the build's own plan). Results are cached on disk by model, data and settings.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.progress import Progress

from .build import TrainConfig, build, parse_bytes
from .sparse import MemoryCost, UpdateScheme, memory_cost, trainable_layers


@dataclass
class Contributions:
    base_accuracy: float                       # classifier only
    bias: dict[int, float]                     # k → Δacc of the biases of the last k layers
    weight: dict[tuple[int, float], float]     # (layer, ratio) → Δacc of that weight alone

    def score(self, scheme: UpdateScheme) -> float:
        bias = self.bias.get(scheme.bias_last, 0.0)
        return bias + sum(self.weight.get((i, r), 0.0) for i, r in scheme.weights)

    def to_json(self) -> str:
        return json.dumps({"base_accuracy": self.base_accuracy,
                           "bias": {str(k): v for k, v in self.bias.items()},
                           "weight": [[i, r, v] for (i, r), v in self.weight.items()]})

    @classmethod
    def from_json(cls, text: str) -> "Contributions":
        raw = json.loads(text)
        return cls(raw["base_accuracy"], {int(k): v for k, v in raw["bias"].items()},
                   {(int(i), float(r)): v for i, r, v in raw["weight"]})


def fine_tune_accuracy(model, scheme: UpdateScheme, train, evaluation, *, steps: int, lr: float,
                       momentum: float = 0.0, **config) -> float:
    """Accuracy on `evaluation` after `steps` single-sample steps on `train`, run by the C code
    tinytvm generates for this scheme (host build). `config`: more TrainConfig fields (e.g.
    int8 graphs' `qas`, `int8_update`)."""
    art = build(model, train=TrainConfig(lr=lr, momentum=momentum, update=scheme, **config),
                verify=False)
    sess = art.host_session()
    (x, y), (ex, ey) = train, evaluation
    for step in range(steps):
        i = step % len(y)
        sess.train_step(x[i], int(y[i]))
    return float(np.mean([np.argmax(sess.infer(v)) == t for v, t in zip(ex, ey)]))


def _cache_key(model, settings: dict) -> str:
    if hasattr(model, "SerializeToString"):
        blob = model.SerializeToString()
    elif isinstance(model, (str, Path)) and Path(model).is_file():
        blob = Path(model).read_bytes()
    else:  # a Relax module: its printed form
        blob = model.script(show_meta=True).encode()
    h = hashlib.sha256(blob)
    h.update(json.dumps(settings, sort_keys=True).encode())
    return h.hexdigest()[:16]


def analyze_contributions(model, train, evaluation, *, steps: int = 100, lr: float = 0.05,
                          ratios=(1.0, 0.5, 0.25, 0.125), bias_points=None, layers=None,
                          cache_dir: str | Path | None = None) -> Contributions:
    """Δaccuracy per bias depth and per (layer weight, channel ratio), from real fine-tuning."""
    from .build import _as_module
    from .pipeline import canonicalize, run_passes

    canonical = run_passes(_as_module(model), canonicalize())
    all_layers = trainable_layers(canonical)
    n = len(all_layers)
    bias_points = sorted(set(bias_points or np.linspace(0, n, min(n, 6) + 1).astype(int).tolist()))
    weight_layers = [l.index for l in all_layers[:-1] if l.kind == "conv"] if layers is None else layers
    settings = {"steps": steps, "lr": lr, "ratios": list(ratios), "bias": bias_points,
                "layers": weight_layers, "labels": np.asarray(train[1]).tolist()[:64],
                "x": float(np.asarray(train[0]).sum())}
    cache = Path(cache_dir or Path.home() / ".cache" / "tinytvm") / f"contrib-{_cache_key(model, settings)}.json"
    if cache.exists():
        return Contributions.from_json(cache.read_text())

    jobs = [("bias", k, None) for k in bias_points]
    jobs += [("weight", i, r) for i in weight_layers for r in ratios]
    results = {}
    with Progress() as progress:
        task = progress.add_task("contribution analysis (host, generated C)", total=len(jobs))
        for kind, a, r in jobs:
            scheme = (UpdateScheme(bias_last=a) if kind == "bias"
                      else UpdateScheme(weights=((a, r),)))
            results[kind, a, r] = fine_tune_accuracy(model, scheme, train, evaluation,
                                                     steps=steps, lr=lr)
            progress.advance(task)
    base = results["bias", 0, None]
    contrib = Contributions(
        base, {k: results["bias", k, None] - base for k in bias_points},
        {(i, r): results["weight", i, r] - base for i in weight_layers for r in ratios})
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(contrib.to_json())
    return contrib


@dataclass
class SearchResult:
    scheme: UpdateScheme
    score: float
    cost: MemoryCost
    evaluated: int
    history: list[float] = field(default_factory=list)


def search_scheme(model, contributions: Contributions, budget, *, population: int = 24,
                  generations: int = 20, seed: int = 0, lr: float = 0.05,
                  momentum: float = 0.0) -> SearchResult:
    """Evolutionary search: maximise the summed contribution with memory_cost.total ≤ budget."""
    budget = parse_bytes(budget)
    rng = random.Random(seed)
    bias_options = sorted(contributions.bias)
    layer_options = sorted({i for i, _ in contributions.weight})
    ratio_options = sorted({r for _, r in contributions.weight})
    costs: dict[UpdateScheme, MemoryCost] = {}

    def cost(scheme):
        if scheme not in costs:
            costs[scheme] = memory_cost(model, scheme, lr=lr, momentum=momentum)
        return costs[scheme]

    def fitness(scheme):
        return contributions.score(scheme) if cost(scheme).total <= budget else float("-inf")

    def random_scheme():
        chosen = rng.sample(layer_options, rng.randint(0, min(3, len(layer_options))))
        return _scheme(rng.choice(bias_options), {i: rng.choice(ratio_options) for i in chosen})

    def mutate(scheme):
        bias, weights = scheme.bias_last, dict(scheme.weights)
        if rng.random() < 0.4:
            bias = rng.choice(bias_options)
        layer = rng.choice(layer_options)
        if layer in weights and rng.random() < 0.5:
            del weights[layer]
        else:
            weights[layer] = rng.choice(ratio_options)
        return _scheme(bias, weights)

    def crossover(a, b):
        wa, wb = dict(a.weights), dict(b.weights)
        merged = {i: (wa if rng.random() < 0.5 else wb).get(i) for i in set(wa) | set(wb)}
        return _scheme(rng.choice([a.bias_last, b.bias_last]), {i: r for i, r in merged.items() if r})

    pool = [UpdateScheme(bias_last=0)] + [random_scheme() for _ in range(population - 1)]
    history = []
    with Progress() as progress:
        task = progress.add_task(f"evolutionary search under {budget} B", total=generations)
        for _ in range(generations):
            ranked = sorted(set(pool), key=lambda s: (fitness(s), -cost(s).total), reverse=True)
            parents = ranked[: max(2, population // 4)]
            history.append(fitness(parents[0]))
            children = [mutate(rng.choice(parents)) for _ in range(population // 2)]
            children += [crossover(*rng.sample(parents, 2)) for _ in range(population - len(parents) - len(children))]
            pool = parents + children
            progress.advance(task)
    best = max(set(pool), key=lambda s: (fitness(s), -cost(s).total))
    return SearchResult(best, contributions.score(best), cost(best), len(costs), history)


def _scheme(bias: int, weights: dict) -> UpdateScheme:
    return UpdateScheme(bias_last=bias, weights=tuple(sorted(weights.items())), classifier=True)


class SparseUpdate:
    """`tinytvm.SparseUpdate.search(model, (x, y), budget="256KB")` → an UpdateScheme."""

    @staticmethod
    def search(model, data, budget, *, eval_fraction: float = 0.2, steps: int = 100,
               lr: float = 0.05, generations: int = 20, seed: int = 0) -> UpdateScheme:
        """Contribution analysis on `data` (a held-out `eval_fraction` scores candidates), then
        the evolutionary search under `budget` (training arena + trainable bytes)."""
        x, y = (np.asarray(a) for a in data)
        order = np.random.default_rng(seed).permutation(len(y))
        cut = max(1, int(len(y) * eval_fraction))
        held, train = order[:cut], order[cut:]
        contributions = analyze_contributions(model, (x[train], y[train]), (x[held], y[held]),
                                              steps=steps, lr=lr)
        return search_scheme(model, contributions, budget, generations=generations, seed=seed,
                             lr=lr).scheme
