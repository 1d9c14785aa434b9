"""The self-check: how the method does on the input's own coarser copy, against lanczos.

There is no ground truth for a real input, but there is one a scale coarser: pool the LR by
the scale, super-resolve that back onto the LR grid with the run's own settings (method,
options, mode; the guide resampled onto the LR grid, i.e. averaged), and score the result
against the LR itself. :func:`self_check` does exactly that through the pipeline, and scores
GDAL's lanczos of the same coarse copy the same way. Its ratio (method RMSE / lanczos RMSE)
predicts whether the method beats lanczos at the real scale; the guard
(:func:`geosr.pipeline.runner.run`) writes lanczos where it does not.

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

    @property
    def ratio(self) -> float:
        """The method's RMSE over lanczos's: below 1, the method is predicted to win."""
        return self.rmse / self.lanczos_rmse if self.lanczos_rmse > 0 else math.inf

    @property
    def beats_lanczos(self) -> bool:
        return self.ratio < 1.0

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "ratio_to_lanczos": round(self.ratio, 4),
                "rmse": self.rmse, "lanczos_rmse": self.lanczos_rmse, "pixels": self.pixels,
                "window": list(self.window), "seconds": round(self.seconds, 3)}

    def line(self) -> str:
        return (f"self-check: {self.method} {self.ratio:.2f}× lanczos at the coarser scale "
                f"(the LR as the answer, {self.pixels} px, {self.seconds:.0f} s)")


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
    return SelfCheck(config.method, m_rmse, l_rmse, n,
                     (win.row0, win.col0, win.row1, win.col1), time.perf_counter() - t0)
