"""Time optimisation steps (forward + backward + Adam) of learned methods at one tile size.

    python examples/benchmarks/step_time.py --size 320 --scale 4 \\
        --variants mmsr,mmsr:unfold,mmsr:none,robself-re,robself-de

``mmsr`` uses geosr's memory-efficient filter, ``mmsr:unfold`` the reference formulation
(materialised ``F.unfold``), ``mmsr:none`` the same network with both filters removed
(the convolution-only floor). All variants run in one process, one after another, on
the same inputs, so their ratios are comparable. Prints JSON; peak RSS is sampled from
/proc around each variant (the process's resident memory, interpreter and torch included).
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch

from geosr.evaluate import PeakMemory
from geosr.models import get_method
from geosr.optimize import masked_cycle_loss


def build(variant: str, scale: int, preset: str | None):
    name, _, impl = variant.partition(":")
    opts = {"preset": preset} if preset else {}
    method = get_method(name, **opts)
    torch.manual_seed(0)
    if name == "mmsr":
        from geosr.models.mmsr import MMSRNet

        n, m = method.options.sizes
        return MMSRNet(3, scale, n=n, m=m, impl=impl or "blocked")
    return method.build_model(3, scale)


def time_steps(variant: str, size: int, scale: int, preset: str | None, steps: int, warmup: int):
    net = build(variant, scale, preset)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(0)
    lr = torch.randn(1, 1, size // scale, size // scale, generator=g)
    guide = torch.randn(1, 3, size, size, generator=g)
    mask = torch.ones_like(lr)
    times = []
    with PeakMemory() as mem:
        for i in range(warmup + steps):
            t = time.perf_counter()
            out = net(lr, guide)
            pred, aux = out if isinstance(out, tuple) else (out, [])
            loss = masked_cycle_loss(pred, lr, mask, scale)
            for a in aux:
                loss = loss + masked_cycle_loss(a, lr, mask, scale)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if i >= warmup:
                times.append(time.perf_counter() - t)
    return {
        "variant": variant,
        "params": sum(p.numel() for p in net.parameters()),
        "seconds_per_step_median": float(np.median(times)),
        "seconds_per_step": times,
        "peak_rss_gb": mem.peak / 2**30,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=320)
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--preset", default=None, help="method preset (default: each method's)")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--variants", default="mmsr,mmsr:none,mmsr:unfold")
    args = ap.parse_args()
    res = {
        "size": args.size, "scale": args.scale, "preset": args.preset,
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "machine": platform.machine(), "results": [],
    }
    for v in args.variants.split(","):
        steps = min(2, args.steps) if v.endswith(":unfold") else args.steps
        res["results"].append(time_steps(v, args.size, args.scale, args.preset, steps, args.warmup))
    by = {r["variant"]: r["seconds_per_step_median"] for r in res["results"]}
    base = by.get("mmsr")
    if base:
        res["ratio_to_mmsr"] = {k: v / base for k, v in by.items()}
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
