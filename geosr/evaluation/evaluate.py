"""Evaluation harness: degrade an HR reference, super-resolve, compare.

The protocol of the MMSR/RobSelf/P2P/CMSR papers: the LR input is the ``scale x scale``
average pooling of the HR target (cropped to a multiple of ``scale``), the guide is the
HR image, and RMSE/MAE are computed against the HR target over the full image in the
target's units (no border crop). Bicubic is always run as the yardstick.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from geosr.errors import InputError
from geosr.evaluation.metrics import METRICS, RESAMPLERS, add_ratios, dem_metrics
from geosr.evaluation.misalign import misalign
from geosr.models import get_method
from geosr.models.api import check_scale, run_band
from geosr.normalize import BandStats, prepare_guide
from geosr.raster.io import bands_to_physical, is_local_path

logger = logging.getLogger(__name__)

#: the RMSE ratios of every row (:func:`geosr.evaluation.metrics.add_ratios`)
RATIOS = ("ratio_to_bicubic", "ratio_to_lanczos", "ratio_to_best_classical")

IMAGE_EXT = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".npy", ".npz")
# Folder names that hold targets / guides in the staged datasets (and common variants).
TARGET_DIRS = ("target", "targets", "depth", "gt", "hr", "source")
GUIDE_DIRS = ("guide", "guides", "rgb", "color", "colour", "image")
# Name suffixes stripped to match a target file with its guide file.
_SUFFIX = re.compile(
    r"(_output_depth|_output_color|_hr_gt|_gt|_depth|_color|_colour|_rgb|_nir|_guide|_target)$",
    re.IGNORECASE,
)


@dataclasses.dataclass
class Pair:
    name: str
    target: np.ndarray  # (H, W) float32
    guide: np.ndarray  # (C, H, W) float32
    #: the target's pixel size in its CRS units (1 where it is not georeferenced): slopes
    pixel_size: float = 1.0
    #: the unit of the target's values (its band's; None where it names none) and the
    #: linear unit of its CRS (projected rasters only): the report's colour bars
    unit: str | None = None
    crs_unit: str | None = None


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read png/jpg/tif/npy/npz into ``(band, row, col)`` float32 (a GeoTIFF's bands as
    physical values: nodata compared on the raw values, then scale and offset applied).
    A GeoTIFF may be any path GDAL opens (``/vsizip/...``, a URL)."""
    path = os.fspath(path)
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".npy":
        arr = np.load(path)
    elif suffix in (".tif", ".tiff"):
        import warnings

        import rasterio
        from rasterio.errors import NotGeoreferencedWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            src = rasterio.open(path)
        with src:
            arr = src.read().astype(np.float32)
            if src.nodata is not None and not np.isnan(src.nodata):
                arr[arr == src.nodata] = np.nan
            return bands_to_physical(arr, src.scales, src.offsets)
    elif suffix in (".png", ".jpg", ".jpeg"):
        from PIL import Image

        with Image.open(path) as im:
            arr = np.array(im)
    else:
        raise InputError(f"cannot read {path}: use png, jpg, tif, npy or npz")
    arr = np.asarray(arr, dtype=np.float32)
    if arr.ndim == 2:
        arr = arr[None]
    elif arr.ndim == 3 and arr.shape[-1] in (1, 2, 3, 4) and arr.shape[0] > 4:
        arr = np.moveaxis(arr, -1, 0)
    return arr


def _key(path: Path) -> str:
    return _SUFFIX.sub("", path.stem).lower()


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXT and p.is_file())


