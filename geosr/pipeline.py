"""The georeferenced pipeline: plan -> scene statistics -> tile tasks -> store -> mosaic.

::

    from geosr.pipeline import run, TilingConfig, OutputConfig
    summary = run("dsm.tif", "rgb.tif", "out.tif", scale=4, method="guided-filter",
                  tiling=TilingConfig(tile_size=256), output=OutputConfig(cog=True))

``make_plan`` only reads metadata; ``compute_stats`` reads the scene once (decimated for big
rasters) to get one set of normalisation statistics for every tile; ``run_tile`` is a pure
function of ``(plan, tile, store)`` (each tile reads its own windows and writes one file to
the store); ``mosaic`` writes the output block by block from the store. ``run`` ties them
together with dask's local threaded scheduler, or sends the tile tasks to a
``distributed`` cluster when given a ``client`` (tasks of learned methods that run on a GPU
then carry ``resources={"GPU": 1}``). ``run(..., resume=True)`` keeps the tile store when
the run fails, reuses its intact tiles and cleans up what a killed run left behind; with a
seed, a resumed run writes the same bytes as an uninterrupted one.

Defaults (``TilingConfig``): tiles of ``512 // scale`` LR pixels (64..256) for
deterministic (classical) methods, which bounds the memory of one tile to a few hundred MB,
and 128 LR pixels for learned ones (each tile fits its own network); overlap
``max(method.halo(scale), 8)`` LR pixels; every tile is predicted with
``method.halo(scale)`` extra LR pixels of context per side; ``cpu_count // 2`` tiles at
once (1..4) for classical methods, 1 for learned ones.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError, OptionError
from .grid import OutputGrid, Window, guide_resolution_in, output_grid
from .io import RasterInfo, raster_info
from .normalize import BandStats, _spread_floor, prepare_guide, prepare_lr
from .scene import SceneConfig, back_project, check_mode
from .tiling import Tile, TileLayout, axis_weight, blocks

logger = logging.getLogger(__name__)

#: Scene statistics use every pixel up to this many per raster, a strided read above.
STATS_FULL_PIXELS = 4096 * 4096
#: Side of the blocks read for statistics (pixels of the decimated read).
STATS_BLOCK = 1024

#: Default tile side of deterministic methods, in HR pixels (tile_size = this // scale,
#: clamped to 64..256 LR px); the guided filter needs ~0.8 GB for a 1064^2 HR tile.
CLASSICAL_TILE_HR = 512
#: Default tile side of learned methods, in LR pixels.
LEARNED_TILE = 128

ProgressCallback = Callable[[int, int], None]
#: called with the name of each stage as it starts: stats, tiles, mosaic, cog
StageCallback = Callable[[str], None]

#: Learned methods seed torch's global RNG per tile: one such tile at a time per process,
#: so that threads (local scheduler, multi-threaded dask workers) cannot interleave seeds.
_LEARNED_LOCK = threading.Lock()


# -- configuration -------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class TilingConfig:
    """Tile layout and execution. ``None`` fields get method-dependent defaults.

    ``tile_size`` and ``overlap`` are in LR pixels: neighbouring tiles overlap by at least
    ``overlap`` pixels and are blended there with cosine ramps; ``tile_size`` must be at
    least twice the overlap. ``workers`` is the number of tiles run at once.
    """

    tile_size: int | None = None
    overlap: int | None = None
    workers: int | None = None
    #: side of the output blocks the mosaic writes at once (HR pixels)
    mosaic_block: int = 1024

    def __post_init__(self) -> None:
        if self.tile_size is not None and self.tile_size < 2:
            raise OptionError(f"tile size must be >= 2 LR pixels, got {self.tile_size}")
        if self.overlap is not None and self.overlap < 0:
            raise OptionError(f"overlap must be >= 0 LR pixels, got {self.overlap}")
        if self.workers is not None and self.workers < 1:
            raise OptionError(f"workers must be >= 1, got {self.workers}")
        if self.mosaic_block < 16:
            raise OptionError(f"mosaic block must be >= 16 pixels, got {self.mosaic_block}")
        if self.tile_size is not None and self.overlap is not None:
            _check_tile_overlap(self.tile_size, self.overlap)

    def resolve(
        self, *, deterministic: bool, halo: int, scale: int = 4
    ) -> tuple[int, int, int]:
        """Concrete ``(tile_size, overlap, workers)`` for a method."""
        overlap = self.overlap if self.overlap is not None else max(halo, 8)
        tile = self.tile_size
        if tile is None:
            if deterministic:  # ~512 HR px a side: a few hundred MB per tile at most
                tile = min(256, max(64, CLASSICAL_TILE_HR // scale))
            else:
                tile = LEARNED_TILE
            tile = max(tile, 2 * overlap)
        _check_tile_overlap(tile, overlap)
        workers = self.workers
        if workers is None:
            # A tile's numpy/torch work already keeps ~2 cores busy; learned methods fit
            # one network at a time (torch uses every core for it).
            workers = max(1, min(4, (os.cpu_count() or 1) // 2)) if deterministic else 1
        return tile, overlap, workers


def _check_tile_overlap(tile: int, overlap: int) -> None:
    if tile < 2 * overlap or tile < 2:
        raise OptionError(
            f"tile size {tile} is too small for an overlap of {overlap} LR pixels: the tile "
            f"size must be at least twice the overlap; use --tile-size {max(2, 2 * overlap)} "
            f"or more, or a smaller --overlap"
        )


@dataclasses.dataclass(frozen=True)
class OutputConfig:
    """How the output is written."""

    cog: bool = True
    overwrite: bool = False
    compress: str = "DEFLATE"
    blocksize: int = 512
    #: extra GDAL creation options, e.g. (("ZLEVEL", "9"),)
    creation_options: tuple[tuple[str, str], ...] = ()
    #: keep ``<output>.tiles/`` after the run (it is reused by a rerun of the same plan)
    keep_tiles: bool = False

    def __post_init__(self) -> None:
        if self.blocksize < 16 or self.blocksize % 16:
            raise OptionError(f"blocksize must be a multiple of 16, got {self.blocksize}")
        if self.compress.upper() not in {"DEFLATE", "ZSTD", "LZW", "LZMA", "NONE"}:
            raise OptionError(
                f"compress must be one of DEFLATE, ZSTD, LZW, LZMA, NONE; got {self.compress!r}"
            )
        for kv in self.creation_options:
            if len(kv) != 2 or not kv[0]:
                raise OptionError(f"creation options are (KEY, VALUE) pairs, got {kv!r}")


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
    #: torch intra-op threads for learned tiles, wherever they run: float reductions
    #: depend on it, so a seeded run is byte-identical on a cluster only with the same count
    torch_threads: int | None = None
    #: tile (a network per tile), scene or hybrid (geosr.scene)
    scene: SceneConfig = SceneConfig()
    #: weights of the scene network (scene/hybrid modes, after geosr.scene.fit_scene)
    scene_state: bytes | None = dataclasses.field(default=None, repr=False, compare=False)
    #: where tiles and statistics read their pixels: None for the files ``lr.path`` and
    #: ``guide.path`` (:class:`FileSource`), or e.g. :class:`geosr.xr.ArraySource`
    source: Any = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.method_options)

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
        if self.lr_stats is not None and self.guide_stats is not None:
            d["stats"] = {
                "lr": dataclasses.asdict(self.lr_stats),
                "guide": dataclasses.asdict(self.guide_stats),
            }
        return d

    def fingerprint(self) -> str:
        """Hash of everything that determines the tiles (for the tile store)."""
        from . import __version__

        def stamp(p: str) -> list[Any]:
            st = os.stat(p)
            return [os.path.abspath(p), st.st_size, st.st_mtime_ns]

        d = self.to_dict()
        d["tiling"].pop("workers", None)  # tiles do not depend on how many run at once
        d["files"] = [stamp(self.lr.path), stamp(self.guide.path)]
        if self.scene.network is not None:  # tiles depend on the network file they start from
            d["files"].append(stamp(self.scene.network))
        d["version"] = __version__
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()


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


def method_options_for(method: str, options: dict[str, Any]) -> dict[str, Any]:
    """Keep only the options that ``method`` accepts (the CLI's shared options)."""
    from .models import get_method_class

    fields = {f.name for f in dataclasses.fields(get_method_class(method).Options)}
    return {k: v for k, v in options.items() if k in fields}


def make_plan(
    lr_path: str | os.PathLike[str] | RasterInfo,
    guide_path: str | os.PathLike[str] | RasterInfo,
    *,
    scale: int,
    method: str = "mmsr",
    method_options: dict[str, Any] | None = None,
    lr_band: int | None = None,
    guide_bands: Sequence[int] | None = None,
    nodata: float | None = None,
    tiling: TilingConfig | None = None,
    guide_resampling: str | None = None,
    scene: SceneConfig | None = None,
) -> Plan:
    """Check the inputs and lay out the work (reads metadata only).

    The inputs are file paths, or :class:`RasterInfo` descriptions of in-memory rasters
    (then give the plan a ``source`` that reads them; see :mod:`geosr.xr`).
    """
    from .api import check_scale
    from .models import get_method

    scale = check_scale(scale)
    tiling = tiling or TilingConfig()
    options = dict(method_options or {})
    m = get_method(method, **options)  # validates the options
    scene = scene or SceneConfig()
    check_mode(method, scene.mode)
    lr = lr_path if isinstance(lr_path, RasterInfo) else raster_info(lr_path, "LR")
    guide = guide_path if isinstance(guide_path, RasterInfo) else raster_info(guide_path, "guide")
    band = _select_lr_band(lr, lr_band)
    gbands = _select_guide_bands(guide, guide_bands)
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
        method_options=tuple(sorted(options.items())),
        grid=grid,
        layout=layout,
        guide_resampling=guide_resampling,
        workers=workers,
        torch_threads=None if is_deterministic(method) else _local_torch_threads(),
        scene=scene,
    )


