"""Input classes for ``geosr sr`` and the contract every run must keep.

An :class:`InputCase` describes a pair of GeoTIFFs by their headers and shapes: the LR's
dtype, nodata value and which of its pixels are nodata, its size, the orientation of its
geotransform, the CRS of each raster, the guide's band count, alpha band, dtype, resolution
and the orientation of its geotransform, the method (``bicubic`` or ``lanczos``), the scale
and the tiling. :func:`write_case` writes the pair, :func:`run_case` runs ``geosr sr`` on it
through click's ``CliRunner`` (in this process, so a traceback would surface) and
:func:`contract_violations` checks the outcome:

- either the output is correct: a valid COG on the expected grid, the one ``--dry-run``
  prints (the LR's CRS, the LR's transform scaled by ``1/scale``, ``scale`` times the LR's
  shape), nodata exactly where the LR is nodata (the LR's nodata value, NaN without one),
  values within the range of the valid LR values widened by that range on each side
  (GDAL's lanczos overshoots by over half of it on rasters of a few pixels), the output
  average-pooled back to the LR grid close to the LR (not flipped, not shifted), and the
  guide read onto the output grid where it belongs (what a guided method is given);
- or the command exits 2 (bad input) or 1 (failure while running) with a message that says
  what to do, the Python API raises a :class:`geosr.errors.GeosrError` for the same input,
  and the output folder is left as it was (no output, temporary file, lock or tile store).

:func:`expected` says which of the two a case must give. ``tests/reliability/`` draws cases
with hypothesis; ``benchmarks/reliability/matrix.py`` runs one case per input class and
writes the table of ``docs/inputs.md``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine

DTYPES = ("uint8", "int16", "uint16", "int32", "float32", "float64")
F32_MAX = float(np.finfo(np.float32).max)
#: the LR nodata values, by name
NODATA = {"none": None, "nan": math.nan, "-32768": -32768.0, "-9999": -9999.0,
          "f32max": F32_MAX}
#: CRSs, by name
CRSS = {"utm": "EPSG:32633", "wgs84": "EPSG:4326", "laea": "EPSG:3035"}
#: where every case lies (lon, lat): inside UTM zone 33N and the LAEA Europe grid
CENTRE = (15.0, 48.0)
#: LR pixel size in metres (in degrees for EPSG:4326: the same length along a meridian)
LR_METRES = 4.0
#: which LR pixels are nodata: none; a block in the top-left corner; every third column;
#: all but a 2 x 2 island in the middle; all of them
HOLES = ("none", "patch", "stripes", "island", "all")
ORIENTATIONS = ("north-up", "bottom-up", "rotated", "sheared")
#: how far (a fraction of the LR's range) the output, average-pooled to the LR grid, may be
#: from the LR
POOLED_TOLERANCE = 0.2
#: words of which an error message must hold one: the fix it names
FIX_WORDS = ("pass", "use ", "set ", "warp", "check", "choose", "rerun", "free space",
             "--")


def nodata_fits(dtype: str, nodata: str) -> bool:
    """Whether the nodata value ``nodata`` (a key of :data:`NODATA`) can be stored with a
    band of ``dtype`` (rasterio refuses to write the others)."""
    v = NODATA[nodata]
    if v is None:
        return True
    dt = np.dtype(dtype)
    if np.issubdtype(dt, np.integer):
        return not math.isnan(v) and np.iinfo(dt).min <= v <= np.iinfo(dt).max
    return dt == np.float64 or math.isnan(v) or float(np.float32(v)) == v


@dataclasses.dataclass(frozen=True)
class InputCase:
    """The headers and shapes of one LR/guide pair and how ``geosr sr`` is run on it."""

    dtype: str = "float32"
    #: a key of NODATA: the LR's nodata tag
    nodata: str = "none"
    #: which LR pixels hold the nodata value (NaN for "none" on float rasters): a key of
    #: HOLES
    holes: str = "none"
    height: int = 9
    width: int = 7
    lr_orientation: str = "north-up"
    lr_crs: str = "utm"
    guide_crs: str = "utm"
    guide_orientation: str = "north-up"
    #: image bands of the guide (an alpha band comes on top)
    guide_bands: int = 3
    guide_alpha: bool = False
    #: the guide's dtype: a key of GUIDE_SLOPES
    guide_dtype: str = "uint8"
    #: pass --guide-bands with the image bands
    select_bands: bool = False
    method: str = "bicubic"
    scale: int = 2
    #: None: the default tiling; else (tile size, overlap) in LR pixels
    tiling: tuple[int, int] | None = None
    #: guide pixels per output pixel along each axis (1: the output's resolution)
    guide_oversample: int = 1

    def __post_init__(self) -> None:
        if not nodata_fits(self.dtype, self.nodata):
            raise ValueError(f"nodata {self.nodata} does not fit {self.dtype}")
        if self.holes != "none" and self.nodata == "none" and not self.dtype.startswith("float"):
            raise ValueError("an integer LR without a nodata value has no holes")

    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(self).items())


# -- writing the rasters ---------------------------------------------------------------------
def _lr_pixel(crs: str) -> float:
    return LR_METRES / 111_320.0 if crs == "wgs84" else LR_METRES


def _oriented(orientation: str, origin: tuple[float, float], px: float, width: int,
              height: int) -> Affine:
    """The geotransform of a raster with pixels of ``px`` whose north-up version has its
    top-left corner at ``origin``: north-up; bottom-up (row 0 in the south, the same
    footprint); or that raster rotated by 20 degrees or sheared by 10 about the corner."""
    x0, y0 = origin
    if orientation == "north-up":
        return Affine(px, 0.0, x0, 0.0, -px, y0)
    if orientation == "bottom-up":  # row 0 is the southernmost row
        return Affine(px, 0.0, x0, 0.0, px, y0 - height * px)
    north_up = Affine(px, 0.0, x0, 0.0, -px, y0)
    if orientation == "rotated":
        return Affine.translation(x0, y0) * Affine.rotation(20.0) * \
            Affine.translation(-x0, -y0) * north_up
    if orientation == "sheared":
        return Affine.translation(x0, y0) * Affine.shear(10.0, 0.0) * \
            Affine.translation(-x0, -y0) * north_up
    raise ValueError(orientation)


def lr_values(case: InputCase) -> np.ndarray:
    """The LR's physical values (before the holes): a smooth surface the dtype can hold."""
    i, j = np.mgrid[0:case.height, 0:case.width].astype(np.float64)
    base = 100.0 if case.dtype == "uint8" else 1000.0
    v = base + 50.0 + 50.0 * np.sin(0.9 * i + 0.3) * np.cos(0.7 * j + 0.2)
    if not case.dtype.startswith("float"):
        v = np.round(v)
    return v.astype(case.dtype)


