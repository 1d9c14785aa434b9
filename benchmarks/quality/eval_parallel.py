"""Run ``geosr eval`` as many small jobs in parallel and merge them into one result.

One job is one (pair, method) ``geosr eval`` process with the same arguments; its JSON
goes to ``PARTS/<pair>__<method>.json`` and a job whose file exists is not run again, so
an interrupted run resumes. The merged JSON has the same layout as ``geosr eval --json``
(``rows`` and ``mean``, with ``curve`` for ``--snapshots``); the means are taken over the
pairs that every method finished, so a partial run still compares like with like.

On a GPU several processes share the card (small networks leave it mostly idle); on this
2-core CPU machine use ``--jobs 2`` and ``OMP_NUM_THREADS=1``::

    python benchmarks/quality/eval_parallel.py ../shared/data/middlebury_dctnet \\
        --methods mmsr,robself-re,robself-de --jobs 12 --parts out/parts \\
        --json out/misaligned.json -- --scale 4 --misalign default --device cuda \\
        --iterations 1000 --snapshots 200,500

Everything after ``--`` is passed to ``geosr eval`` unchanged.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from geosr.evaluation.evaluate import load_pairs


def own_options(extra: list[str], method: str) -> list[str]:
    """``extra`` without the ``--set OTHER.option=value`` of other methods (``geosr eval``
    refuses options of a method it does not run)."""
    out, i = [], 0
    while i < len(extra):
        if extra[i] == "--set" and i + 1 < len(extra):
            if extra[i + 1].partition(".")[0] == method:
                out += extra[i : i + 2]
            i += 2
        else:
            out.append(extra[i])
            i += 1
    return out


def run_job(data: str, pair: str, method: str, extra: list[str], part: Path) -> str:
    if part.exists():
        return f"{pair} {method}: done before"
    extra = own_options(extra, method)
    tmp = part.with_suffix(".tmp")
    cmd = [sys.executable, "-m", "geosr", "eval", data, "-m", method, "--pairs", pair,
           "--json", str(tmp), "-q", *extra]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        return f"{pair} {method}: FAILED ({r.returncode})\n{r.stderr[-2000:]}"
    tmp.replace(part)  # only a finished job leaves a part behind
    return f"{pair} {method}: {time.perf_counter() - t0:.0f} s"


def merge(parts: list[Path], methods: list[str]) -> dict:
    rows, header = [], None
    for p in parts:
        if p.exists():
            d = json.loads(p.read_text())
            header = header or {k: v for k, v in d.items() if k not in ("rows", "mean", "methods")}
            rows += d["rows"]
    by = defaultdict(dict)  # method -> pair -> row (bicubic comes with every job)
    for r in rows:
        by[r["method"]][r["pair"]] = r
    wanted = ["bicubic", *methods]
    common = sorted(set.intersection(*(set(by[m]) for m in wanted))) if by else []
    mean = {}
    for m in wanted:
        sel = [by[m][p] for p in common]
        if not sel:
            continue
        entry = {"pairs": len(sel)}
        for k in ("rmse", "mae", "ratio_to_bicubic", "seconds"):
            entry[k] = float(np.mean([r[k] for r in sel]))
        curves = [r["curve"] for r in sel if "curve" in r]
        if len(curves) == len(sel):
            entry["curve"] = {s: float(np.mean([c[s] for c in curves])) for s in curves[0]}
        mean[m] = entry
    return {**(header or {}), "methods": wanted, "pairs": common,
            "rows": [by[m][p] for p in common for m in wanted], "mean": mean}


def main() -> None:
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data")
    ap.add_argument("--methods", required=True, help="comma-separated learned methods")
    ap.add_argument("--pairs", default=None, help="comma-separated pairs (default all)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--parts", required=True, help="folder of the per-job JSON files")
    ap.add_argument("--json", default=None, help="merged result (default: stdout)")
    ap.add_argument("--merge-only", action="store_true",
                    help="run nothing: merge the parts there are (e.g. after a time limit)")
    args = ap.parse_args(own)
    methods = args.methods.split(",")
    pairs = args.pairs.split(",") if args.pairs else [p.name for p in load_pairs(args.data)]
    parts_dir = Path(args.parts)
    parts_dir.mkdir(parents=True, exist_ok=True)
    jobs = [(p, m, parts_dir / f"{p}__{m}.json") for p in pairs for m in methods]
    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        futures = [] if args.merge_only else [
            pool.submit(run_job, args.data, p, m, extra, part) for p, m, part in jobs]
        for f in futures:
            print(f.result(), file=sys.stderr, flush=True)
    result = merge([part for *_, part in jobs], methods)
    text = json.dumps(result, indent=1)
    if args.json:
        Path(args.json).write_text(text)
    else:
        print(text)
    for m, e in result["mean"].items():
        print(f"{m:12s} pairs {e['pairs']:3d}  RMSE {e['rmse']:.3f}  "
              f"/bicubic {e['ratio_to_bicubic']:.3f}  {e.get('curve', '')}", file=sys.stderr)


if __name__ == "__main__":
    main()