def _local_torch_threads() -> int:
    import torch

    return torch.get_num_threads()


@contextlib.contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    """Run with ``n`` torch threads (process-wide; callers hold ``_LEARNED_LOCK``)."""
    if n is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# -- scene statistics ----------------------------------------------------------------------
class _Moments:
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
            if not np.isfinite(s) or s <= _spread_floor(m):
                s = 1.0
            means.append(float(m))
            stds.append(float(s))
        return BandStats(tuple(means), tuple(stds))


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


def with_stats(plan: Plan, lr_m: _Moments, g_m: _Moments) -> Plan:
    """The plan with the statistics of its reads, or :class:`InputError` if one of the
    inputs has no valid pixel."""
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
    logger.info("scene stats: LR %s, guide %s", lr_m.stats(), g_m.stats())
    return dataclasses.replace(plan, lr_stats=lr_m.stats(), guide_stats=g_m.stats())


def compute_stats(plan: Plan) -> Plan:
    """Scene-level normalisation statistics of the LR and of the guide on the output grid.

    Every pixel is used up to ``STATS_FULL_PIXELS`` per raster (then they equal the
    statistics of the whole array); above that, a decimated read with a constant stride.
    Raises :class:`InputError` when the LR has no valid pixel in the output grid.
    """
    src = input_source(plan)
    reads = stats_reads(plan)
    lr_m = _Moments(1)
    for win, shape in reads.lr:
        lr_m.update(src.read_lr(plan, win, out_shape=shape))
    g_m = _Moments(len(plan.guide_bands))
    with src.guide_reader(plan, reads.guide_target, reads.guide_resampling) as read:
        for blk in reads.guide_blocks:
            g_m.update(read(blk))
    return with_stats(plan, lr_m, g_m)


