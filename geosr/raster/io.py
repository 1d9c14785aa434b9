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
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from geosr.errors import GridError, InputError, RasterIOError
from geosr.raster.grid import OutputGrid, RasterGeometry, Window
from geosr.version import __version__

logger = logging.getLogger(__name__)

#: GDAL block cache per process; keeps memory bounded whatever the raster size (a larger
#: cache fills up with guide blocks on big scenes without making the pipeline faster).
GDAL_CACHEMAX_MB = 64


def gdal_env(**extra: Any) -> Any:
    """A ``rasterio.Env`` with a bounded block cache.

    GDAL lists the raster's folder on open as usual, so that the georeferencing it keeps in
    sidecar files (``.aux.xml``, world files such as ``.pgw``/``.jgw``/``.wld``) is seen, as
    ``rio info`` sees it.
    """
    import rasterio

    opts: dict[str, Any] = {
        "GDAL_CACHEMAX": GDAL_CACHEMAX_MB * 1024 * 1024,
        "CHECK_DISK_FREE_SPACE": False,
    }
    opts.update(extra)
    return rasterio.Env(**opts)


#: ``scheme://`` URLs (https, s3, gs, zip+https, ...) that rasterio hands to GDAL
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
#: GDAL's driver-prefixed names, e.g. ``NETCDF:"f.nc":var``, ``GPKG:f.gpkg:table``
_DRIVER_PREFIX = re.compile(r"^[A-Z][A-Z0-9_]+:")


