"""``--co`` creation options: checked by GDAL, for the driver that writes the output."""

from __future__ import annotations

import pytest

from geosr.errors import OptionError
from geosr.raster.creation import check_creation_options, gtiff_options


@pytest.mark.parametrize("cog", [True, False])
def test_check_creation_options__bad_compress_lists_the_values(cog: bool) -> None:
    with pytest.raises(OptionError) as info:
        check_creation_options([("COMPRESS", "NOPE")], cog=cog)
    msg = str(info.value)
    driver = "COG" if cog else "GTiff"
    assert msg.startswith(f"--co COMPRESS=NOPE: GDAL's {driver} driver does not accept it (")
    assert "values: " in msg and "DEFLATE" in msg and "ZSTD" in msg and "NOPE, " not in msg


@pytest.mark.parametrize("cog", [True, False])
def test_check_creation_options__unknown_key(cog: bool) -> None:
    with pytest.raises(OptionError, match="does not support creation option NOPE"):
        check_creation_options([("NOPE", "1")], cog=cog)


@pytest.mark.parametrize("cog", [True, False])
def test_check_creation_options__valid_ones_pass(cog: bool) -> None:
    check_creation_options([("COMPRESS", "ZSTD"), ("PREDICTOR", "3")], cog=cog)
    check_creation_options([("compress", "deflate"), ("NUM_THREADS", "ALL_CPUS")], cog=cog)


def test_check_creation_options__gtiff_option_with_cog_points_to_no_cog() -> None:
    with pytest.raises(OptionError, match="it is a GTiff option: pass --no-cog"):
        check_creation_options([("ZLEVEL", "9")], cog=True)
    check_creation_options([("ZLEVEL", "9")], cog=False)
    check_creation_options([("LEVEL", "9"), ("TILED", "YES")], cog=True)  # a COG is tiled
    with pytest.raises(OptionError, match="it is a COG option: drop --no-cog"):
        check_creation_options([("LEVEL", "9")], cog=False)


def test_check_creation_options__value_gdal_refuses_outright() -> None:
    with pytest.raises(OptionError, match="PREDICTOR=7 is not supported"):
        check_creation_options([("PREDICTOR", "7")], cog=False)


def test_gtiff_options__keeps_what_the_temporary_geotiff_takes() -> None:
    assert gtiff_options([("LEVEL", "9"), ("COMPRESS", "ZSTD")]) == {"COMPRESS": "ZSTD"}
