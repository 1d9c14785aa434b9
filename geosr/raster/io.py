"""Raster I/O: checked opens, windowed LR reads, the guide through a ``WarpedVRT`` onto the
output grid, and atomic tiled GeoTIFF / COG writes with provenance tags.

Every read is windowed; nothing here loads a whole raster. Datasets are opened per call
(rasterio datasets must not be shared between threads).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from geosr.errors import InputError, RasterIOError
from geosr.raster.grid import OutputGrid, RasterGeometry, Window
from geosr.version import __version__

logger = logging.getLogger(__name__)

#: GDAL block cache per process; keeps memory bounded whatever the raster size (a larger
#: cache fills up with guide blocks on big scenes without making the pipeline faster).
GDAL_CACHEMAX_MB = 64


def gdal_env(**extra: Any) -> Any:
    """A ``rasterio.Env`` with a bounded block cache and quiet sidecar probing."""
    import rasterio

    opts: dict[str, Any] = {
        "GDAL_CACHEMAX": GDAL_CACHEMAX_MB * 1024 * 1024,
        "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
        "CHECK_DISK_FREE_SPACE": False,
    }
    opts.update(extra)
    return rasterio.Env(**opts)


@dataclasses.dataclass(frozen=True)
class RasterInfo:
    """What the pipeline needs to know about an input raster (no pixels)."""

    path: str
    geometry: RasterGeometry
    count: int
    dtypes: tuple[str, ...]
    nodata: float | None
    colorinterp: tuple[str, ...]
    descriptions: tuple[str | None, ...]
    units: tuple[str | None, ...]

    @property
    def alpha_band(self) -> int | None:
        """1-based index of an alpha band, if the raster has one."""
        for i, ci in enumerate(self.colorinterp, start=1):
            if ci == "alpha":
                return i
        return None


def raster_info(path: str | os.PathLike[str], what: str) -> RasterInfo:
    """Open ``path`` and describe it, or raise :class:`InputError` saying what to do."""
    import rasterio
    from rasterio.errors import RasterioIOError

    p = Path(path)
    if not p.exists():
        raise InputError(f"the {what} file {str(p)!r} does not exist; check the path")
    if p.is_dir():
        raise InputError(f"the {what} path {str(p)!r} is a folder; pass a raster file")
    if not os.access(p, os.R_OK):
        raise InputError(
            f"the {what} file {str(p)!r} is not readable; check its permissions (chmod +r)"
        )
    try:
        with gdal_env(), rasterio.open(p) as src:
            return RasterInfo(
                path=str(p),
                geometry=RasterGeometry(src.crs, src.transform, src.width, src.height),
                count=src.count,
                dtypes=tuple(src.dtypes),
                nodata=src.nodata,
                colorinterp=tuple(ci.name for ci in src.colorinterp),
                descriptions=tuple(src.descriptions),
                units=tuple(src.units),
            )
    except RasterioIOError as exc:
        raise InputError(
            f"the {what} file {str(p)!r} is not a raster GDAL can read ({exc}); pass a "
            "GeoTIFF (or another GDAL raster format)"
        ) from exc


def _invalid(arr: np.ndarray, nodata: float | None) -> np.ndarray:
    bad = ~np.isfinite(arr) if np.issubdtype(arr.dtype, np.floating) else np.zeros(arr.shape, bool)
    if nodata is not None:
        bad |= np.isnan(arr) if math.isnan(nodata) else arr == nodata
    return bad


def read_lr(
    path: str,
    band: int,
    window: Window,
    *,
    nodata: float | None = None,
    use_nodata: bool = True,
    out_shape: tuple[int, int] | None = None,
) -> np.ndarray:
    """Read ``window`` (absolute LR pixels) of ``band`` as ``(1, h, w)`` float32, NaN = invalid.

    ``nodata`` overrides the file's nodata value; otherwise the file's nodata value and its
    mask band (if any) mark invalid pixels. ``out_shape`` decimates the read (statistics).
    """
    import rasterio
    from rasterio.enums import Resampling

    try:
        with gdal_env(), rasterio.open(path) as src:
            kw: dict[str, Any] = {"window": window.to_rasterio()}
            if out_shape is not None:
                kw.update(out_shape=out_shape, resampling=Resampling.nearest)
            arr = src.read(band, **kw)
            nd = nodata if nodata is not None else src.nodata
            bad = _invalid(arr, nd if use_nodata else None)
            if nodata is None and use_nodata and src.nodata is None:
                flags = src.mask_flag_enums[band - 1]
                if any(f.name in ("per_dataset", "alpha") for f in flags):
                    bad |= src.read_masks(band, **kw) == 0
    except rasterio.errors.RasterioIOError as exc:
        raise RasterIOError(f"failed to read the LR raster {path!r}: {exc}") from exc
    out = arr.astype(np.float32)
    out[bad] = np.nan
    return out[None]


@contextlib.contextmanager
def guide_vrt(
    info: RasterInfo,
    grid: OutputGrid | tuple[Any, Any, int, int],
    resampling: str,
) -> Iterator[tuple[Any, int | None]]:
    """The guide warped onto ``grid`` (an OutputGrid or ``(crs, transform, w, h)``).

    Yields ``(vrt, mask_band)``: ``mask_band`` is the 1-based VRT band whose zeros mark
    pixels with no guide data (outside its footprint or nodata).
    """
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT

    if isinstance(grid, OutputGrid):
        crs, transform, width, height = grid.crs, grid.transform, grid.width, grid.height
    else:
        crs, transform, width, height = grid
    alpha = info.alpha_band
    kw: dict[str, Any] = {
        "crs": crs,
        "transform": transform,
        "width": width,
        "height": height,
        "resampling": Resampling[resampling],
    }
    if alpha is None:
        kw["add_alpha"] = True
        if info.nodata is not None:
            kw["src_nodata"] = info.nodata
    try:
        with gdal_env(), rasterio.open(info.path) as src, WarpedVRT(src, **kw) as vrt:
            yield vrt, (alpha if alpha is not None else vrt.count)
    except rasterio.errors.RasterioIOError as exc:
        raise RasterIOError(f"failed to read the guide {info.path!r}: {exc}") from exc


def read_guide(vrt: Any, mask_band: int | None, bands: Sequence[int], window: Window) -> np.ndarray:
    """Read ``bands`` of a guide VRT in ``window`` as ``(C, h, w)`` float32, NaN = no data."""
    rw = window.to_rasterio()
    out = vrt.read(list(bands), window=rw, out_dtype="float32")
    if mask_band is not None:
        m = vrt.read(mask_band, window=rw) == 0
        out[:, m] = np.nan
    return out


# -- output ------------------------------------------------------------------------------
def check_output_folder(path: str | os.PathLike[str]) -> Path:
    """Check that the folder of ``path`` exists and is writable; raise :class:`InputError`
    with the fix."""
    out = Path(path)
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(
            f"the output folder {str(folder)!r} does not exist; create it first (mkdir -p) "
            "or choose another output path"
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(
            f"the output folder {str(folder)!r} is not writable; choose another output "
            "path or fix the folder's permissions"
        )
    return out


def check_output_format(path: str | os.PathLike[str]) -> None:
    """Refuse an output name whose extension names another raster format than GeoTIFF
    (``out.png``, ``out.jp2``: GDAL would pick that format from it, geosr writes GeoTIFF).
    Names without an extension GDAL knows (``out``, ``out.result``) are written as GeoTIFF."""
    from rasterio.drivers import driver_from_extension

    out = Path(path)
    try:
        driver = driver_from_extension(out.name)
    except ValueError:  # no extension, or none GDAL knows
        return
    if driver not in ("GTiff", "COG"):
        raise InputError(
            f"the output {out.name!r} names a {driver} file, but geosr writes GeoTIFF (COG); "
            f"name the output {out.stem}.tif, then convert it, e.g. `gdal_translate "
            f"{out.stem}.tif {out.name}`"
        )


def check_output_path(
    path: str | os.PathLike[str], *, overwrite: bool, inputs: Sequence[str] = ()
) -> Path:
    """Check that ``path`` can be written; raise :class:`InputError` with the fix."""
    out = check_output_folder(path)
    for inp in inputs:
        if inp and out.exists() and os.path.samefile(out, inp):
            raise InputError(
                f"the output {str(out)!r} is one of the inputs; choose another output path"
            )
    if out.is_dir():
        raise InputError(f"the output {str(out)!r} is a folder; pass a file name (e.g. out.tif)")
    if out.exists() and not overwrite:
        raise InputError(
            f"the output {str(out)!r} already exists; pass --overwrite (overwrite=True) to "
            "replace it, or choose another output path"
        )
    return out


def temp_path(target: Path, suffix: str) -> Path:
    """A fresh temporary file name next to ``target`` (not created: GDAL creates it with the
    usual permissions; the caller removes it)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    os.unlink(tmp)
    return Path(tmp)


