"""Tile vs scene vs hybrid mode on a real DEM: wall time, throughput and RMSE.

The HR DEM (optionally a ``--crop``ped window of it) is the reference; it is average-pooled
``--scale``x into a georeferenced LR GeoTIFF, and the guide is either an image given with
``--guide`` (resampled by the pipeline) or, by default, a hillshade computed from the HR DEM
(sun azimuth 315 deg, altitude 45 deg; note that this guide is derived from the reference
itself, which makes it an optimistic guide). Every run goes through ``geosr.pipeline.run``
(tiles, mosaic, COG), exactly as ``geosr dem-sr`` would, and is scored against the
reference. Prints JSON (and writes it with ``--json``; the file is updated after each run).

    OMP_NUM_THREADS=1 python benchmarks/modes/modes.py \\
        --dem ../shared/data/dem_only/usgs_ned_1m_sandiego.tif --crop 512 \\
        --tile-size 64 --tile-iterations 100 --scene-iterations 300 --hybrid-iterations 30 \\
        --json modes_sandiego.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.windows import Window

from geosr.pipeline import RunConfig


def hillshade(dem: np.ndarray, res: float, azimuth: float = 315.0, altitude: float = 45.0):
    """Classic Horn-free hillshade (numpy gradients) as uint8 1..255."""
    dy, dx = np.gradient(dem, res)
    slope = np.arctan(np.hypot(dx, dy))
    aspect = np.arctan2(-dx, dy)
    az, alt = np.radians(360.0 - azimuth + 90.0), np.radians(altitude)
    shade = np.sin(alt) * np.cos(slope) + np.cos(alt) * np.sin(slope) * np.cos(az - aspect)
    return np.clip(1 + 254 * np.clip(shade, 0, 1), 1, 255).astype(np.uint8)


def write(path: Path, data: np.ndarray, transform: Affine, crs: Any, nodata=None) -> None:
    data = data[None] if data.ndim == 2 else data
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1],
                       count=data.shape[0], dtype=data.dtype.name, crs=crs,
                       transform=transform, nodata=nodata) as dst:
        dst.write(data)


def prepare(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    s = args.scale
    with rasterio.open(args.dem) as src:
        if args.crop:
            h = min(args.crop, src.height)
            w = min(args.crop, src.width)
            r0, c0 = (src.height - h) // 2, (src.width - w) // 2
            win = Window(c0, r0, w, h)
        else:
            win = Window(0, 0, src.width, src.height)
        h, w = (int(win.height) // s) * s, (int(win.width) // s) * s
        win = Window(win.col_off, win.row_off, w, h)
        dem = src.read(1, window=win, masked=True).astype(np.float64).filled(np.nan)
        t, crs, res = src.window_transform(win), src.crs, src.res[0]
    ref = work / "reference.tif"
    write(ref, dem.astype(np.float32), t, crs, nodata=float("nan"))
    lr = dem.reshape(h // s, s, w // s, s).mean(axis=(1, 3)).astype(np.float32)
    lr_path = work / "lr.tif"
    write(lr_path, lr, t @ Affine.scale(s), crs, nodata=float("nan"))
    if args.guide:
        guide, bands = str(args.guide), None
    else:
        g = work / "hillshade.tif"
        write(g, hillshade(np.nan_to_num(dem, nan=float(np.nanmean(dem))), res), t, crs)
        guide, bands = str(g), [1]
    return {"reference": dem, "lr": str(lr_path), "guide": guide, "guide_bands": bands,
            "transform": t, "lr_shape": list(lr.shape)}


def add_input_args(ap: argparse.ArgumentParser) -> None:
    """The options :func:`prepare` reads (DEM, guide, crop, scale) and the method's."""
    ap.add_argument("--dem", type=Path, required=True, help="HR DEM GeoTIFF (the reference)")
    ap.add_argument("--guide", type=Path, default=None, help="guide image (default: hillshade)")
    ap.add_argument("--crop", type=int, default=None, help="central crop of the DEM (HR px)")
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--method", default="mmsr")
    ap.add_argument("--preset", default="dem")


def score(pred: np.ndarray, reference: np.ndarray) -> dict[str, Any]:
    """RMSE and MAE (m) of ``pred`` where it and ``reference`` are finite, and that count."""
    ok = np.isfinite(pred) & np.isfinite(reference)
    err = pred[ok] - reference[ok]
    return {"rmse_m": round(float(np.sqrt(np.mean(err**2))), 4),
            "mae_m": round(float(np.mean(np.abs(err))), 4), "pixels": int(ok.sum())}


