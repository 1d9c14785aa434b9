"""Quality levers for elevation, each against the default command's own fit.

For every real elevation pair at one scale, ``geosr dem-sr`` is run with the mode and step
counts that ``--mode auto`` chose in the default-command benchmark (read from its JSON, so
every variant gets the same fit and the same budget), ``--guard off`` (the method's own
output), and one change at a time:

- ``base``: nothing else (reproduces the benchmark's "MMSR alone" figure);
- ``slope``: ``-O slope_weight=W``, the cycle loss in the gradient domain added to the loss;
- ``detrend``: ``-O detrend=true``, the LR's least-squares plane removed before the fit and
  added back to the output (the network and the normalisation see the relief about it);
- ``seed1``: ``-O seed=1``; the row also scores ``ensemble``, the mean of ``base`` and
  ``seed1`` (twice the fitting time);
- ``detrend_seed1``: both, to tell the detrending's effect from a seed's;
- ``seed2``: ``-O seed=2``, a third sample of the seed's spread.

``--method`` and ``--guide-shift`` replay another method's record (e.g. the misaligned-guide
runs of ``benchmarks/robself/results/dem_sr_shifted_guide/``) under the same conditions;
``--steps-fraction F`` replays with that fraction of the recorded steps; ``-O NAME=VALUE``
(repeatable) adds a method option to every variant, e.g. ``-O
lr_schedule=cosine`` with ``--variants base,seed1,seed2`` for that option's seed spread.

Each output is scored with the DEM metrics against the target, next to lanczos.

    python benchmarks/quality/levers.py --json benchmarks/quality/results/levers_x4.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import rasterio

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks.quality.default_dem import (  # noqa: E402
    add_misregistration_args,
    combine,
    geosr,
    misregister,
    misregistration,
    pairs,
    score,
)
from geosr.evaluation.bench import pool_reference  # noqa: E402
from geosr.normalize import fit_plane  # noqa: E402
from geosr.pipeline.auto import SCENE_CROP  # noqa: E402

#: variant -> its method options
VARIANTS = {"base": [], "slope": ["slope_weight={w}"], "detrend": ["detrend=true"],
            "seed1": ["seed=1"], "detrend_seed1": ["detrend=true", "seed=1"],
            "seed2": ["seed=2"]}


def fitted_like(auto: dict, steps_fraction: float = 1.0) -> list[str]:
    """The CLI flags that give the fit ``--mode auto`` chose (its JSON record), with
    ``steps_fraction`` of its steps (rounded down, at least one)."""
    steps = str(max(1, int(auto["iterations"] * steps_fraction)))
    if auto["mode"] == "tile":
        return ["--mode", "tile", "--iterations", steps]
    return ["--mode", "scene", "--scene-iterations", steps,
            "--scene-crop", str(SCENE_CROP)]


def lr_plane(lr: Path) -> dict[str, float]:
    """The LR's least-squares plane as ``-O detrend=true`` fits it: its slope (m per km,
    along x and y) and the share of the LR's variance it explains."""
    with rasterio.open(lr) as src:
        z = src.read(1, masked=True).astype(np.float64).filled(np.nan)
        px = abs(src.transform.a)
    plane, spread = fit_plane(z)
    return {"m_per_km_x": round(plane.a / px * 1000, 2),
            "m_per_km_y": round(-plane.b / px * 1000, 2),
            "variance_explained": round(1 - spread**2 / float(np.nanvar(z)), 3)}


