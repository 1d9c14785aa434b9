"""Robust, masked normalisation shared by the API and the tiled pipeline.

The reference MMSR/P2P code z-scores with the image's own mean and standard
deviation and no epsilon, so a constant tile becomes NaN and every tile gets its
own statistics (which makes seams). Here statistics are computed once (per
image, or per scene in the pipeline) over valid pixels only, and a degenerate
spread falls back to 1 so constant inputs come back unchanged.
"""

from __future__ import annotations

import dataclasses

import numpy as np


def spread_floor(center: np.ndarray | float) -> np.ndarray:
    return 1e-6 * (np.abs(center) + 1.0)


@dataclasses.dataclass(frozen=True)
class BandStats:
    """Per-band location and scale; ``apply`` maps to ~N(0, 1), ``invert`` maps back."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def from_array(cls, x: np.ndarray, mask: np.ndarray | None = None) -> BandStats:
        """Statistics of ``x`` (band, row, col) over pixels that are finite and in ``mask``."""
        x = np.asarray(x, dtype=np.float64)
        valid = np.isfinite(x)
        if mask is not None:
            valid &= np.broadcast_to(np.asarray(mask, dtype=bool), x.shape)
        means, stds = [], []
        for band, ok in zip(x, valid, strict=True):
            vals = band[ok]
            if vals.size == 0:
                means.append(0.0)
                stds.append(1.0)
                continue
            m = float(vals.mean())
            s = float(vals.std())
            if not np.isfinite(s) or s <= spread_floor(m):
                s = 1.0
            means.append(m)
            stds.append(s)
        return cls(tuple(means), tuple(stds))

    def _arrays(self, ndim: int) -> tuple[np.ndarray, np.ndarray]:
        shape = (-1,) + (1,) * (ndim - 1)
        return (
            np.asarray(self.mean, dtype=np.float64).reshape(shape),
            np.asarray(self.std, dtype=np.float64).reshape(shape),
        )

    def apply(self, x: np.ndarray) -> np.ndarray:
        m, s = self._arrays(np.ndim(x))
        return ((np.asarray(x, dtype=np.float64) - m) / s).astype(np.float32)

    def invert(self, x: np.ndarray) -> np.ndarray:
        m, s = self._arrays(np.ndim(x))
        return (np.asarray(x, dtype=np.float64) * s + m).astype(np.float32)


def prepare_lr(lr: np.ndarray, stats: BandStats) -> tuple[np.ndarray, np.ndarray]:
    """Normalise an LR array; return it with NaN/invalid filled by 0 and the validity mask."""
    valid = np.isfinite(lr)
    out = stats.apply(np.where(valid, lr, np.asarray(stats.mean).reshape(-1, 1, 1)))
    out[~valid] = 0.0
    return out, valid


def prepare_guide(guide: np.ndarray, stats: BandStats) -> np.ndarray:
    """Normalise a guide per channel; non-finite guide values become 0 (the channel mean)."""
    out = stats.apply(guide)
    out[~np.isfinite(out)] = 0.0
    return out
