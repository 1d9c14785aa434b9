"""Tiny georeferenced rasters (real CRS, Affine) for the pipeline, grid and CLI tests.

Use the ``scene`` fixture in a test module with ``from ._geo import scene_fixture``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from affine import Affine

CRS = "EPSG:32633"
LR_PIXEL = 4.0
SCALE = 4
ORIGIN = (600000.0, 5340000.0)


def write_raster(
    path: Path | str,
    data: np.ndarray,
    transform: Affine | None,
    crs: str | None = CRS,
    nodata: float | None = None,
    **extra: Any,
) -> str:
    """Write ``data`` (band, row, col) or (row, col) as a GeoTIFF; return the path."""
    import rasterio

    data = np.asarray(data)
    if data.ndim == 2:
        data = data[None]
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": data.shape[2],
        "height": data.shape[1],
        "count": data.shape[0],
        "dtype": data.dtype.name,
        "nodata": nodata,
    }
    if crs is not None:
        profile["crs"] = crs
    if transform is not None:
        profile["transform"] = transform
    profile.update(extra)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return str(path)


def scene_arrays(rows: int = 36, cols: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """LR (rows, cols) float32 and an RGB guide (3, SCALE*rows, SCALE*cols) uint8."""
    from geosr.raster.example import make_scene

    s = make_scene(max(rows, cols), SCALE, seed)
    return s["lr"][:rows, :cols].copy(), s["rgb"][:, : rows * SCALE, : cols * SCALE].copy()


@pytest.fixture(name="scene")
def scene_fixture(tmp_path: Path) -> dict[str, Any]:
    """LR 36x40 at 4 m (nodata -9999, one nodata patch) and an RGB guide at 1 m, UTM 33N."""
    lr, rgb = scene_arrays()
    lr[3:7, 30:36] = -9999.0
    lr_t = Affine(LR_PIXEL, 0, ORIGIN[0], 0, -LR_PIXEL, ORIGIN[1])
    g_t = Affine(LR_PIXEL / SCALE, 0, ORIGIN[0], 0, -LR_PIXEL / SCALE, ORIGIN[1])
    lr_path = write_raster(tmp_path / "lr.tif", lr, lr_t, nodata=-9999.0)
    guide_path = write_raster(tmp_path / "guide.tif", rgb, g_t)
    lr_nan = np.where(lr == -9999.0, np.nan, lr).astype(np.float32)
    return {
        "lr": lr_path,
        "guide": guide_path,
        "lr_array": lr_nan,
        "guide_array": rgb.astype(np.float32),
        "lr_transform": lr_t,
        "guide_transform": g_t,
        "scale": SCALE,
        "dir": tmp_path,
    }


def shared_data_dir() -> Path | None:
    """``shared/data`` next to the repository (or /work/shared/data), if present."""
    here = Path(__file__).resolve().parents[1]
    for cand in (here.parent / "shared" / "data", Path("/work/shared/data")):
        if cand.is_dir():
            return cand
    return None
