"""xarray interface: :func:`super_resolve_xr` on georeferenced DataArrays (rioxarray).

::

    import rioxarray, geosr
    from geosr.xr.write import to_raster
    lr = rioxarray.open_rasterio("dsm_2m.tif", chunks=True)      # dask-backed: stays lazy
    guide = rioxarray.open_rasterio("ortho_0p5m.tif", chunks=True)
    hr = geosr.super_resolve_xr(lr, guide, 4, method="guided-filter")
    to_raster(hr, "dsm_0p5m.tif", compress="DEFLATE")           # the tiles run here

Design. This is the pipeline of :mod:`geosr.pipeline` with DataArrays in place of files;
nothing about the grid, the tiles, the statistics or the blending is implemented twice:

- **Plan.** Each DataArray is described by a :class:`~geosr.raster.io.RasterInfo` (CRS and
  transform from its ``rio`` accessor, nodata from ``rio.nodata`` / ``_FillValue``, the
  file name from ``encoding["source"]`` when it was opened from a file) and
  :func:`geosr.pipeline.make_plan` lays out the output grid (:func:`geosr.raster.grid.output_grid`),
  the tiles and the guide resampling exactly as for ``geosr sr``.
- **Source.** The pipeline reads pixels through the plan's *source*
  (:class:`geosr.pipeline.FileSource` by default). :class:`ArraySource` reads them from
  array pieces instead: an LR window is a slice; the guide on the output grid is the guide
  sub-array covering the destination's footprint (plus a margin for the resampling
  kernel), put in an in-memory GeoTIFF and read through the *same* ``WarpedVRT`` onto the
  same target grid as the CLI (:func:`geosr.raster.io.guide_vrt`: same resampling, same alpha
  mask, same rounding to the guide's data type).
- **Graph.** One dask task per statistics read (:func:`geosr.pipeline.stats_reads`) gives
  the moments of its block; one task folds them in the pipeline's order into the plan's
  scene statistics (:func:`geosr.pipeline.with_stats`), so they are bit-identical to
  :func:`geosr.pipeline.compute_stats` on the files. In ``scene``/``hybrid`` mode one task
  then fits the scene network (:func:`geosr.pipeline.scene.fit_scene`) on random crops, each read
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
the CLI's: ``benchmarks/pipeline/xr_memory.py``): it computes the statistics' reads one
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

import math
from collections.abc import Sequence
from typing import Any

from geosr.errors import InputError, OptionError
from geosr.pipeline.auto import resolve as resolve_auto
from geosr.pipeline.config import RunConfig, SceneConfig, TilingConfig
from geosr.pipeline.mosaic import band_description
from geosr.pipeline.plan import make_plan, warn_partial_cover
from geosr.raster.io import provenance_tags
from geosr.xr.graph import build_graph
from geosr.xr.inputs import as_input


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
    and ``scene`` (a :class:`geosr.pipeline.scene.SceneConfig`) are those of
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


    src_lr = as_input(lr, "LR")
    src_g = as_input(guide, "guide")
    if guide_bands is None and src_g.info.count < 3:
        raise InputError(
            f"the guide DataArray has {src_g.info.count} band(s) but an RGB (or "
            "multispectral) guide of 3+ bands is expected; if this is the guide you mean, "
            f"pass guide_bands={list(range(1, src_g.info.count + 1))}"
        )
    scene = scene if scene is not None else SceneConfig(mode=mode)
    if scene.mode != mode and mode != "tile":
        raise OptionError(f"mode {mode!r} disagrees with scene.mode {scene.mode!r}")
    config = RunConfig(
        scale=scale, method=method, method_options=tuple(options.items()), lr_band=lr_band,
        guide_bands=guide_bands, nodata=nodata, guide_resampling=guide_resampling,
        scene=scene, tiling=tiling if tiling is not None else TilingConfig(),
    )
    config, _ = resolve_auto(src_lr.info, src_g.info, config)
    plan = make_plan(src_lr.info, src_g.info, config)
    warn_partial_cover(plan)
    data = build_graph(plan, src_lr, src_g, config.tiling.mosaic_block)
    g = plan.grid
    from rioxarray.rioxarray import affine_to_coords

    coords = affine_to_coords(g.transform, g.width, g.height, x_dim=src_lr.x_dim,
                              y_dim=src_lr.y_dim)
    attrs: dict[str, Any] = provenance_tags(**plan.provenance())
    attrs["long_name"] = band_description(plan)
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


