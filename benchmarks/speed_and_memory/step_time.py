"""Time optimisation steps (forward + backward + Adam) of learned methods at one tile size.

    python benchmarks/speed_and_memory/step_time.py --size 320 --scale 4 \\
        --variants mmsr,mmsr:unfold,mmsr:none,robself-re,robself-de

``mmsr`` uses geosr's memory-efficient filter, ``mmsr:unfold`` the reference formulation
(materialised ``F.unfold``), ``mmsr:none`` the same network with both filters removed
(the convolution-only floor); ``robself-re:twopass`` runs RobSelf's reference filter as
two filters and a per-pixel selection instead of one pass, ``robself-re:plain`` RobSelf with
plain 3x3 source convs and no field penalty (``source_dilation=1, field_tv=0``). All variants run in one process, one after another, on
the same inputs, so their ratios are comparable. Prints JSON; peak RSS is sampled from
/proc around each variant (the process's resident memory, interpreter and torch included).
Each step is also split into forward (with the loss), backward and optimiser (Adam) time;
``filter_share`` is ``1 - floor/step`` for the variants that have a filter-free floor.
A variant may end in ``+cl`` to run channels-last (NHWC) tensors and weights, and/or
``+compile`` to run it through ``torch.compile`` (use ``--warmup 2`` or more), and
``+bf16`` or ``+fp32`` to run it with or without bf16 autocast whatever ``--bf16`` says
(``mmsr+bf16`` is compared with the floor ``mmsr:none+bf16``); ``+cpuchunks`` runs the
fused filter with the CPU's chunk limits on either device, ``+cudachunks`` with CUDA's
larger ones (to compare the two), ``+chunksN`` with chunks of at most N MB; ``+trim``
hands freed heap pages back after the forward pass and the update, as the fit loop does
on CPU by default (``trim_memory``).
``--device cuda`` times on the GPU (synchronising around each phase) under the same
bf16 autocast as the online loop (``--bf16 auto``: on for CUDA and for CPUs with AVX512-BF16
or AMX, off elsewhere).
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch

from geosr.evaluation.evaluate import PeakMemory
from geosr.models import get_method
from geosr.models.optimize import (
    OptimConfig,
    _outputs,
    _total_loss,
    resolve_device,
    tidier,
    uses_bf16,
)


def build(variant: str, scale: int, preset: str | None):
    name, _, impl = variant.partition(":")
    opts = {"preset": preset} if preset else {}
    if impl == "plain":  # RobSelf with undilated source convs, no field penalty
        opts.update(source_dilation=1, field_tv=0.0)
    method = get_method(name, **opts)
    torch.manual_seed(0)
    if name == "mmsr":
        from geosr.models.mmsr import MMSRNet

        n, m = method.options.sizes
        return MMSRNet(3, scale, n=n, m=m, impl=impl or "blocked")
    net = method.build_model(3, scale)
    if impl == "twopass":  # RobSelf's reference filter as two filters and a selection
        net.one_pass = False
    elif impl not in ("", "plain"):
        raise SystemExit(f"unknown variant {variant!r}")
    return net


def time_steps(
    variant: str, size: int, scale: int, preset: str | None, steps: int, warmup: int,
    device: torch.device, bf16: bool,
):
    base, *flags = variant.split("+")
    chunks = [f for f in flags if f in ("cpuchunks", "cudachunks") or f.startswith("chunks")]
    if chunks:
        from geosr.models import layers

        names = ("_CHUNK_BLOCKS", "_CHUNK_BYTES", "_CUDA_CHUNK_BLOCKS", "_CUDA_CHUNK_BYTES")
        saved = [getattr(layers, n) for n in names]
        if chunks[0] in ("cpuchunks", "cudachunks"):
            limits = saved[:2] if chunks[0] == "cpuchunks" else saved[2:]
        else:  # chunksN: N MB, and no cap on the blocks
            limits = [2**30, int(float(chunks[0][len("chunks"):]) * 2**20)]
        for n, v in zip(names, limits * 2, strict=True):  # the same limits on both devices
            setattr(layers, n, v)
        try:
            rest = "+".join(f for f in flags if f not in chunks)
            res = time_steps("+".join(filter(None, (base, rest))), size, scale, preset,
                             steps, warmup, device, bf16)
        finally:
            for n, v in zip(names, saved, strict=True):
                setattr(layers, n, v)
        return {**res, "variant": variant}
    cl, compiled = "cl" in flags, "compile" in flags
    # +trim: the fit loop's malloc_trim after the forward pass and after the update
    # (OptimConfig.trim_memory, on by default on CPU); the bare step has none
    trim = tidier(OptimConfig(trim_memory="trim" in flags), device)
    bf16 = True if "bf16" in flags else False if "fp32" in flags else bf16
    net = build(base, scale, preset).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(0)
    lr = torch.randn(1, 1, size // scale, size // scale, generator=g).to(device)
    guide = torch.randn(1, 3, size, size, generator=g).to(device)
    if cl:
        net = net.to(memory_format=torch.channels_last)
        guide = guide.contiguous(memory_format=torch.channels_last)
    mask = torch.ones_like(lr)
    cfg = OptimConfig()  # the loop's loss: cycle + aux_weight * aux + any penalty
    params = sum(p.numel() for p in net.parameters())
    if compiled:  # torch.compile (inductor); the first (warm-up) steps include compiling
        net = torch.compile(net)
    cuda = device.type == "cuda"

    def now() -> float:
        if cuda:  # kernels run asynchronously: wait for them before reading the clock
            torch.cuda.synchronize(device)
        return time.perf_counter()

    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    times, parts, warm = [], [], []
    with PeakMemory() as mem:
        for i in range(warmup + steps):
            t = now()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                out = _outputs(net(lr, guide))
            loss = _total_loss(out, lr, mask, scale, cfg)
            trim()
            t_fwd = now()
            opt.zero_grad()
            loss.backward()
            t_bwd = now()
            opt.step()
            trim()
            t_end = now()
            if i < warmup:
                warm.append(t_end - t)
            else:
                times.append(t_end - t)
                parts.append((t_fwd - t, t_bwd - t_fwd, t_end - t_bwd))
    med = np.median(np.array(parts), axis=0)
    return {
        "variant": variant,
        "bf16": bf16,
        "params": params,
        "seconds_per_step_median": float(np.median(times)),
        "seconds_per_step": times,
        "warmup_seconds": [round(x, 2) for x in warm],  # with +compile: compilation
        "forward_backward_optimizer_median": [round(float(x), 4) for x in med],
        "peak_rss_gb": mem.peak / 2**30,
        **({"peak_gpu_gb": torch.cuda.max_memory_allocated(device) / 2**30} if cuda else {}),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=320)
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--preset", default=None, help="method preset (default: each method's)")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--variants", default="mmsr,mmsr:none,mmsr:unfold")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    ap.add_argument("--bf16", default="auto", choices=["auto", "on", "off"],
                    help="bf16 autocast, as in the loop (auto: CUDA, and CPUs with bf16)")
    args = ap.parse_args()
    device = resolve_device(args.device)
    bf16 = uses_bf16(OptimConfig(bf16=args.bf16), device)
    res = {
        "size": args.size, "scale": args.scale, "preset": args.preset,
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "machine": platform.machine(), "device": str(device), "bf16": bf16,
        **({"gpu": torch.cuda.get_device_name(device)} if device.type == "cuda" else {}),
        "results": [],
    }
    for v in args.variants.split(","):
        steps = min(2, args.steps) if v.endswith(":unfold") else args.steps
        res["results"].append(time_steps(
            v, args.size, args.scale, args.preset, steps, args.warmup, device, bf16))
    by = {r["variant"]: r["seconds_per_step_median"] for r in res["results"]}
    base = by.get("mmsr")
    if base:
        res["ratio_to_mmsr"] = {k: v / base for k, v in by.items()}
    for k, v in by.items():
        head, *flags = k.split("+")
        name, _, rest = head.partition(":")
        floor = by.get("+".join([f"{name}:none", *flags]))
        if floor and not rest.startswith(("none", "unfold")):
            res.setdefault("filter_share", {})[k] = round(1 - floor / v, 3)
            res.setdefault("ratio_to_floor", {})[k] = round(v / floor, 3)
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
