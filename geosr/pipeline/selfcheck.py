"""The self-check: how the method does on the input's own coarser copy, against lanczos.

There is no ground truth for a real input, but there is one a scale coarser: pool the LR by
the scale, super-resolve that back onto the LR grid with the run's own settings (method,
options, mode; the guide resampled onto the LR grid, i.e. averaged), and score the result
against the LR itself. :func:`self_check` does exactly that through the pipeline, and scores
GDAL's lanczos of the same coarse copy the same way. Its ratio (method RMSE / lanczos RMSE)
predicts whether the method beats lanczos at the real scale. The same two outputs give the
weight of the blend ``w * method + (1 - w) * lanczos`` with the lowest RMSE on the coarse
copy (:func:`blend_weight`). The guard (:func:`geosr.pipeline.runner.guarded`) writes the
blend where it beats both the method and lanczos there by :data:`BLEND_MARGIN`, otherwise
the method where it beats lanczos, lanczos where it does not.

The coarse copy has the LR's size divided by ``scale**2``; where the LR is larger than
:data:`MAX_LR_PIXELS`, a seeded window of that many LR pixels is checked instead.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from geosr.models.resample import fill_dropped, gdal_upsample
from geosr.pipeline.config import OutputConfig, RunConfig
from geosr.pipeline.plan import Plan
from geosr.pipeline.sources import read_tile_lr
from geosr.raster.grid import Window
from geosr.raster.pooling import block_mean

#: the largest LR window the self-check super-resolves from its coarse copy (LR pixels)
MAX_LR_PIXELS = 512 * 512

#: blend weights are rounded to this step (a weight within half a step of 1 keeps the method)
BLEND_STEP = 0.05
#: a blend is written only where its RMSE on the coarse copy is this fraction below both
#: the method's and lanczos's: a sliver of a method (e.g. the small weight a pure-noise guide
#: can earn), or of lanczos, is within the self-check's error and not worth the change
BLEND_MARGIN = 0.02


@dataclasses.dataclass(frozen=True)
class SelfCheck:
    """The method and lanczos on the coarse copy, scored against the LR."""

    method: str
    rmse: float
    lanczos_rmse: float
    #: LR pixels scored, and the LR window checked (grid-relative LR pixels)
    pixels: int
    window: tuple[int, int, int, int]
    seconds: float
    #: the method's weight in the best blend with lanczos on the coarse copy, and its RMSE
    blend_weight: float = 1.0
    blend_rmse: float | None = None

    @property
    def ratio(self) -> float:
        """The method's RMSE over lanczos's: below 1, the method is predicted to win."""
        return self.rmse / self.lanczos_rmse if self.lanczos_rmse > 0 else math.inf

    @property
    def blend_ratio(self) -> float:
        """The best blend's RMSE over lanczos's (the method's ratio where it has weight 1)."""
        if self.blend_rmse is None:
            return self.ratio
        return self.blend_rmse / self.lanczos_rmse if self.lanczos_rmse > 0 else math.inf

    @property
    def beats_lanczos(self) -> bool:
        return self.ratio < 1.0

    @property
    def writes(self) -> str:
        """What the guard writes: ``"method"``, ``"blend"`` or ``"lanczos"``."""
        best_alone = min(self.ratio, 1.0)
        if 0.0 < self.blend_weight < 1.0 and self.blend_ratio < best_alone * (1 - BLEND_MARGIN):
            return "blend"
        return "method" if self.ratio < 1.0 else "lanczos"

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "ratio_to_lanczos": round(self.ratio, 4),
                "rmse": self.rmse, "lanczos_rmse": self.lanczos_rmse,
                "blend_weight": self.blend_weight,
                "blend_ratio_to_lanczos": round(self.blend_ratio, 4),
                "pixels": self.pixels, "window": list(self.window),
                "seconds": round(self.seconds, 3)}

    def line(self) -> str:
        blend = ""
        if self.writes == "blend":
            blend = (f"; {self.blend_weight:.2f} of it blended with lanczos "
                     f"{self.blend_ratio:.2f}×")
        return (f"self-check: {self.method} {self.ratio:.2f}× lanczos at the coarser scale"
                f"{blend} (the LR as the answer, {self.pixels} px, {self.seconds:.0f} s)")


