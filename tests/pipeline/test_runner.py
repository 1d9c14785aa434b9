from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from affine import Affine

from geosr import pipeline, super_resolve
from geosr.errors import InputError
from geosr.normalize import BandStats
from geosr.pipeline.config import OutputConfig, RunConfig, TilingConfig
from geosr.raster.tiling import TileLayout
from tests.geodata import write_raster


def read(path: str | Path) -> tuple[np.ndarray, Any]:
    with rasterio.open(path) as src:
        a = src.read(1, masked=True)
        return a.filled(np.nan).astype(np.float32), src.profile | {"tags": src.tags(),
                                                                     "desc": src.descriptions}


@pytest.mark.parametrize("method", ["bicubic", "guided-filter"])
def test_run__tiled_equals_untiled(scene: dict[str, Any], method: str) -> None:
    out = scene["dir"] / f"out_{method}.tif"
    summary = pipeline.run(scene["lr"], scene["guide"], out, RunConfig(scale=4, method=method, tiling=TilingConfig(tile_size=12, overlap=3), output=OutputConfig(cog=False)))
    assert summary["tiles"]["total"] >= 12
    got, _ = read(out)
    ref = super_resolve(scene["lr_array"], scene["guide_array"], 4, method)[0]
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    ok = np.isfinite(ref)
    assert np.abs(got[ok] - ref[ok]).max() < 1e-4


def test_run__georeferencing_and_nodata(scene: dict[str, Any]) -> None:
    out = scene["dir"] / "out.tif"
    pipeline.run(scene["lr"], scene["guide"], out, RunConfig(scale=4, method="bicubic"))
    with rasterio.open(out) as dst, rasterio.open(scene["lr"]) as src:
        assert dst.crs == src.crs
        assert dst.transform == src.transform @ Affine.scale(1 / 4)
        assert (dst.height, dst.width) == (src.height * 4, src.width * 4)
        assert dst.nodata == -9999.0 and dst.dtypes[0] == "float32"
        a = dst.read(1)
    # the LR nodata patch (rows 3:7, cols 30:36) is nodata over its HR footprint only
    assert (a[12:28, 120:144] == -9999.0).all()
    assert (a != -9999.0).sum() == a.size - 16 * 24


def test_run__cog_tags_and_permissions(scene: dict[str, Any]) -> None:
    from rio_cogeo.cogeo import cog_validate

    out = scene["dir"] / "out.tif"
    pipeline.run(scene["lr"], scene["guide"], out, RunConfig(scale=4, method="guided-filter", method_options={"eps": 0.02}))
    valid, errors, _ = cog_validate(str(out))
    assert valid, errors
    _, prof = read(out)
    tags = prof["tags"]
    assert tags["GEOSR_METHOD"] == "guided-filter" and tags["GEOSR_SCALE"] == "4"
    assert json.loads(tags["GEOSR_OPTIONS"]) == {"eps": 0.02, "radius": 4}  # radius: the scale
    assert tags["GEOSR_LR"] == scene["lr"] and tags["GEOSR_GUIDE"] == scene["guide"]
    assert "GEOSR_VERSION" in tags
    assert prof["desc"][0] and "guided-filter" in prof["desc"][0]
    assert prof["compress"] in ("deflate", "zstd")
    assert os.stat(out).st_mode & 0o044  # not a 0600 temp-file mode
    assert not list(scene["dir"].glob(".out.tif*")) and not (scene["dir"] / "out.tif.tiles").exists()


def test_run__guide_in_another_crs(scene: dict[str, Any]) -> None:
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    src_arr = scene["guide_array"].astype(np.uint8)
    h, w = src_arr.shape[1:]
    with rasterio.open(scene["guide"]) as g:
        bounds = g.bounds
    dst_t, dw, dh = calculate_default_transform(
        "EPSG:32633", "EPSG:4326", w, h, *bounds, resolution=(0.25 / 111000 * 1.5, 0.25 / 111000)
    )
    dst = np.zeros((3, dh, dw), np.uint8)
    reproject(src_arr, dst, src_transform=scene["guide_transform"], src_crs="EPSG:32633",
              dst_transform=dst_t, dst_crs="EPSG:4326", resampling=Resampling.cubic)
    geo_guide = write_raster(scene["dir"] / "guide_4326.tif", dst, dst_t, crs="EPSG:4326")
    outs = {}
    for name, guide in (("native", scene["guide"]), ("4326", geo_guide)):
        outs[name] = scene["dir"] / f"{name}.tif"
        pipeline.run(scene["lr"], guide, outs[name], RunConfig(scale=4, method="guided-filter", output=OutputConfig(cog=False)))
    a, pa = read(outs["native"])
    b, pb = read(outs["4326"])
    assert pa["transform"] == pb["transform"] and a.shape == b.shape
    assert pb["crs"] == pa["crs"]
    ok = np.isfinite(a) & np.isfinite(b)
    bicubic = super_resolve(scene["lr_array"], scene["guide_array"], 4, "bicubic")[0]
    diff = np.sqrt(np.nanmean((a - b)[ok] ** 2))
    gain = np.sqrt(np.nanmean((a - bicubic)[ok] ** 2))
    # the resampled guide changes the result by far less than the guide's contribution
    assert diff < 0.25 * gain, (diff, gain)


