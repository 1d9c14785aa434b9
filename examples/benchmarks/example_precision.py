"""The quick-start job (``geosr dem-sr --example``) in float32 and in bf16, alternating.

    OMP_NUM_THREADS=1 python examples/benchmarks/example_precision.py --iterations 200 \\
        --repeats 1 --json examples/benchmarks/example_precision.json

Each run is its own process (as a user runs it), timed from start to exit, with its peak
resident memory from ``getrusage`` and the RMSE it prints against the example's true
surface. ``bf16=on`` needs a CPU with AVX512-BF16 or AMX to be fast (``geosr.optimize.
cpu_has_bf16``); elsewhere the CPU emulates it.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from geosr.optimize import cpu_has_bf16


def run(setting: str, iterations: int, out: Path) -> dict:
    cmd = [sys.executable, "-m", "geosr", "dem-sr", "--example", "-o", str(out),
           "--iterations", str(iterations), "--overwrite", "-O", f"bf16={setting}"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if r.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr}")
    found = re.search(r"surface ([0-9.]+) m \(bicubic: ([0-9.]+) m\)", r.stdout + r.stderr)
    if not found:
        raise SystemExit(f"no RMSE line in the output of {' '.join(cmd)}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {
        "bf16": setting, "seconds": round(seconds, 1), "rmse_m": float(found[1]),
        "bicubic_m": float(found[2]),
        # ru_maxrss of children is the largest so far: only a new maximum is this run's
        "peak_rss_mb": round(peak / 1024) if peak > before else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--json")
    a = ap.parse_args()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(a.repeats):
            # bf16 first: its smaller peak is then always a new maximum of the children
            for setting in ("on", "off"):
                runs.append({"repeat": i, **run(setting, a.iterations, Path(tmp) / "out.tif")})
                print(json.dumps(runs[-1]), file=sys.stderr)
    res = {"iterations": a.iterations, "cpu_has_bf16": cpu_has_bf16(),
           "machine": platform.machine(), "runs": runs}
    by = {s: [r["seconds"] for r in runs if r["bf16"] == s] for s in ("on", "off")}
    res["time_ratio_off_to_on"] = round(sum(by["off"]) / sum(by["on"]), 2)
    text = json.dumps(res, indent=2)
    print(text)
    if a.json:
        Path(a.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
