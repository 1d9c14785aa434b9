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


@dataclasses.dataclass(frozen=True)
class Plane:
    """A plane ``z = c + a * (col - col0) + b * (row - row0)`` over an LR grid, in LR pixel
    units: ``(row, col)`` = (0.5, 0.5) is the centre of the grid's first pixel. Removed
    from elevation before normalisation (``detrend``) and added back to the output: the
    network and the statistics then see the relief about the regional slope only. Average
    pooling maps a plane onto itself, so the cycle loss is the same with or without it."""

    c: float
    a: float
    b: float
    row0: float = 0.0
    col0: float = 0.0

    def on_grid(self, row0: float, col0: float, height: int, width: int,
                step: float = 1.0) -> np.ndarray:
        """``(1, height, width)`` float64 values at the centres of ``step``-sized cells
        whose first corner is at LR ``(row0, col0)`` (``step`` 1: LR pixels; 1/scale: the
        output's pixels)."""
        rows = row0 + (np.arange(height) + 0.5) * step - self.row0
        cols = col0 + (np.arange(width) + 0.5) * step - self.col0
        return (self.c + self.a * cols[None, :] + self.b * rows[:, None])[None]


class PlaneSums:
    """Streaming least-squares sums of ``z ~ c + a col + b row`` (float64), and the
    statistics of the residual about the fitted plane."""

    #: n, sum col, sum row, sum z, col², col·row, row², col·z, row·z, z²
    SIZE = 10

    def __init__(self) -> None:
        self.sums = np.zeros(self.SIZE)

    @classmethod
    def partial(cls, x: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """The sums of one block: ``x`` (h, w) at pixel centres ``rows`` (h,), ``cols`` (w,)."""
        x = np.asarray(x, dtype=np.float64)
        rr, cc = np.meshgrid(np.asarray(rows, np.float64), np.asarray(cols, np.float64),
                             indexing="ij")
        ok = np.isfinite(x)
        z, r, c = x[ok], rr[ok], cc[ok]
        return np.array([z.size, c.sum(), r.sum(), z.sum(), (c * c).sum(), (c * r).sum(),
                         (r * r).sum(), (c * z).sum(), (r * z).sum(), (z * z).sum()])

    def add(self, partial: np.ndarray) -> None:
        self.sums += partial

    def fit(self) -> tuple[Plane, float] | None:
        """The least-squares plane and the residual's standard deviation about it; None
        with fewer than 3 pixels or pixels on one line (no plane to fit)."""
        n, sc, sr, sz, scc, scr, srr, scz, srz, szz = self.sums
        if n < 3:
            return None
        mc, mr, mz = sc / n, sr / n, sz / n
        # centred second moments
        cc, cr, rr = scc / n - mc * mc, scr / n - mc * mr, srr / n - mr * mr
        cz, rz, zz = scz / n - mc * mz, srz / n - mr * mz, szz / n - mz * mz
        det = cc * rr - cr * cr
        if not det > 1e-12 * max(cc * rr, 1e-300):
            return None
        a = (cz * rr - rz * cr) / det
        b = (rz * cc - cz * cr) / det
        var = max(zz - a * cz - b * rz, 0.0)
        return Plane(float(mz), float(a), float(b), float(mr), float(mc)), float(np.sqrt(var))


def fit_plane(z: np.ndarray) -> tuple[Plane, float] | None:
    """:meth:`PlaneSums.fit` of a whole 2-D array ``z`` at its pixel centres."""
    sums = PlaneSums()
    sums.add(PlaneSums.partial(z, np.arange(z.shape[0]) + 0.5, np.arange(z.shape[1]) + 0.5))
    return sums.fit()
