"""Output grid and window maths (affine, pyproj, shapely).

The output grid is the LR grid refined by ``scale``: same CRS, pixel edges aligned with
the LR pixel edges, clipped to the whole LR pixels inside the intersection of the LR and
guide footprints. Everything here is pure geometry on raster metadata; no pixels are read.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from affine import Affine

from geosr.errors import GridError

#: A guide may be at most this many times coarser than the output pixel.
MAX_GUIDE_COARSENESS = 2.0
#: Footprint edges within this fraction of an output pixel of an LR pixel edge snap to it.
EDGE_TOLERANCE = 0.5


@dataclasses.dataclass(frozen=True)
class RasterGeometry:
    """CRS, affine transform and size of a raster (``crs`` is a rasterio ``CRS``)."""

    crs: Any
    transform: Affine
    width: int
    height: int

    @property
    def res(self) -> tuple[float, float]:
        t = self.transform
        return (math.hypot(t.a, t.d), math.hypot(t.b, t.e))

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) of the (rectilinear) raster in its CRS."""
        xs, ys = zip(
            *(self.transform @ (c, r) for c in (0, self.width) for r in (0, self.height)),
            strict=True,
        )
        return (min(xs), min(ys), max(xs), max(ys))


@dataclasses.dataclass(frozen=True)
class Window:
    """An integer pixel window ``[row0, row1) x [col0, col1)``."""

    row0: int
    col0: int
    row1: int
    col1: int

    @property
    def height(self) -> int:
        return self.row1 - self.row0

    @property
    def width(self) -> int:
        return self.col1 - self.col0

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    def __post_init__(self) -> None:
        if self.row1 < self.row0 or self.col1 < self.col0:
            raise ValueError(f"empty or inverted window {self}")

    def scaled(self, scale: int) -> Window:
        return Window(self.row0 * scale, self.col0 * scale, self.row1 * scale, self.col1 * scale)

    def shifted(self, drow: int, dcol: int) -> Window:
        return Window(self.row0 + drow, self.col0 + dcol, self.row1 + drow, self.col1 + dcol)

    def expanded(self, by: int) -> Window:
        return Window(self.row0 - by, self.col0 - by, self.row1 + by, self.col1 + by)

    def intersection(self, other: Window) -> Window | None:
        r0, c0 = max(self.row0, other.row0), max(self.col0, other.col0)
        r1, c1 = min(self.row1, other.row1), min(self.col1, other.col1)
        if r1 <= r0 or c1 <= c0:
            return None
        return Window(r0, c0, r1, c1)

    def slices(self, origin: tuple[int, int] = (0, 0)) -> tuple[slice, slice]:
        """Array slices of this window inside an array whose [0, 0] is at ``origin``."""
        return (
            slice(self.row0 - origin[0], self.row1 - origin[0]),
            slice(self.col0 - origin[1], self.col1 - origin[1]),
        )

    def to_rasterio(self) -> Any:
        from rasterio.windows import Window as RioWindow

        return RioWindow(self.col0, self.row0, self.width, self.height)


@dataclasses.dataclass(frozen=True)
class OutputGrid:
    """The HR output grid and the LR pixels it refines.

    ``lr_window`` is the block of LR pixels (in the LR raster's pixel coordinates) that the
    output covers; the output is ``scale`` times finer, so it has
    ``lr_window.height * scale`` rows and ``lr_window.width * scale`` columns.
    """

    crs: Any
    transform: Affine
    scale: int
    lr_window: Window

    @property
    def height(self) -> int:
        return self.lr_window.height * self.scale

    @property
    def width(self) -> int:
        return self.lr_window.width * self.scale

    @property
    def res(self) -> tuple[float, float]:
        return RasterGeometry(self.crs, self.transform, self.width, self.height).res

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        return RasterGeometry(self.crs, self.transform, self.width, self.height).bounds

    def to_dict(self) -> dict[str, Any]:
        return {
            "crs": self.crs.to_string() if self.crs is not None else None,
            "transform": list(self.transform)[:6],
            "width": self.width,
            "height": self.height,
            "res": list(self.res),
            "bounds": list(self.bounds),
            "scale": self.scale,
            "lr_window": dataclasses.asdict(self.lr_window),
        }


def _check_rectilinear(geom: RasterGeometry, what: str) -> None:
    t = geom.transform
    if t.b != 0 or t.d != 0:
        raise GridError(
            f"the {what} raster has a rotated/sheared geotransform {tuple(t)[:6]}; geosr needs "
            f"a north-up {what}: warp it first, e.g. `gdalwarp -t_srs <its CRS> in.tif out.tif`"
        )
    if t.a == 0 or t.e == 0:
        raise GridError(f"the {what} raster has a degenerate geotransform {tuple(t)[:6]}")


def footprint(geom: RasterGeometry, dst_crs: Any, densify: int = 21) -> Any:
    """Footprint polygon of a raster in ``dst_crs`` (edges densified before reprojecting)."""
    import numpy as np
    import shapely
    from rasterio.warp import transform as warp_transform

    n = max(2, densify + 2)
    t = np.linspace(0.0, 1.0, n)[:-1]
    w, h = geom.width, geom.height
    cols = np.concatenate([t * w, np.full(n - 1, w), (1 - t) * w, np.zeros(n - 1)])
    rows = np.concatenate([np.zeros(n - 1), t * h, np.full(n - 1, h), (1 - t) * h])
    a = geom.transform
    xs = a.a * cols + a.b * rows + a.c
    ys = a.d * cols + a.e * rows + a.f
    if dst_crs is not None and geom.crs != dst_crs:
        xs, ys = warp_transform(geom.crs, dst_crs, xs.tolist(), ys.tolist())
        xs, ys = np.asarray(xs), np.asarray(ys)
    ok = np.isfinite(xs) & np.isfinite(ys)
    if ok.sum() < 3:
        raise GridError(
            "the guide's footprint cannot be expressed in the LR's CRS (the two CRSs do not "
            "cover the same part of the Earth); check both CRSs"
        )
    poly = shapely.Polygon(np.column_stack([xs[ok], ys[ok]]))
    if not poly.is_valid:
        poly = shapely.make_valid(poly)
    return poly


