"""Shared fixtures: tiny seeded arrays, a tiny georeferenced scene, the path to
../shared/data when present."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from affine import Affine

from tests.geodata import LR_PIXEL, ORIGIN, SCALE, scene_arrays, shared_data_dir, write_raster


def pytest_configure(config: pytest.Config) -> None:
    """Keep the suite out of the user's cache: auto mode's cost model, timed while the
    tests load the machine, would otherwise be reused by the user's next real run."""
    config.stash[_OLD_CACHE] = os.environ.get("XDG_CACHE_HOME")
    config.stash[_TEST_CACHE] = tempfile.mkdtemp(prefix="geosr-test-cache-")
    os.environ["XDG_CACHE_HOME"] = config.stash[_TEST_CACHE]


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(config.stash.get(_TEST_CACHE, ""), ignore_errors=True)
    old = config.stash.get(_OLD_CACHE, None)
    if old is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = old


_OLD_CACHE = pytest.StashKey[str | None]()
_TEST_CACHE = pytest.StashKey[str]()


@pytest.fixture
def shared_data() -> Path:
    d = shared_data_dir()
    if d is None:
        pytest.skip("../shared/data is not available on this machine")
    return d


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def tiny_pair(rng):
    """A smooth LR (1, 8, 10) with a step edge and a matching 3-band guide at x4."""
    scale = 4
    yy, xx = np.mgrid[0:32, 0:40].astype(np.float32)
    hr = 10 + 0.1 * xx + 5.0 * (xx > 18)
    guide = np.stack([hr / 20, (xx > 18).astype(np.float32), yy / 32]) + rng.normal(
        0, 0.01, (3, 32, 40)
    ).astype(np.float32)
    lr = hr.reshape(8, scale, 10, scale).mean(axis=(1, 3))[None]
    return lr.astype(np.float32), guide.astype(np.float32), scale

@pytest.fixture
def scene(tmp_path: Path) -> dict[str, Any]:
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
