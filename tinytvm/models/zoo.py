"""The paper's three models, as architectures: built with random calibrated int8 weights, or
with the ImageNet-pretrained ones from shared/ when present.

The tables below are the architecture facts of ``shared/data/paper-models/*.json`` (every
layer's channels, kernel, stride; the resolution follows from the 128x128 input and the
strides), so the models build without the data files; ``tests/test_paper_zoo.py`` checks them
against the data when it is there. The paper's sparse-update schemes are ``UpdateScheme``s
(conv indices counted from the input, the classifier last).
"""

from __future__ import annotations

from ..sparse import UpdateScheme
from .int8_random import random_int8_model
from .paper import PAPER_MODELS, PaperModel, load_paper_model, paper_models_available

# (expand channels or None, out channels, depthwise kernel, stride, residual) per block
ARCHITECTURES = {
    "mbv2-w0.35": ((16, 3, 2), 112, (
        (None, 8, 3, 1, False), (48, 8, 3, 2, False), (48, 8, 3, 1, True),
        (48, 16, 3, 2, False), (96, 16, 3, 1, True), (96, 16, 3, 1, True),
        (96, 24, 3, 2, False), (144, 24, 3, 1, True), (144, 24, 3, 1, True),
        (144, 24, 3, 1, True), (144, 32, 3, 1, False), (192, 32, 3, 1, True),
        (192, 32, 3, 1, True), (192, 56, 3, 2, False), (336, 56, 3, 1, True),
        (336, 56, 3, 1, True), (336, 112, 3, 1, False))),
    "proxyless-w0.3": ((16, 3, 2), 96, (
        (None, 8, 3, 1, False), (24, 16, 5, 2, False), (48, 16, 3, 1, True),
        (48, 16, 7, 2, False), (48, 16, 3, 1, True), (48, 16, 5, 1, True),
        (48, 16, 5, 1, True), (96, 24, 7, 2, False), (72, 24, 5, 1, True),
        (72, 24, 5, 1, True), (72, 24, 5, 1, True), (144, 32, 5, 1, False),
        (96, 32, 5, 1, True), (96, 32, 5, 1, True), (96, 32, 5, 1, True),
        (192, 64, 7, 2, False), (384, 64, 7, 1, True), (192, 64, 7, 1, True),
        (192, 64, 7, 1, True), (384, 96, 7, 1, False))),
    "mcunet-5fps": ((16, 3, 2), 160, (
        (None, 8, 3, 1, False), (32, 16, 3, 2, False), (48, 16, 3, 1, True),
        (48, 24, 7, 2, False), (120, 24, 3, 1, True), (120, 40, 3, 2, False),
        (160, 40, 7, 1, True), (160, 48, 5, 1, False), (144, 48, 3, 1, True),
        (192, 48, 3, 1, True), (240, 96, 7, 2, False), (384, 96, 5, 1, True),
        (384, 96, 5, 1, True), (576, 160, 3, 1, False))),
}

# The paper's sparse schemes: MbV2's ~100 KB scheme as the issue and paper state it; for
# ProxylessNAS and MCUNet the "50 KB" schemes of the tiny-training transfer scripts
# (n_bias_update, manual_weight_idx, weight_update_ratio; ratio 0 = no weight update).
_SPARSE = {
    "mbv2-w0.35": (25, (27, 30, 33, 36, 39, 42, 45, 48), (1, 1, 1, 1, 1, 1 / 8, 1 / 2, 1)),
    "proxyless-w0.3": (21, (39, 42, 44, 45, 50, 51, 54, 57), (0.25, 1, 0, 1, 0, 0.125, 0.25,
                                                             0.25)),
    "mcunet-5fps": (20, (23, 24, 27, 30, 33, 39), (0, 0.25, 0.5, 0.5, 0, 0)),
}


def num_layers(name: str) -> int:
    """Convs (first, each block's) plus the classifier: the indices UpdateSchemes count."""
    _, _, blocks = ARCHITECTURES[name]
    return 1 + sum(3 if e is not None else 2 for e, *_ in blocks) + 1


def paper_scheme(name: str, kind: str = "sparse") -> UpdateScheme:
    """'sparse' (the paper's), 'bias' (every bias + the classifier), or 'full'."""
    n = num_layers(name)
    if kind == "full":
        return UpdateScheme.full(n)
    if kind == "bias":
        return UpdateScheme(bias_last=n)
    if kind != "sparse":
        raise ValueError(f"scheme kind must be sparse, bias or full, not {kind!r}")
    bias_last, layers, ratios = _SPARSE[name]
    return UpdateScheme(bias_last, tuple((i, r) for i, r in zip(layers, ratios) if r > 0))


def paper_model(name: str, pretrained: bool | None = False, num_classes: int = 1000,
                seed: int = 0) -> PaperModel:
    """The architecture `name` (one of PAPER_MODELS). pretrained: False (default) = random
    calibrated weights, True = the ImageNet weights from shared/ (an error if absent), None =
    pretrained when available (what the benchmarks use)."""
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown paper model {name!r}; known: {', '.join(PAPER_MODELS)}")
    if pretrained or (pretrained is None and paper_models_available()):
        return load_paper_model(name)
    first, _, blocks = ARCHITECTURES[name]
    return random_int8_model(name, first, blocks, num_classes=num_classes, seed=seed)
