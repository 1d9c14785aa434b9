"""The resamplers a GIS user already has: GDAL's lanczos and cubic, as methods.

``lanczos`` and ``cubic`` give what ``gdalwarp -r lanczos|cubic`` (``rasterio.warp.reproject``
with that resampling) writes when it warps the LR onto the output grid, which is the LR grid
refined by the scale: GDAL's kernels (lanczos: a 3-lobe windowed sinc over 6x6 LR pixels;
cubic: Keys' cubic convolution, a = -0.5, over 4x4), weights renormalised where LR pixels
are nodata, and nodata over the footprint of a nodata LR pixel. Where GDAL's lanczos leaves
the footprint of a *valid* LR pixel empty (it does where the valid pixels under its 6x6
kernel carry too little of the weight: within about two LR pixels of a large nodata area,
and on valid islands smaller than 5x5 LR pixels), those output pixels take GDAL's cubic
value instead, so that no valid LR pixel is lost; everywhere else the output is GDAL's
own. The guide is not used. They
are the yardsticks a DEM user compares with, and what the guard of the pipeline writes when a
learned method would not beat them.

The kernel comes from GDAL through rasterio, applied to plain arrays on a local grid (same
CRS on both sides, so nothing is reprojected): this module is the one place where the
models layer calls GDAL, as a numerical kernel, with no georeferencing in or out.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np

from geosr.models.base import Method, MethodOptions

#: LR pixels a kernel reaches on each side of an output pixel (lanczos 3, cubic 2), plus one
KERNEL_RADIUS = {"lanczos": 3, "cubic": 2}


def gdal_upsample(lr: np.ndarray, scale: int, kernel: str) -> np.ndarray:
    """``(B, h, w)`` float32 (NaN = nodata) -> ``(B, scale*h, scale*w)`` with GDAL's
    ``kernel`` ("lanczos" or "cubic"), as ``gdalwarp`` onto the grid refined by ``scale``."""
    from affine import Affine
    from rasterio.crs import CRS
    from rasterio.warp import Resampling, reproject

    lr = np.ascontiguousarray(lr, dtype=np.float32)
    b, h, w = lr.shape
    out = np.full((b, h * scale, w * scale), np.nan, dtype=np.float32)
    # A local metric grid with y pointing down the array, as in any north-up raster.
    crs = CRS.from_epsg(3857)
    src_t = Affine(float(scale), 0.0, 0.0, 0.0, -float(scale), float(h * scale))
    dst_t = Affine(1.0, 0.0, 0.0, 0.0, -1.0, float(h * scale))
    reproject(lr, out, src_transform=src_t, dst_transform=dst_t, src_crs=crs, dst_crs=crs,
              resampling=getattr(Resampling, kernel), src_nodata=np.nan, dst_nodata=np.nan,
              num_threads=1)
    return out


@dataclasses.dataclass(frozen=True)
class ResampleOptions(MethodOptions):
    pass


class _GDALResample(Method):
    Options = ResampleOptions
    #: works on the LR's own values (NaN = nodata): no normalisation around it, so that its
    #: output is exactly GDAL's
    normalised: ClassVar[bool] = False
    resampler = True
    kernel: ClassVar[str] = ""

    def halo(self, scale: int) -> int:
        return KERNEL_RADIUS[self.kernel] + 1

    def run(self, lr, guide, scale, mask, *, progress):  # type: ignore[override]
        x = np.where(mask, lr, np.nan).astype(np.float32)
        return fill_dropped(gdal_upsample(x, scale, self.kernel), x, scale, self.kernel)


def fill_dropped(out: np.ndarray, lr: np.ndarray, scale: int, kernel: str) -> np.ndarray:
    """``out`` (GDAL's ``kernel`` applied to ``lr``, NaN = nodata) with the output pixels of
    valid LR pixels that the kernel left empty filled in: with GDAL's cubic (a 4x4 kernel,
    which keeps them), else with the LR pixel's own value. Pixels of nodata LR pixels stay
    NaN; the other pixels are left as GDAL wrote them."""
    valid = np.repeat(np.repeat(np.isfinite(lr), scale, axis=-2), scale, axis=-1)
    lost = valid & ~np.isfinite(out)
    if not lost.any():
        return out
    out = out.copy()
    if kernel != "cubic":
        out[lost] = gdal_upsample(lr, scale, "cubic")[lost]
        lost &= ~np.isfinite(out)
    if lost.any():
        out[lost] = np.repeat(np.repeat(lr, scale, axis=-2), scale, axis=-1)[lost]
    return out


class Lanczos(_GDALResample):
    """GDAL's lanczos resampling of the LR onto the output grid (``gdalwarp -r lanczos``)."""

    name = "lanczos"
    kernel = "lanczos"


class Cubic(_GDALResample):
    """GDAL's cubic resampling of the LR onto the output grid (``gdalwarp -r cubic``)."""

    name = "cubic"
    kernel = "cubic"
