"""DataArrays as pipeline inputs: their description and the array source."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from affine import Affine

from geosr.errors import GridError, InputError
from geosr.raster.grid import (
    RasterGeometry,
    Window,
)
from geosr.raster.io import RasterInfo, _invalid, gdal_env, guide_vrt, read_guide

logger = logging.getLogger(__name__)


# -- source --------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ArraySource:
    """Pixels from array pieces, for :attr:`geosr.pipeline.Plan.source`.

    ``lr``: a ``(rows, cols)`` piece of the LR band whose ``[0, 0]`` is the absolute LR
    pixel ``lr_origin``; ``guide``: a ``(bands, rows, cols)`` piece of the guide (all its
    bands; the plan picks them) whose ``[:, 0, 0]`` is guide pixel ``guide_origin`` of a
    raster of geometry ``guide_geometry``. Pieces may be whole rasters (numpy, or anything
    ``np.asarray`` takes; a dask guide is computed a chunk at a time into the in-memory
    GeoTIFF the guide is read through); a read outside its piece is an error.
    """

    lr: Any = None
    lr_origin: tuple[int, int] = (0, 0)
    #: the LR's own nodata value (the plan's ``lr_nodata`` overrides it)
    lr_nodata: float | None = None
    guide: Any = None
    guide_origin: tuple[int, int] = (0, 0)
    guide_geometry: RasterGeometry | None = None
    guide_nodata: float | None = None

    def read_lr(
        self, plan: Any, window: Window, out_shape: tuple[int, int] | None = None
    ) -> np.ndarray:
        """Absolute LR window as ``(1, h, w)`` float32, NaN = nodata (like ``io.read_lr``)."""
        r0, c0 = self.lr_origin
        arr = np.asarray(self.lr)
        if (window.row0 < r0 or window.col0 < c0 or window.row1 - r0 > arr.shape[0]
                or window.col1 - c0 > arr.shape[1]):
            raise ValueError(f"LR window {window} is outside the piece at {self.lr_origin}")
        arr = arr[window.row0 - r0 : window.row1 - r0, window.col0 - c0 : window.col1 - c0]
        if out_shape is not None:  # GDAL's nearest decimation (RasterIO with out_shape)
            arr = arr[np.ix_(_nearest(window.height, out_shape[0]),
                             _nearest(window.width, out_shape[1]))]
        nd = plan.lr_nodata if plan.lr_nodata is not None else self.lr_nodata
        out = arr.astype(np.float32)
        out[_invalid(arr, nd)] = np.nan
        return out[None]

    @contextlib.contextmanager
    def guide_reader(
        self, plan: Any, target: Any, resampling: str
    ) -> Iterator[Callable[[Window], np.ndarray]]:
        """``read(window)``: the guide piece resampled onto ``target`` through the same
        ``WarpedVRT`` as the files (:func:`geosr.raster.io.guide_vrt`)."""
        from rasterio.io import MemoryFile


        nb = len(plan.guide_bands)
        g = self.guide
        lazy = is_dask(g)
        if g is not None and not lazy:
            g = np.asarray(g)
        if g is None or g.size == 0:  # the destination is outside the guide
            yield lambda w: np.full((nb, w.height, w.width), np.nan, np.float32)
            return
        if self.guide_geometry is None:
            raise ValueError("an ArraySource with a guide needs its guide_geometry")
        idx = [b - 1 for b in plan.guide_bands]
        if idx != list(range(g.shape[0])):
            g = g[idx]
        dtype = np.dtype(g.dtype)
        if dtype.kind == "b" or dtype == np.dtype(np.float16):
            dtype = np.dtype(np.uint8 if dtype.kind == "b" else np.float32)
        _, h, w = g.shape
        crs = self.guide_geometry.crs
        r0, c0 = self.guide_origin
        t = self.guide_geometry.transform @ Affine.translation(c0, r0)
        nodata = _representable(self.guide_nodata, dtype)
        with gdal_env(), MemoryFile() as mem:
            with mem.open(driver="GTiff", width=w, height=h, count=nb, dtype=dtype.name,
                          crs=crs, transform=t, nodata=nodata) as ds:
                if lazy:  # computed and written a chunk at a time, never held whole
                    rows, cols = (np.cumsum((0, *c)) for c in g.chunks[1:])
                    for ra, rb in zip(rows[:-1], rows[1:], strict=True):
                        for ca, cb in zip(cols[:-1], cols[1:], strict=True):
                            blk = g[:, ra:rb, ca:cb].compute(scheduler="sync")
                            ds.write(np.asarray(blk, dtype=dtype),
                                     window=Window(int(ra), int(ca), int(rb), int(cb)).to_rasterio())
                else:
                    ds.write(np.ascontiguousarray(g, dtype=dtype))
            info = RasterInfo(
                path=mem.name, geometry=RasterGeometry(crs, t, w, h), count=nb,
                dtypes=(dtype.name,) * nb, nodata=nodata, colorinterp=("undefined",) * nb,
                descriptions=(None,) * nb, units=(None,) * nb,
            )
            with guide_vrt(info, target, resampling) as (vrt, mask_band):
                bands = list(range(1, nb + 1))
                yield lambda win: read_guide(vrt, mask_band, bands, win)


def is_dask(x: Any) -> bool:
    return x is not None and hasattr(x, "dask") and hasattr(x, "compute")


def _nearest(size: int, n: int) -> np.ndarray:
    """Source indices GDAL's nearest RasterIO picks when reading ``size`` pixels into ``n``."""
    idx = np.floor((np.arange(n) + 0.5) * (size / n) + 1e-10).astype(np.int64)
    return np.minimum(idx, size - 1)