def is_local_path(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a plain file on this machine (not a GDAL virtual file system
    path such as ``/vsizip/...`` or ``/vsicurl/...``, a URL or a driver-prefixed name)."""
    s = os.fspath(path)
    return not (s.startswith("/vsi") or _URL.match(s) or _DRIVER_PREFIX.match(s))


def absolute(path: str) -> str:
    """``path`` made absolute if it is a local file; URLs and /vsi paths as given."""
    return os.path.abspath(path) if is_local_path(path) else path


def _check_local_file(path: str, what: str) -> None:
    p = Path(path)
    if not p.exists():
        raise InputError(f"the {what} file {path!r} does not exist; check the path")
    if p.is_dir():
        raise InputError(f"the {what} path {path!r} is a folder; pass a raster file")
    if not os.access(p, os.R_OK):
        raise InputError(
            f"the {what} file {path!r} is not readable; check its permissions (chmod +r)"
        )


def _check_georeferenced(src: Any, path: str, what: str) -> None:
    """Refuse a raster georeferenced by ground control points only (no geotransform)."""
    gcps, gcp_crs = src.gcps
    if gcps and src.transform.is_identity:
        epsg = gcp_crs.to_epsg() if gcp_crs is not None else None
        name = os.path.basename(path) or path
        raise GridError(
            f"the {what} raster {path!r} has ground control points but no geotransform; "
            f"warp it first: `gdalwarp -t_srs EPSG:{epsg or 'XXXX'} {name} "
            f"{os.path.splitext(name)[0]}_warped.tif` (or `rio warp`)"
        )


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
    #: per band ``physical = raw * scale + offset`` (empty: 1 and 0 for every band)
    scales: tuple[float, ...] = ()
    offsets: tuple[float, ...] = ()

    def scale_offset(self, band: int) -> tuple[float, float]:
        """``(scale, offset)`` of 1-based ``band``."""
        scale = self.scales[band - 1] if len(self.scales) >= band else 1.0
        offset = self.offsets[band - 1] if len(self.offsets) >= band else 0.0
        return float(scale), float(offset)

    @property
    def alpha_band(self) -> int | None:
        """1-based index of an alpha band, if the raster has one."""
        for i, ci in enumerate(self.colorinterp, start=1):
            if ci == "alpha":
                return i
        return None


def raster_info(path: str | os.PathLike[str], what: str) -> RasterInfo:
    """Open ``path`` and describe it, or raise :class:`InputError` saying what to do.

    A plain local path is checked first (exists, is a file, is readable); anything else
    (``/vsizip/...``, ``/vsicurl/...``, ``https://...``, ``s3://...``) goes to rasterio as
    given, and GDAL's own error is reported when it cannot be opened.
    """
    import rasterio
    from rasterio.errors import RasterioIOError

    s = os.fspath(path)
    local = is_local_path(s)
    if local:
        _check_local_file(s, what)
    try:
        with gdal_env(), rasterio.open(s) as src:
            _check_georeferenced(src, s, what)
            return RasterInfo(
                path=s,
                geometry=RasterGeometry(src.crs, src.transform, src.width, src.height),
                count=src.count,
                dtypes=tuple(src.dtypes),
                nodata=src.nodata,
                colorinterp=tuple(ci.name for ci in src.colorinterp),
                descriptions=tuple(src.descriptions),
                units=tuple(src.units),
                scales=tuple(float(v) for v in src.scales),
                offsets=tuple(float(v) for v in src.offsets),
            )
    except RasterioIOError as exc:
        if not local:
            raise InputError(
                f"GDAL cannot open the {what} raster {s!r}: {exc}; check the path or URL "
                "(and the network, or the credentials of a cloud store)"
            ) from exc
        raise InputError(
            f"the {what} file {s!r} is not a raster GDAL can read ({exc}); pass a "
            "GeoTIFF (or another GDAL raster format)"
        ) from exc


def to_physical(arr: np.ndarray, scale: float = 1.0, offset: float = 0.0) -> np.ndarray:
    """Raw band values as float32 physical values ``raw * scale + offset`` (computed in
    float64, so that large offsets keep the precision float32 allows)."""
    if scale == 1.0 and offset == 0.0:
        return arr.astype(np.float32)
    return (arr.astype(np.float64) * scale + offset).astype(np.float32)


def bands_to_physical(arr: np.ndarray, scales: Sequence[float],
                      offsets: Sequence[float]) -> np.ndarray:
    """``(bands, ...)`` raw values (e.g. ``src.read()``, NaN kept) as float32 physical values,
    each band with its own scale and offset (``src.scales``, ``src.offsets``)."""
    out = np.asarray(arr).astype(np.float32)
    for i, (scale, offset) in enumerate(zip(scales, offsets, strict=True)):
        out[i] = to_physical(np.asarray(arr[i]), float(scale), float(offset))
    return out


#: Fill values common enough to warn about when an LR with no nodata value holds them:
#: -9999 (ASCII grids and many DEM and climate products), -32768 and -32767 (the 16-bit
#: voids of SRTM and other integer DEMs) and the float32 extremes (NoData of ArcGIS float
#: grids).
FILL_VALUES = (-9999.0, -32768.0, -32767.0, float(np.finfo(np.float32).min),
               float(np.finfo(np.float32).max))


def fill_candidates(dtype: str, scale: float = 1.0, offset: float = 0.0) -> dict[float, float]:
    """``{raw fill value: the float32 value read_lr returns for it}`` for the
    :data:`FILL_VALUES` a band of ``dtype`` can hold."""
    dt = np.dtype(dtype)
    out: dict[float, float] = {}
    for v in FILL_VALUES:
        if np.issubdtype(dt, np.integer):
            info = np.iinfo(dt)
            if not info.min <= v <= info.max:
                continue
        elif not np.issubdtype(dt, np.floating) or float(dt.type(v)) != v:
            continue
        out[v] = float(to_physical(np.array([v], dt), scale, offset)[0])
    return out


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
    mask band (if any) mark invalid pixels. Nodata is compared on the raw values; the valid
    ones are returned as physical values (the band's scale and offset applied).
    ``out_shape`` decimates the read (statistics).
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
            scale, offset = src.scales[band - 1], src.offsets[band - 1]
    except rasterio.errors.RasterioIOError as exc:
        raise read_error("LR raster", path, window, exc) from exc
    out = to_physical(arr, scale, offset)
    out[bad] = np.nan
    return out[None]


def read_error(what: str, path: str, window: Window, exc: BaseException,
               where: str = "") -> RasterIOError:
    """The error of a failed windowed read: the file, the window (``where``: in which
    pixels, if not the file's), GDAL's own message (the cause rasterio chains) and how to
    check the file."""
    cause = exc.__cause__ or exc.__context__
    gdal = str(cause or exc).strip() or type(exc).__name__
    return RasterIOError(
        f"failed to read the {what} {path!r} (rows {window.row0}-{window.row1}, columns "
        f"{window.col0}-{window.col1}{where}; GDAL: {gdal}); the file may be truncated or "
        f"corrupt: check it with `gdalinfo -checksum {path}`"
    )


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
        cause = exc.__cause__ or exc.__context__
        raise RasterIOError(
            f"failed to read the guide {info.path!r}: {exc}"
            + (f" (GDAL: {cause})" if cause is not None else "")
            + f"; check it with `gdalinfo -checksum {info.path}`"
        ) from exc


def read_guide(
    vrt: Any,
    mask_band: int | None,
    bands: Sequence[int],
    window: Window,
    scale_offset: Sequence[tuple[float, float]] | None = None,
) -> np.ndarray:
    """Read ``bands`` of a guide VRT in ``window`` as ``(C, h, w)`` float32, NaN = no data;
    ``scale_offset``: each band's ``(scale, offset)``, to return physical values."""
    import rasterio

    rw = window.to_rasterio()
    try:
        out = vrt.read(list(bands), window=rw, out_dtype="float32")
        m = vrt.read(mask_band, window=rw) == 0 if mask_band is not None else None
    except rasterio.errors.RasterioIOError as exc:
        path = getattr(getattr(vrt, "src_dataset", None), "name", None) or vrt.name
        raise read_error("guide", path, window, exc, " of the output grid") from exc
    if scale_offset is not None:
        for i, (scale, offset) in enumerate(scale_offset):
            out[i] = to_physical(out[i], scale, offset)
    if m is not None:
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
        same = inp and is_local_path(inp) and out.exists() and os.path.exists(inp)
        if same and os.path.samefile(out, inp):
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


def without_secrets(path: str) -> str:
    """``path`` as given, less what a URL may carry that is not for others to read: the
    password of ``user:password@`` and the query string (signed-URL tokens)."""
    if not _URL.match(path) and "/vsicurl" not in path:
        return path
    path = re.sub(r"(://[^/@:?#]*):[^/@?#]*@", r"\1@", path)
    return re.sub(r"\?[^/]*$", "", path)


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
    """Dataset tags recording how the output was made: ``options`` as the method ran
    (resolved), the inputs as the user named them (URLs less their secrets)."""

    return {
        "GEOSR_VERSION": __version__,
        "GEOSR_METHOD": method,
        "GEOSR_SCALE": str(scale),
        "GEOSR_OPTIONS": json.dumps(options, sort_keys=True, default=str),
        "GEOSR_LR": without_secrets(lr_path),
        "GEOSR_LR_BAND": str(lr_band),
        "GEOSR_GUIDE": without_secrets(guide_path),
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
