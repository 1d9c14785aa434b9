"""Output checks: the format an extension names, cut-short files, full disks."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from affine import Affine

from geosr.errors import InputError, RasterIOError
from geosr.raster import io
from geosr.raster.io import check_output_format, check_written, disk_full
from tests.geodata import write_raster


@pytest.mark.parametrize("name", ["out.tif", "OUT.TIFF", "out", "out.result"])
def test_check_output_format__geotiff_names_pass(name: str) -> None:
    check_output_format(name)


@pytest.mark.parametrize("name,driver", [("out.png", "PNG"), ("a/out.jp2", "JP2OpenJPEG"),
                                         ("out.vrt", "VRT")])
def test_check_output_format__other_formats_refused(name: str, driver: str) -> None:
    stem = Path(name).stem
    with pytest.raises(InputError, match=f"names a {driver} file") as info:
        check_output_format(name)
    assert f"name the output {stem}.tif, then convert it, e.g. `gdal_translate {stem}.tif" \
        in str(info.value)


def _cog(path: Path) -> Path:
    data = np.arange(300 * 280, dtype=np.float32).reshape(300, 280)
    src = write_raster(path.with_suffix(".src.tif"), data, Affine(1, 0, 0, 0, -1, 0))
    io.to_cog(Path(src), path, blocksize=64, compress="DEFLATE", creation_options={})
    return path


def test_check_written__intact_and_cut_short(tmp_path: Path) -> None:
    cog = _cog(tmp_path / "c.tif")
    with rasterio.open(cog) as src:
        assert src.overviews(1)  # blocks of the overviews are checked too
    check_written(cog)
    data = cog.read_bytes()
    cog.write_bytes(data[: len(data) - 2000])  # the tail a full disk did not take
    with pytest.raises(RasterIOError, match="is cut short"):
        check_written(cog)


def test_disk_full__errno_and_gdal_errors_on_a_full_disk(tmp_path: Path,
                                                         monkeypatch: Any) -> None:
    full = OSError(errno.ENOSPC, "No space left on device")
    assert disk_full(full, tmp_path) == "no space left on device"
    wrapped = RuntimeError("tile failed")
    wrapped.__cause__ = full
    assert disk_full(wrapped, tmp_path) == "no space left on device"
    gdal = rasterio.errors.RasterioIOError("Write failed. See previous exception for details.")
    assert disk_full(gdal, tmp_path) is None  # room left: another failure
    monkeypatch.setattr(io.shutil, "disk_usage", lambda p: type("U", (), {"free": 4096})())
    assert disk_full(gdal, tmp_path) == "no space left on device"
    assert disk_full(ValueError("bad"), tmp_path) is None
