from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner

from geosr.cli.main import cli
from tests.geodata import shared_data_dir, write_raster


def invoke(*args: Any) -> Any:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def base_args(scene: dict[str, Any], out: Path | str, **over: Any) -> list[Any]:
    kw = {"--lr": scene["lr"], "--guide": scene["guide"], "--scale": 4,
          "--method": "bicubic", "-o": out}
    kw.update(over)
    args: list[Any] = []
    for k, v in kw.items():
        if v is not None:
            args += [k, v]
    return args + ["-q"]


def assert_clean_failure(result: Any, folder: Path, before: set[str], *needles: str,
                         code: int = 2) -> None:
    assert result.exit_code == code, result.output
    text = " ".join(result.output.lower().split())
    for n in needles:
        assert n.lower() in text, (n, result.output)
    assert set(os.listdir(folder)) == before, "files left behind"


# -- success paths -----------------------------------------------------------------------
def test_sr__json_summary(scene: dict[str, Any]) -> None:
    out = scene["dir"] / "out.tif"
    r = invoke("sr", *base_args(scene, out, **{"--method": "guided-filter"}), "--json",
               "--tile-size", 16, "--overlap", 4, "--iterations", 50, "--seed", 1)
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["tiles"]["total"] == 9 and s["tiles"]["done"] == 9
    assert s["options"] == {} and {"tiles", "mosaic", "total"} <= set(s["seconds"])
    assert out.exists()


def test_dem_sr__preset_and_options_filtered(scene: dict[str, Any], monkeypatch: Any) -> None:
    seen: dict[str, Any] = {}
    from geosr.cli import sr

    real = sr.run

    def spy(lr: Any, guide: Any, out: Any, config: Any, **kw: Any) -> Any:
        seen.update(config.options)
        return real(lr, guide, out, config, **kw)

    monkeypatch.setattr(sr, "run", spy)
    out = scene["dir"] / "o.tif"
    r = invoke("dem-sr", *base_args(scene, out), "--device", "cpu", "-O", "none=1")
    assert r.exit_code == 2 and "unknown option" in r.output  # -O is passed through
    seen.clear()
    r = invoke("dem-sr", *base_args(scene, out), "--device", "cpu", "--iterations", 3)
    assert r.exit_code == 0, r.output
    assert seen == {}  # bicubic accepts neither preset nor device nor iterations


def test_dem_sr__mmsr_gets_preset(scene: dict[str, Any]) -> None:
    from geosr.pipeline import run_config

    cfg = run_config(scale=4, method="mmsr", preset="dem", iterations=7, device=None, seed=3)
    assert cfg.options == {"preset": "dem", "iterations": 7, "seed": 3}


def test_dem_sr__dry_run(scene: dict[str, Any]) -> None:
    out = scene["dir"] / "plan.tif"
    r = invoke("dem-sr", *base_args(scene, out), "--dry-run", "--tile-size", 16,
               "--overlap", 4)
    assert r.exit_code == 0, r.output
    plan = json.loads(r.stdout)
    assert plan["output_grid"]["crs"] == "EPSG:32633"
    assert plan["output_grid"]["width"] == 160 and plan["tiling"]["tiles"] == 9
    assert plan["estimated_work"]["output_megapixels"] > 0
    assert not out.exists()


def test_dem_sr__example(tmp_path: Path) -> None:
    out = tmp_path / "ex.tif"
    r = invoke("dem-sr", "--example", "--method", "guided-filter", "-o", out, "-q")
    assert r.exit_code == 0, r.output
    with rasterio.open(out) as dst:
        assert dst.crs.to_epsg() == 32633 and dst.res == (0.5, 0.5)
    assert os.listdir(tmp_path) == ["ex.tif"]


def test_thermal_sr__lr_band(scene: dict[str, Any]) -> None:
    lr = np.stack([scene["lr_array"] * 0, scene["lr_array"]])
    path = write_raster(scene["dir"] / "multi.tif", np.nan_to_num(lr), scene["lr_transform"])
    out = scene["dir"] / "t.tif"
    r = invoke("thermal-sr", *base_args(scene, out, **{"--lr": path}), "--lr-band", 2)
    assert r.exit_code == 0, r.output
    with rasterio.open(out) as dst:
        assert dst.tags()["GEOSR_LR_BAND"] == "2"
        assert np.nanstd(dst.read(1)) > 1


