"""``geosr sr`` on the rasters GDAL opens: scaled bands, /vsizip/ and URLs, sidecar
georeferencing, GCPs, untagged fill values, partial guides, truncated files, tiny LRs."""

from __future__ import annotations

import logging
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.control import GroundControlPoint

from tests.cli.test_sr import assert_clean_failure, base_args, invoke
from tests.geodata import write_raster


def read_masked(path: Path | str) -> tuple[np.ndarray, dict[str, Any]]:
    """Band 1 (NaN = nodata) and the georeferencing, scales and offsets."""
    with rasterio.open(path) as src:
        meta = {"crs": src.crs, "transform": src.transform, "scales": src.scales,
                "offsets": src.offsets}
        return src.read(1, masked=True).astype(np.float64).filled(np.nan), meta


def loud_args(scene: dict[str, Any], out: Path, **over: Any) -> list[Any]:
    """The base arguments with warnings shown (no -q) and no progress bar."""
    return [*base_args(scene, out, **over)[:-1], "--progress", "none"]


# -- band scale and offset -------------------------------------------------------------
def test_sr__scaled_int16_dem_gives_physical_values(scene: dict[str, Any]) -> None:
    d = scene["dir"]
    raw = np.round((np.nan_to_num(scene["lr_array"], nan=190.0) - 190.0) * 100).astype(np.int16)
    raw[3:7, 30:36] = -32768
    with rasterio.open(d / "dem_int16.tif", "w", driver="GTiff", width=raw.shape[1],
                       height=raw.shape[0], count=1, dtype="int16", crs="EPSG:32633",
                       transform=scene["lr_transform"], nodata=-32768) as dst:
        dst.write(raw, 1)
        dst.scales, dst.offsets = (0.01,), (1300.0,)
    physical = (raw * 0.01 + 1300.0).astype(np.float32)
    physical[3:7, 30:36] = -9999.0
    ref_lr = write_raster(d / "dem_metres.tif", physical, scene["lr_transform"], nodata=-9999.0)
    for name, lr in (("scaled", d / "dem_int16.tif"), ("metres", ref_lr)):
        r = invoke("sr", *base_args(scene, d / f"{name}.tif", **{"--lr": lr}))
        assert r.exit_code == 0, r.output
    out, meta = read_masked(d / "scaled.tif")
    ref, _ = read_masked(d / "metres.tif")
    assert meta["scales"] == (1.0,) and meta["offsets"] == (0.0,)
    assert 1250 < np.nanmean(out) < 1350  # metres, not raw counts
    np.testing.assert_array_equal(np.isnan(out), np.isnan(ref))  # nodata on the raw counts
    np.testing.assert_allclose(out, ref, atol=2e-3, equal_nan=True)


# -- GDAL paths --------------------------------------------------------------------------
def test_sr__vsizip_lr_and_guide(scene: dict[str, Any]) -> None:
    d = scene["dir"]
    with zipfile.ZipFile(d / "scene.zip", "w") as z:
        z.write(scene["lr"], "lr.tif")
        z.write(scene["guide"], "guide.tif")
    zipped = {"--lr": f"/vsizip/{d / 'scene.zip'}/lr.tif",
              "--guide": f"/vsizip/{d / 'scene.zip'}/guide.tif"}
    r = invoke("sr", *base_args(scene, d / "zipped.tif", **zipped))
    assert r.exit_code == 0, r.output
    r = invoke("sr", *base_args(scene, d / "plain.tif"))
    assert r.exit_code == 0, r.output
    np.testing.assert_array_equal(read_masked(d / "zipped.tif")[0], read_masked(d / "plain.tif")[0])


@pytest.mark.parametrize("which", ["--lr", "--guide"])
def test_sr__unreachable_url_gives_gdal_error(scene: dict[str, Any], which: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GDAL_HTTP_TIMEOUT", "1")
    monkeypatch.setenv("GDAL_HTTP_MAX_RETRY", "0")
    url = "/vsicurl/http://127.0.0.1:9/none.tif"
    before = set(os.listdir(scene["dir"]))
    r = invoke("sr", *base_args(scene, scene["dir"] / "o.tif", **{which: url}))
    assert_clean_failure(r, scene["dir"], before, "GDAL cannot open", url,
                         "check the path or URL")
    assert "does not exist; check the path" not in r.output


# -- georeferencing ----------------------------------------------------------------------
def test_sr__png_guide_georeferenced_by_sidecar(scene: dict[str, Any]) -> None:
    d = scene["dir"]
    g = scene["guide_array"].astype(np.uint8)
    with rasterio.open(d / "guide.png", "w", driver="PNG", width=g.shape[2], height=g.shape[1],
                       count=3, dtype="uint8", crs="EPSG:32633",
                       transform=scene["guide_transform"]) as dst:
        dst.write(g)
    r = invoke("sr", *base_args(scene, d / "png.tif", **{"--guide": d / "guide.png"}))
    assert r.exit_code == 0, r.output
    r = invoke("sr", *base_args(scene, d / "tif.tif"))
    assert r.exit_code == 0, r.output
    out, meta = read_masked(d / "png.tif")
    ref, ref_meta = read_masked(d / "tif.tif")
    assert meta["transform"] == ref_meta["transform"] and meta["crs"] == ref_meta["crs"]
    np.testing.assert_array_equal(out, ref)


def test_sr__gcp_only_lr_says_warp_it(scene: dict[str, Any]) -> None:
    lr = np.nan_to_num(scene["lr_array"])
    h, w = lr.shape
    t = scene["lr_transform"]
    gcps = [GroundControlPoint(r, c, *(t * (c, r))) for r, c in ((0, 0), (0, w), (h, 0), (h, w))]
    path = scene["dir"] / "gcps.tif"
    write_raster(path, lr, None, crs="EPSG:32633", gcps=gcps)  # the GCPs' CRS
    before = set(os.listdir(scene["dir"]))
    r = invoke("sr", *base_args(scene, scene["dir"] / "o.tif", **{"--lr": path}))
    assert_clean_failure(r, scene["dir"], before, "ground control points but no geotransform",
                         "warp it first", "gdalwarp -t_srs EPSG:32633", "rio warp")


# -- silent surprises --------------------------------------------------------------------
def test_sr__untagged_fill_value_warns(scene: dict[str, Any],
                                       caplog: pytest.LogCaptureFixture) -> None:
    lr = np.nan_to_num(scene["lr_array"], nan=-9999.0)  # 24 fill pixels, no nodata tag
    path = write_raster(scene["dir"] / "untagged.tif", lr, scene["lr_transform"])
    with caplog.at_level(logging.WARNING, logger="geosr"):
        r = invoke("sr", *loud_args(scene, scene["dir"] / "o.tif", **{"--lr": path}))
    assert r.exit_code == 0, r.output
    assert ("LR has 24 pixels equal to -9999 and no nodata value; if they are fill, pass "
            "--nodata -9999") in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="geosr"):
        r = invoke("sr", *loud_args(scene, scene["dir"] / "o2.tif", **{"--lr": path}),
                   "--nodata", "-9999")
    assert r.exit_code == 0, r.output
    assert "no nodata value" not in caplog.text