# -- input sources -----------------------------------------------------------------------
class FileSource:
    """Pixels of the plan's input files (``plan.lr.path``, ``plan.guide.path``).

    A source has two methods: ``read_lr(plan, window, out_shape=None)`` returns an absolute
    LR window of the plan's band as ``(1, h, w)`` float32, NaN = nodata;
    ``guide_reader(plan, target, resampling)`` is a context manager yielding
    ``read(window) -> (C, h, w)`` float32 (NaN = no data) of the guide's plan bands
    resampled onto ``target`` (an :class:`OutputGrid` or ``(crs, transform, w, h)``).
    """

    def read_lr(
        self, plan: Plan, window: Window, out_shape: tuple[int, int] | None = None
    ) -> np.ndarray:
        from .io import read_lr

        return read_lr(plan.lr.path, plan.lr_band, window, nodata=plan.lr_nodata,
                       out_shape=out_shape)

    @contextlib.contextmanager
    def guide_reader(
        self, plan: Plan, target: Any, resampling: str
    ) -> Iterator[Callable[[Window], np.ndarray]]:
        from .io import guide_vrt, read_guide

        with guide_vrt(plan.guide, target, resampling) as (vrt, mask_band):
            yield lambda w: read_guide(vrt, mask_band, plan.guide_bands, w)


