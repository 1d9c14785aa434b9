"""Average pooling onto a grid ``scale`` times coarser: how an LR input is made from an HR one."""

from __future__ import annotations

import numpy as np


def block_mean(a: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """``(h, w)`` -> the mean of the finite pixels of each ``scale x scale`` block, float64,
    with the count of those pixels; rows and columns past a whole block are dropped.

    A block without a finite pixel has mean 0 and count 0: the caller chooses its fill.
    """
    h, w = a.shape[0] // scale * scale, a.shape[1] // scale * scale
    blocks = a[:h, :w].reshape(h // scale, scale, w // scale, scale).astype(np.float64)
    valid = np.isfinite(blocks)
    count = valid.sum(axis=(1, 3))
    total = np.where(valid, blocks, 0.0).sum(axis=(1, 3))
    return total / np.maximum(count, 1), count
