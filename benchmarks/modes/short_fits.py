"""Short per-pair fits, with and without back-projection onto the LR.

Three CPU-minutes buy ~110-140 bf16 steps of a 320² MMSR fit here, where the paper
protocol runs 1000. A short fit has not yet satisfied its own cycle loss, so its
prediction does not average-pool back to the LR. This fits each pair once for
``--iterations`` steps, keeps the predictions at ``--snapshots`` (single-step) and at the
end (the default output, the mean over the last ``average_tail`` of the steps), and
scores each as it is and after ``--back-project`` rounds of ``geosr.pipeline.scene.back_project``
(the same correction scene and hybrid modes apply). Example::

    OMP_NUM_THREADS=2 python benchmarks/modes/short_fits.py ../shared/data/mmsr_samples \\
        --pairs 02_4,026,01_1 --iterations 150 --snapshots 50,100 \\
        --json benchmarks/modes/results/short_fits_3pairs_150steps.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from geosr.evaluation.evaluate import load_pairs, metrics
from geosr.models import get_method
from geosr.models.backproject import back_project

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root: `benchmarks.*` imports
from benchmarks.common.pairs import emit, method_options, prepared  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data")
    ap.add_argument("--pairs", default=None, help="comma-separated pair names (default all)")
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--method", default="mmsr")
    ap.add_argument("--iterations", type=int, default=150)
    ap.add_argument("--snapshots", default="50,100")
    ap.add_argument("--back-project", type=int, nargs="+", default=[1, 10, 30])
    ap.add_argument("--set", action="append", default=[], metavar="OPTION=VALUE")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    wanted = set(args.pairs.split(",")) if args.pairs else None
    pairs = [p for p in load_pairs(args.data) if wanted is None or p.name in wanted]
    snaps = sorted({int(s) for s in args.snapshots.split(",") if s.strip()} | {args.iterations})
    opts = method_options(args.set)
    rows = []
    for pair in pairs:
        hr, lr, x, g, valid, stats = prepared(pair, args.scale)
        # the fit's own output (back_project=0); the back-projected columns are made here
        method = get_method(args.method, iterations=args.iterations,
                            **{**opts, "back_project": 0})
        t0 = time.perf_counter()
        res = method.fit(x, g, args.scale, valid, snapshot_steps=snaps)
        seconds = time.perf_counter() - t0
        preds = {k: stats.invert(v) for k, v in res.snapshots.items()}
        bic = stats.invert(get_method("bicubic")(x, g, args.scale))
        row = {"pair": pair.name, "seconds": round(seconds, 1),
               "threads": torch.get_num_threads(),
               "bicubic": metrics(bic[0], hr)["rmse"], "steps": {}}
        row["bicubic_bp"] = {f"bp{k}": metrics(back_project(bic, lr[None], valid, args.scale,
                                                            k)[0], hr)["rmse"]
                             for k in args.back_project}
        for step in snaps:
            pred = preds[step]
            entry = {"raw": metrics(pred[0], hr)["rmse"]}
            for k in args.back_project:
                bp = back_project(pred, lr[None], valid, args.scale, k)
                entry[f"bp{k}"] = metrics(bp[0], hr)["rmse"]
            row["steps"][str(step)] = entry
        rows.append(row)
        print(pair.name, row["seconds"], "s", {s: {k: round(v, 3) for k, v in e.items()}
                                              for s, e in row["steps"].items()}, flush=True)
    mean = {s: {k: float(np.mean([r["steps"][s][k] for r in rows]))
                for k in rows[0]["steps"][s]} for s in rows[0]["steps"]}
    emit({"data": args.data, "method": args.method, "scale": args.scale,
          "iterations": args.iterations, "options": opts, "rows": rows,
          "mean_bicubic": float(np.mean([r["bicubic"] for r in rows])),
          "mean_bicubic_bp": {k: float(np.mean([r["bicubic_bp"][k] for r in rows]))
                              for k in rows[0]["bicubic_bp"]},
          "mean": mean},
         args.json)


if __name__ == "__main__":
    main()
