"""Every registered method side by side: the comparison table of the papers.

Runs ``geosr eval`` once per (dataset, scale) with every method and collects the means
into one table: mean RMSE, mean ratio to bicubic, seconds per pair. Each run writes its
own ``geosr eval`` JSON into ``--out`` and is resumable: pairs that a previous (partial)
run finished are kept and only the others are run, so the script can be stopped and
started again.

The full paper protocol (whole images, every learned method at its paper budget) takes
CPU-days here. ``--budget F`` runs every learned method at ``F`` x its default number of
steps (MMSR/RobSelf 1000, P2P 32000, CMSR 1500), ``--crop`` centre-crops the pairs and
``--limit`` takes the first pairs of each dataset: a reduced protocol that is the same for
every method. ``--budget 1 --crop 0 --limit 0`` is the papers' protocol (use a GPU).

    OMP_NUM_THREADS=1 python benchmarks/quality/comparison.py \\
        --runs middlebury:4 --budget 0.3 --crop 128 --limit 3 \\
        --out benchmarks/quality/results/comparison
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"

#: name -> (data argument, guide argument or None, {method: preset})
DATASETS: dict[str, tuple[str, str | None, dict[str, str]]] = {
    "middlebury": ("middlebury_dctnet", None, {}),
    "mmsr_samples": ("mmsr_samples", None, {}),
    "mashhad": (
        "geo_mashhad_elevation1_pleiades/dsm_west_1m.tif",
        "geo_mashhad_elevation1_pleiades/ortho_rgb_west_0p5m.tif",
        {"mmsr": "dem", "robself-re": "dem", "robself-de": "dem"},
    ),
    "nir": ("epfl_rgbnir_cdlsr", None, {"robself-re": "nir", "robself-de": "nir"}),
}
DEFAULT_RUNS = "middlebury:4,middlebury:8,mmsr_samples:4,mmsr_samples:8,mashhad:4,mashhad:8,nir:2,nir:4"


def complete_pairs(rows: list[dict[str, Any]], methods: list[str]) -> set[str]:
    """The pairs that have a row for bicubic and for every one of ``methods``."""
    have: dict[str, set[str]] = {}
    for r in rows:
        have.setdefault(r["pair"], set()).add(r["method"])
    return {p for p, ms in have.items() if {"bicubic", *methods} <= ms}


def learned_budgets(methods: list[str], budget: float) -> dict[str, int]:
    """Steps per learned method: ``budget`` x its default (at least 1)."""
    from geosr.models import get_method
    from geosr.models.learned import LearnedMethod

    out = {}
    for m in methods:
        method = get_method(m)
        if isinstance(method, LearnedMethod):
            out[m] = max(1, round(method.options.iterations * budget))
    return out


def pair_names(data: Path, guide: Path | None, limit: int) -> list[str]:
    from geosr.evaluation.evaluate import load_pairs

    names = [p.name for p in load_pairs(data, guide)]
    return names[:limit] if limit else names


def run_one(name: str, scale: int, methods: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """One (dataset, scale): run the pairs not yet in the JSON, merge, return the rows."""
    rel, guide_rel, presets = DATASETS[name]
    data, guide = args.data / rel, (args.data / guide_rel if guide_rel else None)
    path = args.out / f"{name}_x{scale}.json"
    rows = json.loads(path.read_text())["rows"] if path.exists() else []
    done = complete_pairs(rows, methods)
    rows = [r for r in rows if r["pair"] in done]
    todo = [p for p in pair_names(data, guide, args.limit) if p not in done]
    steps = learned_budgets(methods, args.budget)
    if todo:
        part = args.out / f".{name}_x{scale}.part.json"
        cmd = [sys.executable, "-m", "geosr", "eval", str(data), "-m", ",".join(methods),
               "--scale", str(scale), "--pairs", ",".join(todo), "--json", str(part), "-q"]
        if guide is not None:
            cmd += ["--guide", str(guide)]
        if args.crop:
            cmd += ["--crop", str(args.crop)]
        for m, k in steps.items():
            cmd += ["--set", f"{m}.iterations={k}"]
        for m, p in presets.items():
            if m in methods:
                cmd += ["--set", f"{m}.preset={p}"]
        print(f"[{name} x{scale}] {len(todo)} pairs to run: {' '.join(cmd[2:])}", file=sys.stderr,
              flush=True)
        try:
            subprocess.run(cmd, check=True)
        finally:  # keep what finished, also when interrupted
            if part.exists():
                new = json.loads(part.read_text())["rows"]
                rows += [r for r in new if r["pair"] not in done]
                write_run(path, name, scale, methods, steps, args, rows)
                part.unlink()
    return {"rows": rows, "steps": steps}


def write_run(path: Path, name: str, scale: int, methods: list[str], steps: dict[str, int],
              args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    path.write_text(json.dumps({
        "dataset": name, "scale": scale, "methods": methods, "steps": steps,
        "crop": args.crop, "limit": args.limit, "budget": args.budget, "rows": rows,
    }, indent=1) + "\n")


def summarise(rows: list[dict[str, Any]], methods: list[str]) -> dict[str, dict[str, float]]:
    """Means over the pairs that every method finished (so all methods see the same pairs)."""
    pairs = complete_pairs(rows, methods)
    bic = {r["pair"]: r["rmse"] for r in rows if r["method"] == "bicubic"}
    out = {}
    for m in ["bicubic", *methods]:
        rs = [r for r in rows if r["method"] == m and r["pair"] in pairs]
        if not rs:
            continue
        out[m] = {
            "pairs": len(rs),
            "rmse": sum(r["rmse"] for r in rs) / len(rs),
            "ratio_to_bicubic": sum(r["rmse"] / bic[r["pair"]] for r in rs) / len(rs),
            "seconds_per_pair": sum(r["seconds"] for r in rs) / len(rs),
        }
    return out


def markdown(summary: dict[str, Any], methods: list[str]) -> str:
    cols = ["bicubic", *methods]
    lines = ["| data | scale | pairs | " + " | ".join(cols) + " |",
             "|---|---|---|" + "---|" * len(cols)]
    for key, s in summary.items():
        name, scale = key.rsplit("_x", 1)
        n = max((v["pairs"] for v in s.values()), default=0)
        if n == 0:  # a run stopped before its first pair finished
            continue
        best = min((v["rmse"] for v in s.values()), default=None)
        cells = []
        for m in cols:
            v = s.get(m)
            if v is None:
                cells.append("–")
                continue
            rmse = f"{v['rmse']:.3f}"
            if v["rmse"] == best:
                rmse = f"**{rmse}**"
            cells.append(f"{rmse} ({v['ratio_to_bicubic']:.2f}, {v['seconds_per_pair']:.0f} s)")
        lines.append(f"| {name} | ×{scale} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default=DEFAULT_RUNS,
                    help=f"dataset:scale list (datasets: {', '.join(DATASETS)})")
    ap.add_argument("--methods", default="guided-filter,p2p,cmsr,mmsr,robself-re,robself-de")
    ap.add_argument("--budget", type=float, default=1.0,
                    help="fraction of each learned method's default steps")
    ap.add_argument("--crop", type=int, default=0, help="centre crop (HR px); 0 = whole pairs")
    ap.add_argument("--limit", type=int, default=0, help="first N pairs per dataset; 0 = all")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/quality/results/comparison"))
    ap.add_argument("--summary-only", action="store_true",
                    help="only rebuild the table from the JSON already in --out")
    args = ap.parse_args()
    if not args.data.is_dir():
        ap.error(f"no data folder at {args.data}; pass --data")
    if not 0 < args.budget <= 10:
        ap.error("--budget must be in (0, 10]")
    methods = [m for m in args.methods.split(",") if m and m != "bicubic"]
    args.out.mkdir(parents=True, exist_ok=True)
    runs = []
    for spec in args.runs.split(","):
        name, _, scale = spec.partition(":")
        if name not in DATASETS or not scale.isdigit():
            ap.error(f"bad run {spec!r}: use dataset:scale with a dataset of {list(DATASETS)}")
        runs.append((name, int(scale)))
    if not args.summary_only:
        for name, scale in runs:
            run_one(name, scale, methods, args)
    # The table covers every run in --out (several invocations may fill one folder).
    summary: dict[str, Any] = {}
    settings: dict[str, Any] = {}
    for name in DATASETS:
        for path in sorted(args.out.glob(f"{name}_x*.json"), key=lambda p: int(p.stem.split("_x")[-1])):
            run = json.loads(path.read_text())
            summary[path.stem] = summarise(run["rows"], methods)
            settings[path.stem] = {k: run.get(k) for k in ("steps", "crop", "limit", "budget")}
    (args.out / "summary.json").write_text(json.dumps(
        {"methods": methods, "threads": os.environ.get("OMP_NUM_THREADS"),
         "settings": settings, "summary": summary}, indent=1) + "\n")
    print(markdown(summary, methods))


if __name__ == "__main__":
    main()
