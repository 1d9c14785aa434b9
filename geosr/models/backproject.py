"""Iterative back-projection of an HR prediction onto its LR."""

from __future__ import annotations

import numpy as np


def back_project(
    hr: np.ndarray, lr: np.ndarray, valid: np.ndarray, scale: int, iterations: int
) -> np.ndarray:
    """Make an HR prediction ``(1, s*h, s*w)`` consistent with its LR ``(1, h, w)``.

    Iterative back-projection (Irani & Peleg, 1991): the LR residual ``lr - pool(hr)`` (the
    pipeline's degradation is ``scale``-fold average pooling) is upsampled bicubically and
    added, ``iterations`` times; invalid LR pixels contribute no residual. A tile fit
    enforces this consistency through its loss; a network applied to tiles it was not
    fitted on (scene mode) does not, and its errors are largest at low frequencies, which
    this removes. On the Mashhad DSM it halved the scene network's RMSE
    (docs/benchmarks/modes.md#the-mashhad-dsm). The correction is a smooth field that depends only on the LR residual, so
    detail of the prediction that pools to zero is kept as it is.
    """
    import torch
    import torch.nn.functional as F

    if iterations < 1:
        return hr
    x = torch.from_numpy(np.ascontiguousarray(hr, dtype=np.float32))[None]
    target = torch.from_numpy(np.ascontiguousarray(lr, dtype=np.float32))[None]
    m = torch.from_numpy(np.asarray(valid, dtype=np.float32))[None]
    target = torch.where(m > 0, target, 0.0)
    with torch.no_grad():
        for _ in range(iterations):
            r = (target - F.avg_pool2d(x, scale)) * m
            x = x + F.interpolate(r, scale_factor=scale, mode="bicubic", align_corners=False)
    return x[0].numpy()
