"""Reading input rasters: GDAL paths, sidecar georeferencing, GCPs, band scale/offset,
read failures."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.control import GroundControlPoint

from geosr.errors import GridError, InputError, RasterIOError
from geosr.raster.grid import Window
from geosr.raster.io import fill_candidates, is_local_path, raster_info, read_lr
from tests.geodata import write_raster

T = Affine(4.0, 0, 600000.0, 0, -4.0, 5340000.0)


def scaled_dem(path: Path) -> tuple[str, np.ndarray]:
    """An int16 DEM with band scale 0.01 and offset 1300 (nodata -32768 in one corner);
    returns the path and its physical values (NaN at nodata)."""
    raw = (np.arange(8 * 10).reshape(8, 10) * 37 - 1500).astype(np.int16)
    raw[0, 0] = -32768
    with rasterio.open(path, "w", driver="GTiff", width=10, height=8, count=1, dtype="int16",
                       crs="EPSG:32633", transform=T, nodata=-32768) as dst:
        dst.write(raw, 1)
        dst.scales = (0.01,)
        dst.offsets = (1300.0,)
    physical = raw * 0.01 + 1300.0
    physical[0, 0] = np.nan
    return str(path), physical


def test_read_lr__band_scale_and_offset_give_physical_values(tmp_path: Path) -> None:
    path, physical = scaled_dem(tmp_path / "dem.tif")
    info = raster_info(path, "LR")
    assert info.scale_offset(1) == (0.01, 1300.0)
    got = read_lr(path, 1, Window(0, 0, 8, 10))[0]
    assert np.isnan(got[0, 0])  # nodata compared on the raw counts
    np.testing.assert_allclose(got, physical, rtol=0, atol=1e-3)


def test_raster_info__vsizip_path(tmp_path: Path) -> None:
    tif = write_raster(tmp_path / "lr.tif", np.ones((6, 6), np.float32), T)
    with zipfile.ZipFile(tmp_path / "scene.zip", "w") as z:
        z.write(tif, "lr.tif")
    path = f"/vsizip/{tmp_path / 'scene.zip'}/lr.tif"
    assert not is_local_path(path)
    info = raster_info(path, "LR")
    assert info.path == path and (info.geometry.width, info.geometry.height) == (6, 6)


@pytest.mark.parametrize("path", ["/vsicurl/http://127.0.0.1:9/none.tif",
                                  "https://127.0.0.1:9/none.tif"])
def test_raster_info__unreachable_url_reports_gdal_error(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GDAL_HTTP_TIMEOUT", "1")
    monkeypatch.setenv("GDAL_HTTP_MAX_RETRY", "0")
    with pytest.raises(InputError) as err:
        raster_info(path, "LR")
    msg = str(err.value)
    # GDAL's own words vary with its build (with or without curl); geosr must not answer
    # with its local-file message, which would send the user to check a path on disk.
    assert repr(path) in msg and "GDAL cannot open" in msg
    assert "does not exist; check the path" not in msg


def test_raster_info__missing_local_file_still_says_so(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist; check the path"):
        raster_info(tmp_path / "none.tif", "LR")


def test_is_local_path__urls_vsi_and_driver_prefixes() -> None:
    assert is_local_path("dem.tif") and is_local_path("/data/dem.tif")
    assert is_local_path("C:/data/dem.tif")
    for p in ("/vsis3/b/k.tif", "s3://b/k.tif", "zip+https://h/a.zip!x.tif",
              'NETCDF:"f.nc":z', "GTIFF_DIR:2:f.tif"):
        assert not is_local_path(p), p


def test_raster_info__png_georeferenced_by_sidecar(tmp_path: Path) -> None:
    png = tmp_path / "guide.png"
    with rasterio.open(png, "w", driver="PNG", width=16, height=16, count=3, dtype="uint8",
                       crs="EPSG:32640", transform=T) as dst:
        dst.write(np.zeros((3, 16, 16), np.uint8))
    assert (tmp_path / "guide.png.aux.xml").exists()  # where GDAL keeps a PNG's CRS
    info = raster_info(png, "guide")
    assert info.geometry.crs.to_epsg() == 32640 and info.geometry.transform == T


def test_raster_info__gcp_only_raster_says_warp_it(tmp_path: Path) -> None:
    gcps = [GroundControlPoint(r, c, 600000.0 + 4 * c, 5340000.0 - 4 * r)
            for r, c in ((0, 0), (0, 16), (16, 0), (16, 16))]
    path = tmp_path / "gcps.tif"
    with rasterio.open(path, "w", driver="GTiff", width=16, height=16, count=1,
                       dtype="float32", gcps=gcps, crs="EPSG:32633") as dst:
        dst.write(np.ones((16, 16), np.float32), 1)
    with pytest.raises(GridError) as err:
        raster_info(path, "LR")
    msg = str(err.value)
    assert "ground control points but no geotransform" in msg
    assert "gdalwarp -t_srs EPSG:32633 gcps.tif" in msg and "rio warp" in msg


def test_read_lr__truncated_file_names_file_window_and_check(tmp_path: Path) -> None:
    path = write_raster(tmp_path / "lr.tif", np.ones((64, 64), np.float32), T)
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: len(data) // 2])
    raster_info(path, "LR")  # the header is intact
    with pytest.raises(RasterIOError) as err:
        read_lr(path, 1, Window(0, 0, 64, 64))
    msg = str(err.value)
    assert repr(path) in msg and "rows 0-64, columns 0-64" in msg
    assert "GDAL: " in msg and "IReadBlock failed" in msg and "Read failed." not in msg
    assert f"gdalinfo -checksum {path}" in msg


def test_fill_candidates__only_values_the_dtype_holds() -> None:
    assert set(fill_candidates("uint8")) == set()
    assert set(fill_candidates("int16")) == {-9999.0, -32768.0, -32767.0}
    f32 = fill_candidates("float32")
    assert len(f32) == 5 and f32[-9999.0] == -9999.0
    assert fill_candidates("int16", 0.01, 1300.0)[-9999.0] == pytest.approx(1200.01, abs=1e-3)
