"""xarray interface: :func:`super_resolve_xr` on georeferenced DataArrays (rioxarray).

::

    import rioxarray, geosr
    from geosr.xr import to_raster
    lr = rioxarray.open_rasterio("dsm_2m.tif", chunks=True)      # dask-backed: stays lazy
    guide = rioxarray.open_rasterio("ortho_0p5m.tif", chunks=True)
    hr = geosr.super_resolve_xr(lr, guide, 4, method="guided-filter")
    to_raster(hr, "dsm_0p5m.tif", compress="DEFLATE")           # the tiles run here

Design. This is the pipeline of :mod:`geosr.pipeline` with DataArrays in place of files;
nothing about the grid, the tiles, the statistics or the blending is implemented twice:

- **Plan.** Each DataArray is described by a :class:`~geosr.io.RasterInfo` (CRS and
  transform from its ``rio`` accessor, nodata from ``rio.nodata`` / ``_FillValue``, the
  file name from ``encoding["source"]`` when it was opened from a file) and
  :func:`geosr.pipeline.make_plan` lays out the output grid (:func:`geosr.grid.output_grid`),
  the tiles and the guide resampling exactly as for ``geosr sr``.
- **Source.** The pipeline reads pixels through the plan's *source*
  (:class:`geosr.pipeline.FileSource` by default). :class:`ArraySource` reads them from
  array pieces instead: an LR window is a slice; the guide on the output grid is the guide
  sub-array covering the destination's footprint (plus a margin for the resampling
  kernel), put in an in-memory GeoTIFF and read through the *same* ``WarpedVRT`` onto the
  same target grid as the CLI (:func:`geosr.io.guide_vrt`: same resampling, same alpha
  mask, same rounding to the guide's data type).
- **Graph.** One dask task per statistics read (:func:`geosr.pipeline.stats_reads`) gives
  the moments of its block; one task folds them in the pipeline's order into the plan's
  scene statistics (:func:`geosr.pipeline.with_stats`), so they are bit-identical to
  :func:`geosr.pipeline.compute_stats` on the files. In ``scene``/``hybrid`` mode one task
  then fits the scene network (:func:`geosr.scene.fit_scene`) on random crops, each read
  when drawn from the inputs through the same source (:class:`_WholeSource`). One task
  per tile takes that plan, reads its own LR/guide windows and runs
  :func:`geosr.pipeline.predict_tile`. One task per output block
  (``tiling.mosaic_block`` pixels a side; the result's chunks) blends the tiles touching
  it with :func:`geosr.pipeline.mosaic_block` (cosine ramps). The inputs are not split
  into tasks of their own: each task takes (computes, for dask inputs) just its windows
  of them, as a tile of the CLI reads its windows of the files, so no task holds a whole
  raster and the graph (one low-level layer) grows with the number of tiles only.

Laziness. When ``lr`` or ``guide`` is dask-backed (``open_rasterio(..., chunks=...)``,
``.chunk()``), the call only builds that graph: nothing is read or computed (statistics
included) until the result is computed or written, and input errors that need pixels
(an LR with no valid pixel) are raised then. Otherwise the inputs are loaded, the graph is
computed at once on dask's threaded scheduler (``tiling.workers`` threads; one at a time
for learned methods) and the result is numpy-backed.

Writing. :func:`to_raster` writes a lazy result block by block in bounded memory (about
the CLI's: ``examples/benchmarks/xr_memory.py``): it computes the statistics' reads one
at a time, then the output blocks in row-major order a few at a time
(:func:`compute_by_rows`), keeping only the tiles later blocks need. A plain
``hr.rio.to_raster(path)`` computes the whole array first; ``hr.rio.to_raster(path,
tiled=True, lock=threading.Lock())`` writes by blocks but in dask's own order, which runs
all the statistics' reads at once and holds hundreds of finished tiles on big scenes.

Equivalence with the CLI. :func:`to_raster` (or ``result.rio.to_raster(path)``) writes
the values, CRS, transform, nodata, band description and ``GEOSR_*`` provenance tags that
``geosr sr`` / ``geosr dem-sr`` write for the same inputs and options (not the COG layout
or compression: pass those as creation options; the LR's unit is kept as a ``units``
attribute). Values are identical when the guide is given in its file's data type (statistics up to
``STATS_FULL_PIXELS`` per raster use every pixel; above, the decimated reads follow GDAL's
nearest sampling). The guide's colour interpretation is not known to a DataArray: pass
``guide_bands=[1, 2, 3]`` for an RGBA guide (the CLI drops alpha bands by itself).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import os
import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
from affine import Affine

from .errors import GridError, InputError, OptionError
from .grid import OutputGrid, RasterGeometry, Window, guide_bounds_in, guide_resolution_in
from .io import RasterInfo, _invalid

__all__ = ["ArraySource", "compute_by_rows", "super_resolve_xr", "to_raster"]

#: Kernel radius (source pixels) of GDAL's resampling methods, for the guide margin.
_KERNEL_RADIUS = {"nearest": 1, "bilinear": 1, "average": 1, "mode": 1, "cubic": 2,
                  "cubic_spline": 2, "lanczos": 3}


# -- source --------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ArraySource:
    """Pixels from array pieces, for :attr:`geosr.pipeline.Plan.source`.

    ``lr``: a ``(rows, cols)`` piece of the LR band whose ``[0, 0]`` is the absolute LR
    pixel ``lr_origin``; ``guide``: a ``(bands, rows, cols)`` piece of the guide (all its
    bands; the plan picks them) whose ``[:, 0, 0]`` is guide pixel ``guide_origin`` of a
    raster of geometry ``guide_geometry``. Pieces may be whole rasters (numpy, or anything
    ``np.asarray`` takes; a dask guide is computed a chunk at a time into the in-memory
    GeoTIFF the guide is read through); a read outside its piece is an error.
    """

    lr: Any = None
    lr_origin: tuple[int, int] = (0, 0)
    #: the LR's own nodata value (the plan's ``lr_nodata`` overrides it)
    lr_nodata: float | None = None
    guide: Any = None
    guide_origin: tuple[int, int] = (0, 0)
    guide_geometry: RasterGeometry | None = None
    guide_nodata: float | None = None

    def read_lr(
        self, plan: Any, window: Window, out_shape: tuple[int, int] | None = None
    ) -> np.ndarray:
        """Absolute LR window as ``(1, h, w)`` float32, NaN = nodata (like ``io.read_lr``)."""
        r0, c0 = self.lr_origin
        arr = np.asarray(self.lr)
        if (window.row0 < r0 or window.col0 < c0 or window.row1 - r0 > arr.shape[0]
                or window.col1 - c0 > arr.shape[1]):
            raise ValueError(f"LR window {window} is outside the piece at {self.lr_origin}")
        arr = arr[window.row0 - r0 : window.row1 - r0, window.col0 - c0 : window.col1 - c0]
        if out_shape is not None:  # GDAL's nearest decimation (RasterIO with out_shape)
            arr = arr[np.ix_(_nearest(window.height, out_shape[0]),
                             _nearest(window.width, out_shape[1]))]
        nd = plan.lr_nodata if plan.lr_nodata is not None else self.lr_nodata
        out = arr.astype(np.float32)
        out[_invalid(arr, nd)] = np.nan
        return out[None]

    @contextlib.contextmanager
    def guide_reader(
        self, plan: Any, target: Any, resampling: str
    ) -> Iterator[Callable[[Window], np.ndarray]]:
        """``read(window)``: the guide piece resampled onto ``target`` through the same
        ``WarpedVRT`` as the files (:func:`geosr.io.guide_vrt`)."""
        from rasterio.io import MemoryFile

        from .io import gdal_env, guide_vrt, read_guide

        nb = len(plan.guide_bands)
        g = self.guide
        lazy = _is_dask(g)
        if g is not None and not lazy:
            g = np.asarray(g)
        if g is None or g.size == 0:  # the destination is outside the guide
            yield lambda w: np.full((nb, w.height, w.width), np.nan, np.float32)
            return
        if self.guide_geometry is None:
            raise ValueError("an ArraySource with a guide needs its guide_geometry")
        idx = [b - 1 for b in plan.guide_bands]
        if idx != list(range(g.shape[0])):
            g = g[idx]
        dtype = np.dtype(g.dtype)
        if dtype.kind == "b" or dtype == np.dtype(np.float16):
            dtype = np.dtype(np.uint8 if dtype.kind == "b" else np.float32)
        _, h, w = g.shape
        crs = self.guide_geometry.crs
        r0, c0 = self.guide_origin
        t = self.guide_geometry.transform @ Affine.translation(c0, r0)
        nodata = _representable(self.guide_nodata, dtype)
        with gdal_env(), MemoryFile() as mem:
            with mem.open(driver="GTiff", width=w, height=h, count=nb, dtype=dtype.name,
                          crs=crs, transform=t, nodata=nodata) as ds:
                if lazy:  # computed and written a chunk at a time, never held whole
                    rows, cols = (np.cumsum((0, *c)) for c in g.chunks[1:])
                    for ra, rb in zip(rows[:-1], rows[1:], strict=True):
                        for ca, cb in zip(cols[:-1], cols[1:], strict=True):
                            blk = g[:, ra:rb, ca:cb].compute(scheduler="sync")
                            ds.write(np.asarray(blk, dtype=dtype),
                                     window=Window(int(ra), int(ca), int(rb), int(cb)).to_rasterio())
                else:
                    ds.write(np.ascontiguousarray(g, dtype=dtype))
            info = RasterInfo(
                path=mem.name, geometry=RasterGeometry(crs, t, w, h), count=nb,
                dtypes=(dtype.name,) * nb, nodata=nodata, colorinterp=("undefined",) * nb,
                descriptions=(None,) * nb, units=(None,) * nb,
            )
            with guide_vrt(info, target, resampling) as (vrt, mask_band):
                bands = list(range(1, nb + 1))
                yield lambda win: read_guide(vrt, mask_band, bands, win)


def _is_dask(x: Any) -> bool:
    return x is not None and hasattr(x, "dask") and hasattr(x, "compute")


def _nearest(size: int, n: int) -> np.ndarray:
    """Source indices GDAL's nearest RasterIO picks when reading ``size`` pixels into ``n``."""
    idx = np.floor((np.arange(n) + 0.5) * (size / n) + 1e-10).astype(np.int64)
    return np.minimum(idx, size - 1)


