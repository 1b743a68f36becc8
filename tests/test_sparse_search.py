"""Contribution analysis (real fine-tuning with the generated C) and the budgeted search."""

import numpy as np

from tinytvm.models import mbv2_tiny
from tinytvm.sparse import UpdateScheme, memory_cost
from tinytvm.sparse_search import Contributions, analyze_contributions, search_scheme


def _digits(n, offset):
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    return x[offset:offset + n], d.target[offset:offset + n].astype(np.int32)


def test_contribution_analysis_runs_and_is_cached(tmp_path):
    train, evaluation = _digits(60, 0), _digits(60, 1000)
    kwargs = dict(steps=40, ratios=(1.0,), bias_points=[0, 3, 6], layers=[3, 4], cache_dir=tmp_path)
    first = analyze_contributions(mbv2_tiny(), train, evaluation, **kwargs)
    assert set(first.bias) == {0, 3, 6} and first.bias[0] == 0.0
    assert set(first.weight) == {(3, 1.0), (4, 1.0)}
    assert 0.0 <= first.base_accuracy <= 1.0
    cached = list(tmp_path.iterdir())
    assert len(cached) == 1
    again = analyze_contributions(mbv2_tiny(), train, evaluation, **kwargs)
    assert again.to_json() == first.to_json()


def test_search_respects_the_budget_and_prefers_contribution():
    contributions = Contributions(0.5, {0: 0.0, 2: 0.05, 6: 0.08},
                                  {(1, 1.0): 0.01, (1, 0.5): 0.005, (4, 1.0): 0.2, (4, 0.5): 0.15})
    small = memory_cost(mbv2_tiny(), UpdateScheme(bias_last=0)).total
    roomy = memory_cost(mbv2_tiny(), UpdateScheme(bias_last=6, weights=((1, 1.0), (4, 1.0)))).total
    tight = search_scheme(mbv2_tiny(), contributions, small, population=8, generations=4)
    assert tight.cost.total <= small and tight.scheme.weights == ()
    wide = search_scheme(mbv2_tiny(), contributions, roomy, population=12, generations=8)
    assert wide.cost.total <= roomy
    assert (4, 1.0) in wide.scheme.weights  # the most useful weight is found
    assert wide.score >= tight.score
    assert wide.history == sorted(wide.history)  # elitist: the best never gets worse


def test_sparse_update_search_api(tmp_path, monkeypatch):
    import tinytvm

    monkeypatch.setenv("HOME", str(tmp_path))
    x, y = _digits(80, 0)
    budget = memory_cost(mbv2_tiny(), UpdateScheme(bias_last=2)).total + 1024
    scheme = tinytvm.SparseUpdate.search(mbv2_tiny(), (x, y), budget, steps=15, generations=2)
    assert isinstance(scheme, UpdateScheme)
    assert memory_cost(mbv2_tiny(), scheme).total <= budget
