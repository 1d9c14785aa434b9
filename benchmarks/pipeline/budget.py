"""Does ``--mode auto`` keep its budget? The same run, repeated from a fresh cost model.

Runs ``geosr dem-sr`` (or ``sr``) in auto mode ``--runs`` times on one real pair with an
empty cost-model cache (a temporary ``XDG_CACHE_HOME``): the first run times the method,
each finished run records its measured stages, and the later runs plan with the corrected
model. Records per run the mode, the steps, the estimated and the measured seconds, the
calibration factors the choice used and the load average before and after (other work on
the machine slows a run after its plan was made).

    python benchmarks/pipeline/budget.py --pair mashhad_dsm --method robself-re --runs 3 \\
        --json benchmarks/pipeline/results/budget_mashhad_robself_re_x4.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks.quality.default_dem import geosr, pairs  # noqa: E402
from geosr.evaluation.bench import pool_reference  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pair", default="mashhad_dsm")
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--command", choices=["dem-sr", "sr"], default="dem-sr")
    ap.add_argument("--method", default=None)
    ap.add_argument("--budget", default=None, help="--budget of the runs (default: geosr's)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    extra = (["--method", a.method] if a.method else []) + (
        ["--budget", a.budget] if a.budget else [])
    result: dict = {"command": " ".join([f"geosr {a.command} --lr LR --guide GUIDE --scale "
                                         f"{a.scale} -o OUT", *extra]),
                    "pair": a.pair, "rows": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        found = pairs(work, [a.pair])
        if a.pair not in found:
            raise SystemExit(f"{a.pair}: not under the shared data")
        target, guide, pair_args = found[a.pair]
        lr = work / "lr.tif"
        pool_reference(target, lr, a.scale)
        cache = work / "cache"
        for i in range(a.runs):
            load_before = os.getloadavg()[0]
            summary, wall = geosr(a.command, "--lr", str(lr), "--guide", str(guide), "--scale",
                                  str(a.scale), "-o", str(work / "out.tif"), "--overwrite",
                                  *pair_args, *extra,
                                  env={**os.environ, "XDG_CACHE_HOME": str(cache)})
            auto = summary["auto"]
            cm = auto.get("cost_model") or {}
            row = {"run": i + 1, "mode": auto["mode"], "iterations": auto.get("iterations"),
                   "budget_seconds": auto["budget_seconds"],
                   "estimated_seconds": auto["estimated_seconds"],
                   "actual_seconds": auto["actual_seconds"],
                   "estimated_total_seconds": auto["estimated_total_seconds"],
                   "actual_total_seconds": auto["actual_total_seconds"],
                   "over_budget": round(auto["actual_total_seconds"] / auto["budget_seconds"]
                                        - 1, 4),
                   "calibration": cm.get("calibration"),
                   "wall_seconds": round(wall, 1),
                   "load_average_before_after": [round(load_before, 2),
                                                 round(os.getloadavg()[0], 2)]}
            result["rows"].append(row)
            print(json.dumps({k: row[k] for k in ("run", "mode", "iterations",
                                                   "actual_total_seconds", "over_budget",
                                                   "calibration")}),
                  file=sys.stderr, flush=True)
            if a.json:
                a.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