def _representable(nodata: float | None, dtype: np.dtype) -> float | None:
    """``nodata`` if a raster of ``dtype`` can hold it (GeoTIFF nodata), else None."""
    if nodata is None:
        return None
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        if not np.isfinite(nodata) or not info.min <= nodata <= info.max:
            return None
    return float(nodata)


# -- inputs --------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Input:
    """A checked DataArray: ``(band, y, x)`` data (numpy or dask) and its description."""

    data: Any
    info: RasterInfo
    lazy: bool
    band_dim: str | None
    band_values: Any
    y_dim: str
    x_dim: str
    nodata: float | None
    encoded_nodata: float | None
    name: Any


def _as_input(da: Any, what: str) -> _Input:
    import xarray as xr
    from rioxarray.exceptions import RioXarrayError

    var = "lr" if what == "LR" else "guide"
    if not isinstance(da, xr.DataArray):
        raise InputError(
            f"{var} must be an xarray.DataArray with a CRS and transform (e.g. "
            f"rioxarray.open_rasterio(path)), got {type(da).__name__}; for plain arrays use "
            "geosr.super_resolve"
        )
    try:
        x_dim, y_dim = da.rio.x_dim, da.rio.y_dim
    except RioXarrayError as exc:
        raise InputError(
            f"the {what} DataArray has dims {tuple(da.dims)} and no spatial (y, x) dims; "
            f"name them x and y ({var}.rename({{'lon': 'x', 'lat': 'y'}})) or declare them "
            f"with {var}.rio.set_spatial_dims(x_dim=..., y_dim=...)"
        ) from exc
    others = [d for d in da.dims if d not in (x_dim, y_dim)]
    if len(others) > 1 or da.ndim not in (2, 3):
        raise InputError(
            f"the {what} DataArray has dims {tuple(da.dims)}; pass a 2-D (y, x) or 3-D "
            f"(band, y, x) DataArray, e.g. select one time step with {var}.isel(time=0)"
        )
    band_dim = others[0] if others else None
    if da.rio.crs is None:
        raise GridError(
            f"the {what} DataArray has no CRS; set it with "
            f"{var} = {var}.rio.write_crs('EPSG:XXXX') (the EPSG code of its coordinates)"
        )
    height, width = int(da.sizes[y_dim]), int(da.sizes[x_dim])
    gm = da.rio.grid_mapping
    stored = gm in da.coords and "GeoTransform" in da.coords[gm].attrs
    if not stored and (x_dim not in da.coords or y_dim not in da.coords or min(height, width) < 2):
        raise GridError(
            f"the {what} DataArray has no transform: it needs x/y coordinates (pixel "
            f"centres) along {height} x {width} >= 2 x 2 pixels, or a transform; set one with "
            f"{var} = {var}.rio.write_transform(Affine(...))"
        )
    try:
        transform = da.rio.transform()
    except RioXarrayError as exc:
        raise GridError(f"the {what} DataArray's transform cannot be read ({exc}); set it "
                        f"with {var} = {var}.rio.write_transform(Affine(...))") from exc
    dt = np.dtype(da.dtype)
    if not np.issubdtype(dt, np.number) or np.issubdtype(dt, np.complexfloating):
        raise InputError(f"the {what} DataArray must hold real numbers, got dtype {dt}")
    order = ([band_dim] if band_dim else []) + [y_dim, x_dim]
    arr = da.transpose(*order)
    lazy = arr.chunks is not None
    data = arr.data if lazy else np.asarray(arr.values)
    if band_dim is None:
        data = data[None]
    count = int(data.shape[0])
    source = da.encoding.get("source")
    name = str(source) if source else (str(da.name) if da.name is not None else var)
    nodata = da.rio.nodata
    nodata = None if nodata is None else float(nodata)
    info = RasterInfo(
        path=name,
        geometry=RasterGeometry(da.rio.crs, transform, width, height),
        count=count,
        dtypes=(dt.name,) * count,
        nodata=nodata,
        colorinterp=("undefined",) * count,
        descriptions=_per_band(da.attrs.get("long_name"), count),
        units=_per_band(da.attrs.get("units"), count),
    )
    enc = da.rio.encoded_nodata
    return _Input(
        data=data, info=info, lazy=lazy, band_dim=band_dim,
        band_values=da[band_dim].values if band_dim and band_dim in da.coords else None,
        y_dim=y_dim, x_dim=x_dim, nodata=nodata,
        encoded_nodata=None if enc is None else float(enc), name=da.name,
    )


