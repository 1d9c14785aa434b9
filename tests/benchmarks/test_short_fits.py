"""``benchmarks/modes/short_fits.py``: one fit per pair, each snapshot scored as it is and
back-projected."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "modes" / "short_fits.py"


def test_short_fits__scores_snapshots_raw_and_back_projected(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    data = tmp_path / "pairs"
    data.mkdir()
    yy, xx = np.mgrid[0:32, 0:32].astype(np.float32)
    target = 5 * np.sin(xx / 5) + (yy > 15)
    guide = np.stack([target, xx / 32, yy / 32]) + rng.normal(0, 0.01, (3, 32, 32))
    np.savez(data / "a.npz", target=target, guide=guide.astype(np.float32))
    out = tmp_path / "r.json"
    r = subprocess.run([sys.executable, str(SCRIPT), str(data), "--iterations", "3",
                        "--snapshots", "1", "--back-project", "1", "10",
                        "--set", "width=8", "--set", "device=cpu", "--json", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())
    (row,) = res["rows"]
    assert set(row["steps"]) == {"1", "3"}
    for entry in row["steps"].values():
        assert set(entry) == {"raw", "bp1", "bp10"} and all(np.isfinite(list(entry.values())))
    # A 3-step fit is far from its LR; back-projected it is much closer to the target.
    assert row["steps"]["3"]["bp10"] < 0.5 * row["steps"]["3"]["raw"]
    assert res["mean"]["3"]["bp10"] == row["steps"]["3"]["bp10"]
    assert set(res["mean_bicubic_bp"]) == {"bp1", "bp10"}