def mean_raster(a: Path, b: Path, out: Path) -> Path:
    """The pixel-wise mean of two rasters on one grid, written as a float32 GeoTIFF."""
    return combine(a, b, out, lambda va, vb: (va + vb) / 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--default-json", type=Path,
                    default=ROOT / "benchmarks/quality/results/default_dem_x4.json",
                    help="the default-command benchmark whose auto choices are reused")
    ap.add_argument("--variants", default=",".join(VARIANTS), help=", ".join(VARIANTS))
    ap.add_argument("--slope-weight", type=float, default=1.0)
    ap.add_argument("--pairs", default=None, help="comma-separated pair names (default all)")
    ap.add_argument("--method", default=None,
                    help="the dem-sr method (default: its own); match --default-json")
    add_misregistration_args(ap, " (the --default-json run's fit is replayed)")
    ap.add_argument("--steps-fraction", type=float, default=1.0,
                    help="replay with this fraction of the recorded steps, e.g. 0.5 with "
                         "--variants base,seed1: two half fits and their mean (the row's "
                         "ensemble) at the cost of one whole fit")
    ap.add_argument("-O", "--option", action="append", default=[], metavar="NAME=VALUE",
                    help="a method option added to every variant (repeatable)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--update", action="store_true",
                    help="keep the rows of an existing --json, replacing those rerun")
    args = ap.parse_args()
    s = args.scale
    chosen = {r["pair"]: r for r in json.loads(args.default_json.read_text())["rows"]
              if r["scale"] == s}
    variants = [v for v in args.variants.split(",") if v]
    if unknown := set(variants) - set(VARIANTS):
        ap.error(f"unknown variants {sorted(unknown)}; choose from {', '.join(VARIANTS)}")
    if not args.steps_fraction > 0:
        ap.error(f"--steps-fraction must be > 0, got {args.steps_fraction}")
    method = ["--method", args.method] if args.method else []
    result: dict = {"scale": s, "default_json": str(args.default_json.resolve().relative_to(ROOT)),
                    "slope_weight": args.slope_weight, "method": args.method,
                    "options": args.option, "steps_fraction": args.steps_fraction,
                    **misregistration(args), "rows": {}}
    if args.update and args.json and args.json.exists():
        kept = json.loads(args.json.read_text())
        # JSONs written before a key existed ran with that flag's default
        unset = {"options": ap.get_default("option"),
                 "steps_fraction": ap.get_default("steps_fraction")}
        for key in ("options", "steps_fraction", "method", "guide_shift_hr_px",
                    "guide_rotation_deg"):
            if (was := kept.get(key, unset.get(key))) != result[key]:
                ap.error(f"--update: {args.json} holds rows run with {key}={was!r}, "
                         f"this run's is {result[key]!r}; write another --json")
        result["rows"] = kept["rows"]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name, (target, guide, extra) in pairs(work, args.pairs.split(",") if args.pairs
                                                  else None).items():
            if name not in chosen:
                continue
            lr = work / f"{name}_lr.tif"
            pool_reference(target, lr, s)
            guide = misregister(args, guide, target, work / f"{name}_guide_moved.tif")
            fit = fitted_like(chosen[name]["auto"], args.steps_fraction)
            row = result["rows"].setdefault(name, {})
            row["fit"] = " ".join(fit)
            row["lr_plane"] = lr_plane(lr)
            lz = work / f"{name}_lanczos.tif"
            geosr("sr", "--method", "lanczos", "--lr", str(lr), "--guide", str(guide),
                  "--scale", str(s), "-o", str(lz), "--overwrite", *extra)
            row["lanczos"] = score(lz, target)

            common = ["--lr", str(lr), "--guide", str(guide), "--scale", str(s), "--overwrite", "--guard",
                      "off", *method, *fit, *extra]

            def run(out: Path, *opts: str, common: list[str] = common) -> dict:
                _, wall = geosr("dem-sr", "-o", str(out), *common, *opts)
                return {"wall_seconds": round(wall, 1)}

            for v in variants:
                out = work / f"{name}_{v}.tif"
                opts = [*args.option, *(x.format(w=args.slope_weight) for x in VARIANTS[v])]
                info = run(out, *(a for o in opts for a in ("-O", o)))
                row[v] = {**score(out, target), **info}
                row[v]["ratio_to_lanczos"] = row[v]["rmse"] / row["lanczos"]["rmse"]
                if v == "seed1" and (work / f"{name}_base.tif").exists():
                    ens = mean_raster(work / f"{name}_base.tif", out, work / f"{name}_ens.tif")
                    row["ensemble"] = score(ens, target)
                    row["ensemble"]["ratio_to_lanczos"] = (row["ensemble"]["rmse"]
                                                           / row["lanczos"]["rmse"])
                print(json.dumps({"pair": name, "variant": v,
                                  "ratio": round(row[v]["ratio_to_lanczos"], 4),
                                  "slope": round(row[v]["slope_rmse_deg"], 2),
                                  "wall": info["wall_seconds"]}), file=sys.stderr, flush=True)
                if args.json:
                    args.json.write_text(json.dumps(result, indent=1) + "\n")
    rows = result["rows"]
    summary = {}
    for v in (*VARIANTS, "ensemble"):
        rs = [r for r in rows.values() if v in r]
        if rs:
            summary[v] = {"pairs": len(rs),
                          "ratio_to_lanczos": float(np.mean([r[v]["ratio_to_lanczos"]
                                                             for r in rs])),
                          "slope_rmse_deg": float(np.mean([r[v]["slope_rmse_deg"] for r in rs]))}
    result["mean"] = summary
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
