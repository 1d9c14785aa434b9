"""Bounded-memory benchmark of the xarray path (``geosr.super_resolve_xr``, guided-filter).

The xarray twin of ``pipeline_memory.py``, on the same inputs (a synthetic 16384 x 16384
RGB guide at 0.5 m and LR rasters of 1024 x 1024 and 4096 x 4096 pixels at 2 m, generated
by that script's functions and shared with it through ``--workdir``). For each LR size a
fresh child process opens both rasters with ``rioxarray.open_rasterio(..., chunks=...)``
(dask-backed: the call builds a lazy graph), super-resolves by 4 with the guided filter and
writes the result block by block with :func:`geosr.xr.to_raster`. The JSON printed has the
peak resident memory of that child (``getrusage(RUSAGE_CHILDREN).ru_maxrss`` of a fresh
wrapper process, as in ``pipeline_memory.py``) and the output megapixels per second.

Targets (the CLI's): peak <= 1.5 GB, and the 4096^2 run no more than 10% above the 1024^2 run.

    OMP_NUM_THREADS=1 python benchmarks/pipeline/xr_memory.py --workdir /tmp/geosr-mem > r.json
    python benchmarks/pipeline/xr_memory.py --sizes 256,512 --guide-size 2048    # quick
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root: `benchmarks.*` imports
from benchmarks.pipeline.pipeline_memory import (  # noqa: E402
    SCALE,
    add_input_arguments,
    measure,
    peak_verdict,
    prepare_inputs,
)


def child(args: argparse.Namespace) -> None:
    """One run in this (measured) process: open lazily, super-resolve, write by blocks."""
    import warnings

    import rioxarray

    import geosr
    from geosr.xr import to_raster

    warnings.simplefilter("ignore", UserWarning)  # rioxarray/xarray chunk advice
    chunks = args.chunks if args.chunks == "auto" else {"x": int(args.chunks),
                                                         "y": int(args.chunks)}
    t0 = time.perf_counter()
    lr = rioxarray.open_rasterio(args.lr, masked=True, chunks=chunks)
    guide = rioxarray.open_rasterio(args.guide, chunks=chunks)
    hr = geosr.super_resolve_xr(lr, guide, SCALE, method=args.method)
    t_graph = time.perf_counter() - t0
    to_raster(hr, args.out, compress="DEFLATE")
    dt = time.perf_counter() - t0
    print(json.dumps({
        "output_shape": list(hr.shape),
        "output_chunks": [len(c) for c in hr.chunks],
        "graph_tasks": len(hr.data.__dask_graph__()),
        "lr_chunks": [max(c) for c in lr.chunks],
        "guide_chunks": [max(c) for c in guide.chunks],
        "seconds": {"graph": round(t_graph, 3), "total": round(dt, 3)},
    }))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_input_arguments(ap)
    ap.add_argument("--chunks", default="1024",
                    help="open_rasterio chunks: pixels a side (x and y), or 'auto'")
    ap.add_argument("--run", nargs=3, metavar=("LR", "GUIDE", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.run:
        args.lr, args.guide, args.out = args.run
        child(args)
        return
    work, guide, lrs, gen = prepare_inputs(ap, args)
    runs = []
    for n, lr in lrs.items():
        out = work / f"xr_out_{n}.tif"
        out.unlink(missing_ok=True)
        cmd = [sys.executable, str(Path(__file__).resolve()), "--method", args.method,
               "--chunks", args.chunks, "--run", str(lr), str(guide), str(out)]
        m = measure(cmd)
        if m["rc"] != 0:
            raise SystemExit(f"run failed for {n}: {m['stderr']}")
        summary = json.loads(m["stdout"])
        out_mpx = round((n * SCALE) ** 2 / 1e6, 3)
        runs.append({
            "lr_size": n,
            "output_size": n * SCALE,
            "output_megapixels": out_mpx,
            "peak_rss_mb": round(m["maxrss_kb"] / 1024, 1),
            "wall_seconds": round(m["seconds"], 1),
            "megapixels_per_second": round(out_mpx / m["seconds"], 3),
            **summary,
            "output_mb_on_disk": round(out.stat().st_size / 2**20, 1),
        })
        out.unlink()
    result = {
        "benchmark": "xr_memory",
        "method": args.method,
        "scale": SCALE,
        "guide_size": args.guide_size,
        "open_rasterio_chunks": args.chunks,
        "writer": "geosr.xr.to_raster (tiled DEFLATE GeoTIFF, block by block, threading.Lock)",
        "cpus": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "platform": platform.platform(),
        "runs": runs,
        "generation": gen,
        **peak_verdict(runs),
        "maxrss_note": f"ru_maxrss of the child process; {resource.getpagesize()} B pages",
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