def hole_mask(case: InputCase) -> np.ndarray:
    """The LR pixels that are nodata (:data:`HOLES`)."""
    h, w = case.height, case.width
    m = np.zeros((h, w), bool)
    if case.holes == "all":
        m[:] = True
    elif case.holes == "patch":
        m[: max(1, h // 3), : max(1, w // 3)] = True
    elif case.holes == "stripes":
        m[:, 1::3] = True
    elif case.holes == "island":
        m[:] = True
        m[h // 2 : h // 2 + 2, w // 2 : w // 2 + 2] = False
    return m


def write_case(case: InputCase, folder: Path) -> dict[str, Any]:
    """Write the case's LR and guide into ``folder``; returns their paths and the LR's
    transform, CRS, nodata mask and valid value range."""
    import rasterio
    from rasterio.crs import CRS
    from rasterio.enums import ColorInterp
    from rasterio.warp import transform as warp

    folder.mkdir(parents=True, exist_ok=True)
    lr_crs = CRS.from_user_input(CRSS[case.lr_crs])
    (x0,), (y0,) = warp("EPSG:4326", lr_crs, [CENTRE[0]], [CENTRE[1]])
    px = _lr_pixel(case.lr_crs)
    lr_t = _oriented(case.lr_orientation, (x0, y0), px, case.width, case.height)
    values = lr_values(case)
    holes = hole_mask(case)
    nd = NODATA[case.nodata]
    if holes.any():
        values[holes] = np.nan if nd is None else nd
    lr_path = folder / "lr.tif"
    with rasterio.open(lr_path, "w", driver="GTiff", width=case.width, height=case.height,
                       count=1, dtype=case.dtype, crs=lr_crs, transform=lr_t,
                       nodata=nd) as dst:
        dst.write(values, 1)
    valid = values[~holes].astype(np.float64)
    guide_path = folder / "guide.tif"
    _write_guide(case, guide_path, lr_crs, lr_t, ColorInterp)
    return {"lr": str(lr_path), "guide": str(guide_path), "lr_transform": lr_t,
            "lr_crs": lr_crs, "holes": holes,
            "range": (float(valid.min()), float(valid.max())) if valid.size else None}


#: per guide band, the weights of the LR column and row in its ramp
RAMPS = ((1.0, 0.0), (0.0, 1.0), (0.6, 0.8), (0.8, 0.6), (0.3, 0.3))
#: per guide dtype, (value at LR pixel (0, 0), levels per LR pixel) of its ramps
GUIDE_SLOPES = {"uint8": (60.0, 5.0), "uint16": (10_000.0, 400.0),
                "float32": (10_000.0, 400.0)}


def guide_ramp(case: InputCase, band: int, cols: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Guide band ``band`` (0-based) at LR pixel coordinates ``(cols, rows)``: a ramp,
    another direction in each band, so that the guide the pipeline reads on the output grid
    shows where each of its pixels came from."""
    a, b = RAMPS[band]
    base, slope = GUIDE_SLOPES[case.guide_dtype]
    v = base + slope * (a * np.asarray(cols) + b * np.asarray(rows))
    return np.clip(v, 0, 255) if case.guide_dtype == "uint8" else v


def _write_guide(case: InputCase, path: Path, lr_crs: Any, lr_t: Affine, ci: Any) -> None:
    """A guide covering the LR's footprint with a margin of two LR pixels, ``scale`` times
    finer than the LR, in its own CRS and orientation; its bands are ramps of the LR's
    pixel coordinates (:func:`guide_ramp`)."""
    import rasterio
    from rasterio.crs import CRS
    from rasterio.warp import transform as warp

    from geosr.raster.grid import RasterGeometry, footprint

    g_crs = CRS.from_user_input(CRSS[case.guide_crs])
    poly = footprint(RasterGeometry(lr_crs, lr_t, case.width, case.height), g_crs)
    lr_px = math.sqrt(poly.area / (case.width * case.height))
    res = lr_px / (case.scale * case.guide_oversample)
    minx, miny, maxx, maxy = poly.buffer(2 * lr_px).bounds
    turned = case.guide_orientation in ("rotated", "sheared")
    if turned:  # a square that still covers the footprint once turned about its centre
        cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
        half = math.hypot(maxx - minx, maxy - miny)
        minx, miny, maxx, maxy = cx - half, cy - half, cx + half, cy + half
    width = math.ceil((maxx - minx) / res)
    height = math.ceil((maxy - miny) / res)
    t = _oriented("north-up" if turned else case.guide_orientation, (minx, maxy), res,
                  width, height)
    if turned:
        turn = Affine.rotation(20.0) if case.guide_orientation == "rotated" else \
            Affine.shear(10.0, 0.0)
        t = Affine.translation(cx, cy) * turn * Affine.translation(-cx, -cy) * t
    i, j = np.mgrid[0:height, 0:width] + 0.5
    xs, ys = t * (j.ravel(), i.ravel())
    if case.guide_crs != case.lr_crs:
        xs, ys = warp(g_crs, lr_crs, xs, ys)
    cols, rows = ~lr_t * (np.asarray(xs), np.asarray(ys))
    bands = [guide_ramp(case, b, cols, rows).reshape(height, width)
             for b in range(case.guide_bands)]
    if case.guide_dtype != "float32":
        bands = [np.round(v) for v in bands]
    interp = [ci.gray] + [ci.undefined] * (case.guide_bands - 1)
    if case.guide_alpha:
        alpha = np.full((height, width), np.iinfo(np.uint8).max
                        if case.guide_dtype == "uint8" else 65535, np.float64)
        alpha[0, :] = alpha[-1, :] = alpha[:, 0] = alpha[:, -1] = 0  # the margin's edge
        bands.append(alpha)
        interp.append(ci.alpha)
    with rasterio.open(path, "w", driver="GTiff", width=width, height=height,
                       count=len(bands), dtype=case.guide_dtype, crs=g_crs,
                       transform=t) as dst:
        dst.colorinterp = interp  # before the pixels: GTiff fixes its extra samples then
        dst.write(np.stack(bands).astype(case.guide_dtype))


# -- running and checking ----------------------------------------------------------------------
def cli_args(case: InputCase, paths: dict[str, Any], out: Path) -> list[str]:
    args = ["sr", "--method", case.method, "--lr", paths["lr"], "--guide", paths["guide"],
            "--scale", str(case.scale), "-o", str(out), "-q", "--progress", "none"]
    if case.select_bands:
        args += ["--guide-bands", ",".join(str(b) for b in range(1, case.guide_bands + 1))]
    if case.tiling is not None:
        args += ["--tile-size", str(case.tiling[0]), "--overlap", str(case.tiling[1])]
    return args


def run_case(case: InputCase, folder: Path) -> dict[str, Any]:
    """Write the case into ``folder/in``, run ``geosr sr`` into ``folder/out`` and describe
    what happened: exit code, message, the output's grid and pixels, and the files the run
    left in ``folder/out``. A failed run is repeated through the Python API to get the
    exception's class."""
    from click.testing import CliRunner

    from geosr.cli.main import cli

    paths = write_case(case, folder / "in")
    out_dir = folder / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / "hr.tif"
    args = cli_args(case, paths, out)
    result = CliRunner().invoke(cli, args, catch_exceptions=True)
    outcome: dict[str, Any] = {
        "exit_code": result.exit_code,
        "message": " ".join(result.output.split()),
        "traceback": result.exception is not None and not isinstance(result.exception,
                                                                      SystemExit),
        "left": sorted(os.listdir(out_dir)),
        "paths": paths,
        "output": str(out),
    }
    if result.exit_code == 0 and out.exists():
        outcome["written"] = _read_output(out)
        outcome["guide_error"] = guide_error(case, paths)
        dry = CliRunner().invoke(cli, [*args, "--dry-run"], catch_exceptions=True)
        outcome["dry_run_grid"] = (json.loads(dry.stdout)["output_grid"] if dry.exit_code == 0
                                   else f"exit {dry.exit_code}: {dry.output[-300:]}")
    elif result.exit_code != 0:
        outcome["api_error"] = _api_error(case, paths, out_dir / "api.tif")
    return outcome


#: how far (output pixels) the guide the pipeline reads on the output grid may be from the
#: place it was written for (GDAL's warp approximates the transformation to 1/8 pixel), on
#: top of one level of the guide's dtype
GUIDE_TOLERANCE = 0.2


def guide_error(case: InputCase, paths: dict[str, Any]) -> float:
    """How far (in output pixels, along the ramps, less one level of the guide's dtype) the
    guide as the pipeline reads it onto the output grid (what a guided method is given) is
    from the guide at the output pixels' centres (inf where it reads no data)."""
    from geosr.pipeline import make_plan, run_config
    from geosr.pipeline.sources import read_tile_guide
    from geosr.raster.grid import Window

    bands = tuple(range(1, case.guide_bands + 1)) if case.select_bands else None
    plan = make_plan(paths["lr"], paths["guide"],
                     run_config(scale=case.scale, method=case.method, guide_bands=bands))
    lw, s = plan.grid.lr_window, case.scale
    got = read_tile_guide(plan, Window(0, 0, lw.height, lw.width)).astype(np.float64)
    i, j = np.mgrid[0 : got.shape[1], 0 : got.shape[2]] + 0.5
    want = np.stack([guide_ramp(case, b, lw.col0 + j / s, lw.row0 + i / s)
                     for b in range(got.shape[0])])
    slope = GUIDE_SLOPES[case.guide_dtype][1] / s  # levels per output pixel
    diff = np.maximum(np.abs(got - want) - 1.0, 0.0) / slope
    return float(np.inf) if np.isnan(diff).any() else float(diff.max())


def _read_output(path: Path) -> dict[str, Any]:
    import rasterio

    with rasterio.open(path) as src:
        written = {"crs": src.crs, "transform": src.transform,
                   "shape": (src.height, src.width), "nodata": src.nodata,
                   "data": src.read(1).astype(np.float64), "dtype": src.dtypes[0]}
    try:  # rio-cogeo (a test dependency) says whether the output is a valid COG
        from rio_cogeo.cogeo import cog_validate
    except ImportError:
        return written
    ok, errors, _ = cog_validate(str(path), quiet=True)
    written["cog_errors"] = [] if ok else list(errors) or ["not a COG"]
    return written


def _api_error(case: InputCase, paths: dict[str, Any], out: Path) -> str | None:
    """The class of the exception ``geosr.pipeline.run`` raises (None if it succeeds)."""
    from geosr.pipeline import run, run_config

    bands = tuple(range(1, case.guide_bands + 1)) if case.select_bands else None
    tile, overlap = case.tiling if case.tiling is not None else (None, None)
    try:
        config = run_config(scale=case.scale, method=case.method, guide_bands=bands,
                            tile_size=tile, overlap=overlap)
        run(paths["lr"], paths["guide"], out, config)
    except Exception as exc:  # the class is what is checked
        from geosr.errors import GeosrError

        name = type(exc).__name__
        return name if isinstance(exc, GeosrError) else f"not a GeosrError: {name}: {exc}"
    finally:
        for p in out.parent.glob("api.tif*"):
            p.unlink() if p.is_file() else None
    return None


def expected(case: InputCase) -> list[str]:
    """What the case must give: an empty list for a written output, else the reasons it must
    be refused for, each as a phrase of which the error message must hold one (geosr stops
    at the first problem it finds)."""
    reasons = []
    if case.lr_orientation in ("rotated", "sheared"):
        reasons.append("warp it first")
    if case.height < 2 or case.width < 2:
        reasons.append("at least 2 x 2 lr pixels")
    if case.guide_bands < 3 and not case.select_bands:
        reasons.append("--guide-bands")
    if case.holes == "all":
        reasons.append("no valid pixel")
    return reasons


def contract_violations(case: InputCase, outcome: dict[str, Any]) -> list[str]:
    """What the outcome breaks of the contract (empty: it keeps it), including the
    outcome :func:`expected` says."""
    bad: list[str] = []
    msg = outcome["message"].lower()
    if outcome["traceback"] or "traceback" in msg:
        bad.append(f"a traceback: {outcome['message'][-300:]}")
    if "run with -v -v for details" in msg:
        bad.append(f"an unexpected exception: {outcome['message'][-300:]}")
    want = expected(case)
    if outcome["exit_code"] == 0:
        if want:
            bad.append(f"succeeded, but should fail with one of {want}")
        bad += _output_violations(case, outcome)
    else:
        if outcome["exit_code"] not in (1, 2):
            bad.append(f"exit code {outcome['exit_code']}")
        if not want:
            bad.append(f"failed: {outcome['message'][-300:]}")
        elif not any(w in msg for w in want):
            bad.append(f"message holds none of {want}: {outcome['message'][-300:]}")
        if not any(w in msg for w in FIX_WORDS):
            bad.append(f"message names no fix: {outcome['message'][-300:]}")
        if outcome["left"]:
            bad.append(f"left in the output folder: {outcome['left']}")
        api = outcome.get("api_error")
        if api is None or api.startswith("not a GeosrError"):
            bad.append(f"the Python API: {api or 'no error'}")
    return bad


def _output_violations(case: InputCase, outcome: dict[str, Any]) -> list[str]:
    bad: list[str] = []
    if outcome["left"] != ["hr.tif"]:
        bad.append(f"the output folder holds {outcome['left']}, not just the output")
    w = outcome.get("written")
    if w is None:
        return bad + ["no output written"]
    dry = outcome.get("dry_run_grid")
    if dry is not None:
        if isinstance(dry, str):
            bad.append(f"--dry-run failed where the run did not: {dry}")
        elif (dry["width"], dry["height"]) != w["shape"][::-1] or not Affine(
                *dry["transform"]).almost_equals(w["transform"], precision=1e-6):
            bad.append(f"--dry-run promised another grid: {dry}")
    if w.get("cog_errors"):
        bad.append(f"not a valid COG: {w['cog_errors']}")
    paths, s = outcome["paths"], case.scale
    if w["crs"] != paths["lr_crs"]:
        bad.append(f"CRS {w['crs']} is not the LR's {paths['lr_crs']}")
    want_t = paths["lr_transform"] * Affine.scale(1.0 / s)
    if not w["transform"].almost_equals(want_t, precision=1e-9 * max(1.0, abs(want_t.c),
                                                                      abs(want_t.f))):
        bad.append(f"transform {tuple(w['transform'])[:6]} is not {tuple(want_t)[:6]}")
    if w["shape"] != (s * case.height, s * case.width):
        bad.append(f"shape {w['shape']} is not {(s * case.height, s * case.width)}")
        return bad
    nd = NODATA[case.nodata]
    want_nd = math.nan if nd is None or math.isnan(nd) else float(np.float32(nd))
    got_nd = math.nan if w["nodata"] is None else float(w["nodata"])
    if not (math.isnan(want_nd) and math.isnan(got_nd)) and got_nd != want_nd:
        bad.append(f"output nodata {w['nodata']} is not {want_nd}")
    data = w["data"]
    is_nd = np.isnan(data) if math.isnan(got_nd) else (data == got_nd) | np.isnan(data)
    want_holes = np.repeat(np.repeat(paths["holes"], s, axis=0), s, axis=1)
    if (is_nd != want_holes).any():
        bad.append(f"nodata at {int((is_nd != want_holes).sum())} output pixels where the LR "
                   "says otherwise")
    lo, hi = paths["range"]
    slack = (hi - lo) + 1e-3 * max(1.0, abs(hi))
    vals = data[~is_nd & ~want_holes]
    if vals.size and (vals.min() < lo - slack or vals.max() > hi + slack):
        bad.append(f"values {vals.min():.6g}..{vals.max():.6g} outside the LR's "
                   f"{lo:.6g}..{hi:.6g} (+- {slack:.3g})")
    if outcome.get("guide_error", 0.0) > GUIDE_TOLERANCE:
        bad.append(f"the guide read onto the output grid is {outcome['guide_error']:.3g} "
                   "output pixels off the guide at those places: misplaced")
    # pooled back to the LR grid, the output is the LR up to the kernel's smoothing (under
    # 10 % of the range on these surfaces); a flipped or shifted output is not
    pooled = np.where(is_nd, np.nan, data).reshape(case.height, s, case.width, s)
    with warnings.catch_warnings():  # blocks all nodata: NaN, and a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        pooled = np.nanmean(pooled, axis=(1, 3))
    lr = lr_values(case).astype(np.float64)
    ok = ~paths["holes"] & np.isfinite(pooled)
    err = np.abs(pooled - lr)[ok]
    if err.size and err.max() > POOLED_TOLERANCE * (hi - lo) + 1e-3 * max(1.0, abs(hi)):
        bad.append(f"pooled to the LR grid, the output is {err.max():.3g} off the LR (range "
                   f"{hi - lo:.3g}): flipped or shifted")
    return bad