def test_sr__guide_covering_part_of_the_lr_warns(scene: dict[str, Any],
                                                 caplog: pytest.LogCaptureFixture) -> None:
    g = scene["guide_array"][:, :72].astype(np.uint8)  # the top half
    path = write_raster(scene["dir"] / "half.tif", g, scene["guide_transform"])
    out = scene["dir"] / "o.tif"
    with caplog.at_level(logging.WARNING, logger="geosr"):
        r = invoke("sr", *loud_args(scene, out, **{"--guide": path}))
    assert r.exit_code == 0, r.output
    assert "the guide covers only 50.0% of the LR" in caplog.text
    assert "LR rows 0-18 and columns 0-40 of 36 x 40" in caplog.text
    assert "bounds (600000, 5.33993e+06, 600160, 5.34e+06)" in caplog.text
    assert "pass a guide that covers the whole LR" in caplog.text
    with rasterio.open(out) as src:
        assert (src.height, src.width) == (72, 160)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="geosr"):
        invoke("sr", *loud_args(scene, scene["dir"] / "full.tif"))
    assert "covers only" not in caplog.text


# -- messages with a fix ------------------------------------------------------------------
def test_sr__truncated_lr_names_the_fix(scene: dict[str, Any]) -> None:
    path = write_raster(scene["dir"] / "cut.tif", np.nan_to_num(scene["lr_array"]),
                        scene["lr_transform"])
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: len(data) // 2])
    before = set(os.listdir(scene["dir"]))
    r = invoke("sr", *base_args(scene, scene["dir"] / "o.tif", **{"--lr": path}))
    assert_clean_failure(r, scene["dir"], before, "failed to read the LR raster", path,
                         "rows 0-36, columns 0-40", "GDAL:", "truncated or corrupt",
                         f"gdalinfo -checksum {path}", code=1)
    assert "See previous exception" not in r.output


def test_sr__one_pixel_lr_is_too_small(scene: dict[str, Any]) -> None:
    path = write_raster(scene["dir"] / "one.tif", np.ones((1, 1), np.float32),
                        scene["lr_transform"])
    before = set(os.listdir(scene["dir"]))
    r = invoke("sr", *base_args(scene, scene["dir"] / "o.tif", **{"--lr": path}))
    assert_clean_failure(r, scene["dir"], before, "only 1 x 1 pixels, too small",
                         "at least 2 x 2 LR pixels")
    assert "pass a guide" not in r.output


def test_sr__gdal_paths_not_mangled_by_the_options(scene: dict[str, Any],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    from geosr.cli import sr

    def spy(lr: Any, guide: Any, *a: Any, **kw: Any) -> Any:
        seen.extend([lr, guide])
        raise sr.InputError("stop")

    monkeypatch.setattr(sr, "run", spy)
    url, s3 = "https://example.com/a/lr.tif", "s3://bucket/key/guide.tif"
    invoke("sr", *base_args(scene, scene["dir"] / "o.tif", **{"--lr": url, "--guide": s3}))
    assert seen == [url, s3]


def test_sr__png_guide_with_world_file(scene: dict[str, Any]) -> None:
    """The transform in a world file (.pgw), the CRS in the .aux.xml, as rio reads them."""
    d = scene["dir"]
    g = scene["guide_array"].astype(np.uint8)
    with rasterio.open(d / "wf.png", "w", driver="PNG", width=g.shape[2], height=g.shape[1],
                       count=3, dtype="uint8", crs="EPSG:32633") as dst:
        dst.write(g)
    t = scene["guide_transform"]
    (d / "wf.pgw").write_text("\n".join(str(v) for v in (
        t.a, t.d, t.b, t.e, t.c + t.a / 2, t.f + t.e / 2)) + "\n")
    r = invoke("sr", *base_args(scene, d / "wf.tif", **{"--guide": d / "wf.png"}))
    assert r.exit_code == 0, r.output
    r = invoke("sr", *base_args(scene, d / "tif.tif"))
    assert r.exit_code == 0, r.output
    np.testing.assert_array_equal(read_masked(d / "wf.tif")[0], read_masked(d / "tif.tif")[0])