def load_pairs(path: str | os.PathLike, guide: str | os.PathLike | None = None) -> list[Pair]:
    """Pairs from a dataset folder or from one HR file plus a guide file.

    Folder layouts: ``target/`` + ``guide/`` (or ``depth/`` + ``rgb/``, ...) matched by
    name after stripping suffixes like ``_output_depth``/``_output_color``; or one folder of
    ``*_nir``/``*_rgb`` (or ``*_target``/``*_guide``) files; or ``.npz`` files holding
    ``target`` and ``guide`` arrays. A georeferenced HR GeoTIFF with a ``guide`` GeoTIFF
    on another grid (e.g. a 1 m DSM and a 0.5 m orthophoto) gets the guide resampled onto
    the HR grid (average).
    """
    if guide is not None:
        return [_file_pair(os.fspath(path), os.fspath(guide))]
    p = Path(path)
    if not p.exists():
        raise InputError(f"{str(p)!r} does not exist; check the path (a dataset folder, or "
                         "an HR file and --guide)")
    if not p.is_dir():
        raise InputError(f"{p} is not a folder; pass a dataset folder, or an HR file and --guide")
    subdirs = {d.name.lower(): d for d in p.iterdir() if d.is_dir()}
    tdir = next((subdirs[n] for n in TARGET_DIRS if n in subdirs), None)
    gdir = next((subdirs[n] for n in GUIDE_DIRS if n in subdirs), None)
    pairs: list[Pair] = []
    if tdir is not None and gdir is not None:
        guides = {_key(f): f for f in _files(gdir)}
        for f in _files(tdir):
            if _key(f) in guides:
                pairs.append(Pair(_key(f), read_image(f)[0], read_image(guides[_key(f)])))
    else:
        files = _files(p)
        for f in files:
            if f.suffix.lower() == ".npz":
                with np.load(f) as z:
                    if "target" in z and "guide" in z:
                        g = np.asarray(z["guide"], np.float32)
                        pairs.append(Pair(f.stem, np.asarray(z["target"], np.float32), g))
        by_key: dict[str, dict[str, Path]] = {}
        for f in files:
            m = re.search(r"_(nir|target|depth|gt|rgb|guide|color)$", f.stem, re.IGNORECASE)
            if m:
                role = "t" if m.group(1).lower() in ("nir", "target", "depth", "gt") else "g"
                by_key.setdefault(_key(f), {})[role] = f
        for key, roles in sorted(by_key.items()):
            if "t" in roles and "g" in roles:
                pairs.append(Pair(key, read_image(roles["t"])[0], read_image(roles["g"])))
    if not pairs:
        raise InputError(
            f"found no (target, guide) pairs in {p}; expected target/ + guide/ (or depth/ + "
            "rgb/) folders with matching names, *_nir + *_rgb files, or .npz with target and guide"
        )
    for pr in pairs:
        if pr.guide.shape[1:] != pr.target.shape:
            raise InputError(
                f"pair {pr.name}: guide {pr.guide.shape[1:]} and target {pr.target.shape} differ "
                "in size; evaluation needs them on the same HR grid"
            )
    return pairs


def _file_pair(target: str, guide: str) -> Pair:
    """The pair of one HR file and its guide (local files or any path GDAL opens)."""
    for what, f in (("HR file", target), ("guide", guide)):
        if is_local_path(f) and not Path(f).is_file():
            raise InputError(f"the {what} {f!r} does not exist or is not a file; check the path")
    t, g = read_image(target), read_image(guide)
    tif = (".tif", ".tiff")
    both_tif = _suffix(target) in tif and _suffix(guide) in tif
    if g.shape[1:] != t.shape[1:] and both_tif:
        g = _guide_on_target_grid(target, guide)
    name = os.path.splitext(os.path.basename(target.rstrip("/")))[0]
    return Pair(name, t[0], g, _pixel_size(target), *units(target))


def _suffix(path: str) -> str:
    return os.path.splitext(path)[1].lower()


def _pixel_size(path: str | os.PathLike[str]) -> float:
    """The pixel size of a georeferenced raster (its CRS units), or 1."""
    if _suffix(os.fspath(path)) not in (".tif", ".tiff"):
        return 1.0
    import rasterio

    with rasterio.open(path) as src:
        if src.crs is None or src.transform.is_identity:
            return 1.0
        return float(np.sqrt(abs(src.transform.a * src.transform.e)))


def _short_unit(unit: str | None) -> str | None:
    u = (unit or "").strip()
    return {"metre": "m", "meter": "m", "metres": "m", "meters": "m"}.get(u.lower(), u) or None


def units(path: str | os.PathLike[str]) -> tuple[str | None, str | None]:
    """(the unit of a GeoTIFF's band 1, its CRS's linear unit if projected), "m" for
    metres; None for what is not known (and for files other than GeoTIFFs)."""
    if _suffix(os.fspath(path)) not in (".tif", ".tiff"):
        return None, None
    import rasterio

    with rasterio.open(path) as src:
        band = src.units[0] if src.units else None
        crs = src.crs.linear_units if src.crs is not None and src.crs.is_projected else None
    return _short_unit(band), _short_unit(crs)


