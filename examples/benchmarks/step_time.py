"""Time one MMSR optimisation step (forward + backward + Adam) for each filter formulation.

    python examples/benchmarks/step_time.py --size 320 --scale 4 --n 11 --m 5 [--impls blocked,unfold,none]

``blocked`` is geosr's memory-efficient filter, ``unfold`` the reference formulation
(materialised ``F.unfold``), ``none`` the same network with both filters removed (the
convolution-only floor). All in one process, one after another, on the same inputs.
Prints JSON; peak RSS is measured around each formulation by sampling /proc.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import threading
import time

import torch

from geosr.models.mmsr import MMSRNet
from geosr.optimize import masked_cycle_loss


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    def __enter__(self):
        self.peak, self._stop = rss_bytes(), False
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop:
            self.peak = max(self.peak, rss_bytes())
            time.sleep(0.01)

    def __exit__(self, *exc):
        self._stop = True
        self._t.join()


def time_steps(impl: str, size: int, scale: int, n: int, m: int, steps: int, warmup: int):
    torch.manual_seed(0)
    net = MMSRNet(3, scale, n=n, m=m, impl=impl)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    lr = torch.randn(1, 1, size // scale, size // scale)
    guide = torch.randn(1, 3, size, size)
    mask = torch.ones_like(lr)
    times = []
    with PeakRSS() as mem:
        for i in range(warmup + steps):
            t = time.perf_counter()
            loss = masked_cycle_loss(net(lr, guide), lr, mask, scale)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if i >= warmup:
                times.append(time.perf_counter() - t)
    return {
        "impl": impl,
        "seconds_per_step_median": sorted(times)[len(times) // 2],
        "seconds_per_step": times,
        "peak_rss_gb": mem.peak / 2**30,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=320)
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--n", type=int, default=11)
    ap.add_argument("--m", type=int, default=5)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--impls", default="blocked,none,unfold")
    args = ap.parse_args()
    res = {
        "size": args.size, "scale": args.scale, "n": args.n, "m": args.m,
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(), "results": [],
    }
    for impl in args.impls.split(","):
        steps = 2 if impl == "unfold" else args.steps
        res["results"].append(time_steps(impl, args.size, args.scale, args.n, args.m, steps, args.warmup))
    by = {r["impl"]: r["seconds_per_step_median"] for r in res["results"]}
    if "blocked" in by and "unfold" in by:
        res["speedup_vs_unfold"] = by["unfold"] / by["blocked"]
    if "blocked" in by and "none" in by:
        res["ratio_to_conv_floor"] = by["blocked"] / by["none"]
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
