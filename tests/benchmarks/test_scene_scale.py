"""``benchmarks/modes/scene_scale.py``: scene mode on a whole DEM against a tile sample."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from affine import Affine

from tests.geodata import CRS, ORIGIN, write_raster

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "modes" / "scene_scale.py"


def test_scene_scale__two_processes_share_the_tile_sample(tmp_path: Path) -> None:
    from geosr.raster.example import make_scene

    s = make_scene(32, 4, 0)
    t = Affine(1.0, 0, ORIGIN[0], 0, -1.0, ORIGIN[1])
    dem = write_raster(tmp_path / "dsm.tif", s["dsm"][:128, :128], t, crs=CRS)
    common = [sys.executable, str(SCRIPT), "--dem", dem, "--tile-size", "16",
              "--tile-sample", "2", "--tile-iterations", "3", "--tile-cache",
              str(tmp_path / "cache")]
    tiles = subprocess.run(common + ["--stage", "tile", "--workdir", str(tmp_path / "b")],
                           capture_output=True, text=True)
    assert tiles.returncode == 0, tiles.stderr
    cached = sorted(p.name for p in (tmp_path / "cache").glob("*.npz"))
    assert len(cached) == 2
    out = tmp_path / "r.json"
    r = subprocess.run(common + ["--scene-iterations", "3", "--hybrid-iterations", "2",
                                 "--json", str(out), "--workdir", str(tmp_path / "a")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())
    assert [p + ".npz" for p in res["sampled_tiles"]] == cached
    runs = [(x["mode"], x.get("back_project")) for x in res["runs"]]
    assert runs == [("tile", 0), ("scene", 10), ("scene", 0), ("tile", None), ("hybrid", None)]
    scene, raw, tile = res["runs"][1], res["runs"][2], res["runs"][3]
    assert scene["scene_fit"]["steps"] == 3 and raw["scene_fit"]["steps"] == 0
    assert raw["wall_seconds_with_fit"] > raw["wall_seconds"]
    # the tile fits were read from the cache, not fitted again: the same seconds
    assert tile["estimated_wall_seconds"] > 0 and "rmse_vs_tile_on_sample" in scene
    assert all(x["on_sample"]["rmse_m"] > 0 for x in res["runs"])
