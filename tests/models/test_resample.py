"""lanczos and cubic are GDAL's: the method on arrays, and the pipeline on a raster, give
what ``rasterio.warp.reproject`` gives."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.warp import Resampling, reproject

from geosr import get_method, super_resolve
from geosr.pipeline import RunConfig, TilingConfig, run
from tests.geodata import CRS


def _gdal(lr: np.ndarray, scale: int, kernel: str) -> np.ndarray:
    h, w = lr.shape
    out = np.full((h * scale, w * scale), np.nan, np.float32)
    src_t = Affine(scale, 0, 500.0, 0, -scale, 900.0)
    reproject(lr, out, src_transform=src_t, src_crs=CRS, src_nodata=np.nan,
              dst_transform=Affine(1, 0, 500.0, 0, -1, 900.0), dst_crs=CRS, dst_nodata=np.nan,
              resampling=getattr(Resampling, kernel))
    return out


@pytest.mark.parametrize("kernel", ["lanczos", "cubic"])
def test_method_equals_rasterio_reproject(kernel: str, rng: np.random.Generator) -> None:
    lr = rng.normal(100, 5, (13, 17)).astype(np.float32)
    lr[4, 6] = np.nan  # nodata: GDAL leaves its footprint empty and renormalises around it
    got = super_resolve(lr[None], np.zeros((3, 52, 68), np.float32), 4, method=kernel)[0]
    want = _gdal(lr, 4, kernel)
    assert np.array_equal(got, want, equal_nan=True)
    assert np.isnan(got[16:20, 24:28]).all() and np.isfinite(got[:16]).all()
    assert not np.array_equal(got, super_resolve(lr[None], np.zeros((3, 52, 68), np.float32), 4,
                                                 method="bicubic")[0], equal_nan=True)


def test_method_ignores_the_guide(rng: np.random.Generator) -> None:
    lr = rng.normal(size=(1, 6, 7)).astype(np.float32)
    m = get_method("lanczos")
    a = m(lr, rng.normal(size=(3, 24, 28)).astype(np.float32), 4)
    b = m(lr, np.zeros((3, 24, 28), np.float32), 4)
    assert np.array_equal(a, b) and not get_method("lanczos").normalised


@pytest.mark.parametrize("kernel", ["lanczos", "cubic"])
def test_pipeline_tiles_equal_one_whole_warp(kernel: str, scene: dict) -> None:
    """Small tiles with the method's halo give exactly gdalwarp's output of the whole LR."""
    out = scene["dir"] / f"{kernel}.tif"
    run(scene["lr"], scene["guide"], out,
        RunConfig(scale=4, method=kernel, tiling=TilingConfig(tile_size=10, overlap=4)))
    with rasterio.open(out) as o, rasterio.open(scene["lr"]) as src:
        got = o.read(1, masked=True).filled(np.nan)
        want = np.full(got.shape, np.nan, np.float32)
        reproject(src.read(1), want, src_transform=src.transform, src_crs=src.crs,
                  src_nodata=src.nodata, dst_transform=o.transform, dst_crs=o.crs,
                  dst_nodata=np.nan, resampling=getattr(Resampling, kernel))
    assert np.array_equal(got, want, equal_nan=True)
    assert np.isfinite(got).mean() > 0.9




@pytest.mark.parametrize("kernel", ["lanczos", "cubic"])
@pytest.mark.parametrize("pattern", ["island", "stripes", "single"])
def test_no_valid_lr_pixel_is_lost_next_to_nodata(kernel: str, pattern: str) -> None:
    """GDAL's lanczos leaves valid islands under 5x5 LR pixels, and valid pixels between
    nodata stripes, without data; geosr fills them (GDAL's cubic) and keeps GDAL's values
    everywhere else."""
    lr = np.full((12, 14), np.nan, np.float32)
    if pattern == "island":
        lr[5:8, 6:9] = 100 + np.arange(9, dtype=np.float32).reshape(3, 3)
    elif pattern == "stripes":
        lr[:] = 100 + np.arange(14, dtype=np.float32)
        lr[:, ::2] = np.nan
    else:
        lr[6, 7] = 42.0
    got = super_resolve(lr[None], np.zeros((3, 48, 56), np.float32), 4, method=kernel)[0]
    gdal = _gdal(lr, 4, kernel)
    valid = np.repeat(np.repeat(np.isfinite(lr), 4, axis=0), 4, axis=1)
    assert np.array_equal(np.isfinite(got), valid)  # nodata exactly where the LR's is
    kept = np.isfinite(gdal)
    assert np.array_equal(got[kept], gdal[kept])  # GDAL's own values where it wrote any
    filled = valid & ~kept
    if kernel == "lanczos":
        assert filled.any()  # GDAL did drop some: the case tests the fill
        cubic = _gdal(lr, 4, "cubic")
        assert np.array_equal(got[filled], cubic[filled])
    lo, hi = np.nanmin(lr), np.nanmax(lr)
    assert lo - (hi - lo) <= got[valid].min() and got[valid].max() <= hi + (hi - lo)
