"""Benchmarks: quality (RMSE, MAE, ratio to bicubic) against time per output megapixel and
peak memory, per method and, on a georeferenced scene, per pipeline mode.

Two kinds of data:

* pairs (:func:`bench_pairs`): the protocol of :func:`geosr.evaluation.evaluate.evaluate` (the HR
  target average-pooled ``scale x scale`` into the LR input, the guide on the HR grid,
  arrays super-resolved whole); the seconds are those of the super-resolution calls.
* a scene (:func:`bench_scene`): an HR reference raster (e.g. a 1 m DSM) and a guide
  raster (e.g. a 0.5 m orthophoto). The reference is pooled into an LR GeoTIFF
  (:func:`pool_reference`: average of the valid pixels of each ``scale x scale`` block,
  transform scaled by ``scale``), :func:`geosr.pipeline.run` super-resolves it back for
  each method and mode (what ``geosr dem-sr`` does: tiles, mosaic, COG), and the output is
  scored against the reference on their valid overlap (:func:`score_against_reference`).
  The seconds are the wall time of the whole ``run`` call.

Both return a dict whose ``"records"`` hold one record per method (and mode)::

    {"method", "mode", "dataset", "label", "rmse", "mae", "ratio_to_bicubic", "seconds",
     "output_megapixels", "seconds_per_megapixel", "megapixels_per_second", "peak_rss_mb",
     "options", ...}

``peak_rss_mb`` is the peak resident memory of this process while the method ran (not an
increment: it includes the interpreter, torch and the data). Bicubic always runs first (per
mode), as the yardstick of ``ratio_to_bicubic``. The records are what
:func:`geosr.evaluation.report.write_report` takes as ``bench=``, and :func:`write_plot` draws.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from geosr.errors import InputError, OptionError
from geosr.evaluation.evaluate import RATIOS, PeakMemory, evaluate
from geosr.evaluation.metrics import METRICS, add_ratios, dem_metrics
from geosr.evaluation.report import rmse_time_figure
from geosr.models import get_method
from geosr.models.api import check_scale
from geosr.pipeline.config import (
    MODES,
    OutputConfig,
    RunConfig,
    SceneConfig,
    TilingConfig,
    check_mode,
)
from geosr.pipeline.runner import run
from geosr.raster.pooling import block_mean

logger = logging.getLogger(__name__)

RecordCallback = Callable[[dict[str, Any]], None]


# -- modes -------------------------------------------------------------------------------
def mode_applies(method: str, mode: str) -> bool:
    """Whether ``method`` runs in ``mode``: every method runs in ``tile`` mode; ``scene``
    and ``hybrid`` fit one network per scene, so classical methods (nothing to fit) and
    networks tied to one image do not run there."""
    if mode == "tile":
        return True
    try:
        check_mode(method, mode)
    except OptionError:
        return False
    return True


def check_modes(modes: str | Sequence[str]) -> tuple[str, ...]:
    """Parse ``"tile,scene"`` (or a sequence) into known, supported, distinct modes."""
    items = modes.split(",") if isinstance(modes, str) else list(modes)
    out = tuple(dict.fromkeys(m.strip().lower() for m in items if m.strip()))
    if not out:
        raise OptionError("no mode given; pass e.g. --modes tile or --modes tile,scene")
    for m in out:
        if m not in MODES:
            raise OptionError(f"unknown mode {m!r}; choose from {', '.join(MODES)}, "
                              "e.g. --modes tile,scene")
    return out


# -- records -----------------------------------------------------------------------------
def make_record(
    method: str,
    *,
    rmse: float,
    mae: float = math.nan,
    seconds: float,
    megapixels: float,
    peak_rss_mb: float,
    ratio_to_bicubic: float = math.nan,
    mode: str | None = None,
    dataset: str | None = None,
    label: str = "",
    **extra: Any,
) -> dict[str, Any]:
    """One benchmark record, with time per output megapixel both ways round."""
    if megapixels <= 0:
        raise InputError(f"{method}: the output has no pixel, nothing to time per megapixel")
    return {
        "method": method,
        "mode": mode,
        "dataset": dataset,
        "label": label,
        "rmse": float(rmse),
        "mae": float(mae),
        "ratio_to_bicubic": float(ratio_to_bicubic),
        "seconds": float(seconds),
        "output_megapixels": float(megapixels),
        "seconds_per_megapixel": float(seconds) / megapixels,
        "megapixels_per_second": megapixels / max(float(seconds), 1e-9),
        "peak_rss_mb": float(peak_rss_mb),
        **extra,
    }


# -- pairs -------------------------------------------------------------------------------
def bench_pairs(
    pairs: Sequence[Any],
    methods: Mapping[str, Mapping[str, Any]],
    scale: int,
    *,
    dataset: str | None = None,
    on_result: Callable[[dict[str, Any]], None] | None = None,
    keep_outputs: bool = False,
) -> dict[str, Any]:
    """:func:`geosr.evaluation.evaluate.evaluate` on ``pairs``, plus one record per method.

    A record's RMSE/MAE/ratio are the means over pairs (as in ``geosr eval``), its seconds
    and megapixels the sums over pairs, its peak memory the largest. ``on_result`` gets
    every per-pair row as it is finished; ``keep_outputs`` as in ``evaluate``.
    """

    result = evaluate(pairs, {k: dict(v) for k, v in methods.items()}, scale,
                      on_result=on_result, keep_outputs=keep_outputs)
    records = []
    for name, mean in result["mean"].items():
        rows = [r for r in result["rows"] if r["method"] == name]
        records.append(make_record(
            name, dataset=dataset, rmse=mean["rmse"], mae=mean["mae"],
            ratio_to_bicubic=mean["ratio_to_bicubic"],
            **{k: mean[k] for k in (*METRICS, *RATIOS) if k not in ("rmse", "mae",
                                                                   "ratio_to_bicubic")},
            seconds=sum(r["seconds"] for r in rows),
            megapixels=sum(r["output_megapixels"] for r in rows),
            peak_rss_mb=mean["peak_rss_mb"], pairs=len(rows),
            options=result["methods"][name]))
    result.update(kind="pairs", dataset=dataset, records=records)
    return result


# -- scenes ------------------------------------------------------------------------------
def pool_reference(
    reference: str | os.PathLike[str], lr_path: str | os.PathLike[str], scale: int,
    *, band: int = 1,
) -> dict[str, Any]:
    """Average-pool ``band`` of a georeferenced HR raster ``scale x scale`` into a float32
    LR GeoTIFF at ``lr_path`` (same origin and CRS, transform scaled by ``scale``).

    The reference is cropped to a multiple of ``scale`` (rows and columns past it are
    dropped); each LR pixel is the mean of the valid (not nodata, finite) pixels of its
    block, and nodata where the block has none. Returns the shapes and the LR nodata value.
    """
    import rasterio
    from affine import Affine


    scale = check_scale(scale)
    with rasterio.open(reference) as src:
        if src.crs is None or src.transform == Affine.identity():
            raise InputError(
                f"the reference {str(reference)!r} has no CRS or geotransform; a scene "
                "benchmark needs a georeferenced HR raster (assign one with gdal_edit.py -a_srs "
                "EPSG:... -a_ullr ...), or put the pair in a folder for the array benchmark")
        if not 1 <= band <= src.count:
            raise InputError(f"the reference {str(reference)!r} has {src.count} band(s); "
                             f"pass a band between 1 and {src.count}")
        arr = src.read(band, masked=True).astype(np.float64).filled(np.nan)
        arr = arr * src.scales[band - 1] + src.offsets[band - 1]  # physical values
        transform, crs, src_nodata = src.transform, src.crs, src.nodata
    h, w = (arr.shape[0] // scale) * scale, (arr.shape[1] // scale) * scale
    if h == 0 or w == 0:
        raise InputError(f"the reference {str(reference)!r} ({arr.shape[0]}x{arr.shape[1]} "
                         f"pixels) is smaller than one {scale}x{scale} block; use a smaller "
                         "--scale or a larger reference")
    mean, count = block_mean(arr, scale)
    nodata = float(src_nodata) if src_nodata is not None else math.nan
    lr = np.where(count > 0, mean, nodata).astype(np.float32)
    if not (count > 0).any():
        raise InputError(f"the reference {str(reference)!r} has no valid pixel; check its "
                         "nodata value")
    with rasterio.open(
        lr_path, "w", driver="GTiff", width=lr.shape[1], height=lr.shape[0], count=1,
        dtype="float32", crs=crs, transform=transform @ Affine.scale(scale), nodata=nodata,
    ) as dst:
        dst.write(lr, 1)
    return {"lr_path": str(lr_path), "lr_shape": list(lr.shape),
            "reference_shape": list(arr.shape), "lr_nodata": None if math.isnan(nodata)
            else nodata}


def _read_valid(src: Any, band: int, window: Any) -> np.ndarray:
    """``band`` in ``window`` as float64 physical values (the band's scale and offset
    applied) with NaN where masked or not finite."""
    a = src.read(band, window=window, masked=True).astype(np.float64).filled(np.nan)
    a = a * src.scales[band - 1] + src.offsets[band - 1]
    a[~np.isfinite(a)] = np.nan
    return a


def score_against_reference(
    output: str | os.PathLike[str], reference: str | os.PathLike[str], *, band: int = 1,
) -> dict[str, Any]:
    """The DEM metrics (:func:`geosr.evaluation.metrics.dem_metrics`, slopes with the
    reference's pixel size) of ``output`` (band 1) against ``band`` of ``reference`` on their
    valid overlap; both must share CRS and pixel size, with pixel edges on one lattice."""
    import rasterio
    from rasterio.windows import Window


    with rasterio.open(output) as o, rasterio.open(reference) as r:
        if o.crs != r.crs:
            raise InputError(f"the output {str(output)!r} is in {o.crs}, the reference in "
                             f"{r.crs}; score them on one CRS")
        ot, rt = o.transform, r.transform
        if not (math.isclose(ot.a, rt.a, rel_tol=1e-9) and math.isclose(ot.e, rt.e, rel_tol=1e-9)
                and ot.b == rt.b == ot.d == rt.d == 0):
            raise InputError(f"the output's pixels ({ot.a}, {ot.e}) differ from the "
                             f"reference's ({rt.a}, {rt.e}); they must be on one grid")
        col, row = ~rt @ (ot.c, ot.f)
        if abs(col - round(col)) > 1e-6 or abs(row - round(row)) > 1e-6:
            raise InputError("the output's pixel edges are not on the reference's grid "
                             f"(offset {col:.4f}, {row:.4f} reference pixels)")
        col, row = round(col), round(row)
        r0, r1 = max(0, row), min(r.height, row + o.height)
        c0, c1 = max(0, col), min(r.width, col + o.width)
        if r1 <= r0 or c1 <= c0:
            raise InputError(f"the output {str(output)!r} does not overlap the reference")
        ref = _read_valid(r, band, Window(c0, r0, c1 - c0, r1 - r0))
        pred = _read_valid(o, 1, Window(c0 - col, r0 - row, c1 - c0, r1 - r0))
    ok = np.isfinite(ref) & np.isfinite(pred)
    if not ok.any():
        raise InputError(f"the output {str(output)!r} and the reference share no valid pixel")
    return {**dem_metrics(pred, ref, abs(rt.a)), "valid_pixels": int(ok.sum())}


def scene_jobs(
    methods: Mapping[str, Mapping[str, Any]], modes: Sequence[str]
) -> tuple[list[tuple[str, str]], list[str]]:
    """The ``(mode, method)`` runs of a scene benchmark, and those that do not apply.

    Bicubic runs first, in tile mode, as the yardstick; then every mode with every method
    that runs in it (classical methods have nothing to fit once per scene). Unknown
    methods or options, and a mode that no given method runs in, raise an OptionError.
    """

    for name, opts in methods.items():  # unknown methods/options fail before any work
        get_method(name, **opts)
    names = [n for n in methods if n != "bicubic"]
    jobs = [("tile", "bicubic")] + [(mode, name) for mode in modes for name in names]
    skipped = [f"{name} ({mode})" for mode, name in jobs if not mode_applies(name, mode)]
    jobs = [(mode, name) for mode, name in jobs if mode_applies(name, mode)]
    for mode in modes:
        if mode != "tile" and not any(m == mode for m, _ in jobs):
            raise OptionError(
                f"no method given runs in {mode!r} mode (it fits one network for the whole "
                "scene, so it needs a learned method); add one, e.g. -m mmsr, or drop "
                "that mode")
    if skipped:
        logger.info("not run (the mode does not apply to the method): %s", ", ".join(skipped))
    return jobs, skipped


def scene_config(mode: str, scene_options: Mapping[str, Any] | None) -> SceneConfig:
    """The :class:`~geosr.pipeline.config.SceneConfig` of ``mode`` with ``scene_options``
    (e.g. ``iterations``, ``hybrid_iterations``); tile mode takes none."""
    if mode == "tile" or not scene_options:
        return SceneConfig(mode=mode)
    try:
        return SceneConfig(mode=mode, **scene_options)
    except TypeError as exc:
        raise OptionError(f"unknown scene setting: {exc}") from None


def bench_scene(
    reference: str | os.PathLike[str],
    guide: str | os.PathLike[str],
    methods: Mapping[str, Mapping[str, Any]],
    scale: int,
    *,
    modes: Sequence[str] = ("tile",),
    tiling: Any = None,
    band: int = 1,
    scene_options: Mapping[str, Any] | None = None,
    workdir: str | os.PathLike[str] | None = None,
    on_record: RecordCallback | None = None,
) -> dict[str, Any]:
    """Pool ``reference`` ``scale x`` into an LR GeoTIFF, super-resolve it with ``guide``
    through :func:`geosr.pipeline.run` for every mode and method, score each output.

    ``methods``: {name: options} (bicubic is added first as the yardstick of every mode);
    ``tiling``: a :class:`geosr.pipeline.TilingConfig`; ``scene_options``: fields of
    :class:`geosr.pipeline.scene.SceneConfig` for the scene/hybrid modes (e.g. ``hybrid_iterations``,
    the per-tile fine-tune steps, 100 by default); ``workdir``: where the LR and the
    outputs go (kept; default a temporary folder, removed). ``on_record`` gets each
    record as it is finished.
    """
    import rasterio


    scale = check_scale(scale)
    modes = check_modes(modes)
    methods = {"bicubic": {}, "lanczos": {}, **{k: dict(v) for k, v in methods.items()}}
    jobs, skipped = scene_jobs(methods, modes)
    if not Path(guide).is_file():
        raise InputError(f"the guide {str(guide)!r} does not exist; pass --guide GUIDE.tif")
    tiling = tiling or TilingConfig()
    dataset = Path(reference).stem
    records: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="geosr-bench-") as tmp:
        work = Path(workdir) if workdir is not None else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        pooled = pool_reference(reference, work / f"{dataset}_lr_x{scale}.tif", scale, band=band)
        logger.info("pooled %s x%d into %s", reference, scale, pooled["lr_path"])
        for mode, name in jobs:
            opts = methods[name]
            out = work / f"{dataset}_{name}_{mode}.tif"
            config = RunConfig(scale=scale, method=name, method_options=tuple(opts.items()),
                               tiling=tiling, output=OutputConfig(overwrite=True),
                               scene=scene_config(mode, scene_options))
            logger.info("%s %s (%s mode)", dataset, name, mode)
            with PeakMemory() as mem:
                t0 = time.perf_counter()
                summary = run(pooled["lr_path"], str(guide), str(out), config)
                seconds = time.perf_counter() - t0
            score = score_against_reference(out, reference, band=band)
            with rasterio.open(out) as o:
                mpx = o.width * o.height / 1e6
            rec = make_record(
                name, mode=mode, dataset=dataset,
                **{k: score[k] for k in METRICS},
                seconds=seconds, megapixels=mpx, peak_rss_mb=mem.peak / 2**20,
                valid_pixels=score["valid_pixels"], tiles=summary.get("tiles"),
                stage_seconds=summary.get("seconds"), options=summary.get("options", opts),
                **{k: summary[k] for k in ("self_check", "guard") if k in summary})
            records.append(rec)
            add_ratios(records, key="dataset")  # the yardsticks run first
            logger.info("%s %s %s rmse=%.4g %.1fs", dataset, name, mode, rec["rmse"], seconds)
            if on_record is not None:
                on_record(rec)
    return {
        "kind": "scene", "data": str(reference), "guide": str(guide), "dataset": dataset,
        "scale": scale, "band": band, "modes": list(modes), "methods": methods,
        "scene_options": dict(scene_options or {}),
        "skipped": skipped, "tiling": dataclasses.asdict(tiling),
        "lr_shape": pooled["lr_shape"],
        "reference_shape": pooled["reference_shape"],
        "workdir": str(workdir) if workdir is not None else None, "records": records,
    }


# -- output ------------------------------------------------------------------------------
def format_table(result: Mapping[str, Any]) -> str:
    """The records as a text table (one line per method and mode)."""
    recs = result["records"]
    lines = [f"{result.get('dataset') or result.get('data', '')}  scale x{result['scale']}"
             "   (/lanczos, /best: RMSE ratios to lanczos and to the best resampler run)"]
    lines.append(f"{'method':16s} {'mode':7s} {'RMSE':>9s} {'MAE':>9s} {'bias':>9s} "
                 f"{'NMAD':>9s} {'LE90':>9s} {'slope°':>7s} {'/lanczos':>9s} {'/best':>7s} "
                 f"{'s':>9s} {'Mpx':>8s} {'s/Mpx':>9s} {'peak MB':>8s}")

    def num(r: Mapping[str, Any], k: str, fmt: str) -> str:
        v = r.get(k, math.nan)
        return format(v if v is not None else math.nan, fmt)

    for r in recs:
        lines.append(
            f"{r['method'][:16]:16s} {(r.get('mode') or '-')[:7]:7s} {r['rmse']:9.4f} "
            f"{num(r, 'mae', '9.4f')} {num(r, 'bias', '9.4f')} {num(r, 'nmad', '9.4f')} "
            f"{num(r, 'le90', '9.4f')} {num(r, 'slope_rmse_deg', '7.2f')} "
            f"{num(r, 'ratio_to_lanczos', '9.3f')} {num(r, 'ratio_to_best_classical', '7.3f')} "
            f"{r['seconds']:9.3f} {r['output_megapixels']:8.3f} "
            f"{r['seconds_per_megapixel']:9.3g} {r['peak_rss_mb']:8.0f}")
    return "\n".join(lines)


def settings_lines(result: Mapping[str, Any]) -> list[str]:
    """Plain-text settings of a bench result, for the report."""
    lines = [f"data: {result.get('data')}", f"scale: x{result['scale']}"]
    if result.get("kind") == "scene":
        lines.append(f"guide: {result.get('guide')}")
        lines.append(f"reference {result['reference_shape'][0]}x{result['reference_shape'][1]}"
                     f" pixels pooled to LR {result['lr_shape'][0]}x{result['lr_shape'][1]}; "
                     "seconds = wall time of geosr.pipeline.run (plan, tiles, mosaic, COG)")
        lines.append(f"modes: {', '.join(result['modes'])}")
        if result.get("scene_options"):
            lines.append("scene settings: " + ", ".join(
                f"{k}={v}" for k, v in result["scene_options"].items()))
        if result.get("skipped"):
            lines.append("not run (the mode does not apply): " + ", ".join(result["skipped"]))
    else:
        lines.append("seconds = super-resolution calls on whole arrays, summed over pairs")
    for m, opts in result.get("methods", {}).items():
        if opts:
            lines.append(f"{m} options: " + ", ".join(f"{k}={v}" for k, v in opts.items()))
    return lines


def write_plot(path: str | os.PathLike[str], records: Sequence[Mapping[str, Any]], *,
               title: str | None = None, dpi: int = 110) -> Path:
    """PNG of RMSE against seconds per output megapixel (log x): one point per record, one
    colour per method, one marker per mode (legend "mmsr (scene)" where modes differ)."""

    p = Path(path)
    p.write_bytes(rmse_time_figure(records, "seconds_per_megapixel",
                                   "seconds per output megapixel (log scale)", dpi=dpi,
                                   title=title or "RMSE against time per megapixel",
                                   marker_key="mode"))
    return p
