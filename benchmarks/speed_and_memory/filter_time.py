"""Time the fused local filter alone (forward + backward) against its block size.

    OMP_NUM_THREADS=1 python benchmarks/speed_and_memory/filter_time.py --size 320 --kernels 11,5 \\
        --blocks 4,6,8,10,12,16 --profile --json filter_time_320.json

Random 64-channel features, one image; each setting runs ``--repeats`` times and the
median is kept. ``--profile`` adds the share of each operator in the filter's time
(``torch.profiler``) at the default block size, per kernel size.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from geosr.models.layers import local_attention


def once(q, kv, size: int, block: int) -> tuple[float, float]:
    """Forward and backward seconds; under bf16 autocast when the features are bf16 (as
    the network hands them over when the loop runs in bf16)."""
    t0 = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=q.dtype == torch.bfloat16):
        out = local_attention(q, kv, kv, size, block=block)
    t1 = time.perf_counter()
    out.backward(torch.ones_like(out))
    return t1 - t0, time.perf_counter() - t1


def profile(q, kv, size: int, block: int) -> dict[str, float]:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as prof

    once(q, kv, size, block)
    with prof(activities=[ProfilerActivity.CPU]) as p:
        once(q, kv, size, block)
    events = p.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    top = sorted(events, key=lambda e: -e.self_cpu_time_total)[:8]
    return {e.key: round(e.self_cpu_time_total / total, 3) for e in top}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=320)
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--kernels", default="11,5")
    ap.add_argument("--blocks", default="4,6,8,10,12,16")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--bf16", action="store_true",
                    help="bf16 autocast, with bf16 features (as the network hands them over)")
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.manual_seed(0)
    shape = (1, a.channels, a.size, a.size)
    dtype = torch.bfloat16 if a.bf16 else torch.float32
    q = torch.randn(shape).to(dtype).requires_grad_()
    kv = torch.randn(shape).to(dtype).requires_grad_()
    rows, shares = [], {}
    for k in (int(v) for v in a.kernels.split(",")):
        for b in (int(v) for v in a.blocks.split(",")):
            runs = sorted((once(q, kv, k, b) for _ in range(a.repeats)), key=sum)
            fwd, bwd = runs[len(runs) // 2]
            rows.append({"kernel": k, "block": b, "forward_s": round(fwd, 4),
                         "backward_s": round(bwd, 4), "total_s": round(fwd + bwd, 4)})
            print(json.dumps(rows[-1]), flush=True)
        if a.profile:
            shares[k] = profile(q, kv, k, 8)
            print(json.dumps({"kernel": k, "block": 8, "self_time_share": shares[k]}), flush=True)
    result = {"size": a.size, "channels": a.channels, "threads": torch.get_num_threads(),
              "bf16": a.bf16,
              "torch": torch.__version__, "rows": rows, "profile_block8": shares}
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
