"""Bounded-memory benchmark of the tiled pipeline (``geosr sr --method guided-filter``).

Generates a synthetic 16384 x 16384 RGB guide (0.5 m, written block by block, never held
in memory) and LR rasters of 1024 x 1024 and 4096 x 4096 pixels (2 m) over the same
origin, runs the CLI in a subprocess for each LR at scale 4 and prints JSON with the peak
resident memory of that subprocess (``getrusage(RUSAGE_CHILDREN).ru_maxrss``, measured in a
fresh wrapper process per run) and the output megapixels per second.

Targets: peak <= 1.5 GB, and the 4096^2 run no more than 10% above the 1024^2 run.

    python benchmarks/pipeline/pipeline_memory.py --workdir /tmp/geosr-mem > result.json
    python benchmarks/pipeline/pipeline_memory.py --sizes 512 --guide-size 4096   # quick
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

CRS = "EPSG:32633"
ORIGIN = (600000.0, 5340000.0)
HR = 0.5
SCALE = 4
ROWS_PER_BLOCK = 512


def field(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """A smooth synthetic surface (metres) at map coordinates relative to the origin."""
    return (
        200.0
        + 15.0 * np.sin(x / 170.0) * np.cos(y / 230.0)
        + 4.0 * np.sin((x + 2 * y) / 37.0)
        + 6.0 * ((np.sin(x / 23.0) > 0.6) & (np.cos(y / 29.0) > 0.6))
    ).astype(np.float32)


def write_guide(path: Path, n: int) -> None:
    profile = {
        "driver": "GTiff", "width": n, "height": n, "count": 3, "dtype": "uint8", "crs": CRS,
        "transform": Affine(HR, 0, ORIGIN[0], 0, -HR, ORIGIN[1]), "tiled": True,
        "blockxsize": 512, "blockysize": 512, "compress": "deflate", "zlevel": 1,
        "photometric": "RGB", "bigtiff": "IF_SAFER",
    }
    x = (np.arange(n, dtype=np.float32) + 0.5) * HR
    rng = np.random.default_rng(0)
    with rasterio.open(path, "w", **profile) as dst:
        for r0 in range(0, n, ROWS_PER_BLOCK):
            r1 = min(n, r0 + ROWS_PER_BLOCK)
            y = ((np.arange(r0, r1, dtype=np.float32) + 0.5) * HR)[:, None]
            z = field(y, x[None])
            shade = np.clip(128 + 6.0 * np.gradient(z, axis=1), 0, 255)
            noise = rng.integers(0, 6, size=(3, r1 - r0, n), dtype=np.uint8)
            rgb = np.stack([shade * 0.9, shade, shade * 0.7 + 20]).astype(np.uint8) + noise
            dst.write(rgb, window=rasterio.windows.Window(0, r0, n, r1 - r0))


def write_lr(path: Path, n: int) -> None:
    px = HR * SCALE
    profile = {
        "driver": "GTiff", "width": n, "height": n, "count": 1, "dtype": "float32",
        "crs": CRS, "transform": Affine(px, 0, ORIGIN[0], 0, -px, ORIGIN[1]), "tiled": True,
        "compress": "deflate", "predictor": 3, "nodata": -9999.0,
    }
    x = (np.arange(n, dtype=np.float32) + 0.5) * px
    with rasterio.open(path, "w", **profile) as dst:
        for r0 in range(0, n, ROWS_PER_BLOCK):
            r1 = min(n, r0 + ROWS_PER_BLOCK)
            y = ((np.arange(r0, r1, dtype=np.float32) + 0.5) * px)[:, None]
            dst.write(field(y, x[None]), 1, window=rasterio.windows.Window(0, r0, n, r1 - r0))


def measure(cmd: list[str]) -> dict[str, float]:
    """Run ``cmd`` in a fresh wrapper process; return its children's peak RSS and wall time."""
    code = (
        "import json, resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "dt = time.perf_counter() - t\n"
        "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
        "print(json.dumps({'rc': p.returncode, 'seconds': dt, 'maxrss_kb': rss,\n"
        "                  'stdout': p.stdout, 'stderr': p.stderr[-2000:]}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, *cmd], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)


def add_input_arguments(ap: argparse.ArgumentParser) -> None:
    """The options both memory benchmarks share: where, how large, which method."""
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--sizes", default="1024,4096", help="LR sizes (pixels a side)")
    ap.add_argument("--guide-size", type=int, default=16384)
    ap.add_argument("--method", default="guided-filter")


def prepare_inputs(ap: argparse.ArgumentParser,
                   args: argparse.Namespace) -> tuple[Path, Path, dict[int, Path], dict]:
    """Write (or reuse) the guide and one LR per size in the work folder.

    Returns the work folder, the guide, the LR path per size and the generation time.
    """
    work = args.workdir or Path(tempfile.mkdtemp(prefix="geosr-mem-"))
    work.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    if max(sizes) * SCALE > args.guide_size:
        ap.error("the guide must cover the largest LR: guide-size >= 4 * max(sizes)")
    guide = work / f"guide_{args.guide_size}.tif"
    t = time.perf_counter()
    if not guide.exists():
        write_guide(guide, args.guide_size)
    gen = {"guide_seconds": round(time.perf_counter() - t, 1)}
    lrs = {}
    for n in sizes:
        lrs[n] = work / f"lr_{n}.tif"
        if not lrs[n].exists():
            write_lr(lrs[n], n)
    return work, guide, lrs, gen


def peak_verdict(runs: list[dict]) -> dict:
    """Peak RSS over the runs and its growth from the smallest to the largest size, with
    the targets (<= 1.5 GB, <= +10 %) both memory benchmarks check."""
    peaks = [r["peak_rss_mb"] for r in runs]
    return {
        "peak_rss_mb_max": max(peaks),
        "target_peak_ok": max(peaks) <= 1536,
        "growth_largest_vs_smallest": round(peaks[-1] / peaks[0] - 1, 3),
        "target_growth_ok": peaks[-1] <= 1.10 * peaks[0],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_input_arguments(ap)
    ap.add_argument("--extra", default="", help="extra CLI options, e.g. '--no-cog'")
    args = ap.parse_args()
    work, guide, lrs, gen = prepare_inputs(ap, args)
    runs = []
    for n, lr in lrs.items():
        out = work / f"out_{n}.tif"
        cmd = ["geosr", "sr", "--method", args.method, "--lr", str(lr), "--guide", str(guide),
               "--scale", str(SCALE), "-o", str(out), "--overwrite", "--json", "-q",
               *args.extra.split()]
        m = measure(cmd)
        if m["rc"] != 0:
            raise SystemExit(f"run failed for {n}: {m['stderr']}")
        summary = json.loads(m["stdout"])
        out_mpx = summary["output_megapixels"]
        runs.append({
            "lr_size": n,
            "output_size": n * SCALE,
            "output_megapixels": out_mpx,
            "peak_rss_mb": round(m["maxrss_kb"] / 1024, 1),
            "wall_seconds": round(m["seconds"], 1),
            "megapixels_per_second": round(out_mpx / m["seconds"], 3),
            "tiles": summary["tiles"],
            "stage_seconds": summary["seconds"],
            "output_mb_on_disk": round(out.stat().st_size / 2**20, 1),
        })
        out.unlink()
    result = {
        "benchmark": "pipeline_memory",
        "method": args.method,
        "scale": SCALE,
        "guide_size": args.guide_size,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "runs": runs,
        "generation": gen,
        **peak_verdict(runs),
        "maxrss_note": f"ru_maxrss of the CLI subprocess; {resource.getpagesize()} B pages",
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
