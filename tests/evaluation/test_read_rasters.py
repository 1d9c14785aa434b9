"""The evaluation reads rasters as the pipeline does: physical values, any GDAL path."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from click.testing import CliRunner

from geosr.cli.main import cli
from geosr.evaluation.bench import pool_reference
from geosr.evaluation.evaluate import load_pairs, read_image
from tests.geodata import write_raster

T = Affine(1.0, 0, 600000.0, 0, -1.0, 5340000.0)


def scaled_hr(folder: Path) -> tuple[str, str, np.ndarray]:
    """An int16 HR DSM with scale 0.01 / offset 1300, an RGB guide, the physical DSM."""
    yy, xx = np.mgrid[0:16, 0:16]
    raw = (yy * 40 + xx * 25 - 300).astype(np.int16)
    path = folder / "hr.tif"
    with rasterio.open(path, "w", driver="GTiff", width=16, height=16, count=1, dtype="int16",
                       crs="EPSG:32633", transform=T, nodata=-32768) as dst:
        dst.write(raw, 1)
        dst.scales, dst.offsets = (0.01,), (1300.0,)
    rgb = np.stack([raw % 256, (raw // 3) % 256, np.full_like(raw, 90)]).astype(np.uint8)
    guide = write_raster(folder / "rgb.tif", rgb, T)
    return str(path), guide, raw * 0.01 + 1300.0


def test_read_image__scaled_geotiff_gives_physical_values(tmp_path: Path) -> None:
    hr, guide, physical = scaled_hr(tmp_path)
    np.testing.assert_allclose(read_image(hr)[0], physical, atol=1e-3)
    [pair] = load_pairs(hr, guide)
    np.testing.assert_allclose(pair.target, physical, atol=1e-3)


def test_pool_reference__scaled_reference_pools_physical_values(tmp_path: Path) -> None:
    hr, _, physical = scaled_hr(tmp_path)
    pool_reference(hr, tmp_path / "lr.tif", 4)
    with rasterio.open(tmp_path / "lr.tif") as src:
        lr = src.read(1)
    expect = physical.reshape(4, 4, 4, 4).mean(axis=(1, 3))
    np.testing.assert_allclose(lr, expect, atol=1e-3)


def test_eval_cli__vsizip_hr_and_guide(tmp_path: Path) -> None:
    hr, guide, _ = scaled_hr(tmp_path)
    with zipfile.ZipFile(tmp_path / "pair.zip", "w") as z:
        z.write(hr, "hr.tif")
        z.write(guide, "rgb.tif")
    zpath = tmp_path / "pair.zip"
    out = tmp_path / "r.json"
    r = CliRunner().invoke(cli, ["eval", f"/vsizip/{zpath}/hr.tif", "--guide",
                                 f"/vsizip/{zpath}/rgb.tif", "-m", "bicubic", "--scale", "2",
                                 "--json", str(out), "-q"])
    assert r.exit_code == 0, r.output
    rows = json.loads(out.read_text())["rows"]
    assert rows and rows[0]["pair"] == "hr"


def test_eval_cli__missing_file_says_so(tmp_path: Path) -> None:
    r = CliRunner().invoke(cli, ["eval", str(tmp_path / "none.tif"), "--guide",
                                 str(tmp_path / "g.tif"), "-m", "bicubic"])
    assert r.exit_code == 2 and "does not exist" in r.output, r.output
