"""Real-data check of the georeferenced pipeline on the Mashhad Elevation1/Pléiades pair.

A thin caller of :func:`geosr.evaluation.bench.bench_scene` (what ``geosr bench DSM --guide ORTHO``
runs): the 1 m DSM (``dsm_west_1m.tif``, EPSG:32640) is degraded x4 by 4x4 average pooling
into a 4 m LR GeoTIFF with the same origin, the pipeline (``geosr dem-sr``: tiles, mosaic,
COG; preset ``dem``) super-resolves it back to 1 m with the 0.5 m orthophoto as guide, and
the RMSE/MAE against the DSM is printed as JSON for each method: the bench result, plus
the ``results`` list of earlier versions of this script (``rmse_m``, ``mae_m``,
``wall_seconds``). Note: the DSM is effectively ~10 m resolution (smooth), so this is a
weak test of edge recovery. The same with the CLI::

    geosr bench ../shared/data/geo_mashhad_elevation1_pleiades/dsm_west_1m.tif \\
        --guide ../shared/data/geo_mashhad_elevation1_pleiades/ortho_rgb_west_0p5m.tif \\
        -m bicubic,guided-filter,mmsr --preset dem --iterations 200 --json out.json

    python benchmarks/pipeline/pipeline_mashhad.py --iterations 300
    python benchmarks/pipeline/pipeline_mashhad.py --methods bicubic,guided-filter
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from geosr.evaluation.bench import bench_scene
from geosr.pipeline import TilingConfig, method_options_for

SCALE = 4


def find_data(explicit: Path | None) -> Path:
    here = Path(__file__).resolve().parents[2]
    cands = [explicit] if explicit else [here.parent / "shared" / "data", Path("/work/shared/data")]
    for c in cands:
        if c is not None and (c / "geo_mashhad_elevation1_pleiades" / "dsm_west_1m.tif").exists():
            return c / "geo_mashhad_elevation1_pleiades"
    raise SystemExit("shared/data/geo_mashhad_elevation1_pleiades not found; pass --data")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None, help="the shared/data folder")
    ap.add_argument("--methods", default="bicubic,guided-filter,mmsr")
    ap.add_argument("--iterations", type=int, default=None, help="mmsr iterations per tile")
    ap.add_argument("--device", default=None)
    ap.add_argument("--tile-size", type=int, default=None)
    ap.add_argument("--workdir", type=Path, default=None, help="keep the LR and outputs here")
    args = ap.parse_args()
    d = find_data(args.data)
    common = {"preset": "dem", "iterations": args.iterations, "device": args.device}
    common = {k: v for k, v in common.items() if v is not None}
    methods = {m: method_options_for(m, common) for m in args.methods.split(",") if m}
    result = bench_scene(d / "dsm_west_1m.tif", d / "ortho_rgb_west_0p5m.tif", methods, SCALE,
                         tiling=TilingConfig(tile_size=args.tile_size), workdir=args.workdir)
    results = [{
        "method": r["method"],
        "rmse_m": round(r["rmse"], 4),
        "mae_m": round(r["mae"], 4),
        "wall_seconds": round(r["seconds"], 2),
        "tiles": r["tiles"],
        "options": r["options"],
    } for r in result["records"]]
    print(json.dumps({
        "benchmark": "pipeline_mashhad",
        "python": sys.version.split()[0],
        **result,
        "results": results,
    }, indent=2, default=str))


if __name__ == "__main__":
    main()