def _per_band(value: Any, count: int) -> tuple[str | None, ...]:
    if isinstance(value, (list, tuple)) and len(value) == count:
        return tuple(None if v is None else str(v) for v in value)
    if isinstance(value, str) and value:
        return (value,) * count
    return (None,) * count


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
    if _is_dask(piece):
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


def _lr_partial(plan: Any, *, i: int, inputs: _Inputs, nodata: float | None) -> list[Any]:
    from .pipeline import _Moments, stats_reads

    win, shape = stats_reads(plan).lr[i]
    src = ArraySource(lr=inputs.lr_piece(win), lr_origin=(win.row0, win.col0),
                      lr_nodata=nodata)
    return _Moments.partial(src.read_lr(plan, win, out_shape=shape))


def _guide_partial(plan: Any, *, i: int, window: Window | None, inputs: _Inputs,
                   geometry: RasterGeometry, nodata: float | None) -> list[Any]:
    from .pipeline import _Moments, stats_reads

    reads = stats_reads(plan)
    # a read of a big scene's decimated guide covers a large full-resolution piece: it is
    # computed a chunk at a time into the in-memory GeoTIFF, never held whole
    src = ArraySource(guide=inputs.guide_piece(window, lazy=True),
                      guide_origin=(window.row0, window.col0) if window else (0, 0),
                      guide_geometry=geometry, guide_nodata=nodata)
    with src.guide_reader(plan, reads.guide_target, reads.guide_resampling) as read:
        return _Moments.partial(read(reads.guide_blocks[i]))


