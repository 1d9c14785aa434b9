"""Fit on random crops of one image, then predict the whole image once: cheaper steps.

    OMP_NUM_THREADS=1 python benchmarks/modes/crop_steps.py ../shared/data/mmsr_samples \\
        --pairs 02_4 --crop 160 --iterations 500 --json J

The paper protocol fits every step on the whole image (320² for the MMSR samples). Here
each step draws a random ``crop x crop`` HR window (on the LR grid) of the same pair, so a
step costs about ``(crop/size)²`` of a whole-image step, and the fitted network is then
applied once to the whole image: the scene mode of ``geosr dem-sr --mode scene``, on one
image. Prints per pair RMSE (and bicubic's), the fit's seconds and the whole-image
inference seconds; ``--set OPTION=VALUE`` passes method options (e.g. ``bf16=on``).
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

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root: `benchmarks.*` imports
from benchmarks.common.pairs import emit, method_options, prepared  # noqa: E402


def crops(x, guide, valid, scale: int, size: int, seed: int):
    """``draw(step)``: a seeded random ``size``-HR-pixel window of the pair, LR-aligned."""
    c = size // scale
    h, w = x.shape[-2:]
    rng = np.random.default_rng(seed)

    def draw(step: int):
        y0, x0 = int(rng.integers(0, h - c + 1)), int(rng.integers(0, w - c + 1))
        win = (slice(None), slice(y0, y0 + c), slice(x0, x0 + c))
        hwin = (slice(None), slice(y0 * scale, (y0 + c) * scale),
                slice(x0 * scale, (x0 + c) * scale))
        return x[win], guide[hwin], valid[win]

    return draw


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("--method", default="mmsr")
    ap.add_argument("--pairs", help="comma-separated pair names (default all)")
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--crop", type=int, default=160, help="HR size of the training crops")
    ap.add_argument("--iterations", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], metavar="OPTION=VALUE")
    ap.add_argument("--json")
    a = ap.parse_args()
    opts = method_options(a.set)
    method = get_method(a.method, **opts)
    pairs = load_pairs(a.data)
    if a.pairs:
        pairs = [p for p in pairs if p.name in a.pairs.split(",")]
    rows = []
    for pair in pairs:
        hr, lr, x, g, valid, stats = prepared(pair, a.scale)
        t0 = time.perf_counter()
        state, info = method.fit_scene(crops(x, g, valid, a.scale, a.crop, a.seed),
                                       g.shape[0], a.scale, iterations=a.iterations)
        t1 = time.perf_counter()
        pred = stats.invert(method.predict_from(state, x, g, a.scale))[0]
        t2 = time.perf_counter()
        bic = get_method("bicubic")(lr[None], g, a.scale)[0]
        row = {"pair": pair.name, "rmse": metrics(pred, hr)["rmse"],
               "bicubic": metrics(bic, hr)["rmse"], "fit_s": round(t1 - t0, 1),
               "predict_s": round(t2 - t1, 1), "steps": info["steps"]}
        rows.append(row)
        print(json.dumps(row), flush=True)
    res = {"method": a.method, "options": opts, "scale": a.scale, "crop": a.crop,
           "iterations": a.iterations, "threads": torch.get_num_threads(), "rows": rows,
           "mean_rmse": float(np.mean([r["rmse"] for r in rows]))}
    emit(res, a.json)


if __name__ == "__main__":
    main()