def input_source(plan: Plan) -> Any:
    """The plan's pixel source (:class:`FileSource` unless it has another)."""
    return plan.source if plan.source is not None else FileSource()


# -- tile task ---------------------------------------------------------------------------
def read_tile_inputs(plan: Plan, ctx: Window) -> tuple[np.ndarray, np.ndarray]:
    """LR ``(1, h, w)`` (NaN = nodata) and guide on the output grid ``(C, s*h, s*w)`` of a
    grid-relative LR window."""
    return read_tile_lr(plan, ctx), read_tile_guide(plan, ctx)


def read_tile_lr(plan: Plan, ctx: Window) -> np.ndarray:
    return input_source(plan).read_lr(plan, plan.lr_window(ctx))


def read_tile_guide(plan: Plan, ctx: Window) -> np.ndarray:
    with input_source(plan).guide_reader(plan, plan.grid, plan.guide_resampling) as read:
        return read(ctx.scaled(plan.scale))


def predict_normalised(
    plan: Plan, x: np.ndarray, guide: np.ndarray, valid: np.ndarray
) -> np.ndarray:
    """The method on one tile's normalised inputs, as the plan's mode says: a fresh fit
    (tile), the scene network (scene) or a short fit from it (hybrid)."""
    from .models import get_method

    mode = plan.scene.mode
    if mode == "tile":
        return get_method(plan.method, **plan.options)(x, guide, plan.scale, mask=valid)
    if plan.scene_state is None:
        raise ValueError(f"mode {mode!r} needs the scene network; call geosr.scene.fit_scene")
    if mode == "scene":
        method = get_method(plan.method, **plan.options)
        pred = _predict_mirrored(method, plan.scene_state, x, guide, plan.scale)
        return back_project(pred, x, valid, plan.scale, plan.scene.back_project)
    # hybrid: the short fit back-projects its own output (LearnedOptions.back_project)
    opts = {**plan.options, "iterations": plan.scene.hybrid_iterations,
            "back_project": plan.scene.back_project}
    method = get_method(plan.method, **opts)
    res = method.fit(x, guide, plan.scale, valid, init_state=plan.scene_state)
    return res.prediction.astype(np.float32)


#: LR pixels of mirrored input added around a tile before the scene network is applied
SCENE_MIRROR = 4


def _predict_mirrored(method: Any, state: bytes, x: np.ndarray, guide: np.ndarray,
                      scale: int) -> np.ndarray:
    """The scene network on inputs extended by :data:`SCENE_MIRROR` LR pixels of mirrored
    content on every side, cropped back.

    A network applied to an input it was not fitted on errs most in its outermost pixels,
    where its convolutions see zero padding: on the Mashhad DSM most of its error was in
    the outermost HR pixels of the scene. Tiles inside the scene have real pixels
    there (the halo), but tiles at its border do not. Mirroring about the input's edge
    (``symmetric``: LR and guide mirror about the same line, so the mirrored guide still
    pools to the mirrored LR) gives the edge pixels interior-like surroundings.
    """
    p = min(SCENE_MIRROR, x.shape[-2], x.shape[-1])
    q = p * scale
    xp = np.pad(x, ((0, 0), (p, p), (p, p)), mode="symmetric")
    gp = np.pad(guide, ((0, 0), (q, q), (q, q)), mode="symmetric")
    pred = method.predict_from(state, xp, gp, scale)
    return np.ascontiguousarray(pred[:, q:-q, q:-q])


