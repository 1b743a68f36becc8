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
