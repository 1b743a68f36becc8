"""Transfer-learning data for benchmarks and examples: scikit-learn's bundled digits, upsampled
to the paper models' RGB input (no download needed)."""

from __future__ import annotations

import numpy as np


def digits_rgb(n_train: int, n_eval: int, seed: int = 0, size: int = 128):
    """((x_train, y_train), (x_eval, y_eval)): digits as (n, 3, size, size) float32 pixels in
    [0, 1] (bilinear upsampling of the 8x8 images, gray copied to RGB), int32 labels; `seed`
    shuffles before the split."""
    from scipy.ndimage import zoom
    from sklearn.datasets import load_digits

    d = load_digits()
    if n_train + n_eval > len(d.target):
        raise ValueError(f"digits has {len(d.target)} samples, asked for {n_train + n_eval}")
    order = np.random.default_rng(seed).permutation(len(d.target))[: n_train + n_eval]
    images = d.images[order] / 16.0
    up = np.stack([zoom(im, size / 8, order=1) for im in images])
    x = np.clip(up, 0, 1).astype(np.float32)[:, None].repeat(3, axis=1)
    y = d.target[order].astype(np.int32)
    return (x[:n_train], y[:n_train]), (x[n_train:], y[n_train:])


def digits_transfer(seed: int = 0, pretrain_classes: int = 6, n_test: int = 400):
    """The demo's transfer task on the 8x8 digits: ((x, y) to pre-train on, digits
    < `pretrain_classes` only (500 samples); (x, y) to fine-tune on, all ten digits; (x, y)
    held out, `n_test` samples). x: (n, 1, 8, 8) float32 pixels in [0, 1]."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]
    y = digits.target.astype(np.int32)
    order = np.random.default_rng(seed).permutation(len(y))
    x, y = x[order], y[order]
    rest = np.arange(n_test, len(y))
    pre = rest[y[rest] < pretrain_classes][:500]
    tune = np.setdiff1d(rest, pre)
    return (x[pre], y[pre]), (x[tune], y[tune]), (x[:n_test], y[:n_test])
