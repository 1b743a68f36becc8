"""tinytvm.models.zoo: the paper's architectures in code, equal to the data's; the schemes."""

from __future__ import annotations

import pytest

from tinytvm.models import paper
from tinytvm.models.zoo import ARCHITECTURES, num_layers, paper_model, paper_scheme
from tinytvm.quant.paper_import import paper_to_relax
from tinytvm.sparse import trainable_layers


def _shape(model: paper.PaperModel):
    return [(c.in_channels, c.out_channels, c.kernel, c.stride, c.groups, c.in_shape, c.out_shape)
            for c in paper.conv_list(model)[:-1]], model.classifier.in_channels


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_random_model_has_the_papers_architecture(name):
    random = paper_model(name, pretrained=False)
    assert len(paper.conv_list(random)) == num_layers(name)
    if paper.paper_models_available():
        assert _shape(random) == _shape(paper.load_paper_model(name))
        assert [b.residual is not None for b in random.blocks] == [
            b.residual is not None for b in paper.load_paper_model(name).blocks]


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_paper_schemes_resolve_on_the_int8_graph(name):
    model = paper_model(name, pretrained=False, num_classes=10)
    layers = trainable_layers(paper_to_relax(model, (32, 32), logits="float32"))
    assert len(layers) == num_layers(name)
    trainable, channels = paper_scheme(name).resolve(layers)
    assert layers[-1].weight in trainable and channels
    assert paper_scheme(name, "full").resolve(layers)[0].__len__() == 2 * len(layers)


def test_mbv2_sparse_fits_256kb_full_update_fails_with_the_size():
    """The paper's MbV2-w0.35 at 128x128 (random weights): the sparse scheme builds under a
    256 KB SRAM budget for stm32f746 (its C compiled for the core; benchmarks/paper_table.py
    links all three); the full update fails naming the size it needs."""
    import numpy as np

    import tinytvm
    from tinytvm.errors import BudgetError
    from tinytvm.quant.paper_import import with_new_head

    model = paper_model("mbv2-w0.35", pretrained=False)
    head = np.random.default_rng(0).normal(0, 0.1, (10, model.classifier.in_channels))
    mod = paper_to_relax(with_new_head(model, head, np.zeros(10)), logits="float32")

    def config(kind):
        return tinytvm.TrainConfig(lr=0.01, update=paper_scheme("mbv2-w0.35", kind),
                                   int8_update="stochastic")

    art = tinytvm.build(mod, target="stm32f746", train=config("sparse"), sram_budget="256KB")
    assert art.memory.sram_bytes <= 256 * 1024
    with pytest.raises(BudgetError, match=r"SRAM: needs \d+ B .* > budget 262144 B"):
        tinytvm.build(mod, target="stm32f746", train=config("full"), sram_budget="256KB",
                      verify=False)
