"""Quicklooks: LR input, guide and output side by side at the same extent, as one PNG.

DEMs are shown as hillshaded colour relief, thermal and other single bands with a
perceptual colour map (one colour scale shared by the LR input and the output), the guide
as a contrast-stretched RGB; a scale bar in map units and the CRS in the caption.

Cheap on large rasters: every raster is read through a window covering the output extent
and decimated by GDAL (rasterio ``out_shape``, which uses overviews where the file has
them) to about the panel size, then warped in memory onto one small panel grid. No raster
is ever read at full resolution unless it is smaller than the panel.

    from geosr.evaluation.quicklook import write_quicklook
    write_quicklook("ql.png", lr="dsm_2m.tif", guide="ortho.tif", output="dsm_0p5m.tif",
                    kind="dem")
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from geosr.errors import GeosrError, InputError, import_extra, require_extra
from geosr.raster.io import bands_to_physical, gdal_env

logger = logging.getLogger(__name__)

#: Longest side of one panel in pixels (the decimated reads are about this size).
PANEL_PIXELS = 600
KINDS = ("dem", "thermal", "band")
_CMAPS = {"dem": "gist_earth", "thermal": "inferno", "band": "viridis"}
#: what no data looks like in every picture geosr draws: a hatched mid grey behind the
#: transparent (NaN) pixels, unlike any colour map's colour (gist_earth's highest ground
#: is near white, the page's background)
NODATA_COLOUR = "#9a9a9a"
NODATA_HATCH_COLOUR = "#5a5a5a"
NODATA_HATCH = "////"


def show_nodata(ax: Any) -> None:
    """Draw the axes' background as no data (:data:`NODATA_COLOUR`, hatched): it shows
    wherever an image on it is transparent, i.e. NaN."""
    patch = ax.patch
    patch.set_facecolor(NODATA_COLOUR)
    patch.set_hatch(NODATA_HATCH)
    if hasattr(patch, "set_hatchcolor"):  # matplotlib >= 3.10
        patch.set_hatchcolor(NODATA_HATCH_COLOUR)
    else:
        patch.set_edgecolor(NODATA_HATCH_COLOUR)
        patch.set_linewidth(0)


def nodata_legend(fig: Any, where: str = "outside lower left") -> Any:
    """A legend entry saying what no data looks like."""
    from matplotlib.patches import Patch

    kw = {"hatchcolor": NODATA_HATCH_COLOUR} if _has_hatchcolor() else {
        "edgecolor": NODATA_HATCH_COLOUR}
    handle = Patch(facecolor=NODATA_COLOUR, hatch=NODATA_HATCH, label="no data", **kw)
    return fig.legend(handles=[handle], loc=where, fontsize=8, frameon=False)


def _has_hatchcolor() -> bool:
    from matplotlib.patches import Patch

    return hasattr(Patch, "set_hatchcolor")


def check_quicklook_path(path: str | os.PathLike[str], *, overwrite: bool) -> Path:
    """Check that a quicklook can be written at ``path`` (a .png in an existing folder) and
    that matplotlib (the ``report`` extra) is installed."""
    require_extra("matplotlib", "report", "a quicklook (--quicklook)")
    p = Path(path)
    if p.suffix.lower() != ".png":
        raise InputError(f"the quicklook {str(p)!r} must be a .png file, e.g. --quicklook ql.png")
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"the quicklook folder {str(folder)!r} does not exist; create it first")
    if p.exists() and not overwrite:
        raise InputError(f"the quicklook {str(p)!r} exists; pass --overwrite to replace it")
    return p


def _panel_grid(bounds: Sequence[float], max_pixels: int) -> tuple[Any, int, int]:
    """(transform, width, height) of a panel covering ``bounds`` with square pixels."""
    from affine import Affine

    left, bottom, right, top = bounds
    w, h = right - left, top - bottom
    if w <= 0 or h <= 0:
        raise InputError(f"the output extent {tuple(bounds)} is empty")
    res = max(w, h) / max_pixels
    width, height = max(1, round(w / res)), max(1, round(h / res))
    return Affine(w / width, 0, left, 0, -h / height, top), width, height


def read_decimated(
    path: str | os.PathLike[str],
    bands: Sequence[int],
    dst_crs: Any,
    dst_transform: Any,
    dst_shape: tuple[int, int],
    *,
    nodata: float | None = None,
    resampling: str = "average",
) -> np.ndarray:
    """``bands`` of ``path`` on a small target grid, as ``(C, h, w)`` float32 (NaN = no data).

    Reads only the window of the source that covers the target, decimated by GDAL to at
    most about twice the target resolution, then warps that small array onto the grid.
    ``resampling`` is used by the decimated read (``average`` for continuous data).
    """
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.warp import reproject, transform_bounds
    from rasterio.windows import Window, from_bounds
    from rasterio.windows import transform as window_transform


    h, w = dst_shape
    left, top = dst_transform.c, dst_transform.f
    right, bottom = left + dst_transform.a * w, top + dst_transform.e * h
    out = np.full((len(bands), h, w), np.nan, np.float32)
    with gdal_env(), rasterio.open(path) as src:
        src_crs = src.crs or dst_crs
        b = transform_bounds(dst_crs, src_crs, left, bottom, right, top, densify_pts=21)
        win = from_bounds(*b, transform=src.transform)
        c0, r0 = math.floor(win.col_off), math.floor(win.row_off)
        win = Window(c0, r0, math.ceil(win.col_off + win.width) - c0,
                     math.ceil(win.row_off + win.height) - r0)
        full = Window(0, 0, src.width, src.height)
        try:
            win = win.intersection(full)
        except rasterio.errors.WindowError:
            return out  # no overlap
        # Read at about twice the panel resolution (never more than the window itself).
        f = min(1.0, 2.0 * max(h, w) / max(win.width, win.height))
        rh, rw = max(1, math.ceil(win.height * f)), max(1, math.ceil(win.width * f))
        data = src.read(list(bands), window=win, out_shape=(len(bands), rh, rw),
                        resampling=Resampling[resampling], masked=True)
        nd = nodata if nodata is not None else src.nodata
        arr = data.astype(np.float32).filled(np.nan)
        if nd is not None and not math.isnan(nd):
            arr[arr == nd] = np.nan
        arr[~np.isfinite(arr)] = np.nan
        arr = bands_to_physical(arr, [src.scales[b - 1] for b in bands],
                                [src.offsets[b - 1] for b in bands])
        st = window_transform(win, src.transform) @ type(src.transform).scale(
            win.width / rw, win.height / rh)
        for i in range(len(bands)):
            reproject(arr[i], out[i], src_transform=st, src_crs=src_crs,
                      dst_transform=dst_transform, dst_crs=dst_crs, src_nodata=np.nan,
                      dst_nodata=np.nan, resampling=Resampling.nearest)
    return out


def _stretch(rgb: np.ndarray) -> np.ndarray:
    """(C, h, w) -> (h, w, 3) in [0, 1], each band stretched between its 2nd and 98th percentile."""
    if rgb.shape[0] < 3:
        rgb = np.repeat(rgb[:1], 3, axis=0)
    out = np.zeros((*rgb.shape[1:], 4), np.float32)
    for i in range(3):
        band = rgb[i]
        ok = np.isfinite(band)
        if ok.any():
            lo, hi = np.percentile(band[ok], (2, 98))
            out[..., i] = np.clip((band - lo) / max(hi - lo, 1e-12), 0, 1)
    out[..., 3] = np.isfinite(rgb[:3]).all(axis=0)
    return np.nan_to_num(out)


def _limits(*arrays: np.ndarray) -> tuple[float, float]:
    vals = np.concatenate([a[np.isfinite(a)].ravel() for a in arrays])
    if vals.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(vals, (1, 99))
    return float(lo), float(hi if hi > lo else lo + 1e-6)


def colour_relief(z: np.ndarray, res: float, vmin: float, vmax: float,
                  cmap: str = "gist_earth") -> np.ndarray:
    """Hillshaded colour relief (RGBA, NaN transparent) of elevations ``z`` on ``res`` pixels."""
    import matplotlib
    from matplotlib.colors import LightSource

    ok = np.isfinite(z)
    filled = np.where(ok, z, np.nanmean(z) if ok.any() else 0.0)
    ls = LightSource(azdeg=315, altdeg=45)
    rgb = ls.shade(filled, cmap=matplotlib.colormaps[cmap], blend_mode="soft", vert_exag=1.0,
                   dx=res, dy=res, vmin=vmin, vmax=vmax)
    rgb[..., 3] = ok
    return rgb


def _nice_length(span: float) -> float:
    """A 1-2-5 length close to a fifth of ``span``."""
    target = span / 5
    exp = 10 ** math.floor(math.log10(target))
    return max((m * exp for m in (1, 2, 5, 10) if m * exp <= target), default=exp)


def _units(crs: Any) -> tuple[str, float]:
    """(label, metres per unit) of the CRS's linear unit; degrees for geographic CRSs."""
    if crs is None:
        return "px", 1.0
    if crs.is_geographic:
        return "°", 1.0
    try:
        unit = crs.linear_units
        factor = crs.linear_units_factor[1]
    except Exception:  # unknown units
        return "units", 1.0
    return ("m", 1.0) if unit in ("metre", "meter") else (unit, factor)


