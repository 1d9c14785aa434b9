"""The ``detrend`` option: the LR's plane is removed before normalising, added back after."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pytest
import rasterio
import rioxarray

import geosr
import geosr.pipeline.stats
import geosr.pipeline.tiles
from geosr import pipeline, super_resolve
from geosr.models.mmsr import MMSR
from geosr.normalize import Plane, PlaneSums
from geosr.pipeline.config import OutputConfig, RunConfig, TilingConfig
from tests.geodata import write_raster

FAST = {"iterations": 1, "width": 4}


def lstsq_plane(z: np.ndarray) -> tuple[np.ndarray, float]:
    """``(c, a, b)`` of ``z ~ c + a col + b row`` at pixel centres, and the residual's std."""
    rows, cols = np.indices(z.shape) + 0.5
    ok = np.isfinite(z)
    a = np.stack([np.ones(ok.sum()), cols[ok], rows[ok]], axis=1)
    coef, *_ = np.linalg.lstsq(a, z[ok], rcond=None)
    return coef, float(np.std(z[ok] - a @ coef))


def tilted(scene: dict[str, Any], tmp: Path) -> tuple[Path, np.ndarray]:
    """The scene's LR on a steep slope (100 m across, 25 m down), nodata kept."""
    lr = scene["lr_array"]
    rows, cols = np.indices(lr.shape) + 0.5
    z = lr + 2.5 * cols - 0.7 * rows
    path = write_raster(tmp / "tilted.tif", np.nan_to_num(z, nan=-9999.0),
                        scene["lr_transform"], nodata=-9999.0)
    return path, z


def test_plane_sums__fit_is_the_least_squares_plane() -> None:
    rng = np.random.default_rng(1)
    z = 40.0 + 0.3 * (np.arange(30) + 0.5)[None] - 0.2 * (np.arange(20) + 0.5)[:, None]
    z = z + rng.normal(size=z.shape)
    z[4:7, 3:9] = np.nan
    sums = PlaneSums()  # two blocks of rows, as the statistics' reads come
    for r0, r1 in ((0, 8), (8, 20)):
        sums.add(PlaneSums.partial(z[r0:r1], np.arange(r0, r1) + 0.5, np.arange(30) + 0.5))
    plane, spread = sums.fit()
    coef, std = lstsq_plane(z)
    got = plane.on_grid(0, 0, *z.shape)[0]
    rows, cols = np.indices(z.shape) + 0.5
    np.testing.assert_allclose(got, coef[0] + coef[1] * cols + coef[2] * rows, atol=1e-9)
    assert spread == pytest.approx(std, rel=1e-9)
    # the output's pixels: the mean of each scale x scale block is the LR pixel's value
    fine = plane.on_grid(0, 0, 20 * 4, 30 * 4, 0.25)[0]
    np.testing.assert_allclose(fine.reshape(20, 4, 30, 4).mean(axis=(1, 3)), got, atol=1e-9)


def test_plane_sums__no_plane_through_a_line() -> None:
    sums = PlaneSums()
    sums.add(PlaneSums.partial(np.arange(5.0)[None], np.array([0.5]), np.arange(5) + 0.5))
    assert sums.fit() is None


def test_compute_stats__detrend_fits_the_lr_plane(scene: dict[str, Any], tmp_path: Path) -> None:
    path, z = tilted(scene, tmp_path)
    config = RunConfig(scale=4, method="mmsr", method_options={**FAST, "detrend": True})
    plan = pipeline.compute_stats(pipeline.make_plan(path, scene["guide"], config))
    coef, std = lstsq_plane(z)
    rows, cols = np.indices(z.shape) + 0.5
    np.testing.assert_allclose(plan.lr_plane.on_grid(0, 0, *z.shape)[0],
                               coef[0] + coef[1] * cols + coef[2] * rows, atol=1e-6)
    assert plan.lr_stats.mean == (0.0,)
    assert plan.lr_stats.std[0] == pytest.approx(std, rel=1e-6)  # the file holds float32
    assert "lr_plane" in plan.to_dict()["stats"]
    off = pipeline.compute_stats(pipeline.make_plan(path, scene["guide"], dataclasses.replace(
        config, method_options={**FAST, "detrend": False})))
    assert off.lr_plane is None and off.lr_stats.std[0] > 5 * std


