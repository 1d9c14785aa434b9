"""Real-data check of the georeferenced pipeline on the Mashhad Elevation1/Pléiades pair.

The 1 m DSM (``dsm_west_1m.tif``, EPSG:32640) is degraded x4 by 4x4 average pooling into
a 4 m LR GeoTIFF with the same origin; ``geosr dem-sr`` super-resolves it back to 1 m with
the 0.5 m orthophoto as guide (average-resampled onto the 1 m grid through the WarpedVRT),
and the RMSE/MAE against the DSM is printed as JSON for each method. Note: the DSM is
effectively ~10 m resolution (smooth), so this is a weak test of edge recovery.

    python examples/benchmarks/pipeline_mashhad.py --iterations 300
    python examples/benchmarks/pipeline_mashhad.py --methods bicubic,guided-filter
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

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
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    d = find_data(args.data)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="geosr-mashhad-"))
    work.mkdir(parents=True, exist_ok=True)
    with rasterio.open(d / "dsm_west_1m.tif") as src:
        dsm = src.read(1).astype(np.float64)
        t, crs = src.transform, src.crs
    h, w = (dsm.shape[0] // SCALE) * SCALE, (dsm.shape[1] // SCALE) * SCALE
    dsm = dsm[:h, :w]
    lr = dsm.reshape(h // SCALE, SCALE, w // SCALE, SCALE).mean(axis=(1, 3)).astype(np.float32)
    lr_path = work / "dsm_4m.tif"
    with rasterio.open(
        lr_path, "w", driver="GTiff", width=lr.shape[1], height=lr.shape[0], count=1,
        dtype="float32", crs=crs, transform=t @ Affine.scale(SCALE),
    ) as dst:
        dst.write(lr, 1)
    results = []
    for method in args.methods.split(","):
        out = work / f"{method}.tif"
        cmd = ["geosr", "dem-sr", "--lr", str(lr_path), "--guide",
               str(d / "ortho_rgb_west_0p5m.tif"), "--scale", str(SCALE), "--method", method,
               "-o", str(out), "--overwrite", "--json", "-q"]
        if args.iterations is not None:
            cmd += ["--iterations", str(args.iterations)]
        if args.device:
            cmd += ["--device", args.device]
        if args.tile_size:
            cmd += ["--tile-size", str(args.tile_size)]
        t0 = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if p.returncode != 0:
            results.append({"method": method, "error": p.stderr.strip()[-1000:]})
            continue
        summary = json.loads(p.stdout)
        with rasterio.open(out) as dst:
            pred = dst.read(1).astype(np.float64)
            assert dst.transform == t and dst.crs == crs, "output grid differs from the DSM's"
        err = pred - dsm
        results.append({
            "method": method,
            "rmse_m": round(float(np.sqrt(np.mean(err**2))), 4),
            "mae_m": round(float(np.mean(np.abs(err))), 4),
            "wall_seconds": round(wall, 2),
            "tiles": summary["tiles"],
            "options": summary["options"],
        })
    print(json.dumps({
        "benchmark": "pipeline_mashhad",
        "data": str(d),
        "scale": SCALE,
        "lr_shape": list(lr.shape),
        "reference_shape": list(dsm.shape),
        "python": sys.version.split()[0],
        "results": results,
    }, indent=2))


if __name__ == "__main__":
    main()
