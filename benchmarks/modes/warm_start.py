"""Warm starts: fit one pair, then start the other pairs' fits from its weights.

    OMP_NUM_THREADS=1 python benchmarks/modes/warm_start.py ../shared/data/mmsr_samples \\
        --source 01_1 --source-iterations 500 --pairs 02_4 --iterations 150 \\
        --snapshots 25,50,100 --json J

For an archive of similar pairs (one sensor pair, one kind of scene) the network fitted to
one pair already maps that guide to that source; the question is how many steps another
pair then needs. Each target pair is fitted twice with the same budget and seed: from the
source's weights (``warm``) and from a fresh initialisation (``cold``, the paper
protocol), with RMSE at the snapshot steps and at the end (the default output: the mean
of the last 20 % of steps for MMSR). ``--set OPTION=VALUE`` passes method options to
every fit.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from geosr.evaluation.evaluate import load_pairs, metrics
from geosr.models import get_method
from geosr.models.learned import dump_state
from geosr.models.optimize import fit, seeded

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root: `benchmarks.*` imports
from benchmarks.common.pairs import emit, method_options, prepared  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("--method", default="mmsr")
    ap.add_argument("--source", required=True, help="the pair fitted first")
    ap.add_argument("--source-iterations", type=int, default=500)
    ap.add_argument("--pairs", required=True, help="comma-separated target pairs")
    ap.add_argument("--iterations", type=int, default=150)
    ap.add_argument("--snapshots", default="25,50,100")
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--set", action="append", default=[], metavar="OPTION=VALUE")
    ap.add_argument("--starts", default="warm,cold",
                    help="which fits of each target pair to run (e.g. warm alone)")
    ap.add_argument("--json")
    a = ap.parse_args()
    opts = method_options(a.set)
    pairs = {p.name: p for p in load_pairs(a.data)}
    snaps = [int(s) for s in a.snapshots.split(",") if s]
    starts = {s.strip() for s in a.starts.split(",")}
    if not starts or starts - {"warm", "cold"}:
        ap.error("--starts takes warm, cold or warm,cold")

    src = get_method(a.method, iterations=a.source_iterations, **opts)
    hr, _, x, g, valid, stats = prepared(pairs[a.source], a.scale)
    cfg = src.optim_config()
    t0 = time.perf_counter()
    with seeded(cfg.seed):
        model = src.build_model(g.shape[0], a.scale)
        res = fit(model, x, g, a.scale, valid, cfg)
    state = dump_state(model)
    source = {"pair": a.source, "iterations": a.source_iterations,
              "seconds": round(time.perf_counter() - t0, 1),
              "rmse": metrics(stats.invert(res.prediction)[0], hr)["rmse"]}
    print(json.dumps(source), flush=True)

    target = get_method(a.method, iterations=a.iterations, **opts)
    rows = []
    for name in a.pairs.split(","):
        hr, _, x, g, valid, stats = prepared(pairs[name], a.scale)
        bic = get_method("bicubic")(x, g, a.scale)
        row = {"pair": name, "bicubic": metrics(stats.invert(bic)[0], hr)["rmse"]}
        for start, init in (("warm", state), ("cold", None)):
            if start not in starts:
                continue
            t0 = time.perf_counter()
            r = target.fit(x, g, a.scale, valid, snapshot_steps=snaps, init_state=init)
            row[start] = {
                "seconds": round(time.perf_counter() - t0, 1),
                "rmse": {int(k): metrics(stats.invert(v)[0], hr)["rmse"]
                         for k, v in sorted(r.snapshots.items())},
            }
        rows.append(row)
        print(json.dumps(row), flush=True)
    out = {"method": a.method, "options": opts, "scale": a.scale, "source": source,
           "iterations": a.iterations, "threads": torch.get_num_threads(), "rows": rows}
    for start in sorted(starts):
        out[f"mean_{start}"] = float(np.mean([r[start]["rmse"][a.iterations] for r in rows]))
    emit(out, a.json)


if __name__ == "__main__":
    main()