def test_compute_stats__detrend_on_decimated_reads(scene: dict[str, Any], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    path, z = tilted(scene, tmp_path)
    monkeypatch.setattr(pipeline.stats, "STATS_FULL_PIXELS", 200)
    config = RunConfig(scale=4, method="mmsr", method_options={**FAST, "detrend": True})
    plan = pipeline.compute_stats(pipeline.make_plan(path, scene["guide"], config))
    coef, _ = lstsq_plane(z)
    p = plan.lr_plane
    assert p.a == pytest.approx(coef[1], rel=0.05) and p.b == pytest.approx(coef[2], rel=0.1)


def zero_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every tile's prediction is 0 in normalised units (the statistics' mean)."""
    def predict(plan: Any, x: np.ndarray, guide: np.ndarray, valid: np.ndarray) -> np.ndarray:
        return np.zeros((1, *guide.shape[-2:]), np.float32)

    monkeypatch.setattr(geosr.pipeline.tiles, "predict_normalised", predict)


@pytest.mark.parametrize("mode", ["tile", "scene"])
def test_run__detrend_adds_the_plane_back(scene: dict[str, Any], tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    from geosr.pipeline.config import SceneConfig

    path, z = tilted(scene, tmp_path)
    zero_model(monkeypatch)
    out = tmp_path / "out.tif"
    config = RunConfig(scale=4, method="mmsr", method_options={**FAST, "detrend": True},
                       scene=SceneConfig(mode=mode, iterations=2, crop=12),
                       tiling=TilingConfig(tile_size=12, overlap=3), output=OutputConfig(cog=False))
    pipeline.run(path, scene["guide"], out, config)
    with rasterio.open(out) as dst:
        hr = dst.read(1, masked=True).filled(np.nan)
    coef, _ = lstsq_plane(z)
    expect = Plane(*coef).on_grid(0, 0, z.shape[0] * 4, z.shape[1] * 4, 0.25)[0]
    ok = np.isfinite(hr)
    assert ok.sum() == np.isfinite(np.repeat(np.repeat(z, 4, 0), 4, 1)).sum()
    np.testing.assert_allclose(hr[ok], expect[ok], atol=2e-3)  # float32 heights of ~100 m


def test_super_resolve__detrend_adds_the_plane_back(scene: dict[str, Any],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    rows, cols = np.indices(scene["lr_array"].shape) + 0.5
    z = (scene["lr_array"] + 2.5 * cols - 0.7 * rows).astype(np.float32)

    def zeros(self: Any, x: np.ndarray, guide: np.ndarray, scale: int, **kw: Any) -> np.ndarray:
        return np.zeros((1, *guide.shape[-2:]), np.float32)

    monkeypatch.setattr(MMSR, "__call__", zeros)
    hr = super_resolve(z, scene["guide_array"], 4, "mmsr", detrend=True, **FAST)[0]
    coef, _ = lstsq_plane(z)
    expect = Plane(*coef).on_grid(0, 0, z.shape[0] * 4, z.shape[1] * 4, 0.25)[0]
    ok = np.isfinite(hr)
    np.testing.assert_allclose(hr[ok], expect[ok], atol=2e-3)
    # without the option the zero prediction is the LR's mean everywhere
    flat = super_resolve(z, scene["guide_array"], 4, "mmsr", **FAST)[0]
    np.testing.assert_allclose(flat[ok], np.nanmean(z), rtol=1e-5)


def test_super_resolve_xr__lazy_statistics_fit_the_same_plane(scene: dict[str, Any],
                                                             tmp_path: Path) -> None:
    path, _ = tilted(scene, tmp_path)
    config = RunConfig(scale=4, method="mmsr", method_options={**FAST, "detrend": True})
    ref = pipeline.compute_stats(pipeline.make_plan(path, scene["guide"], config))
    hr = geosr.super_resolve_xr(rioxarray.open_rasterio(path, chunks=True, masked=True),
                                rioxarray.open_rasterio(scene["guide"], chunks=True), 4,
                                method="mmsr", detrend=True, **FAST)
    graph = dict(hr.data.__dask_graph__())
    key = next(k for k in graph if str(k).startswith("geosr-stats-") and str(k).count("-") == 2)
    lazy = dask.get(graph, key)
    assert lazy.lr_plane == ref.lr_plane and lazy.lr_stats == ref.lr_stats


def test_scene_crops__are_detrended(scene: dict[str, Any], tmp_path: Path) -> None:
    from geosr.pipeline.config import SceneConfig
    from geosr.pipeline.scene import sample_crops

    rows, cols = np.indices(scene["lr_array"].shape) + 0.5
    plane = (100.0 + 2.5 * cols - 0.7 * rows).astype(np.float32)  # a plane, nothing else
    path = write_raster(tmp_path / "plane.tif", plane, scene["lr_transform"], nodata=-9999.0)
    cfg = SceneConfig(mode="scene", crop=12, pool=4)

    def crops(detrend: bool) -> list[np.ndarray]:
        config = RunConfig(scale=4, method="mmsr", method_options={**FAST, "detrend": detrend})
        plan = pipeline.compute_stats(pipeline.make_plan(path, scene["guide"], config))
        return [lr for lr, _, _ in sample_crops(plan, cfg, seed=0)]

    assert max(np.abs(c).max() for c in crops(True)) < 1e-3  # the plane is all there is
    assert max(np.abs(c).max() for c in crops(False)) > 0.5