def _finish_stats(plan: Any, lr_parts: Sequence[Any], guide_parts: Sequence[Any]) -> Any:
    from .pipeline import _Moments, with_stats

    lr_m, g_m = _Moments(1), _Moments(len(plan.guide_bands))
    for p in lr_parts:
        lr_m.add(p)
    for p in guide_parts:
        g_m.add(p)
    return with_stats(plan, lr_m, g_m)


def _scene_task(plan: Any, *, source: _WholeSource) -> Any:
    """The plan (with statistics) carrying its scene network, fitted on random crops read
    through ``source`` (as :func:`geosr.pipeline.scene_network` does from the files)."""
    from .pipeline import _LEARNED_LOCK, _torch_threads
    from .scene import network_for_scene

    with _LEARNED_LOCK, _torch_threads(plan.torch_threads):
        fitted, _ = network_for_scene(dataclasses.replace(plan, source=source))
    return dataclasses.replace(fitted, source=None)


def _predict(plan: Any, tile: Any, source: ArraySource) -> np.ndarray | None:
    from .pipeline import _LEARNED_LOCK, _torch_threads, is_deterministic, predict_tile

    plan = dataclasses.replace(plan, source=source)
    if is_deterministic(plan.method):
        return predict_tile(plan, tile)
    with _LEARNED_LOCK, _torch_threads(plan.torch_threads):
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
    from .pipeline import mosaic_block

    return mosaic_block(plan, _Tiles(zip(keys, tiles, strict=True)), block)


