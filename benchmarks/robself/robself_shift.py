"""Does RobSelf's translator find a known misalignment? A diagnostic for RobSelf-Re.

Crops one real pair, shifts the guide by a known whole number of HR pixels, makes the LR
by average pooling the aligned target, and fits each method. Every ``--every`` steps it
records the RMSE of the prediction (and, for RobSelf, of the translation head's
``I_trans``) and the mean and spread of the learned guide-to-source displacement, which
should approach the opposite of the shift, in (dy, dx) HR pixels.

    python benchmarks/robself/robself_shift.py --shift 3,-3 --shift 0,0 \\
        --run robself-re:source_dilation=1,field_tv=0 \\
        --run robself-re:source_dilation=1,field_tv=0.1 --run mmsr \\
        --json benchmarks/robself/results/shift_diagnostic_plain_convs.json

reproduces the committed JSON (with the plain 3x3 source convs and no field penalty;
the defaults are ``source_dilation`` = the scale and ``field_tv=0.1``).

``--run NAME[:key=value,...]`` runs a registered method with options.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import geosr
from geosr.evaluation.evaluate import degrade, load_pairs, metrics
from geosr.models import get_method
from geosr.normalize import BandStats, prepare_guide, prepare_lr

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def parse_run(text: str) -> tuple[str, dict]:
    name, _, rest = text.partition(":")
    opts = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        opts[key] = json.loads(value)
    return name, opts


def fit_and_watch(name: str, opts: dict, lr: np.ndarray, guide: np.ndarray, hr: np.ndarray,
                  steps: int, every: int) -> dict:
    method = get_method(name, iterations=steps, **opts)
    built = {}
    build = method.build_model

    def keep(*args, **kwargs):
        built["net"] = build(*args, **kwargs)
        return built["net"]

    method.build_model = keep
    stats = BandStats.from_array(lr[None])
    x, valid = prepare_lr(lr[None], stats)
    g = prepare_guide(guide, BandStats.from_array(guide))
    lr_t, g_t = torch.from_numpy(x)[None], torch.from_numpy(g)[None]
    trace = []
    t0 = time.perf_counter()

    def rmse(t: torch.Tensor) -> float:
        return round(metrics(stats.invert(t[0].numpy())[0], hr)["rmse"], 4)

    def watch(step: int, total: int, loss: float) -> None:
        if step % every and step != total:
            return
        net = built["net"]
        row = {"step": step, "loss": round(loss, 5), "seconds": round(time.perf_counter() - t0, 1)}
        with torch.no_grad():
            out = net(lr_t, g_t)
            if isinstance(out, tuple):
                row["rmse"], row["rmse_trans"] = rmse(out[0]), rmse(out[1][0])
                d = net.displacement(*net.features(lr_t, g_t))
                d = d.view(1, -1, 2, *d.shape[-2:]).mean(1)  # De: mean over the taps
                row["disp_mean"] = [round(float(d[0, i].mean()), 3) for i in (0, 1)]
                row["disp_std"] = [round(float(d[0, i].std()), 3) for i in (0, 1)]
            else:
                row["rmse"] = rmse(out)
        trace.append(row)
        print(f"  {name} {opts} {row}", flush=True)

    method.fit(x, g, 4, valid, progress=watch)
    return {"method": name, "options": opts, "trace": trace, "rmse": trace[-1]["rmse"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA / "mmsr_samples")
    ap.add_argument("--pair", type=int, default=0, help="index of the pair in --data")
    ap.add_argument("--size", type=int, default=96, help="HR crop size")
    ap.add_argument("--at", default="100,100", help="crop origin row,col")
    ap.add_argument("--shift", action="append", default=None,
                    help="guide shift dy,dx in HR px (repeatable; default 3,-3)")
    ap.add_argument("--run", action="append", default=None, help="NAME[:key=value,...]")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    if not a.data.exists():
        raise SystemExit(f"{a.data} not found: this benchmark needs ../shared/data")
    pair = load_pairs(a.data)[a.pair]
    y0, x0 = (int(v) for v in a.at.split(","))
    results = []  # per shift and run; "true_disp" is what the translator should find
    for shift in a.shift or ["3,-3"]:
        dy, dx = (int(v) for v in shift.split(","))
        hr, lr = degrade(pair.target[y0:y0 + a.size, x0:x0 + a.size], 4)
        # guide pixel p shows the target at p + (dy, dx): the aligned guide at p samples
        # the guide at p - (dy, dx), so the displacement to learn is (-dy, -dx)
        guide = pair.guide[:, y0 + dy:y0 + dy + a.size, x0 + dx:x0 + dx + a.size]
        bicubic = metrics(geosr.super_resolve(lr[None], guide, 4, method="bicubic")[0], hr)
        print(f"shift {dy},{dx}: bicubic {bicubic['rmse']:.4f}", flush=True)
        for run in a.run or ["robself-re", "mmsr"]:
            name, opts = parse_run(run)
            res = fit_and_watch(name, opts, lr, guide, hr, a.steps, a.every)
            results.append({"shift": [dy, dx], "true_disp": [-dy, -dx], "bicubic": round(bicubic["rmse"], 4), **res})
    summary = {"data": str(a.data.name), "pair": pair.name, "size": a.size, "at": [y0, x0],
               "scale": 4, "steps": a.steps, "threads": torch.get_num_threads(),
               "results": results}
    for r in results:
        last = r["trace"][-1]
        print(f"shift {r['shift']} {r['method']} {r['options']}: rmse {r['rmse']:.4f} "
              f"(bicubic {r['bicubic']:.4f})"
              + (f", displacement {last['disp_mean']} ± {last['disp_std']}"
                 if "disp_mean" in last else ""))
    if a.json:
        a.json.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
