"""Batch throughput: scenes per hour of ``geosr batch`` over 20 small scenes, 1 vs 2 workers.

Writes 20 generated example scenes (``geosr.raster.example.write_example``, LR ``--size`` px a
side at 2 m, RGB guide at 0.5 m, scale 4, a different seed each) and a CSV manifest, then
runs ``geosr batch --jobs N`` in a subprocess for each N (``--jobs`` = scenes at once, each
in its own spawned process) and prints JSON: wall-clock seconds of the whole command
(process start-up included) and scenes per hour, with the batch report's own figure.

    python benchmarks/pipeline/batch_throughput.py                       # guided-filter
    python benchmarks/pipeline/batch_throughput.py --methods guided-filter,mmsr --iterations 30

``--iterations`` applies to the learned methods only (mmsr: fewer than its default 1000
steps, so the run stays short; the timing of a step does not depend on their number).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from geosr import __version__
from geosr.raster.example import write_example


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=20)
    ap.add_argument("--size", type=int, default=64, help="LR pixels per side of a scene")
    ap.add_argument("--methods", default="guided-filter", help="comma-separated methods")
    ap.add_argument("--iterations", type=int, default=None, help="learned methods only")
    ap.add_argument("--jobs", default="1,2", help="comma-separated --jobs values to time")
    args = ap.parse_args()
    geosr = [sys.executable, "-c", "from geosr.cli.main import cli; cli()"]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    results = []
    with tempfile.TemporaryDirectory(prefix="geosr-batch-bench-") as tmp:
        root = Path(tmp)
        rows = []
        for i in range(args.scenes):
            p = write_example(root / f"in{i:02d}", size=args.size, scale=4, seed=i)
            rows.append({"id": f"scene{i:02d}", "lr": p["lr"], "guide": p["guide"]})
        runs = [(m, int(j)) for m in args.methods.split(",") for j in args.jobs.split(",")]
        for method, jobs in runs:
            learned = method not in ("bicubic", "guided-filter")
            tag = f"{method}-{jobs}"
            manifest = root / f"m{tag}.csv"
            with manifest.open("w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=["id", "lr", "guide", "output"])
                w.writeheader()
                w.writerows({**r, "output": f"out{tag}/{r['id']}.tif"} for r in rows)
            (root / f"out{tag}").mkdir()
            cmd = geosr + ["batch", str(manifest), "--scale", "4", "--method", method,
                           "--jobs", str(jobs), "--report", str(root / f"r{tag}.json"), "-q"]
            if args.iterations and learned:
                cmd += ["--iterations", str(args.iterations), "--seed", "0"]
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, env=env)
            wall = time.perf_counter() - t0
            report = json.loads((root / f"r{tag}.json").read_text())
            results.append({
                "method": method,
                "iterations": args.iterations if learned else None,
                "jobs": jobs,
                "scenes_done": report["counts"]["done"],
                "wall_seconds": round(wall, 2),
                "scenes_per_hour": round(report["counts"]["done"] / wall * 3600, 1),
                "report_scenes_per_hour": report["scenes_per_hour"],
                "mean_scene_seconds": round(
                    sum(s["seconds"] for s in report["scenes"]) / len(report["scenes"]), 3),
            })
    print(json.dumps({
        "benchmark": "geosr batch throughput",
        "geosr": __version__,
        "scenes": args.scenes,
        "scene": {"lr_px": [args.size, args.size], "scale": 4,
                  "output_px": [4 * args.size, 4 * args.size]},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "omp_num_threads": env["OMP_NUM_THREADS"]},
        "runs": results,
    }, indent=2))


if __name__ == "__main__":
    main()