def _graph(plan: Any, lr: _Input, guide: _Input, block_px: int) -> Any:
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

    from .pipeline import is_deterministic, stats_reads
    from .tiling import blocks

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
    dsk[plan_key] = (functools.partial(_const, plan),)
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


def _const(value: Any) -> Any:
    return value


# -- public function -----------------------------------------------------------------------
def super_resolve_xr(
    lr: Any,
    guide: Any,
    scale: int,
    *,
    method: str = "mmsr",
    lr_band: int | None = None,
    guide_bands: Sequence[int] | None = None,
    nodata: float | None = None,
    tiling: Any = None,
    guide_resampling: str | None = None,
    mode: str = "tile",
    scene: Any = None,
    **options: Any,
) -> Any:
    """Super-resolve a georeferenced DataArray ``lr`` by ``scale`` with the DataArray ``guide``.

    ``lr`` and ``guide`` are 2-D ``(y, x)`` or 3-D ``(band, y, x)`` DataArrays with a CRS
    and a transform (rioxarray's ``rio`` accessor); the guide may be in another CRS or
    resolution: it is resampled onto the output grid exactly as by ``geosr sr``, which is
    the LR grid refined by ``scale`` over the overlap of both footprints, in the LR's CRS.
    ``lr_band`` (1-based; needed when ``lr`` has several bands), ``guide_bands``
    (1-based; default all, at least 3), ``nodata`` (overrides ``lr.rio.nodata``),
    ``tiling`` (a :class:`geosr.pipeline.TilingConfig`) and ``guide_resampling`` are the
    CLI's ``--lr-band``, ``--guide-bands``, ``--nodata``, ``--tile-size/--overlap/--workers``
    options; ``options`` go to the method (``geosr methods``), e.g. ``preset="dem",
    iterations=200, seed=0`` for ``mmsr``. ``mode`` (``tile``, ``scene`` or ``hybrid``)
    and ``scene`` (a :class:`geosr.scene.SceneConfig`) are those of
    :func:`geosr.pipeline.run` (``--mode``, ``--scene-*``): in ``scene``/``hybrid`` mode
    one network is fitted on random crops of the scene, as one task of the graph after the
    statistics (it reads only its crops), and the tiles apply it or start from it.

    Returns a float32 DataArray ``(y, x)`` (``(band, y, x)`` with the chosen band if ``lr``
    is 3-D) with the output grid's coordinates, CRS, transform, nodata (the LR's: its value
    where there is no data, or NaN and an encoded nodata when ``lr`` was opened with
    ``masked=True``), band description (``long_name``) and ``GEOSR_*`` provenance attributes.
    It is dask-backed and not yet computed when an input is dask-backed, else numpy-backed
    (computed by this call). Raises a :class:`geosr.errors.GeosrError` subclass whose
    message names the fix for unusable inputs.
    """
    import xarray as xr

    from .io import provenance_tags
    from .pipeline import TilingConfig, _band_description, make_plan
    from .scene import SceneConfig

    src_lr = _as_input(lr, "LR")
    src_g = _as_input(guide, "guide")
    if guide_bands is None and src_g.info.count < 3:
        raise InputError(
            f"the guide DataArray has {src_g.info.count} band(s) but an RGB (or "
            "multispectral) guide of 3+ bands is expected; if this is the guide you mean, "
            f"pass guide_bands={list(range(1, src_g.info.count + 1))}"
        )
    tiling = tiling if tiling is not None else TilingConfig()
    scene = scene if scene is not None else SceneConfig(mode=mode)
    if scene.mode != mode and mode != "tile":
        raise OptionError(f"mode {mode!r} disagrees with scene.mode {scene.mode!r}")
    plan = make_plan(
        src_lr.info, src_g.info, scale=scale, method=method, method_options=options,
        lr_band=lr_band, guide_bands=guide_bands, nodata=nodata, tiling=tiling,
        guide_resampling=guide_resampling, scene=scene,
    )
    data = _graph(plan, src_lr, src_g, tiling.mosaic_block)
    g = plan.grid
    from rioxarray.rioxarray import affine_to_coords

    coords = affine_to_coords(g.transform, g.width, g.height, x_dim=src_lr.x_dim,
                              y_dim=src_lr.y_dim)
    attrs: dict[str, Any] = provenance_tags(
        method=plan.method, scale=plan.scale, options=plan.options, lr_path=plan.lr.path,
        guide_path=plan.guide.path, lr_band=plan.lr_band, guide_bands=plan.guide_bands,
    )
    attrs["long_name"] = _band_description(plan)
    unit = plan.lr.units[plan.lr_band - 1]
    if unit:
        attrs["units"] = unit
    out = xr.DataArray(data, dims=(src_lr.y_dim, src_lr.x_dim), coords=coords, attrs=attrs)
    out.name = src_lr.name  # not the dask array's name
    if src_lr.band_dim is not None:
        vals = src_lr.band_values
        value = vals[plan.lr_band - 1] if vals is not None else plan.lr_band
        out = out.expand_dims({src_lr.band_dim: [value]})
    out = out.rio.write_crs(g.crs).rio.write_transform(g.transform)
    if src_lr.encoded_nodata is not None and math.isnan(plan.out_nodata) and nodata is None:
        out = out.rio.write_nodata(src_lr.encoded_nodata, encoded=True)
    else:
        out = out.rio.write_nodata(plan.out_nodata)
    if not (src_lr.lazy or src_g.lazy):
        out = out.compute(scheduler="threads", num_workers=plan.workers)
    return out