def predict_tile(plan: Plan, tile: Tile) -> np.ndarray | None:
    """HR prediction over ``tile.extent`` (NaN where the LR is nodata), None if no valid pixel."""
    if plan.lr_stats is None or plan.guide_stats is None:
        raise ValueError("the plan has no scene statistics; call compute_stats(plan) first")
    s = plan.scale
    ctx, ext = tile.context, tile.extent
    inner = ext.slices(origin=(ctx.row0, ctx.col0))
    lr = read_tile_lr(plan, ctx)
    if not np.isfinite(lr[(slice(None), *inner)]).any():
        return None
    guide = read_tile_guide(plan, ctx)
    x, valid = prepare_lr(lr, plan.lr_stats)
    gn = prepare_guide(guide, plan.guide_stats)
    hr = plan.lr_stats.invert(predict_normalised(plan, x, gn, valid))
    hr_valid = np.repeat(np.repeat(valid, s, axis=1), s, axis=2)
    hr[~hr_valid] = np.nan
    crop = ext.scaled(s).slices(origin=(ctx.row0 * s, ctx.col0 * s))
    return np.ascontiguousarray(hr[0][crop], dtype=np.float32)


def run_tile(plan: Plan, tile: Tile, store_dir: str) -> str:
    """Predict one tile and write it to the store; returns done/skipped/reused."""
    from .store import TileStore

    store = TileStore(store_dir)
    if store.has(tile.key):
        return "reused"
    if is_deterministic(plan.method):
        hr = predict_tile(plan, tile)
    else:
        with _LEARNED_LOCK, _torch_threads(plan.torch_threads):
            hr = predict_tile(plan, tile)
    if hr is None:
        return "skipped"
    store.put(tile.key, hr)
    return "done"


def is_deterministic(method: str) -> bool:
    """True for classical methods (no optimisation, no seed)."""
    from .models import get_method_class

    return bool(get_method_class(method).deterministic)


def _count(results: Sequence[str], total: int) -> dict[str, int]:
    counts = {"total": total, "done": 0, "skipped": 0, "reused": 0}
    for r in results:
        counts[r] += 1
    return counts


def run_tiles(
    plan: Plan,
    store_dir: str,
    *,
    progress: ProgressCallback | None = None,
    client: Any = None,
) -> dict[str, int]:
    """Run every tile as a dask task: on the local threaded scheduler (``plan.workers``
    threads), or on the ``distributed`` cluster of ``client`` when one is given."""
    if client is not None:
        return _run_tiles_distributed(plan, store_dir, client, progress)
    import dask
    from dask.callbacks import Callback

    tiles = list(plan.layout)
    total = len(tiles)
    # One graph node holds the plan; every tile task depends on it and on nothing else.
    plan_node = dask.delayed(plan, name="plan", traverse=False)
    tasks = [
        dask.delayed(run_tile, pure=True)(plan_node, t, store_dir, dask_key_name=f"tile-{t.key}")
        for t in tiles
    ]
    done = [0]

    class _Progress(Callback):
        def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, id: Any) -> None:
            if str(key).startswith("tile-"):
                done[0] += 1
                if progress is not None:
                    progress(done[0], total)

    with _Progress():
        results = dask.compute(*tasks, scheduler="threads", num_workers=plan.workers)
    return _count(results, total)


def tile_resources(plan: Plan, client: Any) -> dict[str, float] | None:
    """``{"GPU": 1}`` when the tiles of ``plan`` run on a GPU of ``client``'s workers.

    A learned method whose device is not ``cpu`` asks for a GPU when some worker offers one
    (``dask worker --resources GPU=1``); with ``device=cuda`` and no such worker the tasks
    could never start, so that is an error.
    """
    if is_deterministic(plan.method) or plan.options.get("device", "auto") == "cpu":
        return None
    workers = client.scheduler_info().get("workers", {}).values()
    if any(w.get("resources", {}).get("GPU", 0) >= 1 for w in workers):
        return {"GPU": 1}
    if plan.options.get("device") == "cuda":
        raise OptionError(
            "--device cuda was asked for but no worker of the dask scheduler offers a GPU; "
            "start the workers with `dask worker ADDRESS --resources GPU=1`, or pass "
            "--device cpu"
        )
    return None