def remove_stale_temps(target: Path) -> list[Path]:
    """Delete the temporary files :func:`temp_path` made for ``target`` that a killed run
    left behind (``.<name>.*.tif``); returns them. Only for resuming, with the output's lock
    held (:mod:`geosr.raster.lock`): a concurrent run would lose its temporary file."""
    folder = target.parent if str(target.parent) else Path(".")
    stale = [p for p in folder.glob(f".{target.name}.*.tif") if p.is_file()]
    for p in stale:
        logger.info("removing %s left by an interrupted run", p)
        p.unlink(missing_ok=True)
    return stale


def output_profile(
    grid: OutputGrid,
    *,
    nodata: float,
    blocksize: int,
    compress: str,
    creation_options: dict[str, str],
) -> dict[str, Any]:
    """Creation profile of the intermediate tiled float32 GeoTIFF."""
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "dtype": "float32",
        "count": 1,
        "width": grid.width,
        "height": grid.height,
        "crs": grid.crs,
        "transform": grid.transform,
        "nodata": nodata,
        "tiled": True,
        "blockxsize": blocksize,
        "blockysize": blocksize,
        "compress": compress,
        "predictor": 3,
        "bigtiff": "IF_SAFER",
    }
    profile.update({k.lower(): v for k, v in creation_options.items()})
    return profile


