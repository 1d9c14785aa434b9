"""Peak resident memory and step time of whole ``mmsr`` runs, with and without trimming.

    python benchmarks/speed_and_memory/run_memory.py --iterations 100 --repeats 2 \\
        --json benchmarks/speed_and_memory/results/run_memory_320.json

Each run is its own process (``python -m geosr eval`` on one 320^2 pair of
../shared/data/mmsr_samples at x4, paper settings), so every peak is a clean process
high-water mark (``ru_maxrss``: interpreter, torch and data included). Settings alternate
(on, off, on, off, ...) so that a change in the machine's load hits both alike. ``trim``
is the loop option ``trim_memory`` (glibc ``malloc_trim`` after the forward pass and after
each update). The issue-2 target is a whole 320^2 run at <= 2 GB.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mmsr_samples"


def one_run(data: Path, pair: str, iterations: int, trim: bool, scale: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "eval.json"
        cmd = [
            sys.executable, "-m", "geosr", "eval", str(data), "-m", "mmsr", "--pairs", pair,
            "--scale", str(scale), "--iterations", str(iterations), "-q", "--json", str(out),
            "--set", f"mmsr.trim_memory={'true' if trim else 'false'}",
        ]
        subprocess.run(cmd, check=True)
        result = json.loads(out.read_text())
    row = next(r for r in result["rows"] if r["method"] == "mmsr")
    return {
        "trim_memory": trim,
        "peak_rss_mb": round(row["peak_rss_mb"], 1),
        "seconds": round(row["seconds"], 2),
        "seconds_per_step": round(row["seconds"] / iterations, 3),
        "rmse": row["rmse"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--pair", default="01_1")
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--iterations", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if not args.data.is_dir():
        sys.exit(f"no data at {args.data}: pass --data (a folder of target/ and guide/ pairs)")
    runs = []
    for r in range(args.repeats):
        for trim in (True, False):
            runs.append({"repeat": r, **one_run(args.data, args.pair, args.iterations, trim,
                                                args.scale)})
            print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    summary = {}
    for trim in (True, False):
        rs = [x for x in runs if x["trim_memory"] == trim]
        summary["trim" if trim else "no_trim"] = {
            "max_peak_rss_mb": max(x["peak_rss_mb"] for x in rs),
            "mean_seconds_per_step": round(sum(x["seconds_per_step"] for x in rs) / len(rs), 3),
        }
    summary["time_ratio_trim_to_no_trim"] = round(
        summary["trim"]["mean_seconds_per_step"] / summary["no_trim"]["mean_seconds_per_step"], 3
    )
    out = {
        "benchmark": "run_memory", "pair": args.pair, "scale": args.scale,
        "iterations": args.iterations, "machine": platform.machine(),
        "runs": runs, "summary": summary,
    }
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