def _representable(nodata: float | None, dtype: np.dtype) -> float | None:
    """``nodata`` if a raster of ``dtype`` can hold it (GeoTIFF nodata), else None."""
    if nodata is None:
        return None
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        if not np.isfinite(nodata) or not info.min <= nodata <= info.max:
            return None
    return float(nodata)


# -- inputs --------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class DataArrayInput:
    """A checked DataArray: ``(band, y, x)`` data (numpy or dask) and its description."""

    data: Any
    info: RasterInfo
    lazy: bool
    band_dim: str | None
    band_values: Any
    y_dim: str
    x_dim: str
    nodata: float | None
    encoded_nodata: float | None
    name: Any


def as_input(da: Any, what: str) -> DataArrayInput:
    import xarray as xr
    from rioxarray.exceptions import RioXarrayError

    var = "lr" if what == "LR" else "guide"
    if not isinstance(da, xr.DataArray):
        raise InputError(
            f"{var} must be an xarray.DataArray with a CRS and transform (e.g. "
            f"rioxarray.open_rasterio(path)), got {type(da).__name__}; for plain arrays use "
            "geosr.super_resolve"
        )
    try:
        x_dim, y_dim = da.rio.x_dim, da.rio.y_dim
    except RioXarrayError as exc:
        raise InputError(
            f"the {what} DataArray has dims {tuple(da.dims)} and no spatial (y, x) dims; "
            f"name them x and y ({var}.rename({{'lon': 'x', 'lat': 'y'}})) or declare them "
            f"with {var}.rio.set_spatial_dims(x_dim=..., y_dim=...)"
        ) from exc
    others = [d for d in da.dims if d not in (x_dim, y_dim)]
    if len(others) > 1 or da.ndim not in (2, 3):
        raise InputError(
            f"the {what} DataArray has dims {tuple(da.dims)}; pass a 2-D (y, x) or 3-D "
            f"(band, y, x) DataArray, e.g. select one time step with {var}.isel(time=0)"
        )
    band_dim = others[0] if others else None
    if da.rio.crs is None:
        raise GridError(
            f"the {what} DataArray has no CRS; set it with "
            f"{var} = {var}.rio.write_crs('EPSG:XXXX') (the EPSG code of its coordinates)"
        )
    height, width = int(da.sizes[y_dim]), int(da.sizes[x_dim])
    gm = da.rio.grid_mapping
    stored = gm in da.coords and "GeoTransform" in da.coords[gm].attrs
    if not stored and (x_dim not in da.coords or y_dim not in da.coords or min(height, width) < 2):
        raise GridError(
            f"the {what} DataArray has no transform: it needs x/y coordinates (pixel "
            f"centres) along {height} x {width} >= 2 x 2 pixels, or a transform; set one with "
            f"{var} = {var}.rio.write_transform(Affine(...))"
        )
    try:
        transform = _transform(da, x_dim, y_dim, what)
    except RioXarrayError as exc:
        raise GridError(f"the {what} DataArray's transform cannot be read ({exc}); set it "
                        f"with {var} = {var}.rio.write_transform(Affine(...))") from exc
    dt = np.dtype(da.dtype)
    if not np.issubdtype(dt, np.number) or np.issubdtype(dt, np.complexfloating):
        raise InputError(f"the {what} DataArray must hold real numbers, got dtype {dt}")
    order = ([band_dim] if band_dim else []) + [y_dim, x_dim]
    arr = da.transpose(*order)
    lazy = arr.chunks is not None
    data = arr.data if lazy else np.asarray(arr.values)
    if band_dim is None:
        data = data[None]
    count = int(data.shape[0])
    source = da.encoding.get("source")
    name = str(source) if source else (str(da.name) if da.name is not None else var)
    nodata = da.rio.nodata
    nodata = None if nodata is None else float(nodata)
    info = RasterInfo(
        path=name,
        geometry=RasterGeometry(da.rio.crs, transform, width, height),
        count=count,
        dtypes=(dt.name,) * count,
        nodata=nodata,
        colorinterp=("undefined",) * count,
        descriptions=_per_band(da.attrs.get("long_name"), count),
        units=_per_band(da.attrs.get("units"), count),
    )
    enc = da.rio.encoded_nodata
    return DataArrayInput(
        data=data, info=info, lazy=lazy, band_dim=band_dim,
        band_values=da[band_dim].values if band_dim and band_dim in da.coords else None,
        y_dim=y_dim, x_dim=x_dim, nodata=nodata,
        encoded_nodata=None if enc is None else float(enc), name=da.name,
    )


def _transform(da: Any, x_dim: str, y_dim: str, what: str) -> Affine:
    """The transform of ``da``: from its 1-D x/y coordinates when it has at least two of
    each (a cached ``GeoTransform`` goes stale under ``coarsen``, ``isel`` with steps,
    ``interp``...), else the cached one (rotated transforms have no 1-D coordinates)."""
    cached = da.rio.transform()
    coords = [da.coords.get(d) for d in (x_dim, y_dim)]
    if cached.b != 0 or cached.d != 0 or any(c is None or c.ndim != 1 or c.size < 2
                                              for c in coords):
        return cached
    derived = da.rio.transform(recalc=True)
    if not cached.almost_equals(derived):
        logger.debug("the %s DataArray's cached transform %s disagrees with its coordinates; "
                     "using %s", what, tuple(cached)[:6], tuple(derived)[:6])
    return derived


def _per_band(value: Any, count: int) -> tuple[str | None, ...]:
    if isinstance(value, (list, tuple)) and len(value) == count:
        return tuple(None if v is None else str(v) for v in value)
    if isinstance(value, str) and value:
        return (value,) * count
    return (None,) * count


