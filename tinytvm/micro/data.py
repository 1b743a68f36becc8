"""Samples to train on from the CLI (`tinytvm run --data ...`): a bundled data set, a fixed
random set, or the caller's own arrays in a .npz file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import TinyTVMError

DATASETS = ("digits", "random")
_RANDOM_SAMPLES = 8


def load_samples(spec: str, input_shape, num_classes: int, *,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) with x of shape (n, *input_shape) float32 and y int32 labels < num_classes.

    spec: "digits" (scikit-learn's bundled 8x8 handwritten digits, pixels scaled to [0, 1],
    shuffled with `seed`), "random" (8 fixed Gaussian samples with random labels: a model
    can learn them by heart, so the loss must fall), or a .npz file with arrays `x` and `y`.
    """
    shape = tuple(int(s) for s in input_shape)
    if spec == "digits":
        x, y = _digits(shape, num_classes, seed)
    elif spec == "random":
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(_RANDOM_SAMPLES, *shape)).astype(np.float32)
        y = rng.integers(0, num_classes, _RANDOM_SAMPLES)
    else:
        x, y = _npz(Path(spec))
    return _checked(x, y, shape, num_classes, spec)


def _digits(shape, num_classes: int, seed: int):
    from sklearn.datasets import load_digits

    elems = int(np.prod(shape))
    if elems != 64:
        raise TinyTVMError(f"--data digits gives 8x8 = 64 values per sample; the model takes "
                           f"{shape} = {elems}. Pass your own data as a .npz file (x, y).")
    digits = load_digits()
    keep = digits.target < num_classes
    x = (digits.images[keep] / 16.0).astype(np.float32)
    y = digits.target[keep]
    order = np.random.default_rng(seed).permutation(len(y))
    return x[order].reshape(len(y), *shape), y[order]


def _npz(path: Path):
    if path.suffix != ".npz" or not path.is_file():
        raise TinyTVMError(f"--data {path}: expected 'digits', 'random' or an existing .npz file "
                           "with arrays x (samples) and y (labels)")
    with np.load(path) as f:
        if "x" not in f or "y" not in f:
            raise TinyTVMError(f"{path} must hold arrays named x and y; it has {list(f.keys())}")
        return f["x"], f["y"]


def _checked(x, y, shape, num_classes, spec):
    x = np.asarray(x, np.float32)
    y = np.asarray(y).astype(np.int32).reshape(-1)
    elems = int(np.prod(shape))
    if len(x) != len(y) or len(y) == 0:
        raise TinyTVMError(f"--data {spec}: {len(x)} samples but {len(y)} labels")
    if x[0].size != elems:
        raise TinyTVMError(f"--data {spec}: samples have {x[0].size} values, the model takes "
                           f"{shape} = {elems}")
    if y.min() < 0 or y.max() >= num_classes:
        raise TinyTVMError(f"--data {spec}: labels must be in [0, {num_classes})")
    return x.reshape(len(y), *shape), y
