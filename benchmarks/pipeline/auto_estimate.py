"""How close ``--mode auto``'s estimate is to the wall time on a scene of >= 4 output Mpx.

The USGS NED San Diego DEM (1 m) pooled x2 is the LR (500x500 at 2 m); the guide is a
3-band hillshade of the 1 m DEM resampled to 0.5 m. That guide is derived from the target,
so this run says nothing about quality (no RMSE is reported): it only times the pipeline on a
2000x2000 output. The default command is dry-run for its estimate, then run, both with an
empty cost-model cache of their own: the estimate is that of a first run on this machine
(the cost model is timed by the dry-run and reused by the run). The load average before and
after is recorded: other work on the machine slows the run after the cost model was timed.

    python benchmarks/pipeline/auto_estimate.py --json benchmarks/pipeline/results/auto_estimate_4mpx.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from geosr.evaluation.bench import pool_reference  # noqa: E402

SHARED = Path(os.environ.get("GEOSR_SHARED_DATA", ROOT.parent / "shared" / "data"))
DEM = SHARED / "dem_only" / "usgs_ned_1m_sandiego.tif"


def hillshade_guide(dem: Path, out: Path) -> None:
    with rasterio.open(dem) as src:
        z = src.read(1).astype(np.float64)
        t, crs = src.transform, src.crs
    gy, gx = np.gradient(z, abs(t.e), t.a)
    az, alt = np.radians(315), np.radians(45)
    slope = np.arctan(np.hypot(gx, gy))
    aspect = np.arctan2(-gx, gy)
    hs = np.sin(alt) * np.cos(slope) + np.cos(alt) * np.sin(slope) * np.cos(az - aspect)
    hs = np.clip(hs * 255, 0, 255).astype(np.uint8)
    up = np.kron(hs, np.ones((2, 2), np.uint8))  # 0.5 m
    with rasterio.open(out, "w", driver="GTiff", width=up.shape[1], height=up.shape[0],
                       count=3, dtype="uint8", crs=crs,
                       transform=t * Affine.scale(0.5)) as dst:
        for b in (1, 2, 3):
            dst.write(up, b)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--budget", default=None)
    args = ap.parse_args()
    extra = ["--budget", args.budget] if args.budget else []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        lr, guide, out = work / "lr.tif", work / "guide.tif", work / "out.tif"
        pool_reference(DEM, lr, 2)
        hillshade_guide(DEM, guide)
        base = [sys.executable, "-m", "geosr", "dem-sr", "--lr", str(lr), "--guide",
                str(guide), "--scale", "4", "-o", str(out), *extra]
        env = {**os.environ, "XDG_CACHE_HOME": str(work / "cache")}
        load_before = os.getloadavg()
        plan = json.loads(subprocess.run([*base, "--dry-run"], check=True, env=env,
                                         capture_output=True, text=True).stdout)
        t0 = time.perf_counter()
        summary = json.loads(subprocess.run([*base, "--json", "-q"], check=True, env=env,
                                            capture_output=True, text=True).stdout)
        wall = time.perf_counter() - t0
        load_after = os.getloadavg()
    est = plan["auto"]["estimated_total_seconds"]
    a = summary["auto"]
    fixed = (summary["seconds"].get("self-check", 0.0) + summary["seconds"].get("scene", 0.0))
    mpx = summary["output_megapixels"]
    result = {
        "output_megapixels": mpx,
        "auto": plan["auto"],
        "estimated_total_seconds": est,
        "actual_total_seconds": a["actual_total_seconds"],
        "wall_seconds_with_startup": round(wall, 1),
        "estimate_error": round(a["actual_total_seconds"] / est - 1, 3),
        "stage_estimate_error": {
            k: round(a["actual_seconds"][k] / v - 1, 3)
            for k, v in plan["auto"]["estimated_seconds"].items()
            if k in a.get("actual_seconds", {}) and v > 0},
        "stage_seconds": summary["seconds"],
        "load_average_1min": {"before": round(load_before[0], 2),
                              "after": round(load_after[0], 2), "cpus": os.cpu_count()},
        "seconds_per_output_mpx_after_the_fit": round(
            (summary["seconds"]["total"] - fixed) / mpx, 2),
        "note": "guide derived from the target (hillshade): timing only, no quality figure",
    }
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
