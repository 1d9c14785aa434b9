"""Scene statistics: one set of normalisation statistics for every tile."""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from geosr.errors import InputError
from geosr.normalize import BandStats, PlaneSums, spread_floor
from geosr.pipeline.config import STATS_BLOCK, STATS_FULL_PIXELS
from geosr.pipeline.plan import Plan
from geosr.pipeline.sources import input_source
from geosr.raster.grid import Window
from geosr.raster.io import fill_candidates
from geosr.raster.tiling import blocks

logger = logging.getLogger(__name__)


# -- scene statistics ----------------------------------------------------------------------
class Moments:
    """Streaming per-band count/mean/M2 (Chan et al.'s parallel update), float64."""

    def __init__(self, bands: int) -> None:
        self.n = np.zeros(bands)
        self.mean = np.zeros(bands)
        self.m2 = np.zeros(bands)

    def update(self, x: np.ndarray) -> None:
        self.add(self.partial(x))

    @staticmethod
    def partial(x: np.ndarray) -> list[tuple[int, float, float] | None]:
        """Per band ``(count, mean, M2)`` of the finite values of ``x`` (None: no value)."""
        out: list[tuple[int, float, float] | None] = []
        for band in np.asarray(x, dtype=np.float64):
            vals = band[np.isfinite(band)]
            if vals.size == 0:
                out.append(None)
                continue
            mb = vals.mean()
            out.append((vals.size, mb, ((vals - mb) ** 2).sum()))
        return out

    def add(self, partial: Sequence[tuple[int, float, float] | None]) -> None:
        """Fold in the moments of one block (:meth:`partial`); blocks added in the same
        order give the same bits whether they were computed here or elsewhere."""
        for b, part in enumerate(partial):
            if part is None:
                continue
            nb, mb, m2b = part
            na = self.n[b]
            n = na + nb
            delta = mb - self.mean[b]
            self.mean[b] += delta * nb / n
            self.m2[b] += m2b + delta * delta * na * nb / n
            self.n[b] = n

    def stats(self) -> BandStats:
        means, stds = [], []
        for n, m, m2 in zip(self.n, self.mean, self.m2, strict=True):
            if n == 0:
                means.append(0.0)
                stds.append(1.0)
                continue
            s = math.sqrt(m2 / n)
            if not np.isfinite(s) or s <= spread_floor(m):
                s = 1.0
            means.append(float(m))
            stds.append(float(s))
        return BandStats(tuple(means), tuple(stds))


class FillCount:
    """Pixels of an LR without a nodata value that equal a common fill value
    (:data:`geosr.raster.io.FILL_VALUES`), counted on the statistics' reads."""

    def __init__(self, plan: Plan) -> None:
        info, band = plan.lr, plan.lr_band
        untagged = plan.lr_nodata is None and info.nodata is None
        self.values = (fill_candidates(info.dtypes[band - 1], *info.scale_offset(band))
                       if untagged else {})
        self.counts = dict.fromkeys(self.values, 0)
        self.pixels = 0

    def update(self, x: np.ndarray) -> None:
        self.pixels += x.size
        for raw, value in self.values.items():
            self.counts[raw] += int(np.count_nonzero(x == np.float32(value)))

    def add(self, counts: dict[float, int], pixels: int) -> None:
        """Fold in the :attr:`counts` and :attr:`pixels` of a count made elsewhere."""
        self.pixels += pixels
        for raw, n in counts.items():
            self.counts[raw] = self.counts.get(raw, 0) + n

    def warn(self, total_pixels: int) -> None:
        """Warn about each fill value found (counts scaled up from decimated reads)."""
        for raw, n in self.counts.items():
            if n == 0:
                continue
            est = round(n * total_pixels / max(self.pixels, 1))
            about = "" if est == n else "about "
            value = f"{raw:.0f}" if abs(raw) < 1e15 else repr(raw)
            logger.warning(
                "LR has %s%d pixels equal to %s and no nodata value; if they are fill, "
                "pass --nodata %s (nodata=%s in Python)", about, est, value, value, value)


def _stride(n_pixels: int) -> int:
    return max(1, math.ceil(math.sqrt(n_pixels / STATS_FULL_PIXELS)))


@dataclasses.dataclass(frozen=True)
class StatsReads:
    """The reads behind the scene statistics: LR windows (absolute LR pixels, with the
    decimated shape to read them at, or None) and guide blocks of ``guide_target`` (the
    output grid, or ``(crs, transform, width, height)`` of a grid ``k`` times coarser)."""

    lr: tuple[tuple[Window, tuple[int, int] | None], ...]
    guide_target: Any
    guide_resampling: str
    guide_blocks: tuple[Window, ...]


