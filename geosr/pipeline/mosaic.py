"""The mosaic: blend stored tiles into output blocks and write the GeoTIFF."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from geosr.pipeline.config import OutputConfig
from geosr.pipeline.plan import Plan
from geosr.raster.creation import gtiff_options
from geosr.raster.grid import Window
from geosr.raster.io import gdal_env, output_profile, provenance_tags
from geosr.raster.tiling import axis_weight, blocks

logger = logging.getLogger(__name__)


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


def band_description(plan: Plan) -> str:
    desc = plan.lr.descriptions[plan.lr_band - 1] if plan.lr.descriptions else None
    base = desc or f"{Path(plan.lr.path).stem} band {plan.lr_band}"
    return f"{base} (geosr {plan.method} x{plan.scale})"


def write_mosaic(
    plan: Plan, store: Any, path: Path, output: OutputConfig, mosaic_block_px: int = 1024,
    extra_tags: dict[str, str] | None = None,
) -> None:
    """Write the blended output block by block into a tiled float32 GeoTIFF at ``path``
    (``extra_tags``: more dataset tags, e.g. the self-check's)."""
    import rasterio


    # with a COG to follow, the options are the COG driver's: keep those GTiff takes too
    co = (gtiff_options(output.creation_options) if output.cog
          else dict(output.creation_options))
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
            **provenance_tags(**plan.provenance()),
            **(extra_tags or {}),
        )
        dst.set_band_description(1, band_description(plan))
        unit = plan.lr.units[plan.lr_band - 1] if plan.lr.units else None
        if unit:
            dst.set_band_unit(1, unit)