def _scale_bar(ax: Any, span: float, crs: Any) -> None:
    from matplotlib.font_manager import FontProperties
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    label, _ = _units(crs)
    length = _nice_length(span)
    text = f"{length:g} {label}"
    if label == "m" and length >= 1000:
        text = f"{length / 1000:g} km"
    bar = AnchoredSizeBar(ax.transData, length, text, "lower right", pad=0.4, sep=3,
                          color="black", frameon=True, size_vertical=span / 150,
                          fontproperties=FontProperties(size=8))
    bar.patch.set_alpha(0.7)
    ax.add_artist(bar)


def _crs_caption(crs: Any) -> str:
    if crs is None:
        return "no CRS"
    from pyproj import CRS

    c = CRS.from_user_input(crs.to_wkt())
    auth = c.to_authority()
    return f"{c.name} ({auth[0]}:{auth[1]})" if auth else c.name


def _res_text(res: float, crs: Any) -> str:
    label, _ = _units(crs)
    return f"{res:.3g} {label}"


def write_quicklook(
    path: str | os.PathLike[str],
    lr: str | os.PathLike[str],
    guide: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    kind: str = "band",
    lr_band: int | None = None,
    guide_bands: Sequence[int] | None = None,
    nodata: float | None = None,
    max_pixels: int = PANEL_PIXELS,
    title: str | None = None,
    dpi: int = 100,
) -> Path:
    """Write a PNG quicklook of ``lr``, ``guide`` and ``output`` at the output's extent.

    ``kind``: ``"dem"`` (hillshaded colour relief), ``"thermal"`` (inferno) or ``"band"``
    (viridis). ``lr_band`` is the LR band that was super-resolved (1-based, default 1);
    ``guide_bands`` the guide bands shown as RGB (default: the first three non-alpha bands).
    """
    matplotlib = import_extra("matplotlib", "report", "a quicklook (--quicklook)")
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import rasterio
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize


    if kind not in KINDS:
        raise InputError(f"quicklook kind {kind!r}: use one of {', '.join(KINDS)}")
    with gdal_env(), rasterio.open(output) as o:
        crs, bounds, out_res = o.crs, tuple(o.bounds), abs(o.res[0])
        unit = o.units[0] if o.units and o.units[0] else None
    with gdal_env(), rasterio.open(lr) as s:
        lr_res = abs(s.res[0])
    with gdal_env(), rasterio.open(guide) as g:
        g_res = abs(g.res[0])
        if guide_bands is None:
            guide_bands = [i for i, ci in enumerate(g.colorinterp, 1) if ci.name != "alpha"][:3]
            guide_bands = guide_bands or [1]
        g_crs = g.crs
    span = max(bounds[2] - bounds[0], bounds[3] - bounds[1])
    # Each panel on its own grid over the same extent: never finer than the raster itself
    # (so the LR shows its real pixels and its hillshade has no stair artefacts).
    grid = _panel_grid(bounds, max(1, min(max_pixels, round(span / out_res))))
    lr_grid = _panel_grid(bounds, max(1, min(max_pixels, round(span / lr_res))))
    transform, width, height = grid
    low = read_decimated(lr, [lr_band or 1], crs, lr_grid[0], lr_grid[2:0:-1], nodata=nodata)[0]
    out = read_decimated(output, [1], crs, transform, (height, width))[0]
    rgb = read_decimated(guide, list(guide_bands)[:3], crs, transform, (height, width))
    vmin, vmax = _limits(out, low)
    cmap = _CMAPS[kind]
    extent = (bounds[0], bounds[2], bounds[1], bounds[3])
    if kind == "dem":
        show_lr = colour_relief(low, lr_grid[0].a, vmin, vmax, cmap)
        show_out = colour_relief(out, transform.a, vmin, vmax, cmap)
    else:
        show_lr, show_out = low, out

    aspect = height / width
    fig_w = 15.0
    fig, axes = plt.subplots(1, 3, figsize=(fig_w, fig_w / 3 * aspect + 1.0),
                             layout="constrained")
    names = [
        f"LR input ({_res_text(lr_res, crs)})",
        f"guide ({_res_text(g_res, g_crs)})",
        f"output ({_res_text(out_res, crs)})",
    ]
    for ax, img, name in zip(axes, (show_lr, _stretch(rgb), show_out), names, strict=True):
        if img.ndim == 2:
            ax.imshow(img, extent=extent, cmap=cmap, vmin=vmin, vmax=vmax,
                      interpolation="nearest")
        else:
            ax.imshow(img, extent=extent, interpolation="nearest")
        ax.set_title(name, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        show_nodata(ax)
        _scale_bar(ax, bounds[2] - bounds[0], crs)
    if not all(np.isfinite(a).all() for a in (low, out, rgb)):
        nodata_legend(fig)
    label = {"dem": "elevation", "thermal": "temperature", "band": "value"}[kind]
    cb = fig.colorbar(ScalarMappable(Normalize(vmin, vmax), cmap=cmap), ax=list(axes),
                      shrink=0.8, pad=0.01)
    unit = {"metre": "m", "meter": "m", "metres": "m", "meters": "m"}.get(unit or "", unit)
    cb.set_label(f"{label} ({unit})" if unit else label)
    if kind == "dem":
        cb.ax.set_title("hillshade\n315°/45°", fontsize=7)
    fmt = ".6f" if crs is not None and crs.is_geographic else ".1f"
    ext = ", ".join(format(v, fmt) for v in bounds)
    caption = (f"{_crs_caption(crs)} · extent (left, bottom, right, top) {ext} · shown at "
               f"{transform.a:.3g} {_units(crs)[0]}/px (decimated reads)")
    fig.suptitle(title or f"{Path(output).name}", fontsize=11)
    fig.supxlabel(caption, fontsize=8)
    p = Path(path)
    tmp = p.with_name(f".{p.name}.tmp.png")
    try:
        fig.savefig(tmp, dpi=dpi)
        os.replace(tmp, p)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    logger.info("wrote quicklook %s", p)
    return p


def quicklook_for_run(
    path: str | os.PathLike[str],
    lr: str | os.PathLike[str],
    guide: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    preset: str | None = None,
    lr_band: int | None = None,
    guide_bands: Sequence[int] | None = None,
    nodata: float | None = None,
) -> str:
    """The quicklook of a finished run (``preset`` "dem" → hillshade, "thermal" → inferno).

    Raises :class:`GeosrError` saying that the output itself was written when only the
    quicklook failed.
    """

    kind = preset if preset in ("dem", "thermal") else "band"
    try:
        return str(write_quicklook(path, lr, guide, output, kind=kind, lr_band=lr_band,
                                   guide_bands=guide_bands, nodata=nodata))
    except Exception as exc:
        logger.debug("quicklook failure", exc_info=True)
        raise GeosrError(
            f"wrote {output}, but the quicklook {str(path)!r} failed: {type(exc).__name__}: "
            f"{exc} (run with -v -v for details)"
        ) from exc
