"""``examples/benchmarks/step_time.py``: the per-step timings the README quotes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "benchmarks" / "step_time.py"


def test_step_time__precision_flags_pair_each_variant_with_its_floor() -> None:
    cmd = [sys.executable, str(SCRIPT), "--size", "32", "--steps", "1", "--warmup", "0",
           "--bf16", "off", "--variants", "mmsr,mmsr:none,mmsr+bf16,mmsr:none+bf16"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert [x["bf16"] for x in res["results"]] == [False, False, True, True]
    assert set(res["ratio_to_floor"]) == {"mmsr", "mmsr+bf16"}
    by = {x["variant"]: x["seconds_per_step_median"] for x in res["results"]}
    for name in ("mmsr", "mmsr+bf16"):
        floor = by[name.replace("mmsr", "mmsr:none")]
        assert res["ratio_to_floor"][name] == round(by[name] / floor, 3)