def _run_tiles_distributed(
    plan: Plan, store_dir: str, client: Any, progress: ProgressCallback | None
) -> dict[str, int]:
    """Tile tasks on a ``distributed`` cluster (the store must be on a shared filesystem)."""
    from distributed import as_completed

    # Workers may run elsewhere or in another folder: absolute paths only.
    plan = dataclasses.replace(
        plan,
        lr=dataclasses.replace(plan.lr, path=os.path.abspath(plan.lr.path)),
        guide=dataclasses.replace(plan.guide, path=os.path.abspath(plan.guide.path)),
    )
    store_dir = os.path.abspath(store_dir)
    resources = tile_resources(plan, client)
    tiles = list(plan.layout)
    total = len(tiles)
    tag = hashlib.sha256(f"{plan.fingerprint()} {store_dir}".encode()).hexdigest()[:16]
    [plan_f] = client.scatter([plan], hash=False)
    futures = [
        client.submit(run_tile, plan_f, t, store_dir, key=f"geosr-tile-{tag}-{t.key}",
                      resources=resources, pure=False, retries=0)
        for t in tiles
    ]
    results: list[str] = []
    try:
        for fut in as_completed(futures):
            results.append(fut.result())  # raises the task's exception
            if progress is not None:
                progress(len(results), total)
    finally:
        client.cancel([f for f in futures if not f.done()])
        del plan_f
    return _count(results, total)