def provenance_tags(
    *,
    method: str,
    scale: int,
    options: dict[str, Any],
    lr_path: str,
    guide_path: str,
    lr_band: int,
    guide_bands: Sequence[int],
) -> dict[str, str]:
    """Dataset tags recording how the output was made."""

    return {
        "GEOSR_VERSION": __version__,
        "GEOSR_METHOD": method,
        "GEOSR_SCALE": str(scale),
        "GEOSR_OPTIONS": json.dumps(options, sort_keys=True, default=str),
        "GEOSR_LR": os.path.basename(lr_path),
        "GEOSR_LR_BAND": str(lr_band),
        "GEOSR_GUIDE": os.path.basename(guide_path),
        "GEOSR_GUIDE_BANDS": ",".join(str(b) for b in guide_bands),
        "TIFFTAG_SOFTWARE": f"geosr {__version__}",
    }


def to_cog(
    src_path: Path,
    dst_path: Path,
    *,
    blocksize: int,
    compress: str,
    creation_options: dict[str, str],
) -> None:
    """Translate a tiled GeoTIFF into a Cloud-Optimised GeoTIFF with GDAL's COG driver."""
    import rasterio.shutil

    opts: dict[str, Any] = {
        "BLOCKSIZE": blocksize,
        "COMPRESS": compress,
        "PREDICTOR": "YES",
        "BIGTIFF": "IF_SAFER",
        "OVERVIEW_RESAMPLING": "AVERAGE",
        "NUM_THREADS": "ALL_CPUS",
    }
    # Options that only the GTiff driver knows do not apply to the COG driver.
    gtiff_only = {"TILED", "BLOCKXSIZE", "BLOCKYSIZE", "INTERLEAVE", "PHOTOMETRIC"}
    opts.update({k.upper(): v for k, v in creation_options.items() if k.upper() not in gtiff_only})
    try:
        with gdal_env():
            rasterio.shutil.copy(str(src_path), str(dst_path), driver="COG", **opts)
    except Exception as exc:  # rasterio raises CPLE_* errors here
        raise RasterIOError(f"failed to write the COG {dst_path}: {exc}") from exc


# -- failed writes ---------------------------------------------------------------------------
#: free bytes under which a failed write is taken for a full disk (GDAL's write errors do
#: not carry the errno)
FULL_DISK_BYTES = 1 << 20
_NO_SPACE = {errno.ENOSPC: "no space left on device",
             getattr(errno, "EDQUOT", errno.ENOSPC): "disk quota exceeded"}


def disk_full(exc: BaseException, folder: str | os.PathLike[str]) -> str | None:
    """Why ``exc`` is a write on a full disk ("no space left on device", "disk quota
    exceeded"), or None: ENOSPC/EDQUOT anywhere in its chain, or a failed write (an
    ``OSError``, as rasterio's are) while ``folder``'s filesystem has under
    :data:`FULL_DISK_BYTES` free."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        if isinstance(e, OSError) and e.errno in _NO_SPACE:
            return _NO_SPACE[e.errno]
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    if isinstance(exc, OSError):
        try:
            if shutil.disk_usage(folder).free < FULL_DISK_BYTES:
                return _NO_SPACE[errno.ENOSPC]
        except OSError:
            pass
    return None


def _blocks_end(src: Any) -> int:
    """The byte where the last block of band 1 (and of its overviews) ends."""
    bh, bw = src.block_shapes[0]
    levels = [(None, src.width, src.height)] + [
        (i, -(-src.width // f), -(-src.height // f)) for i, f in enumerate(src.overviews(1))]
    end = 0
    for ovr, width, height in levels:
        for r in range(-(-height // bh)):
            for c in range(-(-width // bw)):
                off = src.get_tag_item(f"BLOCK_OFFSET_{c}_{r}", "TIFF", bidx=1, ovr=ovr)
                if off:
                    size = src.get_tag_item(f"BLOCK_SIZE_{c}_{r}", "TIFF", bidx=1, ovr=ovr)
                    end = max(end, int(off) + int(size or 0))
    return end


def check_written(path: Path) -> None:
    """Raise :class:`RasterIOError` when the GeoTIFF GDAL just wrote at ``path`` is cut
    short. GDAL does not report every failed write: on a full disk, a COG copy can end
    without an error and leave a truncated file."""
    import rasterio

    size = path.stat().st_size
    try:
        with gdal_env(), rasterio.open(path) as src:
            end = _blocks_end(src)
    except rasterio.errors.RasterioIOError as exc:
        raise RasterIOError(f"{path} is unreadable right after writing it ({exc})") from exc
    if end > size:
        raise RasterIOError(
            f"{path} is cut short ({size} bytes; its blocks end at byte {end}): a write "
            "failed"
        )