def guide_bounds_in(geom: RasterGeometry, dst_crs: Any) -> tuple[float, float, float, float]:
    """Bounds of a raster in ``dst_crs`` with densified edges (``transform_bounds``)."""
    from rasterio.warp import transform_bounds

    if geom.crs == dst_crs:
        return geom.bounds
    return tuple(transform_bounds(geom.crs, dst_crs, *geom.bounds, densify_pts=21))  # type: ignore[return-value]


def guide_resolution_in(geom: RasterGeometry, dst_crs: Any) -> float:
    """Approximate pixel size of a raster, in the units of ``dst_crs`` (sqrt of pixel area)."""
    if geom.crs == dst_crs:
        rx, ry = geom.res
        return math.sqrt(rx * ry)
    poly = footprint(geom, dst_crs)
    return math.sqrt(poly.area / (geom.width * geom.height))


def output_grid(lr: RasterGeometry, guide: RasterGeometry, scale: int) -> OutputGrid:
    """The output grid for super-resolving ``lr`` by ``scale`` with ``guide``.

    Raises :class:`GridError` (with the fix in the message) when a CRS is missing, the LR
    is smaller than 2x2 pixels, the footprints do not overlap, the overlap holds fewer
    than 2x2 LR pixels, or the guide is more than ``MAX_GUIDE_COARSENESS`` times coarser
    than the output pixels.
    """
    import shapely

    for geom, what in ((lr, "LR"), (guide, "guide")):
        if geom.crs is None:
            raise GridError(
                f"the {what} raster has no CRS; set it with `rio edit-info --crs EPSG:XXXX "
                f"FILE` (or `gdal_edit.py -a_srs EPSG:XXXX FILE`)"
            )
    _check_rectilinear(lr, "LR")
    if lr.width < 2 or lr.height < 2:
        raise GridError(
            f"the LR raster is only {lr.width} x {lr.height} pixels, too small to "
            "super-resolve: at least 2 x 2 LR pixels are needed; pass a larger LR raster"
        )
    lr_poly = shapely.box(*lr.bounds)
    g_poly = footprint(guide, lr.crs)
    inter = lr_poly.intersection(g_poly)
    if inter.is_empty or inter.area == 0:
        raise GridError(
            f"the LR and guide footprints do not overlap (LR bounds {_fmt(lr.bounds)}, guide "
            f"bounds in the LR CRS {_fmt(g_poly.bounds)}); pass a guide that covers the LR"
        )
    # LR pixel coordinates of the intersection's bounding box, snapped inwards to whole
    # LR pixels (with a tolerance of EDGE_TOLERANCE output pixels).
    inv = ~lr.transform
    minx, miny, maxx, maxy = inter.bounds
    cs, rs = zip(*(inv @ (x, y) for x in (minx, maxx) for y in (miny, maxy)), strict=True)
    tol = EDGE_TOLERANCE / scale
    col0 = max(0, math.ceil(min(cs) - tol))
    row0 = max(0, math.ceil(min(rs) - tol))
    col1 = min(lr.width, math.floor(max(cs) + tol))
    row1 = min(lr.height, math.floor(max(rs) + tol))
    out_px = math.sqrt(abs(lr.transform.determinant)) / scale
    if col1 - col0 < 2 or row1 - row0 < 2:
        w = (maxx - minx) / out_px
        h = (maxy - miny) / out_px
        raise GridError(
            f"the LR and guide footprints overlap by only {w:.1f} x {h:.1f} output pixels "
            f"({max(0, col1 - col0)} x {max(0, row1 - row0)} whole LR pixels; at least 2 x 2 "
            "are needed); pass a guide that covers the LR raster"
        )
    g_res = guide_resolution_in(guide, lr.crs)
    if g_res > MAX_GUIDE_COARSENESS * out_px * (1 + 1e-6):
        lr_px = out_px * scale
        best = math.floor(MAX_GUIDE_COARSENESS * lr_px / g_res * (1 + 1e-9))
        finest = f"a guide with pixels of at most {MAX_GUIDE_COARSENESS * out_px:.4g} units"
        fix = (
            f"use --scale {best} or less, or {finest}"
            if best >= 2
            else f"use {finest} (the guide must be finer than the LR)"
        )
        raise GridError(
            f"the guide's pixels ({g_res:.4g} CRS units) are {g_res / out_px:.1f}x coarser than "
            f"the output pixels ({out_px:.4g}); a guide may be at most "
            f"{MAX_GUIDE_COARSENESS:g}x coarser than the output: {fix}"
        )
    lr_window = Window(row0, col0, row1, col1)
    transform = lr.transform @ Affine.translation(col0, row0) @ Affine.scale(1.0 / scale)
    return OutputGrid(crs=lr.crs, transform=transform, scale=scale, lr_window=lr_window)


def _fmt(b: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in b) + ")"
