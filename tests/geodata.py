"""Tiny georeferenced rasters (real CRS, Affine) for the pipeline, grid and CLI tests.

The ``scene`` fixture (``tests/conftest.py``) writes one such scene per test.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
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

_CANDIDATES = [
    os.environ.get("GEOSR_SHARED_DATA", ""),
    str(Path(__file__).resolve().parents[2] / "shared" / "data"),
    "/work/shared/data",
]


def shared_data_dir() -> Path | None:
    """``../shared/data`` next to the repository (or $GEOSR_SHARED_DATA), if present."""
    for c in _CANDIDATES:
        if c and Path(c).is_dir():
            return Path(c)
    return None
