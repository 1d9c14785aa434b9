"""The dask graph of a super-resolution on DataArrays: statistics, scene fit, tiles, mosaic."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
from affine import Affine

from geosr.models.device import torch_threads
from geosr.normalize import PlaneSums
from geosr.pipeline.config import is_deterministic
from geosr.pipeline.mosaic import mosaic_block
from geosr.pipeline.scene import network_for_scene
from geosr.pipeline.stats import FillCount, Moments, plane_partial, stats_reads, with_stats
from geosr.pipeline.tiles import LEARNED_LOCK, predict_tile
from geosr.raster.grid import (
    OutputGrid,
    RasterGeometry,
    Window,
    guide_bounds_in,
    guide_resolution_in,
)
from geosr.raster.tiling import blocks
from geosr.xr.inputs import ArraySource, DataArrayInput, is_dask

#: Kernel radius (source pixels) of GDAL's resampling methods, for the guide margin.
_KERNEL_RADIUS = {"nearest": 1, "bilinear": 1, "average": 1, "mode": 1, "cubic": 2,
                  "cubic_spline": 2, "lanczos": 3}



# -- graph ---------------------------------------------------------------------------------
def _target_geometry(target: Any) -> tuple[Any, Affine]:
    if isinstance(target, OutputGrid):
        return target.crs, target.transform
    return target[0], target[1]


@dataclasses.dataclass(frozen=True)
class _GuideCover:
    """Finds the guide pixels a destination window needs (its footprint plus a margin)."""

    geometry: RasterGeometry
    pad_for: Callable[[Any, Affine], int]

    def window(self, target: Any, win: Window) -> Window | None:
        crs, transform = _target_geometry(target)
        wt = transform @ Affine.translation(win.col0, win.row0)
        left, bottom, right, top = guide_bounds_in(
            RasterGeometry(crs, wt, win.width, win.height), self.geometry.crs
        )
        inv = ~self.geometry.transform
        cs, rs = zip(*(inv @ (x, y) for x in (left, right) for y in (bottom, top)), strict=True)
        pad = self.pad_for(crs, transform)
        g = self.geometry
        r0, c0 = max(0, math.floor(min(rs)) - pad), max(0, math.floor(min(cs)) - pad)
        r1, c1 = min(g.height, math.ceil(max(rs)) + pad), min(g.width, math.ceil(max(cs)) + pad)
        if r1 <= r0 or c1 <= c0:
            return None
        return Window(r0, c0, r1, c1)


def _guide_cover(guide: RasterGeometry, resampling_of: Callable[[Any], str]) -> _GuideCover:
    cache: dict[Any, float] = {}

    def pad_for(crs: Any, transform: Affine) -> int:
        key = crs.to_string() if hasattr(crs, "to_string") else str(crs)
        if key not in cache:
            cache[key] = guide_resolution_in(guide, crs)
        ratio = math.sqrt(abs(transform.determinant)) / cache[key]  # target px / guide px
        radius = _KERNEL_RADIUS.get(resampling_of(transform), 4)
        return radius * math.ceil(max(1.0, ratio)) + 2

    return _GuideCover(guide, pad_for)


def _materialize(piece: Any) -> Any:
    """A piece of an input as numpy: dask pieces computed here (synchronously)."""
    if piece is None:
        return None
    if is_dask(piece):
        return np.asarray(piece.compute(scheduler="sync"))
    return np.asarray(piece)


@dataclasses.dataclass(frozen=True, eq=False)
class _Inputs:
    """The LR band ``(rows, cols)`` and the guide ``(bands, rows, cols)``, numpy or dask:
    each task takes (and for dask, computes) just the windows it reads, like a tile of the
    CLI reads its windows of the files."""

    lr: Any
    guide: Any

    def lr_piece(self, w: Window) -> np.ndarray:
        return _materialize(self.lr[w.row0 : w.row1, w.col0 : w.col1])

    def guide_piece(self, w: Window | None, *, lazy: bool = False) -> Any:
        """The guide in ``w`` (numpy; or as given, for :meth:`ArraySource.guide_reader` to
        compute a chunk at a time, with ``lazy``), None without a window."""
        if w is None:
            return None
        piece = self.guide[:, w.row0 : w.row1, w.col0 : w.col1]
        return piece if lazy else _materialize(piece)


@dataclasses.dataclass(frozen=True)
class _WholeSource:
    """A source over the whole inputs, for reads not known when the graph is built (the
    scene fit's random crops): each read takes only the pieces it needs from ``inputs``,
    then reads them through ``meta`` (an :class:`ArraySource`) like a tile."""

    inputs: _Inputs
    meta: ArraySource

    def read_lr(
        self, plan: Any, window: Window, out_shape: tuple[int, int] | None = None
    ) -> np.ndarray:
        src = dataclasses.replace(self.meta, lr=self.inputs.lr_piece(window),
                                  lr_origin=(window.row0, window.col0))
        return src.read_lr(plan, window, out_shape)

    @contextlib.contextmanager
    def guide_reader(
        self, plan: Any, target: Any, resampling: str
    ) -> Iterator[Callable[[Window], np.ndarray]]:
        assert self.meta.guide_geometry is not None
        cover = _guide_cover(self.meta.guide_geometry, lambda t: resampling)

        def read(win: Window) -> np.ndarray:
            gw = cover.window(target, win)
            src = dataclasses.replace(self.meta, guide=self.inputs.guide_piece(gw),
                                      guide_origin=(gw.row0, gw.col0) if gw else (0, 0))
            with src.guide_reader(plan, target, resampling) as r:
                return r(win)

        yield read


def _lr_partial(plan: Any, *, i: int, inputs: _Inputs, nodata: float | None,
                ) -> tuple[list[Any], dict[float, int], int, np.ndarray | None]:
    """One LR statistics read: its moments, its count of common fill values, and its
    plane-fit sums where the method detrends."""
    win, shape = stats_reads(plan).lr[i]
    src = ArraySource(lr=inputs.lr_piece(win), lr_origin=(win.row0, win.col0),
                      lr_nodata=nodata)
    x = src.read_lr(plan, win, out_shape=shape)
    fills = FillCount(plan)
    fills.update(x)
    plane = plane_partial(plan, win, x) if plan.detrend else None
    return Moments.partial(x), fills.counts, fills.pixels, plane


def _guide_partial(plan: Any, *, i: int, window: Window | None, inputs: _Inputs,
                   geometry: RasterGeometry, nodata: float | None) -> list[Any]:

    reads = stats_reads(plan)
    # a read of a big scene's decimated guide covers a large full-resolution piece: it is
    # computed a chunk at a time into the in-memory GeoTIFF, never held whole
    src = ArraySource(guide=inputs.guide_piece(window, lazy=True),
                      guide_origin=(window.row0, window.col0) if window else (0, 0),
                      guide_geometry=geometry, guide_nodata=nodata)
    with src.guide_reader(plan, reads.guide_target, reads.guide_resampling) as read:
        return Moments.partial(read(reads.guide_blocks[i]))


def _finish_stats(plan: Any, lr_parts: Sequence[Any], guide_parts: Sequence[Any]) -> Any:

    lr_m, g_m = Moments(1), Moments(len(plan.guide_bands))
    fills = FillCount(plan)
    plane = PlaneSums() if plan.detrend else None
    for p, counts, pixels, sums in lr_parts:
        lr_m.add(p)
        fills.add(counts, pixels)
        if plane is not None:
            plane.add(sums)
    # as compute_stats warns for files: fill values in an LR without a nodata value
    fills.warn(plan.grid.lr_window.height * plan.grid.lr_window.width)
    for p in guide_parts:
        g_m.add(p)
    return with_stats(plan, lr_m, g_m, plane)


def _scene_task(plan: Any, *, source: _WholeSource) -> Any:
    """The plan (with statistics) carrying its scene network, fitted on random crops read
    through ``source`` (as :func:`geosr.pipeline.scene_network` does from the files)."""

    with LEARNED_LOCK, torch_threads(plan.torch_threads):
        fitted, _ = network_for_scene(dataclasses.replace(plan, source=source))
    return dataclasses.replace(fitted, source=None)


def _predict(plan: Any, tile: Any, source: ArraySource) -> np.ndarray | None:

    plan = dataclasses.replace(plan, source=source)
    if is_deterministic(plan.method):
        return predict_tile(plan, tile)
    with LEARNED_LOCK, torch_threads(plan.torch_threads):
        return predict_tile(plan, tile)


def _tile_task(plan: Any, *, tile: Any, guide_window: Window | None, inputs: _Inputs,
               meta: ArraySource) -> np.ndarray | None:
    win = plan.lr_window(tile.context)
    gw = guide_window
    src = dataclasses.replace(meta, lr=inputs.lr_piece(win), lr_origin=(win.row0, win.col0),
                              guide=inputs.guide_piece(gw),
                              guide_origin=(gw.row0, gw.col0) if gw else (0, 0))
    return _predict(plan, tile, src)


class _Tiles(dict):  # type: ignore[type-arg]
    """Tile predictions of one block, for ``mosaic_block``'s ``store.get`` (strict)."""

    def get(self, key: str, default: Any = None) -> Any:
        return self[key]


def _mosaic_task(plan: Any, tiles: Sequence[Any], *, block: Window,
                 keys: Sequence[str]) -> np.ndarray:

    return mosaic_block(plan, _Tiles(zip(keys, tiles, strict=True)), block)


def build_graph(plan: Any, lr: DataArrayInput, guide: DataArrayInput, block_px: int) -> Any:
    """The dask array ``(H, W)`` float32 of the output, chunked by output blocks.

    One low-level graph layer of ``(func, *args)`` tasks whose literal arguments are bound
    with ``functools.partial``: its size grows with the number of tiles only. The inputs
    are not split into tasks of their own: each task reads (computes) its windows of them
    itself (:class:`_Inputs`), so no task holds more than its own pieces and the graph
    stays small however the inputs are chunked.
    """
    import dask.array as dsa
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph


    repeatable = is_deterministic(plan.method) or plan.options.get("seed") is not None
    if (lr.lazy or guide.lazy) and repeatable:  # same call, same keys (dask shares them)
        token = tokenize(lr.data, guide.data, plan.to_dict())
    else:
        token = uuid.uuid4().hex
    s = plan.scale
    inputs = _Inputs(lr=lr.data[plan.lr_band - 1], guide=guide.data)
    ggeom = guide.info.geometry
    cover = _guide_cover(
        ggeom, lambda t: plan.guide_resampling if t == plan.grid.transform else "nearest"
    )
    dsk: dict[Any, Any] = {}
    plan_key = f"geosr-plan-{token}"
    dsk[plan_key] = (functools.partial(constant, plan),)
    # scene statistics: one task per read, folded in the pipeline's order
    reads = stats_reads(plan)
    lr_parts = []
    for i in range(len(reads.lr)):
        key = f"geosr-stats-lr-{token}-{i}"
        dsk[key] = (functools.partial(_lr_partial, i=i, inputs=inputs, nodata=lr.nodata),
                    plan_key)
        lr_parts.append(key)
    g_parts = []
    for i, blk in enumerate(reads.guide_blocks):
        key = f"geosr-stats-guide-{token}-{i}"
        dsk[key] = (functools.partial(
            _guide_partial, i=i, window=cover.window(reads.guide_target, blk), inputs=inputs,
            geometry=ggeom, nodata=guide.nodata), plan_key)
        g_parts.append(key)
    tile_plan = f"geosr-stats-{token}"
    dsk[tile_plan] = (_finish_stats, plan_key, lr_parts, g_parts)
    # scene/hybrid modes: one network fitted on random crops, for every tile
    meta = ArraySource(lr_nodata=lr.nodata, guide_geometry=ggeom, guide_nodata=guide.nodata)
    if plan.scene.mode != "tile":
        whole = _WholeSource(inputs=inputs, meta=meta)
        dsk[f"geosr-scene-{token}"] = (functools.partial(_scene_task, source=whole), tile_plan)
        tile_plan = f"geosr-scene-{token}"
    # tiles
    tile_keys = {}
    for t in plan.layout:
        key = f"geosr-tile-{token}-{t.key}"
        dsk[key] = (functools.partial(
            _tile_task, tile=t, guide_window=cover.window(plan.grid, t.context.scaled(s)),
            inputs=inputs, meta=meta), tile_plan)
        tile_keys[t.key] = key
    # mosaic: one chunk per output block, from the tiles touching it
    name = f"geosr-sr-{token}"
    lay = plan.layout
    heights: list[int] = []
    widths: list[int] = []
    rows: dict[int, int] = {}
    cols: dict[int, int] = {}
    for blk in blocks(plan.grid.height, plan.grid.width, block_px):
        if blk.row0 not in rows:
            rows[blk.row0] = len(rows)
            heights.append(blk.height)
        if blk.col0 not in cols:
            cols[blk.col0] = len(cols)
            widths.append(blk.width)
        lr_blk = Window(blk.row0 // s, blk.col0 // s, -(-blk.row1 // s), -(-blk.col1 // s))
        touching = [t.key for t in lay.tiles_touching(lr_blk)]
        dsk[(name, rows[blk.row0], cols[blk.col0])] = (
            functools.partial(_mosaic_task, block=blk, keys=touching), plan_key,
            [tile_keys[k] for k in touching])
    hlg = HighLevelGraph.from_collections(name, dsk, dependencies=())
    return dsa.Array(hlg, name, chunks=(tuple(heights), tuple(widths)), dtype=np.float32)


def constant(value: Any) -> Any:
    return value


