"""GDAL creation options (``--co KEY=VALUE``), checked by GDAL itself before any work.

GDAL accepts any creation option when a file is created and only warns about the ones its
driver does not know or whose value it does not take (then writes the file without them).
:func:`check_creation_options` writes a 32×32 float32 raster in memory with each option,
through the driver that writes the output (COG, or GTiff with ``--no-cog``), and turns
GDAL's complaints into an :class:`~geosr.errors.OptionError`. Results are cached.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from geosr.errors import OptionError

logger = logging.getLogger(__name__)

#: a COG is always tiled: ``TILED=YES`` (a GTiff habit) is accepted and has nothing to do
COG_NOOPS = {"TILED"}
#: codecs the message lists when a COMPRESS value is refused (those that work here are shown)
CODECS = ("NONE", "DEFLATE", "ZSTD", "LZW", "LZMA", "LERC", "LERC_DEFLATE", "LERC_ZSTD",
          "PACKBITS", "JXL")
DRIVER_DOCS = {"COG": "https://gdal.org/en/stable/drivers/raster/cog.html",
               "GTiff": "https://gdal.org/en/stable/drivers/raster/gtiff.html"}


@contextlib.contextmanager
def _gdal_complaints() -> Iterator[list[str]]:
    """GDAL's warnings in this thread during the block (rasterio logs them on
    ``rasterio._env``), kept from the console."""
    log = logging.getLogger("rasterio._env")
    seen: list[str] = []
    me = threading.get_ident()

    def keep(record: logging.LogRecord) -> bool:
        if record.thread != me:
            return True
        if record.levelno >= logging.WARNING:
            seen.append(record.getMessage())
        return False

    level = log.level
    if not log.isEnabledFor(logging.WARNING):
        log.setLevel(logging.WARNING)
    log.addFilter(keep)
    try:
        yield seen
    finally:
        log.removeFilter(keep)
        log.setLevel(level)


def _probe(driver: str, options: dict[str, str]) -> None:
    """Write a tiny float32 raster in memory with ``driver`` and ``options``."""
    import numpy as np
    import rasterio.shutil
    from rasterio.io import MemoryFile
    from rasterio.transform import from_origin

    from geosr.raster.io import gdal_env

    profile: dict[str, Any] = {
        "driver": "GTiff", "dtype": "float32", "count": 1, "width": 32, "height": 32,
        "crs": "EPSG:32633", "transform": from_origin(600000, 5340000, 1, 1),
        "nodata": -9999.0, "tiled": True, "blockxsize": 16, "blockysize": 16,
    }
    data = np.arange(32 * 32, dtype=np.float32).reshape(1, 32, 32)
    with gdal_env(), MemoryFile() as src:
        if driver == "GTiff":
            with src.open(**profile, **options) as dst:
                dst.write(data)
            return
        with src.open(**profile) as dst:
            dst.write(data)
        with MemoryFile() as out:
            rasterio.shutil.copy(src.name, out.name, driver=driver, **options)


@functools.lru_cache(maxsize=512)
def option_problem(driver: str, key: str, value: str) -> str | None:
    """GDAL's complaint about the creation option ``key=value`` of ``driver``, or None when
    the driver takes it."""
    with _gdal_complaints() as seen:
        try:
            _probe(driver, {key: value})
        except Exception as exc:  # GDAL refused it outright (rasterio raises CPLE_* errors)
            return _tidy(str(exc))
    about = [_tidy(m) for m in seen if key.upper() in m.upper()]
    return "; ".join(dict.fromkeys(about)) or None


def _tidy(message: str) -> str:
    """GDAL's message without rasterio's ``CPLE_... in`` and the in-memory file's name."""
    if message.startswith("CPLE_"):
        message = message.split(" in ", 1)[-1]
    return re.sub(r"^\S+\.tif: ", "", message).rstrip(".")


@functools.lru_cache(maxsize=4)
def codecs(driver: str) -> tuple[str, ...]:
    """The COMPRESS values of :data:`CODECS` that ``driver`` writes float32 with here."""
    return tuple(c for c in CODECS if option_problem(driver, "COMPRESS", c) is None)


def _hint(driver: str, key: str, value: str) -> str:
    if key == "COMPRESS":
        return f"values: {', '.join(codecs(driver))}"
    if driver == "COG" and option_problem("GTiff", key, value) is None:
        return (f"it is a GTiff option: pass --no-cog to write a plain GeoTIFF with it, or use "
                f"the COG driver's options ({DRIVER_DOCS['COG']})")
    if driver == "GTiff" and option_problem("COG", key, value) is None:
        return (f"it is a COG option: drop --no-cog to write a COG with it, or use the GTiff "
                f"driver's options ({DRIVER_DOCS['GTiff']})")
    return f"see the {driver} driver's options at {DRIVER_DOCS[driver]}"


def check_creation_options(options: Iterable[tuple[str, Any]], *, cog: bool) -> None:
    """Raise :class:`OptionError` for a creation option the output's driver (COG, or GTiff
    when ``cog`` is false) does not take, naming GDAL's complaint and the fix."""
    driver = "COG" if cog else "GTiff"
    for key, value in options:
        k, v = str(key).upper(), str(value)
        if cog and k in COG_NOOPS:
            continue
        problem = option_problem(driver, k, v)
        if problem is not None:
            raise OptionError(
                f"--co {key}={value}: GDAL's {driver} driver does not accept it ({problem}); "
                f"{_hint(driver, k, v)}"
            )


def gtiff_options(options: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """The options the GTiff driver takes, of those given for a COG (for the temporary
    GeoTIFF a COG is made from)."""
    return {k: v for k, v in options if option_problem("GTiff", str(k).upper(), str(v)) is None}
