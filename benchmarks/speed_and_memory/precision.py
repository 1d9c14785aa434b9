"""bf16 against float32 on the CPU: the quick-start job, and every learned method.

    OMP_NUM_THREADS=1 python benchmarks/speed_and_memory/precision.py example --iterations 200 \\
        --json benchmarks/speed_and_memory/results/precision_example.json
    OMP_NUM_THREADS=1 python benchmarks/speed_and_memory/precision.py methods \\
        --json benchmarks/speed_and_memory/results/precision_methods.json

``example`` runs ``geosr dem-sr --example`` with ``-O bf16=on`` and ``-O bf16=off``, each
its own process (as a user runs it), timed from start to exit, with its peak resident
memory from ``getrusage`` and the RMSE it prints against the example's true surface.

``methods`` is a spot check that the CPU bf16 default speeds up every learned method, not
only the filter-based ones it was measured on at length, without changing its result: the
128² centre crop of the first Middlebury pair, ×4, each method at a short budget (not
converged: compare the two precisions, not the methods).

bf16 is fast only on a CPU with AVX512-BF16 or AMX (``geosr.models.optimize.cpu_has_bf16``, where
``bf16=auto`` turns it on); elsewhere the CPU emulates it.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root: `benchmarks.*` imports
import geosr
from benchmarks.common.pairs import emit  # noqa: E402
from geosr.evaluation.evaluate import center_crop, degrade, load_pairs, metrics
from geosr.models.optimize import cpu_has_bf16

#: steps per method in ``methods``
BUDGET = {"p2p": 3000, "cmsr": 150, "mmsr": 100, "robself-re": 100, "robself-de": 100}


def example_run(setting: str, iterations: int, out: Path) -> dict:
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


def example(a: argparse.Namespace) -> dict:
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(a.repeats):
            # bf16 first: its smaller peak is then always a new maximum of the children
            for setting in ("on", "off"):
                runs.append({"repeat": i, **example_run(setting, a.iterations,
                                                        Path(tmp) / "out.tif")})
                print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    by = {s: sum(r["seconds"] for r in runs if r["bf16"] == s) for s in ("on", "off")}
    return {"iterations": a.iterations, "runs": runs,
            "time_ratio_off_to_on": round(by["off"] / by["on"], 2)}


def methods(a: argparse.Namespace) -> dict:
    pair = center_crop(load_pairs(a.data)[0], 128)
    hr, lr = degrade(pair.target, 4)
    names = a.methods.split(",")
    rows = []
    for name in names:
        for i in range(a.repeats):
            for setting in ("on", "off"):
                t0 = time.perf_counter()
                out = geosr.super_resolve(lr[None], pair.guide, 4, method=name,
                                          iterations=BUDGET[name], bf16=setting)
                rows.append({"method": name, "bf16": setting, "repeat": i,
                             "iterations": BUDGET[name],
                             "seconds": round(time.perf_counter() - t0, 2),
                             "rmse": metrics(out[0], hr)["rmse"]})
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    summary = {}
    for name in names:
        mine = [r for r in rows if r["method"] == name]
        sec = {s: sum(r["seconds"] for r in mine if r["bf16"] == s) for s in ("on", "off")}
        rmse = {s: next(r["rmse"] for r in mine if r["bf16"] == s) for s in ("on", "off")}
        summary[name] = {"speedup": round(sec["off"] / sec["on"], 2),
                         "rmse_bf16": round(rmse["on"], 4), "rmse_fp32": round(rmse["off"], 4)}
    return {"pair": pair.name, "crop": 128, "scale": 4, "summary": summary, "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("part", choices=["example", "methods"])
    ap.add_argument("--iterations", type=int, default=200, help="example: steps")
    ap.add_argument("--data", default="../shared/data/middlebury_dctnet", help="methods")
    ap.add_argument("--methods", default=",".join(BUDGET), help="methods: which")
    ap.add_argument("--repeats", type=int, default=None,
                    help="alternating bf16/float32 repeats (example: 1, methods: 2)")
    ap.add_argument("--json")
    a = ap.parse_args()
    if a.repeats is None:
        a.repeats = 1 if a.part == "example" else 2
    res = {"part": a.part, "cpu_has_bf16": cpu_has_bf16(), "machine": platform.machine(),
           **(example(a) if a.part == "example" else methods(a))}
    emit(res, a.json)


if __name__ == "__main__":
    main()