def test_sr__guide_bands_and_no_cog(scene: dict[str, Any]) -> None:
    out = scene["dir"] / "gb.tif"
    r = invoke("sr", *base_args(scene, out), "--guide-bands", "3,1", "--no-cog",
               "--co", "ZLEVEL=1")
    assert r.exit_code == 0, r.output
    with rasterio.open(out) as dst:
        assert dst.tags()["GEOSR_GUIDE_BANDS"] == "3,1"
        assert dst.overviews(1) == []


# -- bad input ---------------------------------------------------------------------------
def test_sr__missing_file(scene: dict[str, Any]) -> None:
    before = set(os.listdir(scene["dir"]))
    r = invoke("sr", *base_args(scene, scene["dir"] / "o.tif", **{"--lr": "nope.tif"}))
    assert_clean_failure(r, scene["dir"], before, "does not exist", "check the path")


def test_sr__unreadable_file(scene: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    import geosr.raster.io

    real = os.access

    def access(path: Any, mode: int) -> bool:
        return False if str(path) == scene["guide"] else real(path, mode)

    monkeypatch.setattr(geosr.raster.io.os, "access", access)
    before = set(os.listdir(scene["dir"]))
    r = invoke("sr", *base_args(scene, scene["dir"] / "o.tif"))
    assert_clean_failure(r, scene["dir"], before, "not readable", "permissions")


def test_sr__not_a_raster(scene: dict[str, Any]) -> None:
    bad = scene["dir"] / "notes.tif"
    bad.write_text("hello")
    before = set(os.listdir(scene["dir"]))
    r = invoke("sr", *base_args(scene, scene["dir"] / "o.tif", **{"--guide": bad}))
    assert_clean_failure(r, scene["dir"], before, "not a raster", "pass a geotiff")


@pytest.mark.parametrize("which", ["lr", "guide"])
def test_sr__no_crs(scene: dict[str, Any], which: str) -> None:
    src = scene["lr_array"] if which == "lr" else scene["guide_array"]
    t = scene["lr_transform"] if which == "lr" else scene["guide_transform"]
    path = write_raster(scene["dir"] / f"nocrs_{which}.tif", src, t, crs=None)
    before = set(os.listdir(scene["dir"]))
    r = invoke("sr", *base_args(scene, scene["dir"] / "o.tif", **{f"--{which}": path}))
    assert_clean_failure(r, scene["dir"], before, "has no crs", "rio edit-info --crs")


def test_sr__no_overlap(scene: dict[str, Any]) -> None:
    t = Affine.translation(5000, 0) @ scene["guide_transform"]
    path = write_raster(scene["dir"] / "far.tif", scene["guide_array"].astype("uint8"), t)
    before = set(os.listdir(scene["dir"]))
    r = invoke("sr", *base_args(scene, scene["dir"] / "o.tif", **{"--guide": path}))
    assert_clean_failure(r, scene["dir"], before, "do not overlap", "covers the lr")


def test_sr__overlap_below_one_output_pixel(scene: dict[str, Any]) -> None:
    t = Affine.translation(159.5, 0) @ scene["guide_transform"]
    path = write_raster(scene["dir"] / "edge.tif", scene["guide_array"].astype("uint8"), t)
    before = set(os.listdir(scene["dir"]))
    r = invoke("sr", *base_args(scene, scene["dir"] / "o.tif", **{"--guide": path}))
    assert_clean_failure(r, scene["dir"], before, "overlap by only 0.5", "covers the lr")


@pytest.mark.parametrize("bands", [1, 2])
def test_sr__guide_with_few_bands(scene: dict[str, Any], bands: int) -> None:
    g = scene["guide_array"][:bands].astype("uint8")
    path = write_raster(scene["dir"] / f"g{bands}.tif", g, scene["guide_transform"])
    before = set(os.listdir(scene["dir"]))
    r = invoke("sr", *base_args(scene, scene["dir"] / "o.tif", **{"--guide": path}))
    assert_clean_failure(r, scene["dir"], before, f"has {bands} image band", "--guide-bands")
    r = invoke("sr", *base_args(scene, scene["dir"] / "o.tif", **{"--guide": path}),
               "--guide-bands", ",".join(str(b) for b in range(1, bands + 1)))
    assert r.exit_code == 0, r.output


def test_sr__multiband_lr_without_band(scene: dict[str, Any]) -> None:
    lr = np.nan_to_num(np.stack([scene["lr_array"]] * 2))
    path = write_raster(scene["dir"] / "multi.tif", lr, scene["lr_transform"])
    before = set(os.listdir(scene["dir"]))
    r = invoke("thermal-sr", *base_args(scene, scene["dir"] / "o.tif", **{"--lr": path}))
    assert_clean_failure(r, scene["dir"], before, "has 2 bands", "--lr-band")


@pytest.mark.parametrize("scale", ["0", "1", "-2", "2.5", "four"])
def test_sr__bad_scale(scene: dict[str, Any], scale: str) -> None:
    before = set(os.listdir(scene["dir"]))
    r = invoke("sr", *base_args(scene, scene["dir"] / "o.tif", **{"--scale": scale}))
    assert_clean_failure(r, scene["dir"], before, "--scale", "integer")


def test_sr__guide_too_coarse(scene: dict[str, Any]) -> None:
    g = scene["guide_array"][:, ::8, ::8].astype("uint8")  # 8 m guide for a 1 m output
    t = scene["guide_transform"] @ Affine.scale(8)
    path = write_raster(scene["dir"] / "coarse.tif", g, t)
    before = set(os.listdir(scene["dir"]))
    r = invoke("sr", *base_args(scene, scene["dir"] / "o.tif", **{"--guide": path}))
    assert_clean_failure(r, scene["dir"], before, "8.0x coarser",
                         "a guide with pixels of at most 2 units")


def test_sr__all_nodata_lr(scene: dict[str, Any]) -> None:
    lr = np.full(scene["lr_array"].shape, -9999.0, np.float32)
    path = write_raster(scene["dir"] / "empty.tif", lr, scene["lr_transform"], nodata=-9999.0)
    before = set(os.listdir(scene["dir"]))
    r = invoke("sr", *base_args(scene, scene["dir"] / "o.tif", **{"--lr": path}))
    assert_clean_failure(r, scene["dir"], before, "no valid pixel", "nodata")


def test_sr__output_folder_missing(scene: dict[str, Any]) -> None:
    before = set(os.listdir(scene["dir"]))
    r = invoke("sr", *base_args(scene, scene["dir"] / "nope" / "o.tif"))
    assert_clean_failure(r, scene["dir"], before, "does not exist", "create it first")


def test_sr__output_folder_not_writable(scene: dict[str, Any], monkeypatch: Any) -> None:
    import geosr.raster.io

    ro = scene["dir"] / "ro"
    ro.mkdir()
    real = os.access
    monkeypatch.setattr(geosr.raster.io.os, "access",
                        lambda p, m: False if Path(p) == ro else real(p, m))
    before = set(os.listdir(scene["dir"]))
    r = invoke("sr", *base_args(scene, ro / "o.tif"))
    assert_clean_failure(r, scene["dir"], before, "not writable", "choose another output")
    assert os.listdir(ro) == []


def test_sr__existing_output(scene: dict[str, Any]) -> None:
    out = scene["dir"] / "exists.tif"
    out.write_bytes(b"keep me")
    before = set(os.listdir(scene["dir"]))
    r = invoke("sr", *base_args(scene, out))
    assert_clean_failure(r, scene["dir"], before, "already exists", "--overwrite")
    assert out.read_bytes() == b"keep me"
    r = invoke("sr", *base_args(scene, out), "--overwrite")
    assert r.exit_code == 0, r.output
    with rasterio.open(out) as dst:
        assert dst.count == 1


def test_sr__tile_size_too_small(scene: dict[str, Any]) -> None:
    before = set(os.listdir(scene["dir"]))
    r = invoke("sr", *base_args(scene, scene["dir"] / "o.tif"), "--tile-size", 8,
               "--overlap", 6)
    assert_clean_failure(r, scene["dir"], before, "too small for an overlap of 6",
                         "--tile-size 12")


def test_sr__unknown_method(scene: dict[str, Any]) -> None:
    before = set(os.listdir(scene["dir"]))
    r = invoke("sr", *base_args(scene, scene["dir"] / "o.tif", **{"--method": "magic"}))
    assert_clean_failure(r, scene["dir"], before, "unknown method", "choose one of")


def test_sr__runtime_failure_exit_1(scene: dict[str, Any], monkeypatch: Any) -> None:
    from geosr import pipeline

    def boom(plan: Any, tile: Any) -> None:
        raise RuntimeError("out of memory")

    monkeypatch.setattr(pipeline.tiles, "predict_tile", boom)
    before = set(os.listdir(scene["dir"]))
    r = invoke("sr", *base_args(scene, scene["dir"] / "o.tif"))
    assert_clean_failure(r, scene["dir"], before, "out of memory", code=1)


# -- real data ---------------------------------------------------------------------------
def _mashhad() -> Path | None:
    root = shared_data_dir()
    d = root / "geo_mashhad_elevation1_pleiades" if root else None
    return d if d and (d / "dsm_west_1m.tif").exists() else None


@pytest.mark.skipif(_mashhad() is None, reason="shared/data/geo_mashhad_elevation1_pleiades absent")
def test_dem_sr__mashhad_real_data(tmp_path: Path) -> None:
    d = _mashhad()
    assert d is not None
    with rasterio.open(d / "dsm_west_1m.tif") as src:
        dsm = src.read(1).astype(np.float64)
        t, crs = src.transform, src.crs
    h, w = (dsm.shape[0] // 4) * 4, (dsm.shape[1] // 4) * 4
    dsm = dsm[:h, :w]
    lr = dsm.reshape(h // 4, 4, w // 4, 4).mean(axis=(1, 3)).astype(np.float32)
    lr_path = write_raster(tmp_path / "dsm_4m.tif", lr, t @ Affine.scale(4), crs=crs.to_string())
    rmse = {}
    for method in ("bicubic", "guided-filter"):
        out = tmp_path / f"{method}.tif"
        r = invoke("dem-sr", "--lr", lr_path, "--guide", d / "ortho_rgb_west_0p5m.tif",
                   "--scale", 4, "--method", method, "-o", out, "-q", "--json")
        assert r.exit_code == 0, r.output
        with rasterio.open(out) as dst:
            assert dst.transform == t and dst.crs == crs
            pred = dst.read(1).astype(np.float64)
        assert pred.shape == dsm.shape
        rmse[method] = float(np.sqrt(np.mean((pred - dsm) ** 2)))
    # This DSM is effectively ~10 m resolution (smooth), so the guide cannot add much:
    # both must stay far below the DSM's spread (7.6 m) and the pooling error scale.
    assert rmse["bicubic"] < 0.2 and rmse["guided-filter"] < 0.5, rmse


def test_python_dash_m_geosr__runs_the_cli() -> None:
    """``python -m geosr`` is the same command line (scripts and QGIS can rely on it)."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "geosr", "methods"], capture_output=True,
                         text=True, check=True)
    assert "mmsr" in out.stdout and "robself-de" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "geosr", "no-such-command"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "no-such-command" in bad.stderr


@pytest.mark.parametrize("option, needle", [
    ("iterations=abc", "'iterations' takes an integer, got 'abc'"),
    ("iterations=2.7", "'iterations' takes an integer, got 2.7"),
    ("seed=1.5", "'seed' takes an integer or none"),
    ("compile=maybe", "'compile' takes a boolean"),
])
def test_sr__method_option_of_the_wrong_type_exits_2(scene: dict[str, Any], option: str,
                                                      needle: str) -> None:
    before = set(os.listdir(scene["dir"]))
    result = invoke("sr", *base_args(scene, scene["dir"] / "typed.tif", **{"--method": "mmsr"}),
                    "-O", option)
    assert_clean_failure(result, scene["dir"], before, needle)
