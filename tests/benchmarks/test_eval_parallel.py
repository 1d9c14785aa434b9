"""``benchmarks/quality/eval_parallel.py``: per-pair ``geosr eval`` jobs, resumed and merged."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "quality" / "eval_parallel.py"


def test_eval_parallel__merges_jobs_and_resumes(tmp_path: Path, rng: np.random.Generator) -> None:
    data = tmp_path / "pairs"
    data.mkdir()
    for name in ("a", "b"):
        yy, xx = np.mgrid[0:32, 0:32].astype(np.float32)
        target = 5 * np.sin(xx / 5 + rng.random()) + (yy > 15)
        guide = np.stack([target, xx / 32, yy / 32]) + rng.normal(0, 0.01, (3, 32, 32))
        np.savez(data / f"{name}.npz", target=target, guide=guide.astype(np.float32))
    parts, out = tmp_path / "parts", tmp_path / "merged.json"
    cmd = [sys.executable, str(SCRIPT), str(data), "--methods", "guided-filter", "--jobs", "2",
           "--parts", str(parts), "--json", str(out), "--", "--scale", "4"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    merged = json.loads(out.read_text())
    assert merged["pairs"] == ["a", "b"]
    assert merged["mean"]["guided-filter"]["pairs"] == 2
    # The mean is the mean of the per-job results, each also a whole `geosr eval` run.
    one = [json.loads((parts / f"{p}__guided-filter.json").read_text()) for p in ("a", "b")]
    rmse = [next(r["rmse"] for r in d["rows"] if r["method"] == "guided-filter") for d in one]
    assert merged["mean"]["guided-filter"]["rmse"] == np.mean(rmse)
    # A second run finds every part and runs nothing.
    again = subprocess.run(cmd, capture_output=True, text=True)
    assert again.returncode == 0 and again.stderr.count("done before") == 2
    # Removing one part leaves only the pair every method finished in the merged means.
    (parts / "b__guided-filter.json").unlink()
    r = subprocess.run([*cmd[:cmd.index("--")], "--merge-only", "--", "--scale", "4"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(out.read_text())["pairs"] == ["a"]