def run_scored(lr: str, guide: str, out: Path, reference: np.ndarray, transform: Affine,
               **run_kw: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """``geosr.pipeline.run(lr, guide, out, **run_kw)``, timed, with its peak memory and its
    output scored against ``reference`` (on the grid ``transform``): the record's common
    fields, and the run's summary."""
    from geosr import pipeline
    from geosr.evaluation.evaluate import PeakMemory

    t0 = time.perf_counter()
    with PeakMemory() as mem:
        summary = pipeline.run(lr, guide, out, RunConfig(**run_kw))
    wall = time.perf_counter() - t0
    with rasterio.open(out) as dst:
        pred = dst.read(1, masked=True).astype(np.float64).filled(np.nan)
        assert dst.transform == transform, "output grid differs from the reference"
    sc = score(pred, reference)
    return {
        "rmse_m": sc["rmse_m"], "mae_m": sc["mae_m"],
        "wall_seconds": round(wall, 2), "peak_rss_gb": round(mem.peak / 1e9, 3),
        "tiles": summary["tiles"], "stage_seconds": summary["seconds"],
        "scene_fit": summary.get("scene_fit"), "mode_settings": summary.get("mode"),
    }, summary


def compare_to_tile(runs: list[dict[str, Any]], tile: dict[str, Any] | None, pick) -> None:
    """Add ``speedup_vs_tile`` and ``rmse_vs_tile`` to the runs ``pick(run)`` selects."""
    for r in runs if tile else []:
        if pick(r):
            r["speedup_vs_tile"] = round(tile["wall_seconds"] / r["wall_seconds"], 2)
            r["rmse_vs_tile"] = round(r["rmse_m"] / tile["rmse_m"], 3)


def save(result: dict[str, Any], path: Path | None) -> None:
    if path:
        path.write_text(json.dumps(result, indent=2, default=str) + "\n")


def main() -> None:
    from geosr.pipeline import OutputConfig, SceneConfig, TilingConfig

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_input_args(ap)
    ap.add_argument("--tile-size", type=int, default=None)
    ap.add_argument("--tile-iterations", type=int, default=100)
    ap.add_argument("--scene-iterations", type=int, default=300)
    ap.add_argument("--scene-crop", type=int, default=48)
    ap.add_argument("--hybrid-iterations", type=int, default=30)
    ap.add_argument("--modes", default="scene,hybrid,tile")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="geosr-modes-"))
    work.mkdir(parents=True, exist_ok=True)
    data = prepare(args, work)
    ref = data["reference"]
    result: dict[str, Any] = {
        "benchmark": "modes", "dem": str(args.dem), "guide": str(args.guide or "hillshade"),
        "crop": args.crop, "scale": args.scale, "lr_shape": data["lr_shape"],
        "output_megapixels": round(ref.size / 1e6, 4), "python": sys.version.split()[0],
        "settings": {k: v for k, v in vars(args).items() if k not in ("json", "workdir")},
        "runs": [],
    }
    runs = [("tile", "bicubic")] + [(m, args.method) for m in args.modes.split(",")]
    for mode, method in runs:
        opts: dict[str, Any] = {}
        if method != "bicubic":
            opts = {"preset": args.preset, "seed": args.seed, "iterations": args.tile_iterations}
        scene = SceneConfig(mode=mode, iterations=args.scene_iterations, crop=args.scene_crop,
                            hybrid_iterations=args.hybrid_iterations)
        out = work / f"{method}-{mode}.tif"
        scored, summary = run_scored(
            data["lr"], data["guide"], out, ref, data["transform"], scale=args.scale,
            method=method, method_options=opts, guide_bands=data["guide_bands"],
            tiling=TilingConfig(tile_size=args.tile_size), scene=scene,
            output=OutputConfig(overwrite=True))
        rec = {"method": method, "mode": mode, **scored,
               "output_mpx_per_minute": round(ref.size / 1e6 / scored["wall_seconds"] * 60, 3)}
        if mode != "tile":  # the per-tile cost once the scene network exists
            tiles_s = summary["seconds"].get("tiles", 0.0)
            rec["tiles_mpx_per_minute"] = round(ref.size / 1e6 / max(tiles_s, 1e-9) * 60, 3)
        result["runs"].append(rec)
        print(json.dumps(rec), file=sys.stderr, flush=True)
        save(result, args.json)
    tile = next((r for r in result["runs"] if r["mode"] == "tile" and r["method"] != "bicubic"),
                None)
    compare_to_tile(result["runs"], tile, lambda r: r["mode"] in ("scene", "hybrid"))
    save(result, args.json)
    print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
