"""``--quicklook`` of dem-sr / thermal-sr / sr and the decimated reads behind it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from affine import Affine
from click.testing import CliRunner

from geosr.cli.main import cli
from geosr.evaluation.quicklook import read_decimated, write_quicklook
from tests.geodata import write_raster

pytest.importorskip("matplotlib")


def invoke(*args: Any) -> Any:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def _png_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as im:
        assert im.format == "PNG"
        return im.size


@pytest.mark.parametrize("command", ["dem-sr", "thermal-sr", "sr"])
def test_quicklook__cli_writes_a_png_after_the_output(scene, tmp_path, command):
    out, ql = tmp_path / "out.tif", tmp_path / "ql.png"
    res = invoke(command, "--lr", scene["lr"], "--guide", scene["guide"], "--scale", 4,
                 "--method", "bicubic", "-o", out, "--quicklook", ql, "--json", "-q")
    assert res.exit_code == 0, res.output
    assert out.exists()
    assert json.loads(res.stdout)["quicklook"] == str(ql)
    w, h = _png_size(ql)
    assert w > 2 * h > 0  # three panels side by side


def test_quicklook__bad_path_is_a_usage_error_before_the_run(scene, tmp_path):
    out = tmp_path / "out.tif"
    res = invoke("sr", "--lr", scene["lr"], "--guide", scene["guide"], "--scale", 4,
                 "--method", "bicubic", "-o", out, "--quicklook", tmp_path / "ql.jpg")
    assert res.exit_code == 2 and ".png" in res.output
    assert not out.exists()


def test_quicklook__existing_png_needs_overwrite(scene, tmp_path):
    out, ql = tmp_path / "out.tif", tmp_path / "ql.png"
    ql.write_bytes(b"old")
    args = ["sr", "--lr", scene["lr"], "--guide", scene["guide"], "--scale", 4,
            "--method", "bicubic", "-o", out, "--quicklook", ql, "-q"]
    res = invoke(*args)
    assert res.exit_code == 2 and "--overwrite" in res.output and not out.exists()
    assert invoke(*args, "--overwrite").exit_code == 0
    _png_size(ql)


def test_read_decimated__reads_only_about_the_panel_size(tmp_path, monkeypatch):
    import rasterio.io

    big = np.arange(1200 * 1000, dtype=np.float32).reshape(1200, 1000)
    t = Affine(1.0, 0, 600000.0, 0, -1.0, 5340000.0)
    path = write_raster(tmp_path / "big.tif", big, t, nodata=-1.0, tiled=True)
    shapes: list[Any] = []
    orig = rasterio.io.DatasetReader.read

    def spy(self, *a, **kw):
        shapes.append(kw.get("out_shape"))
        return orig(self, *a, **kw)

    monkeypatch.setattr(rasterio.io.DatasetReader, "read", spy)
    dst_t = Affine(10.0, 0, 600000.0, 0, -10.0, 5340000.0)  # 100 x 120 panel
    arr = read_decimated(path, [1], "EPSG:32633", dst_t, (120, 100))
    assert arr.shape == (1, 120, 100) and np.isfinite(arr).all()
    assert shapes and all(s is not None and max(s[-2:]) <= 240 for s in shapes)
    # the decimated values still follow the raster (top-left darker than bottom-right)
    assert arr[0, 0, 0] < arr[0, -1, -1]


def test_read_decimated__guide_in_another_crs_lands_on_the_panel(scene, tmp_path):
    import rasterio
    from rasterio.vrt import WarpedVRT

    moved = tmp_path / "guide_3857.tif"
    with rasterio.open(scene["guide"]) as src, WarpedVRT(src, crs="EPSG:3857") as vrt:
        write_raster(moved, vrt.read(), vrt.transform, crs="EPSG:3857")
    with rasterio.open(scene["lr"]) as lr:
        b = lr.bounds
    t = Affine((b.right - b.left) / 40, 0, b.left, 0, -(b.top - b.bottom) / 36, b.top)
    a = read_decimated(moved, [1, 2, 3], "EPSG:32633", t, (36, 40))
    ref = read_decimated(scene["guide"], [1, 2, 3], "EPSG:32633", t, (36, 40))
    inner = (slice(None), slice(2, -2), slice(2, -2))
    assert np.isfinite(a[inner]).all()
    assert np.corrcoef(a[inner].ravel(), ref[inner].ravel())[0, 1] > 0.8


def test_write_quicklook__nodata_and_unknown_kind(scene, tmp_path):
    from geosr.errors import InputError

    out = tmp_path / "out.tif"
    assert invoke("sr", "--lr", scene["lr"], "--guide", scene["guide"], "--scale", 4,
                  "--method", "bicubic", "-o", out, "-q").exit_code == 0
    p = write_quicklook(tmp_path / "q.png", scene["lr"], scene["guide"], out, kind="dem",
                        max_pixels=64)
    _png_size(p)
    with pytest.raises(InputError, match="dem, thermal, band"):
        write_quicklook(tmp_path / "q2.png", scene["lr"], scene["guide"], out, kind="rgb")
