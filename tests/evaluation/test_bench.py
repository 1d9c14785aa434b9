"""``geosr bench``: records per method (and mode), pooling, scoring, plot, report, errors."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from click.testing import CliRunner

from geosr.cli.main import cli
from geosr.evaluation import bench
from tests.geodata import shared_data_dir, write_raster

pytest.importorskip("matplotlib")

CRS = "EPSG:32633"
HR_T = Affine(1.0, 0, 600000.0, 0, -1.0, 5340000.0)
RECORD_KEYS = ("rmse", "mae", "ratio_to_bicubic", "seconds", "output_megapixels",
               "seconds_per_megapixel", "megapixels_per_second", "peak_rss_mb")


def _write_pairs(root: Path, rng: np.random.Generator) -> Path:
    """Two 32x32 (target, guide) pairs as .npz: a ramp with a step edge the guide shows."""
    root.mkdir()
    for k in range(2):
        yy, xx = np.mgrid[0:32, 0:32].astype(np.float32)
        target = 10 + 0.2 * yy + 6.0 * (xx > 12 + 4 * k)
        guide = np.stack([target / 20, (xx > 12 + 4 * k).astype(np.float32), yy / 32])
        guide = guide + rng.normal(0, 0.01, guide.shape).astype(np.float32)
        np.savez(root / f"p{k}.npz", target=target, guide=guide.astype(np.float32))
    return root


@pytest.fixture
def scene(tmp_path) -> dict[str, str]:
    """A 64x64 1 m DSM with a nodata patch (-9999) and its RGB guide on the same grid."""
    from geosr.raster.example import make_scene

    s = make_scene(16, 4, seed=3)
    dsm = s["dsm"].copy()
    dsm[:6, :10] = -9999.0
    return {"reference": write_raster(tmp_path / "dsm.tif", dsm, HR_T, crs=CRS, nodata=-9999.0),
            "guide": write_raster(tmp_path / "rgb.tif", s["rgb"], HR_T, crs=CRS),
            "dsm": dsm}


def _check_records(records: list[dict], expect: list[tuple[str, str | None]]) -> None:
    assert [(r["method"], r["mode"]) for r in records] == expect
    for r in records:
        assert all(math.isfinite(r[k]) and r[k] >= 0 for k in RECORD_KEYS), r
        assert r["peak_rss_mb"] > 10
        assert r["seconds_per_megapixel"] == pytest.approx(r["seconds"] / r["output_megapixels"])
    assert records[0]["method"] == "bicubic" and records[0]["ratio_to_bicubic"] == 1.0


def _check_png(path: Path) -> None:
    from PIL import Image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as im:
        im.verify()
        assert im.format == "PNG" and im.size[0] > 300


def test_bench_cli__folder_of_pairs(tmp_path, rng):
    data = _write_pairs(tmp_path / "pairs", rng)
    out, plot, rep = tmp_path / "b.json", tmp_path / "b.png", tmp_path / "rep"
    res = CliRunner().invoke(cli, ["bench", str(data), "-m", "guided-filter", "--json", str(out),
                                   "--plot", str(plot), "--report", str(rep), "-q"])
    assert res.exit_code == 0, res.output
    result = json.loads(out.read_text())
    assert "partial" not in result and result["kind"] == "pairs"
    _check_records(result["records"], [("bicubic", None), ("lanczos", None),
                                       ("guided-filter", None)])
    assert result["records"][0]["pairs"] == 2
    assert result["records"][0]["output_megapixels"] == pytest.approx(2 * 32 * 32 / 1e6)
    assert all(r["output_megapixels"] == 32 * 32 / 1e6 for r in result["rows"])
    _check_png(plot)
    page = (rep / "index.html").read_text()
    table = re.search(r'<table id="bench".*?</table>', page, re.S).group(0)
    assert table.count("<tr") == 1 + 3 and "guided-filter" in table
    assert 'id="summary"' in page  # the eval sections too, with a figure per pair
    assert "s/Mpx" in res.stdout and "guided-filter" in res.stdout


def test_bench_cli__georeferenced_scene(tmp_path, scene):
    out, plot, rep = tmp_path / "s.json", tmp_path / "s.png", tmp_path / "rep"
    res = CliRunner().invoke(cli, [
        "bench", scene["reference"], "--guide", scene["guide"], "-m", "guided-filter",
        "--json", str(out), "--plot", str(plot), "--report", str(rep), "-q"])
    assert res.exit_code == 0, res.output
    result = json.loads(out.read_text())
    assert result["kind"] == "scene" and result["lr_shape"] == [16, 16]
    _check_records(result["records"], [("bicubic", "tile"), ("lanczos", "tile"),
                                       ("guided-filter", "tile")])
    for r in result["records"]:
        assert r["output_megapixels"] == pytest.approx(64 * 64 / 1e6)
        assert r["valid_pixels"] == 64 * 64 - 6 * 10  # all but the reference's nodata
    _check_png(plot)
    page = (rep / "index.html").read_text()
    assert re.search(r'<table id="bench".*?</table>', page, re.S).group(0).count("<tr") == 4
    assert "pooled to LR 16x16" in page
    assert json.loads((rep / "result.json").read_text())["records"][2]["method"] == "guided-filter"


def test_pool_reference__nodata_aware_and_georeferenced(tmp_path):
    import rasterio

    hr = np.arange(6 * 9, dtype=np.float32).reshape(6, 9)
    hr[0, 0] = -1.0
    hr[3:6, 3:6] = -1.0
    ref = write_raster(tmp_path / "ref.tif", hr, HR_T, crs=CRS, nodata=-1.0)
    info = bench.pool_reference(ref, tmp_path / "lr.tif", 3)
    assert info["lr_shape"] == [2, 3] and info["reference_shape"] == [6, 9]
    with rasterio.open(tmp_path / "lr.tif") as src:
        assert src.transform == HR_T @ Affine.scale(3) and src.crs == CRS
        lr = src.read(1, masked=True)
    assert lr[0, 0] == pytest.approx(np.mean([1, 2, 9, 10, 11, 18, 19, 20]))  # nodata left out
    assert lr.mask[1, 1] and lr.mask.sum() == 1  # a block with no valid pixel is nodata
    assert lr[1, 2] == pytest.approx(hr[3:6, 6:9].mean())


def test_score_against_reference__offset_output_on_the_valid_overlap(tmp_path):
    ref = np.random.default_rng(0).normal(100, 5, (20, 24)).astype(np.float32)
    rp = write_raster(tmp_path / "ref.tif", ref, HR_T, crs=CRS)
    out = ref[4:20, 8:24] + 1.0
    out[0, 0] = np.nan
    op = write_raster(tmp_path / "out.tif", out, HR_T @ Affine.translation(8, 4), crs=CRS,
                      nodata=float("nan"))
    score = bench.score_against_reference(op, rp)
    assert score["rmse"] == pytest.approx(1.0, abs=1e-4) and score["valid_pixels"] == 16 * 16 - 1
    shifted = write_raster(tmp_path / "half.tif", out, HR_T @ Affine.translation(0.5, 0), crs=CRS)
    with pytest.raises(bench.InputError, match="not on the reference's grid"):
        bench.score_against_reference(shifted, rp)


@pytest.mark.parametrize(("args", "expect"), [
    (["-m", "srcnn"], "unknown method 'srcnn'; choose one of"),
    (["-m", "guided-filter", "--modes", "tile,fast"], "unknown mode 'fast'"),
    (["--set", "guided-filter.eps"], "METHOD.OPTION=VALUE"),
    (["--plot", "bench.jpg"], "must be a .png file"),
    (["--crop", "32"], "apply to a folder of pairs"),
])
def test_bench_cli__bad_options_are_usage_errors(scene, args, expect):
    res = CliRunner().invoke(cli, ["bench", scene["reference"], "--guide", scene["guide"], *args])
    assert res.exit_code == 2 and expect in res.output, res.output


def test_bench_cli__geotiff_without_guide_names_the_fix(scene):
    res = CliRunner().invoke(cli, ["bench", scene["reference"], "-m", "guided-filter"])
    assert res.exit_code == 2 and "pass --guide GUIDE.tif" in res.output


def test_bench_cli__scene_options_on_a_folder_are_usage_errors(tmp_path, rng):
    data = _write_pairs(tmp_path / "pairs", rng)
    res = CliRunner().invoke(cli, ["bench", str(data), "-m", "srcnn"])
    assert res.exit_code == 2 and "unknown method" in res.output
    res = CliRunner().invoke(cli, ["bench", str(data), "--modes", "scene", "--tile-size", "64"])
    assert res.exit_code == 2 and "--modes, --tile-size apply to a GeoTIFF scene" in res.output


def test_bench_cli__scene_mode_needs_a_learned_method(scene):
    res = CliRunner().invoke(cli, ["bench", scene["reference"], "--guide", scene["guide"],
                                   "-m", "guided-filter", "--modes", "tile,scene"])
    assert res.exit_code == 2 and "needs a learned method" in res.output


def test_bench_scene__real_dsm_matches_the_pipeline_benchmark(tmp_path):
    d = shared_data_dir()
    if d is None or not (d / "geo_mashhad_elevation1_pleiades").is_dir():
        pytest.skip("shared/data/geo_mashhad_elevation1_pleiades is not available")
    m = d / "geo_mashhad_elevation1_pleiades"
    result = bench.bench_scene(m / "dsm_west_1m.tif", m / "ortho_rgb_west_0p5m.tif", {}, 4)
    rec, lanczos = result["records"]
    # benchmarks/pipeline/results/pipeline_mashhad.json: bicubic 0.0556 m through geosr dem-sr
    assert rec["rmse"] == pytest.approx(0.0556, abs=5e-4) and rec["valid_pixels"] == 500 * 320
    # gdalwarp -r lanczos of the pooled DSM onto the 1 m grid: 0.0495 m
    assert lanczos["method"] == "lanczos" and lanczos["rmse"] == pytest.approx(0.0495, abs=5e-4)
    assert rec["ratio_to_lanczos"] == pytest.approx(rec["rmse"] / lanczos["rmse"])
    assert rec["best_classical"] == lanczos["best_classical"] == "lanczos"
    assert 0 < lanczos["slope_rmse_deg"] < rec["slope_rmse_deg"]