def _guide_on_target_grid(target: str | os.PathLike[str],
                          guide: str | os.PathLike[str]) -> np.ndarray:
    """The guide resampled (average) onto the grid of a georeferenced HR target, or the
    guide as read where either file has no CRS (then ``load_pairs`` reports the size clash)."""
    import warnings

    import rasterio
    from rasterio.enums import Resampling
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.vrt import WarpedVRT

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(target) as t, rasterio.open(guide) as g:
            if t.crs is None or g.crs is None:
                return read_image(guide)
            logger.info("resampling the guide %s onto the grid of %s (average)", guide, target)
            with WarpedVRT(g, crs=t.crs, transform=t.transform, width=t.width,
                           height=t.height, resampling=Resampling.average) as vrt:
                return bands_to_physical(vrt.read(out_dtype="float32"), g.scales, g.offsets)


def center_crop(pair: Pair, size: int) -> Pair:
    """The central ``size x size`` window of a pair (whole pair where it is smaller)."""
    h, w = pair.target.shape
    y0, x0 = max(0, (h - size) // 2), max(0, (w - size) // 2)
    win = (slice(y0, y0 + size), slice(x0, x0 + size))
    return Pair(pair.name, pair.target[win], pair.guide[(slice(None), *win)], pair.pixel_size,
                pair.unit, pair.crs_unit)


def degrade(target: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """Crop ``target`` (H, W) to a multiple of ``scale``; return (cropped HR, avg-pooled LR)."""
    h, w = (target.shape[0] // scale) * scale, (target.shape[1] // scale) * scale
    hr = target[:h, :w]
    lr = hr.reshape(h // scale, scale, w // scale, scale).mean(axis=(1, 3))
    return hr, lr.astype(np.float32)


def _rss() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PeakMemory:
    """Peak resident memory of this process while the block runs (sampled every 10 ms)."""

    def __enter__(self) -> PeakMemory:
        self.peak = _rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, _rss())

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())


def metrics(pred: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    ok = np.isfinite(pred) & np.isfinite(ref)
    d = pred[ok].astype(np.float64) - ref[ok]
    return {"rmse": float(np.sqrt(np.mean(d**2))), "mae": float(np.mean(np.abs(d)))}


def evaluate(
    pairs: Sequence[Pair],
    methods: dict[str, dict[str, Any]],
    scale: int,
    *,
    guide_noise: float = 0.0,
    noise_seed: int = 0,
    snapshot_steps: Sequence[int] = (),
    misalignment: Any = None,
    misalign_seed: int = 0,
    on_result: Callable[[dict[str, Any]], None] | None = None,
    keep_outputs: bool = False,
) -> dict[str, Any]:
    """Run ``methods`` ({name: options}) on every pair; return per-pair rows and means.

    A row holds the pair, the method, the DEM metrics (:data:`geosr.evaluation.metrics.METRICS`),
    the RMSE ratios to bicubic, to lanczos and to the best resampler of the pair
    (``ratio_to_best_classical``; bicubic and lanczos always run as yardsticks), the seconds
    of the super-resolution call alone, the output size (``output_megapixels``) and the
    peak resident memory of this process during the call (``peak_rss_mb``).

    ``keep_outputs``: also return the arrays under ``"outputs"`` ({pair: {"hr", "lr",
    "guide", METHOD: prediction}}, all ``(row, col)`` except the guide) for reports; not
    JSON-serialisable, so drop it before ``json.dumps``. The pairs' pixel sizes and units
    then come under ``"pairs"`` ({pair: {"pixel_size", "unit", "crs_unit"}}).
    """

    scale = check_scale(scale)
    methods = {"bicubic": {}, "lanczos": {}, **methods}
    built = {name: get_method(name, **opts) for name, opts in methods.items()}
    rows: list[dict[str, Any]] = []
    outputs: dict[str, dict[str, np.ndarray]] = {}
    meta: dict[str, dict[str, Any]] = {}
    rng = np.random.default_rng(noise_seed)
    for pair in pairs:
        hr, lr = degrade(pair.target, scale)
        h, w = hr.shape
        guide = pair.guide[:, :h, :w]
        if misalignment is not None:

            # One seed per pair (stable across runs and methods), derived from the name.
            seed = misalign_seed + sum(map(ord, pair.name))
            guide = misalign(guide, misalignment, seed)
        if guide_noise > 0:
            guide = guide + rng.normal(0.0, guide_noise, guide.shape).astype(np.float32)
        g = prepare_guide(guide, BandStats.from_array(guide))
        if keep_outputs:
            outputs[pair.name] = {"hr": hr, "lr": lr, "guide": guide}
            meta[pair.name] = {"pixel_size": pair.pixel_size, "unit": pair.unit,
                               "crs_unit": pair.crs_unit}
        for name, method in built.items():
            snaps = snapshot_steps if hasattr(method, "fit") else ()

            def log_step(step: int, total: int, loss: float, _p=pair.name, _m=name) -> None:
                if step % 50 == 0 or step == total:
                    logger.info("%s %s step %d/%d loss %.5f", _p, _m, step, total, loss)

            with PeakMemory() as mem:
                t0 = time.perf_counter()
                out = run_band(method, lr[None], g, scale, snapshot_steps=snaps,
                               progress=log_step)
                seconds = time.perf_counter() - t0
            row: dict[str, Any] = {"pair": pair.name, "method": name, "seconds": seconds,
                                   "output_megapixels": h * w / 1e6,
                                   "peak_rss_mb": mem.peak / 2**20}
            if isinstance(out, dict):
                final = out[max(out)]
                row["steps"] = max(out)
                row["curve"] = {str(k): metrics(v[0], hr)["rmse"] for k, v in sorted(out.items())}
            else:
                final = out
            row.update(dem_metrics(final[0], hr, pair.pixel_size))
            if keep_outputs:
                outputs[pair.name][name] = final[0]
            rows.append(row)
            logger.info("%s %s rmse=%.4f %.1fs", pair.name, name, row["rmse"], seconds)
            if on_result is not None:
                on_result(row)
    add_ratios(rows)
    summary = {}
    for name in built:
        rs = [r for r in rows if r["method"] == name]
        summary[name] = {
            "pairs": len(rs),
            **{k: float(np.mean([r[k] for r in rs])) for k in (*METRICS, *RATIOS)},
            "seconds": float(np.mean([r["seconds"] for r in rs])),
            "peak_rss_mb": float(max(r["peak_rss_mb"] for r in rs)),
        }
        curves = [r["curve"] for r in rs if "curve" in r]
        if curves and all(c.keys() == curves[0].keys() for c in curves):
            summary[name]["curve"] = {k: float(np.mean([c[k] for c in curves])) for k in curves[0]}
    result = {"scale": scale, "guide_noise": guide_noise,
              "misalignment": dataclasses.asdict(misalignment) if misalignment else None,
              "misalign_seed": misalign_seed if misalignment else None,
              "methods": methods, "rows": rows, "mean": summary}
    if keep_outputs:
        result["outputs"] = outputs
        result["pairs"] = meta
    return result


def format_table(result: dict[str, Any]) -> str:
    lines = [f"scale x{result['scale']}   (ratios: RMSE / the yardstick's; best = best of "
             f"{', '.join(RESAMPLERS)} run)"]
    head = (f"{'pair':24s} {'method':16s} {'RMSE':>9s} {'MAE':>9s} {'bias':>9s} {'NMAD':>9s} "
            f"{'LE90':>9s} {'slope°':>7s} {'/lanczos':>9s} {'/best':>7s} {'s':>8s} {'MB':>7s}")
    lines.append(head)

    def cells(r: dict[str, Any]) -> str:
        return (f"{r['rmse']:9.4f} {r['mae']:9.4f} {r['bias']:9.4f} {r['nmad']:9.4f} "
                f"{r['le90']:9.4f} {r['slope_rmse_deg']:7.2f} {r['ratio_to_lanczos']:9.3f} "
                f"{r['ratio_to_best_classical']:7.3f} {r['seconds']:8.2f} {r['peak_rss_mb']:7.0f}")

    for r in result["rows"]:
        lines.append(f"{r['pair'][:24]:24s} {r['method']:16s} {cells(r)}")
    lines.append("mean over pairs")
    for name, s in result["mean"].items():
        lines.append(f"{'(' + str(s['pairs']) + ' pairs)':24s} {name:16s} {cells(s)}")
        if "curve" in s:
            curve = "  ".join(f"{k}:{v:.4f}" for k, v in s["curve"].items())
            lines.append(f"{'':24s} {'  RMSE at steps':16s} {curve}")
    return "\n".join(lines)
