import functools

import pytest

import tinytvm
from tinytvm.models import mbv2_tiny, resnet_tiny

MODELS = {"mbv2_tiny": mbv2_tiny, "resnet_tiny": resnet_tiny}


@functools.lru_cache(maxsize=None)
def cached_build(model: str, target: str = "host", lr: float = 0.05, momentum: float = 0.0,
                 trainable: tuple | None = None):
    """Builds are pure functions of their inputs; sessions made from them start fresh."""
    config = tinytvm.TrainConfig(lr=lr, momentum=momentum,
                                 trainable=list(trainable) if trainable is not None else None)
    return tinytvm.build(MODELS[model](), target=target, train=config)


@pytest.fixture
def build():
    return cached_build
