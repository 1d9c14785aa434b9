"""``benchmarks/modes/network_reuse.py``: reusing a network (docs/benchmarks/modes.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from affine import Affine

from tests.geodata import CRS, ORIGIN, write_raster

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "modes" / "network_reuse.py"


def test_network_reuse__runs_every_variant_on_the_target(tmp_path: Path) -> None:
    from geosr.raster.example import make_scene

    s = make_scene(24, 4, 0)
    t = Affine(1.0, 0, ORIGIN[0], 0, -1.0, ORIGIN[1])
    dem = write_raster(tmp_path / "dsm.tif", s["dsm"][:64, :96], t, crs=CRS)
    rgb = write_raster(tmp_path / "rgb.tif", s["rgb"][:, :64, :96], t, crs=CRS)
    out = tmp_path / "r.json"
    cmd = [sys.executable, str(SCRIPT), "--dem", dem, "--guide", rgb, "--iterations", "3",
           "--hybrid-iterations", "2", "--further-iterations", "2", "--json", str(out),
           "--workdir", str(tmp_path / "work")]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())
    assert res["parts"]["source"]["hr_cols"] == [0, 48]
    assert res["parts"]["target"]["hr_cols"] == [48, 96]
    runs = {x["run"]: x for x in res["runs"]}
    assert len(runs) == 8 and all(x["rmse_m"] > 0 for x in runs.values())
    net = str(tmp_path / "work" / "source-network.pt")
    assert runs["source scene fit, saved"]["scene_fit"]["saved_to"] == net
    assert runs["scene from source network"]["scene_fit"] == {"steps": 0, "network": net}
    assert runs["scene from source network, fitted further"]["scene_fit"]["steps"] == 2
    assert runs["tile"]["speedup_vs_tile"] == 1.0 and "speedup_vs_tile" not in runs["bicubic"]