# -- writing -------------------------------------------------------------------------------
def _block_side(chunks: Sequence[int]) -> int:
    """Largest GeoTIFF block side (16..512) that divides every chunk but the last."""
    inner = [int(c) for c in chunks[:-1]] or [int(chunks[0])]
    for side in (512, 256, 128, 64, 32, 16):
        if all(c % side == 0 for c in inner):
            return side
    return 256


def _default_workers(hr: Any) -> int | None:
    """The pipeline's default number of tiles at once for the method of ``hr``, if known."""
    from .models import get_method_class
    from .pipeline import TilingConfig

    method = hr.attrs.get("GEOSR_METHOD")
    try:
        deterministic = bool(get_method_class(method).deterministic)
    except Exception:  # not a geosr result, or an unknown method
        return None
    return TilingConfig().resolve(deterministic=deterministic, halo=0)[2]


#: the per-read statistics tasks of a :func:`super_resolve_xr` graph
_STATS_READ = re.compile(r"^geosr-stats-(lr|guide)-[0-9a-f]+-([0-9]+)$")


def compute_by_rows(stored: Any, *, axis: int = -2, num_workers: int | None = None,
                    per_call: int | None = None) -> None:
    """Compute a ``dask.array.store(..., compute=False)`` result a few chunks at a time.

    Left to itself, dask's threaded scheduler runs the statistics' reads of a
    :func:`super_resolve_xr` graph on every thread at once (on a big scene each holds a
    large piece of the guide in memory), then computes the tiles in a centre-out order
    that keeps hundreds of finished tiles waiting for their other output blocks (1225
    tiles of a 16384^2 output: up to ~250 held). Here the work is cut into successive
    calls of the threaded scheduler (``num_workers`` threads): first the statistics'
    reads, one at a time, then the output chunks in row-major order (along ``axis``, the
    rows' axis of the stored array), ``per_call`` at a time (default: a row). What a later
    call also needs (the statistics, the tiles that straddle two calls) is kept and given
    to it; everything else is released (and the C heap trimmed). Memory is then that of a
    few tiles plus one row of tiles (~50 held in that example), whatever the raster's
    height. Any dask array store works; the statistics are recognised by their keys.
    """
    import dask
    import dask.threaded
    from dask.core import flatten, get_dependencies

    # not optimised: a super_resolve_xr graph is low-level already, and an optimised copy
    # of it would only take memory
    dsk = dict(stored.__dask_graph__())
    if hasattr(stored, "key"):  # a Delayed: the chunks' store tasks are its dependencies
        targets = list(get_dependencies(dsk, stored.key))
    else:  # an array of store tasks (dask >= 2025)
        targets = list(flatten(stored.__dask_keys__()))
    if not targets or not all(isinstance(k, tuple) and len(k) >= 3 and -len(k) < axis < len(k)
                              for k in targets):
        dask.compute(stored, scheduler="threads", num_workers=num_workers)
        return
    rows: dict[Any, list[Any]] = {}
    for k in sorted(targets, key=lambda k: k[1:]):
        rows.setdefault(k[axis if axis < 0 else axis + 1], []).append(k)
    stats = {}
    for k in dsk:
        m = _STATS_READ.match(k) if isinstance(k, str) else None
        if m:
            stats[k] = (m.group(1), int(m.group(2)))
    # one statistics read at a time: a read of a big scene's decimated guide holds an
    # in-memory GeoTIFF of a full-resolution piece of it (~50 MB for a 16384^2 output)
    groups = [[k] for k in sorted(stats, key=stats.__getitem__)]
    for r in sorted(rows):
        row = rows[r]
        size = per_call or len(row)
        groups.extend(row[i : i + size] for i in range(0, len(row), size))

    def dependencies(key: Any) -> set[Any]:
        return get_dependencies(dsk, key)  # not cached: the graph can be big

    # the last call that needs each key (a key computed by an earlier call is given to a
    # later one as a value: what it was computed from is not needed there)
    last_use: dict[Any, int] = {}
    computed: set[Any] = set()
    for i, group in enumerate(groups):
        stack = list(group)
        while stack:
            k = stack.pop()
            if last_use.get(k) == i:
                continue
            last_use[k] = i
            if k not in computed:
                computed.add(k)
                stack.extend(dependencies(k))
    kept: dict[Any, Any] = {}
    for i, group in enumerate(groups):
        sub: dict[Any, Any] = {}
        stack = list(group)
        while stack:
            k = stack.pop()
            if k in sub:
                continue
            if k in kept:  # computed by an earlier call: a constant here
                sub[k] = (functools.partial(_const, kept[k]),)
                continue
            sub[k] = dsk[k]
            stack.extend(dependencies(k))
        keep = [k for k in sub if last_use[k] > i and k not in kept]
        values = dask.threaded.get(sub, [*group, *keep], num_workers=num_workers)
        kept.update(zip(keep, values[len(group):], strict=True))
        kept = {k: v for k, v in kept.items() if last_use[k] > i}
        del sub, values  # nothing but ``kept`` holds results between calls
        _trim_heap()