def check_window(plan: Plan, seed: int = 0) -> Window:
    """The grid-relative LR window to check: all of it, or a seeded window of at most
    :data:`MAX_LR_PIXELS`; both sides multiples of the scale."""
    s = plan.scale
    h, w = plan.grid.lr_window.height, plan.grid.lr_window.width
    side = max(s, int(math.sqrt(MAX_LR_PIXELS)) // s * s)
    wh, ww = min(h // s * s, side), min(w // s * s, side)
    rng = np.random.default_rng(seed)
    r0 = int(rng.integers(0, h - wh + 1))
    c0 = int(rng.integers(0, w - ww + 1))
    return Window(r0, c0, r0 + wh, c0 + ww)


def pool(lr: np.ndarray, scale: int) -> np.ndarray:
    """``(h, w)`` -> ``(h//s, w//s)``: the mean of each block's valid pixels (NaN if none)."""
    mean, count = block_mean(lr, scale)
    return np.where(count > 0, mean, np.nan).astype(np.float32)


def _write_coarse(plan: Plan, win: Window, coarse: np.ndarray, path: Path) -> None:
    import rasterio
    from affine import Affine

    lw = plan.lr_window(win)
    t = plan.lr.geometry.transform @ Affine.translation(lw.col0, lw.row0) @ Affine.scale(
        plan.scale)
    with rasterio.open(path, "w", driver="GTiff", width=coarse.shape[1],
                       height=coarse.shape[0], count=1, dtype="float32",
                       crs=plan.lr.geometry.crs, transform=t, nodata=np.nan) as dst:
        dst.write(coarse, 1)


def _rmse(pred: np.ndarray, ref: np.ndarray) -> tuple[float, int]:
    ok = np.isfinite(pred) & np.isfinite(ref)
    if not ok.any():
        return math.nan, 0
    d = pred[ok].astype(np.float64) - ref[ok]
    return float(np.sqrt(np.mean(d * d))), int(ok.sum())


def blend_weight(pred: np.ndarray, lanczos: np.ndarray, truth: np.ndarray) -> float:
    """The weight ``w`` in [0, 1] of ``w * pred + (1 - w) * lanczos`` with the least squared
    error against ``truth`` (closed form), rounded to :data:`BLEND_STEP`; 1 where the two
    agree everywhere."""
    ok = np.isfinite(pred) & np.isfinite(lanczos) & np.isfinite(truth)
    d = pred[ok].astype(np.float64) - lanczos[ok]
    dd = float(np.dot(d, d))
    if dd == 0.0:
        return 1.0
    w = float(np.dot(d, truth[ok].astype(np.float64) - lanczos[ok])) / dd
    return float(np.clip(round(round(w / BLEND_STEP) * BLEND_STEP, 6), 0.0, 1.0))


#: ``run(lr_path, guide_path, out_path, config)`` -> the output's band 1 (NaN = nodata)
CoarseRun = Callable[[Path, str, Path, RunConfig], np.ndarray]


def self_check(plan: Plan, config: RunConfig, run_coarse: CoarseRun, *,
               workdir: str | Path | None = None, seed: int = 0) -> SelfCheck | None:
    """Run ``config``'s method through ``run_coarse`` (the pipeline) on the coarse copy of
    ``plan``'s LR, with the plan's guide, and score it and lanczos against the LR; None
    where the coarse copy would be smaller than 4 pixels a side."""
    s = plan.scale
    t0 = time.perf_counter()
    win = check_window(plan, seed)
    if min(win.height, win.width) // s < 4:
        return None
    lr = read_tile_lr(plan, win)[0]
    coarse = pool(lr, s)
    truth = lr[: coarse.shape[0] * s, : coarse.shape[1] * s]
    # the lanczos the guard writes: GDAL's, with the valid pixels it drops next to nodata
    lanczos = fill_dropped(gdal_upsample(coarse[None], s, "lanczos"), coarse[None], s,
                           "lanczos")[0]
    with tempfile.TemporaryDirectory(prefix=".geosr-self-check-", dir=workdir) as tmp:
        src = Path(tmp) / "coarse-lr.tif"
        _write_coarse(plan, win, coarse, src)
        out = Path(tmp) / "coarse-sr.tif"
        cfg = dataclasses.replace(
            config, output=OutputConfig(cog=False, overwrite=True), stac=False,
            save_network=None, guard=False, lr_band=1, nodata=None)
        pred = run_coarse(src, plan.guide.path, out, cfg)
    m_rmse, n = _rmse(pred, truth)
    l_rmse, _ = _rmse(lanczos, truth)
    if n == 0:
        return None
    w = blend_weight(pred, lanczos, truth)
    b_rmse, _ = _rmse(w * pred + (1.0 - w) * lanczos, truth)
    return SelfCheck(config.method, m_rmse, l_rmse, n,
                     (win.row0, win.col0, win.row1, win.col1), time.perf_counter() - t0,
                     blend_weight=w, blend_rmse=b_rmse)
