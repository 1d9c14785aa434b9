"""Classical baselines: bicubic interpolation and He et al.'s guided filter.

Guided filter: K. He, J. Sun, X. Tang, "Guided Image Filtering", ECCV 2010 / TPAMI 2013,
colour-guide form (a 3x3 — in general CxC — covariance solve per pixel).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from geosr.models.base import Method, MethodOptions

#: PyTorch's (and OpenCV's) bicubic kernel parameter
_CUBIC_A = -0.75


def _cubic_taps(n_in: int, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """Source indices ``(n_out, 4)`` and weights ``(n_out, 4)`` of PyTorch's bicubic
    interpolation along one axis (half-pixel centres, indices clamped at the edges)."""
    a = _CUBIC_A
    src = (np.arange(n_in * scale) + 0.5) / scale - 0.5
    i0 = np.floor(src)
    t = src - i0
    idx = np.clip(i0[:, None].astype(np.int64) + np.arange(-1, 3), 0, n_in - 1)

    def near(x: np.ndarray) -> np.ndarray:  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x: np.ndarray) -> np.ndarray:  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    w = np.stack([far(t + 1), near(t), near(1 - t), far(2 - t)], axis=1)
    return idx, w


def bicubic_upsample(lr: np.ndarray, scale: int) -> np.ndarray:
    """``(B, h, w)`` -> ``(B, scale*h, scale*w)``: PyTorch's bicubic interpolation
    (``F.interpolate(mode="bicubic", align_corners=False)``, a = -0.75, edge pixels
    repeated), computed in numpy so that classical runs need no torch.

    This is the interpolation the papers use for their bicubic baseline figures; it agrees
    with PyTorch's to float32 rounding (``tests/models/test_bicubic.py``).
    """
    x = np.asarray(lr, dtype=np.float64)
    rows, wr = _cubic_taps(x.shape[-2], scale)
    cols, wc = _cubic_taps(x.shape[-1], scale)
    # along columns first, then rows, as a separable 4-tap filter
    y = np.einsum("...rok,ok->...ro", x[..., cols], wc)
    z = np.einsum("...okc,ok->...oc", y[..., rows, :], wr)
    return z.astype(np.float32)


@dataclasses.dataclass(frozen=True)
class BicubicOptions(MethodOptions):
    pass


class Bicubic(Method):
    """Bicubic upsampling of the LR; ignores the guide (the yardstick of every table)."""

    name = "bicubic"
    Options = BicubicOptions
    resampler = True

    def run(self, lr, guide, scale, mask, *, progress):  # type: ignore[override]
        return bicubic_upsample(lr, scale)


def box_mean(x: np.ndarray, r: int) -> np.ndarray:
    """Mean over a ``(2r+1)^2`` window clipped to the image, for ``(..., H, W)`` float64."""
    h, w = x.shape[-2:]
    c = np.cumsum(np.cumsum(x, axis=-2), axis=-1)
    c = np.pad(c, [(0, 0)] * (x.ndim - 2) + [(1, 0), (1, 0)])
    rows = np.arange(h)
    cols = np.arange(w)
    r0, r1 = np.clip(rows - r, 0, h), np.clip(rows + r + 1, 0, h)
    c0, c1 = np.clip(cols - r, 0, w), np.clip(cols + r + 1, 0, w)
    s = (
        c[..., r1[:, None], c1[None, :]]
        - c[..., r0[:, None], c1[None, :]]
        - c[..., r1[:, None], c0[None, :]]
        + c[..., r0[:, None], c0[None, :]]
    )
    n = (r1 - r0)[:, None] * (c1 - c0)[None, :]
    return s / n


def guided_filter(guide: np.ndarray, src: np.ndarray, r: int, eps: float) -> np.ndarray:
    """Colour guided filter of ``src`` (H, W) with ``guide`` (C, H, W); float64 internally."""
    g = np.asarray(guide, dtype=np.float64)
    p = np.asarray(src, dtype=np.float64)
    c = g.shape[0]
    mean_g = box_mean(g, r)  # (C,H,W)
    mean_p = box_mean(p, r)  # (H,W)
    cov_gp = box_mean(g * p, r) - mean_g * mean_p
    # Covariance of the guide, per pixel: (H, W, C, C).
    gg = g[:, None] * g[None, :]
    sigma = box_mean(gg, r) - mean_g[:, None] * mean_g[None, :]
    sigma = np.moveaxis(sigma, (0, 1), (-2, -1)) + eps * np.eye(c)
    a = np.linalg.solve(sigma, np.moveaxis(cov_gp, 0, -1)[..., None])[..., 0]  # (H,W,C)
    a = np.moveaxis(a, -1, 0)
    b = mean_p - (a * mean_g).sum(0)
    return (box_mean(a, r) * g).sum(0) + box_mean(b, r)


@dataclasses.dataclass(frozen=True)
class GuidedFilterOptions(MethodOptions):
    #: window radius in HR pixels; ``None`` means ``scale``.
    radius: int | None = None
    #: regularisation, in units of the normalised (unit-variance) guide.
    eps: float = 1e-2

    def __post_init__(self) -> None:
        if self.radius is not None and self.radius < 1:
            raise ValueError(f"radius must be >= 1, got {self.radius}")
        if not self.eps > 0:
            raise ValueError(f"eps must be > 0, got {self.eps}")


class GuidedFilter(Method):
    """Bicubic upsampling refined by a colour guided filter (the classic fast baseline)."""

    name = "guided-filter"
    Options = GuidedFilterOptions

    def _radius(self, scale: int) -> int:
        return self.options.radius or scale

    def resolved_options(self, scale: int) -> dict[str, Any]:
        return {**super().resolved_options(scale), "radius": self._radius(scale)}

    def halo(self, scale: int) -> int:
        # bicubic support (2 LR px) + two box filters of radius r (HR px) + a margin.
        return 3 + math.ceil(2 * self._radius(scale) / scale)

    def run(self, lr, guide, scale, mask, *, progress: Any):  # type: ignore[override]
        up = bicubic_upsample(lr, scale)
        out = guided_filter(guide, up[0], self._radius(scale), self.options.eps)
        return out[None].astype(np.float32)