def _trim_heap() -> None:
    """Give the C heap's free pages back to the system (glibc ``malloc_trim``).

    The tiles a call keeps for the next one are scattered among the freed buffers of the
    tiles and blocks it computed, so glibc, which only shrinks its heap from the top, would
    otherwise keep those freed pages: resident memory then grows with the scene's width
    (dask.distributed's workers trim their heap for the same reason). A no-op elsewhere.
    """
    global _MALLOC_TRIM
    if _MALLOC_TRIM is None:
        _MALLOC_TRIM = False
        try:
            import ctypes

            _MALLOC_TRIM = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            pass
    if _MALLOC_TRIM:
        _MALLOC_TRIM(0)


_MALLOC_TRIM: Any = None


def to_raster(
    hr: Any,
    path: Any,
    *,
    lock: Any = None,
    num_workers: int | None = None,
    **kwargs: Any,
) -> None:
    """Write ``hr`` (a :func:`super_resolve_xr` result) to a tiled GeoTIFF, block by block.

    A dask-backed ``hr`` is computed a few output blocks (chunks) at a time in row-major
    order with dask's threaded scheduler (:func:`compute_by_rows`), each block written as
    soon as it is ready under ``lock`` (default: a new ``threading.Lock``), so memory stays
    bounded whatever the raster's size (``examples/benchmarks/xr_memory.py``);
    ``hr.rio.to_raster(path)`` alone would compute the whole array first. ``num_workers``
    threads run the tiles (default: the CLI's ``--workers`` default for the method of
    ``hr``). ``kwargs`` go to ``hr.rio.to_raster`` (GDAL creation options such as
    ``compress="DEFLATE"``); the GeoTIFF's blocks default to the largest size that divides
    the chunks, so no block is written twice. A numpy-backed ``hr`` is written by windows.
    """
    import threading

    import dask

    from .io import gdal_env

    lazy = dask.is_dask_collection(hr.data)
    kwargs.setdefault("tiled", True)
    if not lazy:
        kwargs.setdefault("windowed", True)
        with gdal_env():
            hr.rio.to_raster(path, **kwargs)
        return
    if kwargs.get("tiled"):
        chunks = dict(zip(hr.dims, hr.chunks, strict=True))
        kwargs.setdefault("blockysize", _block_side(chunks[hr.rio.y_dim]))
        kwargs.setdefault("blockxsize", _block_side(chunks[hr.rio.x_dim]))
    workers = num_workers if num_workers is not None else _default_workers(hr)
    with gdal_env():
        stored = hr.rio.to_raster(path, lock=lock or threading.Lock(), compute=False, **kwargs)
        # as many output blocks per call as tiles run at once: each call keeps only the
        # tiles later blocks need
        per_call = max(1, workers or os.cpu_count() or 1)
        compute_by_rows(stored, axis=hr.dims.index(hr.rio.y_dim), num_workers=workers,
                        per_call=per_call)
