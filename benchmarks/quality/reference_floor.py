"""How much of each score in the default-command benchmark is the reference's own rounding.

An elevation product stores heights on a grid of values (the Mashhad DSM in 0.1 m steps,
the IGN lidar DSM in 0.01 m steps). Rounding to a step ``q`` adds an error of RMSE
``q / sqrt(12)`` to the reference that no method can predict: where a resampler's RMSE is
near that floor, the resampler is already as good as the reference can show, and the ratio
of two methods' RMSE measures how each output sits against the rounding, not the terrain.

For each pair: the reference's value step (the smallest gap between its distinct values,
where all of them lie on that step's grid) and the floor ``q / sqrt(12)``; for each row of
the committed ``default_dem_*.json``: lanczos's and the default command's RMSE over the
floor, and, modelling the reference as terrain plus independent rounding noise, the RMSE
left above the floor ``sqrt(rmse**2 - floor**2)`` (0 where the RMSE is below the floor).

    python benchmarks/quality/reference_floor.py --json benchmarks/quality/results/reference_floor.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

import numpy as np
import rasterio

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks.quality.default_dem import pairs  # noqa: E402

RESULTS = ROOT / "benchmarks" / "quality" / "results"


def value_step(values: np.ndarray) -> float | None:
    """The step of the value grid the heights lie on, or None where they lie on none
    (a float product that was never rounded)."""
    u = np.unique(values[np.isfinite(values)].astype(np.float64))
    if u.size < 3:
        return None
    # the smallest gap (unique values: > 0) carries float32 rounding (0.0999756 for 0.1):
    # its first digit
    q = float(f"{float(np.min(np.diff(u))):.1g}")
    k = u / q
    return q if np.max(np.abs(k - np.round(k))) < 0.05 else None


def above_floor(rmse: float, floor: float) -> float:
    return math.sqrt(max(rmse * rmse - floor * floor, 0.0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        steps = {}
        for name, (target, _guide, _extra) in pairs(Path(tmp)).items():
            with rasterio.open(target) as src:
                steps[name] = value_step(src.read(1, masked=True).astype(np.float64)
                                         .filled(np.nan))
    rows = []
    for f in sorted(RESULTS.glob("default_dem_*.json")):
        for r in json.loads(f.read_text())["rows"]:
            q = steps.get(r["pair"])
            row = {"pair": r["pair"], "scale": r["scale"], "value_step": q,
                   "lanczos_rmse": r["lanczos"]["rmse"], "default_rmse": r["default"]["rmse"],
                   "ratio_to_lanczos": r["ratio_to_lanczos"], "source": f.name}
            if q is not None:
                floor = q / math.sqrt(12.0)
                row["floor_rmse"] = floor
                for k in ("lanczos", "default"):
                    row[f"{k}_over_floor"] = row[f"{k}_rmse"] / floor
                    row[f"{k}_above_floor"] = above_floor(row[f"{k}_rmse"], floor)
            rows.append(row)
            print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v)
                              for k, v in row.items() if k != "source"}))
    if args.json:
        args.json.write_text(json.dumps({"steps": steps, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
