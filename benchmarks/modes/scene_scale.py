"""Scene mode on a whole real DEM against tile mode estimated from a sample of its tiles.

``modes.py`` runs every mode over every tile, which limits it to small crops: ``tile`` mode
at the paper's 1000 steps costs minutes per 128-px tile on this CPU, days for a whole DEM.
Tile mode's tiles are independent fits, so its cost and its quality can be *estimated*
without running all of them: this script fits ``--tile-sample`` seeded random tiles of the
layout the pipeline uses (``geosr.pipeline.predict_tile``, exactly what a tile task runs),
times each, and extrapolates the wall time to all tiles. ``scene`` mode and bicubic run
through ``geosr.pipeline.run`` over the whole scene, as ``geosr dem-sr`` would, and are
scored over the whole scene and over the sampled tiles' extents, where the tile-mode
estimate is scored. Scene mode runs twice from one fit: with ``--back-project``
iterations (the default) and without (the network's raw output, from the saved network file,
inference only; a rerun in the same ``--workdir`` reuses the saved network for both and
adds its fit's time, read from the file). ``--hybrid-iterations`` adds hybrid mode on the same sample: per tile
fine-tunes from the scene run's network, timed and extrapolated like the tile fits, plus the
scene fit's time.

The tile fits dominate the cost (``--tile-sample`` x ``--tile-iterations`` steps). With
``--tile-cache DIR`` each sampled tile's prediction and time are kept there (and reused), and
``--stage tile`` runs only the tile sample, so a second process can fit the tiles on another
core while the first runs the scene (``--stage all``, which waits for a tile that the other
process is fitting; a ``--stage tile`` process takes the tiles nobody has started first, so
several can share the sample). Give each process its own ``--workdir``.

The inputs are made as in ``modes.py`` (the DEM average-pooled ``--scale``x; the guide a
hillshade of the HR DEM unless ``--guide`` is given). Prints JSON (``--json``: written
after each stage).

    OMP_NUM_THREADS=1 python benchmarks/modes/scene_scale.py \\
        --dem ../shared/data/dem_only/usgs_ned_1m_sandiego.tif --tile-sample 6 \\
        --scene-iterations 2000 --json benchmarks/modes/results/scene_scale_sandiego_hillshade_guide.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from geosr.pipeline import RunConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root: `benchmarks.*` imports
from benchmarks.modes.modes import add_input_args, prepare, run_scored, save, score  # noqa: E402


def main() -> None:
    import rasterio

    from geosr.pipeline import (
        OutputConfig,
        SceneConfig,
        TilingConfig,
        compute_stats,
        make_plan,
        predict_tile,
    )
    from geosr.pipeline.network import load_network

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_input_args(ap)
    ap.add_argument("--tile-size", type=int, default=None,
                    help="tile size (LR px) of tile and hybrid mode (default: the pipeline's)")
    ap.add_argument("--scene-tile-size", type=int, default=None,
                    help="tile size (LR px) of scene mode's inference (default: the pipeline's)")
    ap.add_argument("--tile-iterations", type=int, default=1000,
                    help="steps per tile in tile mode (default: the paper's 1000)")
    ap.add_argument("--tile-sample", type=int, default=6, help="tiles fitted in tile mode")
    ap.add_argument("--scene-iterations", type=int, default=2000)
    ap.add_argument("--scene-crop", type=int, default=48)
    ap.add_argument("--hybrid-iterations", type=int, default=0,
                    help="also hybrid mode on the sample, with this many steps per tile")
    ap.add_argument("--back-project", type=int, default=10)
    ap.add_argument("--stage", choices=("all", "tile"), default="all",
                    help="tile: only the tile-mode sample (to fill --tile-cache)")
    ap.add_argument("--tile-cache", type=Path, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="geosr-scene-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    data = prepare(args, work)
    ref = data["reference"]
    s = args.scale
    opts = {"preset": args.preset, "seed": args.seed, "iterations": args.tile_iterations}
    tiling = TilingConfig(tile_size=args.tile_size)
    scene_cfg = SceneConfig(mode="scene", iterations=args.scene_iterations, crop=args.scene_crop,
                            back_project=args.back_project)
    plan = compute_stats(make_plan(data["lr"], data["guide"], RunConfig(scale=s, method=args.method, method_options=opts, guide_bands=data["guide_bands"], tiling=tiling)))
    tiles = list(plan.layout)
    rng = np.random.default_rng(args.seed)
    pick = sorted(rng.choice(len(tiles), size=min(args.tile_sample, len(tiles)),
                             replace=False).tolist())
    sample = [tiles[i] for i in pick]
    result: dict[str, Any] = {
        "benchmark": "scene_scale", "dem": str(args.dem),
        "guide": str(args.guide or "hillshade"), "scale": s, "lr_shape": data["lr_shape"],
        "output_megapixels": round(ref.size / 1e6, 4), "tiles": len(tiles),
        "tile_size_lr": plan.layout.tile_size, "sampled_tiles": [t.key for t in sample],
        "python": sys.version.split()[0],
        "settings": {k: str(v) for k, v in vars(args).items() if k not in ("json", "workdir")},
        "runs": [],
    }

    def on_sample(pred_of) -> dict[str, float]:
        """Score over the sampled tiles' extents; ``pred_of(tile)`` gives the HR extent."""
        p, r = [], []
        for t in sample:
            sl = t.extent.scaled(s).slices()
            p.append(np.ravel(pred_of(t)))
            r.append(np.ravel(ref[sl]))
        return score(np.concatenate(p), np.concatenate(r))

    def record(rec: dict[str, Any]) -> None:
        result["runs"].append(rec)
        print(json.dumps(rec), file=sys.stderr, flush=True)
        save(result, args.json)

    def sample_tile(p, t) -> tuple[np.ndarray | None, float]:
        """A tile-mode prediction of a sampled tile and its seconds (cached, see --tile-cache)."""
        cache = args.tile_cache
        if cache is None:
            t0 = time.perf_counter()
            return predict_tile(p, t), time.perf_counter() - t0
        cache.mkdir(parents=True, exist_ok=True)
        done, lock = cache / f"{t.key}.npz", cache / f"{t.key}.lock"
        try:
            lock.touch(exist_ok=False)
        except FileExistsError:  # another process fits it (or has): wait for the result
            while not done.exists():
                time.sleep(10)
        if not done.exists():
            t0 = time.perf_counter()
            pred = predict_tile(p, t)
            sec = time.perf_counter() - t0
            tmp = cache / f"{t.key}.tmp.npz"
            np.savez(tmp, pred=pred, seconds=sec)
            tmp.replace(done)
        with np.load(done) as z:
            return z["pred"], float(z["seconds"])

    if args.stage == "tile":  # first the tiles nobody fits yet, then wait for the others
        locked = {t.key for t in sample if args.tile_cache and
                  (args.tile_cache / f"{t.key}.lock").exists()}
        for t in sorted(sample, key=lambda t: t.key in locked):
            _, sec = sample_tile(plan, t)
            print(f"tile {t.key}: {sec:.1f} s", file=sys.stderr, flush=True)
        return

    network = work / "scene-network.pt"
    scene_fit_s = 0.0
    if network.exists():  # a rerun in the same --workdir: reuse the fit, take its time
        from geosr.pipeline.network import read_network

        fit = read_network(network)[0]["fitted_on"]["fit"]
        scene_fit_s = float(fit["seconds"]) + float(fit.get("read_seconds", 0.0))
        result["scene_network_reused"] = {"path": str(network), "fit": fit}
    # whole-scene runs through the pipeline: bicubic, scene mode (fitted, network saved) and
    # the same network without back-projection (inference only)
    for method, mode, bp in (("bicubic", "tile", 0), (args.method, "scene", args.back_project),
                             (args.method, "scene", 0)):
        out = work / f"{method}-{mode}-bp{bp}.tif"
        fitted = mode == "scene" and network.exists()
        cfg = (SceneConfig() if mode == "tile" else
               dataclasses.replace(scene_cfg, back_project=bp, iterations=None,
                                   network=str(network)) if fitted else scene_cfg)
        scored, summary = run_scored(
            data["lr"], data["guide"], out, ref, data["transform"], scale=s, method=method,
            method_options={} if method == "bicubic" else opts,
            guide_bands=data["guide_bands"],
            tiling=TilingConfig(tile_size=args.scene_tile_size), scene=cfg,
            save_network=network if mode == "scene" and not fitted else None,
            output=OutputConfig(overwrite=True))
        with rasterio.open(out) as dst:
            pred = dst.read(1, masked=True).astype(np.float64).filled(np.nan)
        rec = {"method": method, "mode": mode, "back_project": bp, "scope": "whole scene",
               **scored,
               "output_mpx_per_minute": round(ref.size / 1e6 / scored["wall_seconds"] * 60, 3),
               "on_sample": on_sample(lambda t, pred=pred: pred[t.extent.scaled(s).slices()])}
        if mode == "scene":
            tiles_s = summary["seconds"].get("tiles", 0.0)
            rec["tiles_mpx_per_minute"] = round(ref.size / 1e6 / max(tiles_s, 1e-9) * 60, 3)
            if fitted:  # inference from the saved network: add the fit's time
                rec["wall_seconds_with_fit"] = round(rec["wall_seconds"] + scene_fit_s, 2)
            else:
                scene_fit_s = summary["seconds"]["scene"]
        record(rec)

    # tile mode (and hybrid) on the sample, extrapolated to every tile
    runs = [("tile", plan)]
    if args.hybrid_iterations:  # fine-tunes of the scene run's network
        hplan = dataclasses.replace(plan, scene=SceneConfig(
            mode="hybrid", hybrid_iterations=args.hybrid_iterations, network=str(network),
            back_project=args.back_project))
        hplan = dataclasses.replace(hplan, scene_state=load_network(network, hplan))
        runs.append(("hybrid", hplan))
    for mode, p in runs:
        preds, secs = {}, []
        for t in sample:
            if mode == "tile":
                preds[t.key], sec = sample_tile(p, t)
            else:
                t0 = time.perf_counter()
                preds[t.key] = predict_tile(p, t)
                sec = time.perf_counter() - t0
            secs.append(sec)
            print(f"{mode} {t.key}: {secs[-1]:.1f} s", file=sys.stderr, flush=True)
        per_tile = float(np.mean(secs))
        est = per_tile * len(tiles) + (scene_fit_s if mode == "hybrid" else 0.0)
        record({"method": args.method, "mode": mode, "scope": f"{len(sample)} sampled tiles",
                "steps_per_tile": args.tile_iterations if mode == "tile"
                else args.hybrid_iterations,
                "seconds_per_tile": [round(x, 2) for x in secs],
                "estimated_wall_seconds": round(est, 1),
                "estimated_output_mpx_per_minute": round(ref.size / 1e6 / est * 60, 4),
                "on_sample": on_sample(lambda t, preds=preds: preds[t.key])})

    tile = next(r for r in result["runs"] if r["mode"] == "tile" and r["method"] != "bicubic")
    for r in result["runs"]:
        if r is tile or r["method"] == "bicubic":
            continue
        wall = r.get("wall_seconds_with_fit", r.get("wall_seconds",
                                                    r.get("estimated_wall_seconds")))
        r["speedup_vs_tile"] = round(tile["estimated_wall_seconds"] / wall, 1)
        r["rmse_vs_tile_on_sample"] = round(
            r["on_sample"]["rmse_m"] / tile["on_sample"]["rmse_m"], 3)
    save(result, args.json)
    print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