def stats_reads(plan: Plan) -> StatsReads:
    """What :func:`compute_stats` reads: every pixel up to ``STATS_FULL_PIXELS`` per
    raster, above that a decimated read with a constant stride."""
    from affine import Affine

    g = plan.grid
    lrw = g.lr_window
    k = _stride(lrw.height * lrw.width)
    lr = tuple(
        (plan.lr_window(blk),
         None if k == 1 else (math.ceil(blk.height / k), math.ceil(blk.width / k)))
        for blk in blocks(lrw.height, lrw.width, STATS_BLOCK * k)
    )
    # guide, on the output grid (or on a grid k times coarser for big scenes)
    k = _stride(g.height * g.width)
    if k == 1:
        target: Any = g
        resampling = plan.guide_resampling
        h, w = g.height, g.width
    else:
        h, w = math.ceil(g.height / k), math.ceil(g.width / k)
        target = (g.crs, g.transform @ Affine.scale(k), w, h)
        resampling = "nearest"
    return StatsReads(lr, target, resampling, tuple(blocks(h, w, STATS_BLOCK)))


def plane_partial(plan: Plan, win: Window, x: np.ndarray) -> np.ndarray:
    """The plane-fit sums of the LR statistics read of absolute LR window ``win`` (``x``:
    its pixels, at the read's shape), at the pixel centres of the grid's LR coordinates."""
    lrw = plan.grid.lr_window
    h, w = x.shape[-2:]
    rows = win.row0 - lrw.row0 + (np.arange(h) + 0.5) * (win.height / h)
    cols = win.col0 - lrw.col0 + (np.arange(w) + 0.5) * (win.width / w)
    return PlaneSums.partial(x[0], rows, cols)


def with_stats(plan: Plan, lr_m: Moments, g_m: Moments,
               plane: PlaneSums | None = None) -> Plan:
    """The plan with the statistics of its reads (with ``plane``, the sums of the method's
    ``detrend``: the LR's plane, and the LR's statistics about it), or
    :class:`InputError` if one of the inputs has no valid pixel."""
    if lr_m.n[0] == 0:
        raise InputError(
            f"the LR raster {plan.lr.path!r} has no valid pixel where it overlaps the guide "
            "(all nodata); check --nodata / the file's nodata value, or the LR band"
        )
    if g_m.n.min() == 0:
        raise InputError(
            f"the guide {plan.guide.path!r} has no valid pixel over the output grid; check "
            "its nodata value and --guide-bands"
        )
    lr_stats, lr_plane = lr_m.stats(), None
    fitted = plane.fit() if plane is not None else None
    if fitted is not None:
        lr_plane, spread = fitted
        if not np.isfinite(spread) or spread <= spread_floor(lr_plane.c):
            spread = 1.0
        lr_stats = BandStats((0.0,), (spread,))
    logger.info("scene stats: LR %s%s, guide %s", lr_stats,
                f" about {lr_plane}" if lr_plane else "", g_m.stats())
    return dataclasses.replace(plan, lr_stats=lr_stats, guide_stats=g_m.stats(),
                               lr_plane=lr_plane)


def compute_stats(plan: Plan) -> Plan:
    """Scene-level normalisation statistics of the LR and of the guide on the output grid.

    Every pixel is used up to ``STATS_FULL_PIXELS`` per raster (then they equal the
    statistics of the whole array); above that, a decimated read with a constant stride.
    Raises :class:`InputError` when the LR has no valid pixel in the output grid; warns
    when an LR without a nodata value holds a common fill value (-9999, ...).
    """
    src = input_source(plan)
    reads = stats_reads(plan)
    lr_m = Moments(1)
    plane = PlaneSums() if plan.detrend else None
    fills = FillCount(plan)
    for win, shape in reads.lr:
        x = src.read_lr(plan, win, out_shape=shape)
        lr_m.update(x)
        fills.update(x)
        if plane is not None:
            plane.add(plane_partial(plan, win, x))
    fills.warn(plan.grid.lr_window.height * plan.grid.lr_window.width)
    g_m = Moments(len(plan.guide_bands))
    with src.guide_reader(plan, reads.guide_target, reads.guide_resampling) as read:
        for blk in reads.guide_blocks:
            g_m.update(read(blk))
    return with_stats(plan, lr_m, g_m, plane)