# -- mosaic ------------------------------------------------------------------------------
def mosaic_block(plan: Plan, store: Any, block: Window) -> np.ndarray:
    """Blend the stored tiles over one output block (HR px): Σ w·f / Σ w, NaN where Σw=0."""
    s = plan.scale
    lay = plan.layout
    lr_block = Window(block.row0 // s, block.col0 // s, -(-block.row1 // s), -(-block.col1 // s))
    acc = np.zeros(block.shape, np.float64)
    wsum = np.zeros(block.shape, np.float64)
    rspans, cspans = list(lay.row_spans), list(lay.col_spans)
    for t in lay.tiles_touching(lr_block):
        arr = store.get(t.key)
        if arr is None:
            continue
        ext = t.extent.scaled(s)
        inter = ext.intersection(block)
        if inter is None:
            continue
        rs, cs = inter.slices(origin=(ext.row0, ext.col0))
        f = np.asarray(arr[rs, cs], dtype=np.float64)
        w = (axis_weight(rspans, t.row, s, lay.blend)[rs][:, None]
             * axis_weight(cspans, t.col, s, lay.blend)[cs][None])
        ok = np.isfinite(f)
        w = np.where(ok, w, 0.0)
        br, bc = inter.slices(origin=(block.row0, block.col0))
        acc[br, bc] += w * np.where(ok, f, 0.0)
        wsum[br, bc] += w
    out = np.full(block.shape, plan.out_nodata, np.float32)
    has = wsum > 0
    out[has] = (acc[has] / wsum[has]).astype(np.float32)
    return out


def _band_description(plan: Plan) -> str:
    desc = plan.lr.descriptions[plan.lr_band - 1] if plan.lr.descriptions else None
    base = desc or f"{Path(plan.lr.path).stem} band {plan.lr_band}"
    return f"{base} (geosr {plan.method} x{plan.scale})"


def write_mosaic(
    plan: Plan, store: Any, path: Path, output: OutputConfig, mosaic_block_px: int = 1024
) -> None:
    """Write the blended output block by block into a tiled float32 GeoTIFF at ``path``."""
    import rasterio

    from .io import gdal_env, output_profile, provenance_tags

    co = dict(output.creation_options)
    profile = output_profile(
        plan.grid,
        nodata=plan.out_nodata,
        blocksize=output.blocksize,
        compress=output.compress,
        creation_options=co,
    )
    # Mosaic blocks: whole output blocks, about TilingConfig.mosaic_block pixels a side.
    step = output.blocksize * max(1, round(mosaic_block_px / output.blocksize))
    with gdal_env(), rasterio.open(path, "w", **profile) as dst:
        for blk in blocks(plan.grid.height, plan.grid.width, step):
            dst.write(mosaic_block(plan, store, blk), 1, window=blk.to_rasterio())
        dst.update_tags(
            **provenance_tags(
                method=plan.method,
                scale=plan.scale,
                options=plan.options,
                lr_path=plan.lr.path,
                guide_path=plan.guide.path,
                lr_band=plan.lr_band,
                guide_bands=plan.guide_bands,
            )
        )
        dst.set_band_description(1, _band_description(plan))
        unit = plan.lr.units[plan.lr_band - 1] if plan.lr.units else None
        if unit:
            dst.set_band_unit(1, unit)


# -- driver ------------------------------------------------------------------------------
def scene_network(
    plan: Plan, store: Any, *, progress: Callable[[int, int, float], None] | None = None,
    init: bytes | None = None,
) -> tuple[Plan, dict[str, Any]]:
    """The plan with its scene network: reused from the tile store (a resumed run), taken
    from the network file ``plan.scene.network`` (fitted further when
    ``plan.scene.iterations`` is given; ``init``: its weights, if already loaded), or
    fitted now; stored in the tile store."""
    from .scene import network_for_scene

    key = "scene-model"
    if store.has(key):
        state = bytes(np.asarray(store.get(key)))
        return dataclasses.replace(plan, scene_state=state), {"reused": True}
    plan, summary = network_for_scene(plan, progress=progress, init=init)
    assert plan.scene_state is not None
    store.put(key, np.frombuffer(plan.scene_state, dtype=np.uint8))
    return plan, summary


def run(
    lr_path: str | os.PathLike[str],
    guide_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    scale: int,
    method: str = "mmsr",
    method_options: dict[str, Any] | None = None,
    lr_band: int | None = None,
    guide_bands: Sequence[int] | None = None,
    nodata: float | None = None,
    tiling: TilingConfig | None = None,
    output: OutputConfig | None = None,
    guide_resampling: str | None = None,
    progress: ProgressCallback | None = None,
    on_stage: StageCallback | None = None,
    client: Any = None,
    resume: bool = False,
    stac: bool = False,
    mode: str = "tile",
    scene: SceneConfig | None = None,
    scene_progress: Callable[[int, int, float], None] | None = None,
    save_network: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Super-resolve a georeferenced LR raster with a guide raster into ``out_path``.

    Returns a summary dict (grid, tile counts, timings). The output appears atomically
    (temporary file in the output folder, then ``os.replace``); on any error nothing is
    left at ``out_path`` and no temporary file remains.

    ``client``: a ``distributed.Client`` to run the tile tasks on (default: local threads).
    ``resume``: continue an interrupted run: intact tiles of its store are reused, the store
    is kept when this run fails too, and an existing output means the job is finished
    (nothing is done unless ``output.overwrite``). ``stac``: also write a STAC item next to
    the output (:func:`geosr.stac.item_path`). ``mode``: ``tile`` (a network per tile, the
    papers' protocol), ``scene`` or ``hybrid`` (:mod:`geosr.scene`; ``scene`` gives its
    settings, ``scene_progress(step, total, loss)`` follows its fit). ``save_network``:
    also write the scene network to this file (:mod:`geosr.netfile`; scene and hybrid
    modes), for ``scene.network`` of later runs.
    """
    from .io import check_output_path, remove_stale_temps, temp_path, to_cog
    from .store import TileStore, store_path

    output = output or OutputConfig()
    scene = scene if scene is not None else SceneConfig(mode=mode)
    if scene.mode != mode and mode != "tile":
        raise OptionError(f"mode {mode!r} disagrees with scene.mode {scene.mode!r}")
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    stage = on_stage or (lambda name: None)
    if resume:
        remove_stale_temps(Path(out_path))
        if Path(out_path).is_file() and not output.overwrite:
            logger.info("%s exists: the job is finished, nothing to resume", out_path)
            if not output.keep_tiles:
                TileStore(store_path(Path(out_path))).remove_if_store()
            stac_path = None
            if stac:  # killed between the output and its item
                from .stac import item_path, write_item

                stac_path = item_path(out_path)
                if not stac_path.exists():
                    plan = make_plan(lr_path, guide_path, scale=scale, method=method,
                                     method_options=method_options, lr_band=lr_band,
                                     guide_bands=guide_bands, nodata=nodata, tiling=tiling,
                                     guide_resampling=guide_resampling)
                    write_item(plan, Path(out_path), cog=output.cog)
                stac_path = str(stac_path)
            return {"output": str(out_path), "status": "exists", "stac": stac_path,
                    "tiles": None, "seconds": {"total": round(time.perf_counter() - t0, 3)}}
    out = check_output_path(
        out_path, overwrite=output.overwrite, inputs=(str(lr_path), str(guide_path))
    )
    if save_network is not None:
        if scene.mode == "tile":
            raise OptionError(
                "--save-network needs --mode scene or hybrid: tile mode fits a network per "
                "tile and has no scene network to save")
        check_output_path(save_network, overwrite=output.overwrite,
                          inputs=(str(lr_path), str(guide_path)))
    plan = make_plan(
        lr_path,
        guide_path,
        scale=scale,
        method=method,
        method_options=method_options,
        lr_band=lr_band,
        guide_bands=guide_bands,
        nodata=nodata,
        tiling=tiling,
        guide_resampling=guide_resampling,
        scene=scene,
    )
    init = None
    if plan.scene.network is not None:  # a bad network file fails before any work
        from .netfile import load_network

        init = load_network(plan.scene.network, plan)
    timings["plan"] = time.perf_counter() - t0
    t = time.perf_counter()
    stage("stats")
    plan = compute_stats(plan)
    timings["stats"] = time.perf_counter() - t

    store = TileStore(store_path(out))
    temps: list[Path] = []
    ok = False
    try:
        store.open(plan.fingerprint())
        scene_summary = None
        if plan.scene.mode != "tile":
            t = time.perf_counter()
            stage("scene")
            plan, scene_summary = scene_network(plan, store, progress=scene_progress,
                                                init=init)
            timings["scene"] = time.perf_counter() - t
            if save_network is not None:
                from .netfile import save_network as write_network

                assert plan.scene_state is not None
                write_network(save_network, plan, plan.scene_state, scene_summary)
                scene_summary = {**scene_summary, "saved_to": str(save_network)}
        t = time.perf_counter()
        stage("tiles")
        counts = run_tiles(plan, str(store.path), progress=progress, client=client)
        timings["tiles"] = time.perf_counter() - t
        if counts["done"] + counts["reused"] == 0:
            raise InputError(
                f"the LR raster {plan.lr.path!r} has no valid pixel in any tile; check "
                "--nodata / the file's nodata value"
            )
        t = time.perf_counter()
        stage("mosaic")
        tmp = temp_path(out, ".tif")
        temps.append(tmp)
        write_mosaic(plan, store, tmp, output, (tiling or TilingConfig()).mosaic_block)
        timings["mosaic"] = time.perf_counter() - t
        if output.cog:
            t = time.perf_counter()
            stage("cog")
            cog = temp_path(out, ".cog.tif")
            temps.append(cog)
            to_cog(
                tmp,
                cog,
                blocksize=output.blocksize,
                compress=output.compress,
                creation_options=dict(output.creation_options),
            )
            timings["cog"] = time.perf_counter() - t
            tmp = cog
        if out.exists() and not output.overwrite:  # appeared while we were working
            raise InputError(f"the output {str(out)!r} appeared during the run; pass --overwrite")
        os.replace(tmp, out)
        ok = True
    except Exception:
        if not (output.keep_tiles or resume):
            store.remove()
        raise
    finally:
        for p in temps:
            if p.exists() and (not ok or p != out):
                p.unlink(missing_ok=True)
    if not output.keep_tiles:
        store.remove()
    stac_path = None
    if stac:
        from .stac import write_item

        stac_path = str(write_item(plan, out, cog=output.cog))
    timings["total"] = time.perf_counter() - t0
    out_px = plan.grid.width * plan.grid.height
    return {
        "output": str(out),
        "status": "done",
        "stac": stac_path,
        "method": plan.method,
        "options": plan.options,
        "scale": plan.scale,
        "cog": output.cog,
        "output_grid": plan.grid.to_dict(),
        "tiles": counts,
        "mode": plan.scene.to_dict(),
        "scene_fit": scene_summary,
        "seconds": {k: round(v, 3) for k, v in timings.items()},
        "output_megapixels": round(out_px / 1e6, 3),
        "megapixels_per_second": round(out_px / 1e6 / max(timings["total"], 1e-9), 3),
    }
