"""The plan of a run: inputs, output grid, tile layout (reads metadata only)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from geosr.errors import InputError
from geosr.models import get_method
from geosr.models.device import local_torch_threads
from geosr.normalize import BandStats, Plane
from geosr.pipeline.config import RunConfig, SceneConfig, is_deterministic
from geosr.raster.grid import OutputGrid, Window, guide_resolution_in, output_grid
from geosr.raster.io import RasterInfo, is_local_path, raster_info
from geosr.raster.tiling import TileLayout
from geosr.version import __version__

logger = logging.getLogger(__name__)


# -- plan --------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Plan:
    """Everything a tile task needs; built from metadata, statistics added later."""

    lr: RasterInfo
    guide: RasterInfo
    lr_band: int
    guide_bands: tuple[int, ...]
    #: nodata value that overrides the LR's own (None: use the file's nodata / mask)
    lr_nodata: float | None
    #: value written where the output has no data (NaN unless the LR has a nodata value)
    out_nodata: float
    scale: int
    method: str
    method_options: tuple[tuple[str, Any], ...]
    grid: OutputGrid
    layout: TileLayout
    guide_resampling: str
    workers: int
    lr_stats: BandStats | None = None
    guide_stats: BandStats | None = None
    #: the LR's plane, removed before ``lr_stats`` apply and added back to the output
    #: (the method's ``detrend`` option); None: no plane
    lr_plane: Plane | None = None
    #: torch intra-op threads for learned tiles, wherever they run: float reductions
    #: depend on it, so a seeded run is byte-identical on a cluster only with the same count
    torch_threads: int | None = None
    #: tile (a network per tile), scene or hybrid (geosr.pipeline.scene)
    scene: SceneConfig = SceneConfig()
    #: the method's weight ``w`` where the output is ``w * method + (1 - w) * lanczos``
    #: (the guard's blend, :mod:`geosr.pipeline.selfcheck`); None: the method alone
    blend: float | None = None
    #: weights of the scene network (scene/hybrid modes, after geosr.pipeline.scene.fit_scene)
    scene_state: bytes | None = dataclasses.field(default=None, repr=False, compare=False)
    #: every option as the method runs at this scale (defaults filled in, preset- and
    #: scale-dependent ones resolved: :meth:`~geosr.models.base.Method.resolved_options`);
    #: the output's provenance, not part of the tiles' fingerprint
    used_options: tuple[tuple[str, Any], ...] = dataclasses.field(default=(), compare=False)
    #: the LR and the guide as the user named them (``RunConfig.input_names``)
    input_names: tuple[str, str] = dataclasses.field(default=("", ""), compare=False)
    #: the inputs' acquisition time as given (``RunConfig.datetime``), for the STAC item
    datetime: str | None = dataclasses.field(default=None, compare=False)
    #: where tiles and statistics read their pixels: None for the files ``lr.path`` and
    #: ``guide.path`` (:class:`FileSource`), or e.g. :class:`geosr.xr.ArraySource`
    source: Any = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.method_options)

    def provenance(self) -> dict[str, Any]:
        """The keywords of :func:`geosr.raster.io.provenance_tags` for this plan: the options
        as the method runs them, the inputs as the user named them."""
        lr_name, guide_name = self.input_names
        return {"method": self.method, "scale": self.scale,
                "options": dict(self.used_options) or self.options,
                "lr_path": lr_name or self.lr.path, "guide_path": guide_name or self.guide.path,
                "lr_band": self.lr_band, "guide_bands": self.guide_bands}

    @property
    def detrend(self) -> bool:
        """Whether the method removes the LR's plane (its ``detrend`` option)."""
        return bool(getattr(get_method(self.method, **self.options).options, "detrend", False))

    def lr_window(self, w: Window) -> Window:
        """Absolute LR pixel window of a grid-relative LR window."""
        return w.shifted(self.grid.lr_window.row0, self.grid.lr_window.col0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description (the ``--dry-run`` output)."""
        lay = self.layout
        out_px = self.grid.width * self.grid.height
        predicted = lay.predicted_pixels() * self.scale**2
        d: dict[str, Any] = {
            "lr": {"path": self.lr.path, "band": self.lr_band, "nodata": self.lr_nodata},
            "guide": {
                "path": self.guide.path,
                "bands": list(self.guide_bands),
                "crs": self.guide.geometry.crs.to_string(),
                "resampling": self.guide_resampling,
            },
            "method": self.method,
            "options": self.options,
            "mode": self.scene.to_dict(),
            "scale": self.scale,
            "output_grid": self.grid.to_dict(),
            "nodata": None if math.isnan(self.out_nodata) else self.out_nodata,
            "tiling": {
                "tile_size": lay.tile_size,
                "overlap": lay.overlap,
                "halo": lay.halo,
                "tiles": len(lay),
                "tile_grid": list(lay.shape),
                "workers": self.workers,
            },
            "estimated_work": {
                "output_megapixels": round(out_px / 1e6, 3),
                "predicted_megapixels": round(predicted / 1e6, 3),
                "overhead": round(predicted / max(out_px, 1), 3),
            },
        }
        if self.blend is not None:
            d["blend"] = {"method": self.blend, "lanczos": round(1.0 - self.blend, 6)}
        if self.lr_stats is not None and self.guide_stats is not None:
            d["stats"] = {
                "lr": dataclasses.asdict(self.lr_stats),
                "guide": dataclasses.asdict(self.guide_stats),
            }
            if self.lr_plane is not None:
                d["stats"]["lr_plane"] = dataclasses.asdict(self.lr_plane)
        return d

    def fingerprint(self) -> str:
        """Hash of everything that determines the tiles (for the tile store)."""

        def stamp(p: str) -> list[Any]:
            if not is_local_path(p):  # a URL or /vsi path: GDAL reads it as named
                return [p]
            st = os.stat(p)
            return [os.path.abspath(p), st.st_size, st.st_mtime_ns]

        d = self.to_dict()
        d["tiling"].pop("workers", None)  # tiles do not depend on how many run at once
        d["files"] = [stamp(self.lr.path), stamp(self.guide.path)]
        if self.scene.network is not None:  # tiles depend on the network file they start from
            d["files"].append(stamp(self.scene.network))
        d["version"] = __version__
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()


def warn_partial_cover(plan: Plan) -> float:
    """Warn when the guide covers only part of the LR (the output is cropped to the part it
    covers); returns the covered fraction of the LR's pixels."""
    lw, geom = plan.grid.lr_window, plan.lr.geometry
    fraction = lw.height * lw.width / (geom.height * geom.width)
    if fraction < 1.0:
        logger.warning(
            "the guide covers only %.1f%% of the LR: the output is cropped to LR rows %d-%d "
            "and columns %d-%d of %d x %d, bounds %s in the LR's CRS (the LR's: %s); for "
            "the full extent pass a guide that covers the whole LR",
            100 * fraction, lw.row0, lw.row1, lw.col0, lw.col1, geom.height, geom.width,
            _fmt_bounds(plan.grid.bounds), _fmt_bounds(geom.bounds),
        )
    return fraction


def _fmt_bounds(b: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in b) + ")"


def _select_lr_band(info: RasterInfo, lr_band: int | None) -> int:
    if lr_band is None:
        if info.count > 1:
            raise InputError(
                f"the LR raster {info.path!r} has {info.count} bands; pick the one to "
                "super-resolve with --lr-band N (lr_band=N), 1-based"
            )
        return 1
    if not 1 <= lr_band <= info.count:
        raise InputError(
            f"--lr-band {lr_band} is out of range: {info.path!r} has {info.count} band(s); "
            f"pass a band between 1 and {info.count}"
        )
    return int(lr_band)


def _select_guide_bands(info: RasterInfo, bands: Sequence[int] | None) -> tuple[int, ...]:
    if bands is None:
        alpha = info.alpha_band
        usable = tuple(b for b in range(1, info.count + 1) if b != alpha)
        if len(usable) < 3:
            example = ",".join(str(b) for b in usable) or "1"
            raise InputError(
                f"the guide {info.path!r} has {len(usable)} image band(s) but an RGB (or "
                "multispectral) guide of 3+ bands is expected; if this is the guide you "
                f"mean, say which bands to use with --guide-bands {example}"
            )
        return usable
    bands = tuple(int(b) for b in bands)
    if not bands:
        raise InputError("--guide-bands is empty; pass e.g. --guide-bands 1,2,3")
    bad = [b for b in bands if not 1 <= b <= info.count]
    if bad:
        raise InputError(
            f"--guide-bands {bad} out of range: the guide {info.path!r} has {info.count} "
            f"band(s); pass 1-based band numbers between 1 and {info.count}"
        )
    return bands


def make_plan(
    lr_path: str | os.PathLike[str] | RasterInfo,
    guide_path: str | os.PathLike[str] | RasterInfo,
    config: RunConfig,
) -> Plan:
    """Check the inputs against ``config`` and lay out the work (reads metadata only).

    The inputs are file paths, or :class:`RasterInfo` descriptions of in-memory rasters
    (then give the plan a ``source`` that reads them; see :mod:`geosr.xr`).
    """
    scale, method, options = config.scale, config.method, config.options
    m = get_method(method, **options)
    tiling, scene, nodata = config.tiling, config.scene, config.nodata
    guide_resampling = config.guide_resampling
    lr = lr_path if isinstance(lr_path, RasterInfo) else raster_info(lr_path, "LR")
    guide = guide_path if isinstance(guide_path, RasterInfo) else raster_info(guide_path, "guide")
    band = _select_lr_band(lr, config.lr_band)
    gbands = _select_guide_bands(guide, config.guide_bands)
    grid = output_grid(lr.geometry, guide.geometry, scale)
    halo = int(m.halo(scale))
    tile, overlap, workers = tiling.resolve(deterministic=m.deterministic, halo=halo, scale=scale)
    layout = TileLayout.build(grid.lr_window.height, grid.lr_window.width, tile, overlap, halo)
    if guide_resampling is None:
        out_px = math.sqrt(grid.res[0] * grid.res[1])
        finer = guide_resolution_in(guide.geometry, lr.geometry.crs) < 0.75 * out_px
        guide_resampling = "average" if finer else "bilinear"
    nd = nodata if nodata is not None else lr.nodata
    out_nodata = float("nan") if nd is None or not np.isfinite(np.float32(nd)) else float(nd)
    return Plan(
        lr=lr,
        guide=guide,
        lr_band=band,
        guide_bands=gbands,
        lr_nodata=nodata,
        out_nodata=out_nodata,
        scale=scale,
        method=method,
        method_options=config.method_options,
        grid=grid,
        layout=layout,
        guide_resampling=guide_resampling,
        workers=workers,
        torch_threads=None if is_deterministic(method) else local_torch_threads(),
        scene=scene,
        used_options=tuple(sorted(m.resolved_options(scale).items())),
        input_names=config.input_names or (lr.path, guide.path),
        datetime=config.datetime,
    )

