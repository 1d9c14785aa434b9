"""Checksums of seeded outputs: the reference that a refactoring must not change.

Runs, in a temporary folder, ``geosr dem-sr --example`` with bicubic, guided-filter and
``mmsr --iterations 20`` (one thread, seeded; tile mode, no guard), and ``geosr eval`` on
one shared MMSR sample pair, then hashes each output GeoTIFF (its bytes and its pixels) and the eval JSON's
scores (wall times and memory left out: they vary between runs).

    python benchmarks/reproducibility/checksums.py --write   # record the reference
    python benchmarks/reproducibility/checksums.py           # compare with it (exit 1 on change)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import rasterio

HERE = Path(__file__).resolve().parent
REFERENCE = HERE / "results" / "checksums.json"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
EVAL_PAIR = SHARED / "mmsr_samples"

#: explicit mode and guard: the reference pins the engine, not the command's defaults
PINNED = ["--mode", "tile", "--guard", "off"]
RUNS = {
    "dem-sr-example-bicubic": ["--method", "bicubic", *PINNED],
    "dem-sr-example-guided-filter": ["--method", "guided-filter", *PINNED],
    "dem-sr-example-mmsr-20": ["--method", "mmsr", "--iterations", "20", "--seed", "0",
                               *PINNED],
}
VOLATILE = {"seconds", "time", "wall", "peak", "memory", "rss", "date", "created", "elapsed"}


def _scores(obj):
    """The JSON with every timing/memory field dropped (recursively)."""
    if isinstance(obj, dict):
        return {
            k: _scores(v)
            for k, v in sorted(obj.items())
            if not any(word in k.lower() for word in VOLATILE)
        }
    if isinstance(obj, list):
        return [_scores(v) for v in obj]
    return obj


def _geosr(*args: str, cwd: Path) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "geosr", *args]
    subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True, text=True)


def compute() -> dict:
    out: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name, extra in RUNS.items():
            path = tmp / f"{name}.tif"
            _geosr("dem-sr", "--example", "-o", str(path), "--workers", "1", *extra, cwd=tmp)
            with rasterio.open(path) as ds:
                pixels = ds.read()
            out[name] = {
                "file_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                "pixels_sha256": hashlib.sha256(np.ascontiguousarray(pixels).tobytes()).hexdigest(),
            }
        if EVAL_PAIR.exists():
            js = tmp / "eval.json"
            _geosr(
                "eval", str(EVAL_PAIR), "-m", "bicubic,guided-filter,mmsr", "--scale", "4",
                "--iterations", "20", "--seed", "0", "--limit", "1", "--crop", "96",
                "--json", str(js), "-q", cwd=tmp,
            )
            scores = _scores(json.loads(js.read_text()))
            blob = json.dumps(scores, sort_keys=True).encode()
            out["eval-mmsr-samples-1pair"] = {"scores_sha256": hashlib.sha256(blob).hexdigest()}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="record the reference instead of comparing")
    args = ap.parse_args()
    got = compute()
    if args.write:
        REFERENCE.write_text(json.dumps(got, indent=2) + "\n")
        print(f"wrote {REFERENCE}")
        return 0
    want = json.loads(REFERENCE.read_text())
    bad = [k for k in want if got.get(k) != want[k]]
    for k in want:
        what = [h for h in want[k] if got.get(k, {}).get(h) != want[k][h]]
        print(f"{'same   ' if k not in bad else 'CHANGED'} {k}"
              + (f" ({', '.join(what)})" if what else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
