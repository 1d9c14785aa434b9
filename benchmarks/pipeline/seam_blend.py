"""Seams of a learned method against the width of the feather ramps.

Runs ``mmsr`` once over the embedded example scene with small tiles (every tile fits its
own network), keeps the tile store, then mosaics the *same* tiles with feather ramps of
several widths (``blend``, LR px, centred in the overlaps; ``None`` = the whole overlap)
and reports, per width, the mean gradient magnitude on the overlaps against that away
from them (the seam criterion: within 10 %), and the RMSE against the example's
true surface. Also reports ``--mode scene`` when asked (one network: tiles agree).

The same ratio is reported for the true surface and for bicubic over the same layout: the
overlaps and the rest of the scene hold different terrain, so the raw ratio is far from 0
even without any tiling (``--reference-only`` prints just these, without fitting).

    OMP_NUM_THREADS=1 python benchmarks/pipeline/seam_blend.py --iterations 200 \\
        --json benchmarks/pipeline/results/seam_blend.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import rasterio

from geosr.pipeline import RunConfig


def seam_ratio(a: np.ndarray, layout: Any, scale: int) -> list[float]:
    """(on - off) / off of the mean gradient magnitude, along columns and along rows."""
    out = []
    for axis, spans in ((1, layout.col_spans), (0, layout.row_spans)):
        grad = np.abs(np.diff(a, axis=axis))
        prof = np.nanmean(grad, axis=1 - axis)
        seam = np.zeros(prof.size, bool)
        for (_, e0), (s1, _) in zip(spans, spans[1:], strict=False):
            seam[s1 * scale : e0 * scale] = True
        away = ~np.convolve(seam, np.ones(17), mode="same").astype(bool)
        on, off = prof[seam].mean(), prof[away].mean()
        out.append(round(float((on - off) / off), 4))
    return out


def main() -> None:
    from geosr import pipeline
    from geosr.pipeline import OutputConfig, SceneConfig, TilingConfig
    from geosr.raster.example import write_example
    from geosr.raster.store import TileStore, store_path
    from geosr.raster.tiling import blocks

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=64, help="example LR size (px)")
    ap.add_argument("--tile-size", type=int, default=32)
    ap.add_argument("--overlap", type=int, default=8)
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--blends", default="none,6,4,2,1")
    ap.add_argument("--scene-iterations", type=int, default=0,
                    help="also run --mode scene with this many steps (0: skip)")
    ap.add_argument("--reference-only", action="store_true",
                    help="only the ratios of the true surface and of bicubic (no fitting)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="geosr-seams-"))
    p = write_example(work, size=args.size)
    with rasterio.open(p["reference"]) as src:
        ref = src.read(1).astype(np.float64)
    tiling = TilingConfig(tile_size=args.tile_size, overlap=args.overlap)
    layout = pipeline.make_plan(p["lr"], p["guide"], RunConfig(scale=4, method="mmsr", tiling=tiling)).layout
    bic = work / "bicubic.tif"
    pipeline.run(p["lr"], p["guide"], bic, RunConfig(scale=4, method="bicubic", tiling=tiling))
    with rasterio.open(bic) as src:
        baseline = {"reference": seam_ratio(ref, layout, 4),
                    "bicubic": seam_ratio(src.read(1).astype(np.float64), layout, 4)}
    print(json.dumps(baseline), file=sys.stderr, flush=True)
    if args.reference_only:
        result0 = {"benchmark": "seam_blend", "example_size": args.size,
                   "tile_size": args.tile_size, "overlap": args.overlap,
                   "seam_vs_elsewhere": baseline}
        if args.json:
            args.json.write_text(json.dumps(result0, indent=2) + "\n")
        print(json.dumps(result0, indent=2))
        return
    opts = {"iterations": args.iterations, "preset": "dem"}
    out = work / "mmsr.tif"
    summary = pipeline.run(p["lr"], p["guide"], out, RunConfig(scale=4, method="mmsr", method_options=opts, tiling=tiling, output=OutputConfig(keep_tiles=True)))
    plan = pipeline.make_plan(p["lr"], p["guide"], RunConfig(scale=4, method="mmsr", method_options=opts, tiling=tiling))
    store = TileStore(store_path(out))
    g = plan.grid
    rows = []
    for b in args.blends.split(","):
        blend = None if b == "none" else int(b)
        lay = dataclasses.replace(plan.layout, blend=blend)
        bplan = dataclasses.replace(plan, layout=lay)
        a = np.full((g.height, g.width), np.nan)
        for blk in blocks(g.height, g.width, 1024):
            a[blk.slices()] = pipeline.mosaic_block(bplan, store, blk)
        rmse = float(np.sqrt(np.nanmean((a - ref) ** 2)))
        rows.append({"blend_lr_px": blend, "seam_vs_elsewhere": seam_ratio(a, lay, 4),
                     "rmse_m": round(rmse, 4)})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    result: dict[str, Any] = {
        "benchmark": "seam_blend", "example_size": args.size, "tile_size": args.tile_size,
        "overlap": args.overlap, "iterations": args.iterations,
        "tiles": summary["tiles"], "tile_seconds": summary["seconds"]["tiles"],
        "blends": rows,
        "baseline_seam_vs_elsewhere": baseline,
    }
    if args.scene_iterations:
        sout = work / "scene.tif"
        s = pipeline.run(p["lr"], p["guide"], sout, RunConfig(scale=4, method="mmsr", method_options={**opts, "iterations": args.scene_iterations}, tiling=tiling, scene=SceneConfig(mode="scene")))
        with rasterio.open(sout) as src:
            a = src.read(1, masked=True).filled(np.nan).astype(np.float64)
        result["scene_mode"] = {
            "scene_iterations": args.scene_iterations, "seconds": s["seconds"]["total"],
            "seam_vs_elsewhere": seam_ratio(a, plan.layout, 4),
            "rmse_m": round(float(np.sqrt(np.nanmean((a - ref) ** 2))), 4)}
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
