"""``benchmarks/modes/warm_start.py``: target fits from a source pair's weights."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "modes" / "warm_start.py"


def test_warm_start__warm_alone_or_both(tmp_path: Path, rng: np.random.Generator) -> None:
    data = tmp_path / "pairs"
    data.mkdir()
    yy, xx = np.mgrid[0:32, 0:32].astype(np.float32)
    for name in ("s", "t"):
        target = 5 * np.sin(xx / 5 + rng.random()) + (yy > 15)
        guide = np.stack([target, xx / 32, yy / 32]) + rng.normal(0, 0.01, (3, 32, 32))
        np.savez(data / f"{name}.npz", target=target, guide=guide.astype(np.float32))
    base = [sys.executable, str(SCRIPT), str(data), "--source", "s", "--source-iterations", "2",
            "--pairs", "t", "--iterations", "3", "--snapshots", "1", "--set", "width=8",
            "--set", "device=cpu"]
    for starts in ("warm", "warm,cold"):
        out = tmp_path / f"{starts}.json"
        r = subprocess.run([*base, "--starts", starts, "--json", str(out)],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        res = json.loads(out.read_text())
        (row,) = res["rows"]
        assert {k for k in row if k in ("warm", "cold")} == set(starts.split(","))
        assert set(row["warm"]["rmse"]) == {"1", "3"}
        assert res["mean_warm"] == row["warm"]["rmse"]["3"]
    r = subprocess.run([*base, "--starts", "hot"], capture_output=True, text=True)
    assert r.returncode == 2 and "--starts" in r.stderr