def test_run__guide_subset_gives_intersection_grid(scene: dict[str, Any]) -> None:
    g = scene["guide_array"][:, 10:90, 21:141].astype(np.uint8)  # 2.5 .. 22.5 LR px
    t = scene["guide_transform"] @ Affine.translation(21, 10)
    guide = write_raster(scene["dir"] / "sub.tif", g, t)
    out = scene["dir"] / "sub_out.tif"
    s = pipeline.run(scene["lr"], guide, out, RunConfig(scale=4, method="bicubic", output=OutputConfig(cog=False)))
    assert s["output_grid"]["lr_window"] == {"row0": 3, "col0": 6, "row1": 22, "col1": 35}
    with rasterio.open(out) as dst:
        assert dst.transform == scene["lr_transform"] @ Affine.translation(6, 3) @ Affine.scale(
            0.25
        )


def test_compute_stats__equal_full_image_stats(scene: dict[str, Any]) -> None:
    plan = pipeline.compute_stats(
        pipeline.make_plan(scene["lr"], scene["guide"], RunConfig(scale=4, method="bicubic"))
    )
    lr = BandStats.from_array(scene["lr_array"][None])
    g = BandStats.from_array(scene["guide_array"])
    np.testing.assert_allclose(plan.lr_stats.mean, lr.mean, rtol=1e-12)
    np.testing.assert_allclose(plan.lr_stats.std, lr.std, rtol=1e-10)
    np.testing.assert_allclose(plan.guide_stats.mean, g.mean, rtol=1e-12)
    np.testing.assert_allclose(plan.guide_stats.std, g.std, rtol=1e-10)


def test_compute_stats__decimated(scene: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline.stats, "STATS_FULL_PIXELS", 200)
    plan = pipeline.compute_stats(
        pipeline.make_plan(scene["lr"], scene["guide"], RunConfig(scale=4, method="bicubic"))
    )
    lr = BandStats.from_array(scene["lr_array"][None])
    g = BandStats.from_array(scene["guide_array"])
    np.testing.assert_allclose(plan.lr_stats.mean, lr.mean, rtol=0.02)
    np.testing.assert_allclose(plan.lr_stats.std, lr.std, rtol=0.3)
    np.testing.assert_allclose(plan.guide_stats.mean, g.mean, rtol=0.2)


def test_run__empty_tiles_skipped(tmp_path: Path, scene: dict[str, Any]) -> None:
    lr = np.nan_to_num(scene["lr_array"], nan=-9999.0)
    lr[:, :24] = -9999.0
    path = write_raster(tmp_path / "half.tif", lr, scene["lr_transform"], nodata=-9999.0)
    out = tmp_path / "half_out.tif"
    s = pipeline.run(path, scene["guide"], out, RunConfig(scale=4, method="bicubic", tiling=TilingConfig(tile_size=8, overlap=2), output=OutputConfig(cog=False)))
    assert s["tiles"]["skipped"] > 0 and s["tiles"]["done"] > 0
    a, _ = read(out)
    assert np.isnan(a[:, : 24 * 4]).all() and np.isfinite(a[:, 25 * 4 :]).any()


def test_run__all_nodata(tmp_path: Path, scene: dict[str, Any]) -> None:
    lr = np.full((36, 40), -9999.0, np.float32)
    path = write_raster(tmp_path / "empty.tif", lr, scene["lr_transform"], nodata=-9999.0)
    with pytest.raises(InputError, match="no valid pixel"):
        pipeline.run(path, scene["guide"], tmp_path / "x.tif", RunConfig(scale=4, method="bicubic"))
    assert not (tmp_path / "x.tif").exists()


