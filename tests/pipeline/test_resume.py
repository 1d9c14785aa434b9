"""Resume after a crash: atomic, checksummed tiles; SIGKILLed runs finish byte-identically."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from geosr import pipeline
from geosr.pipeline.config import OutputConfig, RunConfig, TilingConfig
from geosr.raster.store import TileStore

GEOSR = [sys.executable, "-c", "from geosr.cli.main import cli; cli()"]


def test_store__corrupt_partial_and_unfinished_tiles_recomputed(scene: dict[str, Any]) -> None:
    out = scene["dir"] / "k.tif"
    cfg = OutputConfig(cog=True, keep_tiles=True, overwrite=True)
    tiling = TilingConfig(tile_size=16, overlap=4)
    kw: dict[str, Any] = {"scale": 4, "method": "guided-filter", "tiling": tiling, "output": cfg}
    s1 = pipeline.run(scene["lr"], scene["guide"], out, RunConfig(**kw))
    first = out.read_bytes()
    store = scene["dir"] / "k.tif.tiles"
    tiles = sorted(store.glob("*.npy"))
    assert len(tiles) == s1["tiles"]["done"] >= 4
    raw = bytearray(tiles[0].read_bytes())
    raw[-7] ^= 0xFF  # a flipped bit in the data: same size, other checksum
    tiles[0].write_bytes(bytes(raw))
    tiles[1].write_bytes(tiles[1].read_bytes()[:100])  # truncated
    Path(str(tiles[2]) + ".sha256").unlink()  # killed between the tile and its sidecar
    (store / ".t-0-0.abc.npy.tmp").write_bytes(b"partial")  # a killed write
    s2 = pipeline.run(scene["lr"], scene["guide"], out, RunConfig(**kw))
    assert s2["tiles"]["done"] == 3 and s2["tiles"]["reused"] == s1["tiles"]["done"] - 3
    assert out.read_bytes() == first
    assert not list(store.glob(".*.tmp"))


def test_store__has_checks_size_and_digest(tmp_path: Path) -> None:
    st = TileStore(tmp_path / "s.tiles")
    st.open("fp")
    st.put("a", np.arange(12, dtype=np.float32).reshape(3, 4))
    assert st.has("a") and st.get("a")[2, 3] == 11
    (st.path / "a.npy").write_bytes((st.path / "a.npy").read_bytes() + b"x")
    assert not st.has("a") and not (st.path / "a.npy").exists() and st.get("a") is None
    assert st.open("fp") == 0 and st.open("other") == 0


def test_run__resume_after_failure_keeps_tiles(scene: dict[str, Any],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    out = scene["dir"] / "r.tif"
    tiling = TilingConfig(tile_size=16, overlap=4, workers=1)
    real, calls = pipeline.predict_tile, [0]

    def flaky(plan: Any, tile: Any) -> Any:
        calls[0] += 1
        if calls[0] == 5:
            raise RuntimeError("power cut")
        return real(plan, tile)

    monkeypatch.setattr(pipeline.tiles, "predict_tile", flaky)
    cfg = RunConfig(scale=4, method="bicubic", tiling=tiling)
    with pytest.raises(RuntimeError, match="power cut"):
        pipeline.run(scene["lr"], scene["guide"], out, cfg, resume=True)
    assert len(list((scene["dir"] / "r.tif.tiles").glob("*.npy"))) == 4
    s = pipeline.run(scene["lr"], scene["guide"], out, cfg, resume=True)
    assert s["tiles"]["reused"] == 4 and s["tiles"]["done"] == 5
    assert not (scene["dir"] / "r.tif.tiles").exists()
    again = pipeline.run(scene["lr"], scene["guide"], out, cfg, resume=True)  # finished: nothing to do
    assert again["status"] == "exists"


def _run_until(args: list[str], kill_when: Callable[[dict[str, Any]], bool] | None,
               env: dict[str, str]) -> tuple[int, list[dict[str, Any]]]:
    """Run the CLI with --progress json; SIGKILL it at the first event ``kill_when`` accepts."""
    proc = subprocess.Popen(args + ["--progress", "json"], stderr=subprocess.PIPE, text=True,
                            stdout=subprocess.DEVNULL, env=env)
    events = []
    assert proc.stderr is not None
    for line in proc.stderr:
        if not line.startswith("{"):
            continue
        ev = json.loads(line)
        events.append(ev)
        if kill_when is not None and kill_when(ev):
            os.kill(proc.pid, signal.SIGKILL)
            break
    proc.stderr.close()
    return proc.wait(timeout=120), events


def test_dem_sr__sigkill_three_times_then_resume_is_byte_identical(tmp_path: Path) -> None:
    """mmsr (tiny, seeded, CPU) killed after 2 tiles, after 6 tiles, while writing the COG;
    each time resumed with --resume; the result equals an uninterrupted run byte for byte."""
    from geosr.raster.example import write_example

    p = write_example(tmp_path, size=32, scale=4)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    common = GEOSR + ["dem-sr", "--lr", p["lr"], "--guide", p["guide"], "--scale", "4",
                      "--method", "mmsr", "-O", "width=8", "--iterations", "3", "--seed", "7",
                      "--device", "cpu", "--tile-size", "16", "-q"]
    ref = tmp_path / "ref.tif"
    rc, _ = _run_until(common + ["-o", str(ref)], None, env)
    assert rc == 0 and ref.exists()

    out = tmp_path / "out" / "dsm.tif"
    out.parent.mkdir()
    args = common + ["-o", str(out), "--resume"]
    store = out.with_name("dsm.tif.tiles")
    points: list[Callable[[dict[str, Any]], bool]] = [
        lambda e: e["event"] == "tiles" and e["done"] == 2,
        lambda e: e["event"] == "tiles" and e["done"] == 6,
        lambda e: e.get("stage") == "cog",
    ]
    finished = []
    for when in points:
        rc, events = _run_until(args, when, env)
        assert rc == -signal.SIGKILL, events[-3:]
        assert not out.exists()
        finished.append(len(list(store.glob("*.npy.sha256"))))
    assert 2 <= finished[0] <= finished[1] and finished[1] >= 6
    assert finished[2] == [e for e in events if e["event"] == "tiles"][-1]["total"]
    assert any(n.startswith(".dsm.tif.") for n in os.listdir(out.parent))  # the mosaic temp
    rc, events = _run_until(args, None, env)
    assert rc == 0 and events[-1]["event"] == "done"
    assert out.read_bytes() == ref.read_bytes()
    assert sorted(os.listdir(out.parent)) == ["dsm.tif"]  # no store, no temporary files