def test_run__nothing_left_on_failure(scene: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(plan: Any, tile: Any) -> None:
        raise RuntimeError("method exploded")

    monkeypatch.setattr(pipeline.tiles, "predict_tile", boom)
    before = set(os.listdir(scene["dir"]))
    with pytest.raises(RuntimeError, match="exploded"):
        pipeline.run(scene["lr"], scene["guide"], scene["dir"] / "f.tif", RunConfig(scale=4, method="bicubic"))
    assert set(os.listdir(scene["dir"])) == before


def test_run__keep_tiles_reused(scene: dict[str, Any]) -> None:
    out = scene["dir"] / "k.tif"
    cfg = OutputConfig(cog=False, keep_tiles=True, overwrite=True)
    tiling = TilingConfig(tile_size=16, overlap=4)
    s1 = pipeline.run(scene["lr"], scene["guide"], out, RunConfig(scale=4, method="bicubic", tiling=tiling, output=cfg))
    assert (scene["dir"] / "k.tif.tiles" / "manifest.json").exists()
    s2 = pipeline.run(scene["lr"], scene["guide"], out, RunConfig(scale=4, method="bicubic", tiling=tiling, output=cfg))
    assert s2["tiles"]["reused"] == s1["tiles"]["done"] > 0 and s2["tiles"]["done"] == 0


def test_tiling_config__validation() -> None:
    from geosr.errors import OptionError

    with pytest.raises(OptionError, match="at least twice the overlap.*--tile-size 20"):
        TilingConfig(tile_size=12, overlap=10)
    assert TilingConfig().resolve(deterministic=True, halo=5, scale=4)[:2] == (128, 8)
    assert TilingConfig().resolve(deterministic=True, halo=5, scale=2)[:2] == (256, 8)
    assert TilingConfig().resolve(deterministic=False, halo=12)[:2] == (128, 12)


def test_plan__to_dict_is_json(scene: dict[str, Any]) -> None:
    plan = pipeline.make_plan(scene["lr"], scene["guide"], RunConfig(scale=4, method="guided-filter", tiling=TilingConfig(tile_size=16, overlap=4)))
    d = json.loads(json.dumps(plan.to_dict()))
    assert d["tiling"]["tiles"] == len(plan.layout) == 9
    assert d["output_grid"]["crs"] == "EPSG:32633" and d["guide"]["resampling"] == "bilinear"
    assert isinstance(plan.layout, TileLayout)


def _seam_ratio(a: np.ndarray, spans: Any, axis: int) -> float:
    """Mean gradient magnitude across ``axis`` on the blended overlaps / away from them."""
    grad = np.abs(np.diff(a, axis=axis))
    prof = grad.mean(axis=1 - axis)  # mean gradient per column (axis=1) or row
    seam = np.zeros(prof.size, bool)
    for (_, e0), (s1, _) in zip(spans, spans[1:], strict=False):
        seam[s1 * 4 : e0 * 4] = True  # the blended overlaps
    away = ~np.convolve(seam, np.ones(17), mode="same").astype(bool)
    return float(prof[seam].mean() / prof[away].mean())


@pytest.mark.slow
def test_run__mmsr_seams(tmp_path: Path) -> None:
    """mmsr: gradient magnitude on tile seams within 10% of that elsewhere.

    The overlaps and the rest of the scene hold different terrain (the true surface has
    seam/elsewhere ratios of 0.85 across columns and 1.59 across rows on this layout), so
    the ratio of the output is compared with that of the true surface: a seam that the
    blending smooths or sharpens moves it away from the truth's (measured with
    benchmarks/pipeline/seam_blend.py: 0.98 and 0.94 of the truth's)."""
    from geosr.raster.example import write_example

    p = write_example(tmp_path, size=64)
    out = tmp_path / "mmsr.tif"
    tiling = TilingConfig(tile_size=32, overlap=8)
    s = pipeline.run(p["lr"], p["guide"], out, RunConfig(scale=4, method="mmsr", method_options={"iterations": 200, "preset": "dem"}, tiling=tiling))
    a, _ = read(out)
    ref, _ = read(p["reference"])
    plan = pipeline.make_plan(p["lr"], p["guide"], RunConfig(scale=4, method="mmsr", tiling=tiling))
    assert s["tiles"]["done"] == len(plan.layout) > 1
    for axis, spans in ((1, plan.layout.col_spans), (0, plan.layout.row_spans)):
        rel = _seam_ratio(a, spans, axis) / _seam_ratio(ref, spans, axis)
        assert abs(rel - 1) < 0.10, (axis, rel)


def test_run__leaves_no_tile_threads_behind(scene: dict[str, Any]) -> None:
    """The tiles' threads end with the run (dask keeps its own pools' threads alive; a thread
    that ran torch keeps its OpenMP team and slows the next fits of the process)."""
    import threading

    before = {t.ident for t in threading.enumerate()}
    for i in range(2):
        pipeline.run(scene["lr"], scene["guide"], scene["dir"] / f"out{i}.tif",
                     RunConfig(scale=4, method="guided-filter",
                               tiling=TilingConfig(tile_size=12, overlap=3, workers=2),
                               output=OutputConfig(cog=False)))
    left = [t.name for t in threading.enumerate() if t.ident not in before]
    assert left == []
