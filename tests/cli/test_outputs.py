"""What the commands do around the output: one writer per output, Ctrl-C, a full disk,
creation options GDAL does not take, output names of other formats."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner

from geosr.cli.main import cli
from geosr.pipeline import runner
from geosr.raster.lock import lock_path, output_lock
from geosr.raster.store import TileStore
from tests.cli.test_sr import base_args, invoke


def gf_args(scene: dict[str, Any], out: Path, eps: str) -> list[Any]:
    return ["sr", *base_args(scene, out, **{"--method": "guided-filter"}), "-O", f"eps={eps}",
            "--tile-size", 16, "--guard", "off", "--overwrite"]


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1)


def leftovers(folder: Path, name: str) -> list[str]:
    """Files of the output ``name`` in ``folder``: temporary files, lock, tile store."""
    return sorted(p for p in os.listdir(folder) if p.startswith((f".{name}", f"{name}.")))


# -- one writer per output -------------------------------------------------------------------
def test_sr__second_run_on_the_same_output_refused(scene: dict[str, Any],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    folder, out = scene["dir"], scene["dir"] / "same.tif"
    assert invoke(*gf_args(scene, folder / "ref.tif", "0.01")).exit_code == 0
    second: list[Any] = []
    real = runner.run_tiles

    def tiles_with_a_second_run(*a: Any, **kw: Any) -> Any:
        if not second:  # while the first run holds the output, another one starts
            second.append(invoke(*gf_args(scene, out, "0.0001")))
        return real(*a, **kw)

    monkeypatch.setattr(runner, "run_tiles", tiles_with_a_second_run)
    first = invoke(*gf_args(scene, out, "0.01"))
    assert first.exit_code == 0, first.output
    r = second[0]
    assert r.exit_code == 2, r.output
    text = " ".join(r.output.split())
    assert f"another geosr run is writing {out} (pid {os.getpid()} on host" in text
    assert "wait for it or choose another -o" in text
    np.testing.assert_array_equal(read(out), read(folder / "ref.tif"))  # all of the first's
    assert leftovers(folder, "same.tif") == []  # lock and tile store gone


def test_sr__lock_file_of_a_killed_run_does_not_block(scene: dict[str, Any]) -> None:
    out = scene["dir"] / "o.tif"
    lock_path(out).write_text('{"pid": 999999, "host": "gone", "since": "yesterday"}')
    r = invoke(*gf_args(scene, out, "0.01"))
    assert r.exit_code == 0, r.output
    assert out.exists() and not lock_path(out).exists()


def test_batch__scene_whose_output_is_being_written_fails(scene: dict[str, Any]) -> None:
    folder = scene["dir"]
    (folder / "m.jsonl").write_text(
        json.dumps({"id": "a", "lr": "lr.tif", "guide": "guide.tif", "output": "a.tif"}) + "\n"
        + json.dumps({"id": "b", "lr": "lr.tif", "guide": "guide.tif", "output": "b.tif"}))
    with output_lock(folder / "a.tif"):
        r = CliRunner().invoke(cli, ["batch", str(folder / "m.jsonl"), "--scale", "4",
                                     "--method", "bicubic", "--json", "-q"])
    assert r.exit_code == 1, r.output
    scenes = {s["id"]: s for s in json.loads(r.stdout)["scenes"]}
    assert scenes["b"]["status"] == "done"
    assert scenes["a"]["status"] == "failed"
    assert "another geosr run is writing" in scenes["a"]["error"]
    assert not (folder / "a.tif").exists()


def test_to_raster__refused_while_another_writer_holds_the_path(scene: dict[str, Any]) -> None:
    import rioxarray

    from geosr.errors import OutputBusyError
    from geosr.xr import to_raster

    out = scene["dir"] / "x.tif"
    hr = rioxarray.open_rasterio(scene["lr"]).squeeze("band", drop=True).load()
    with output_lock(out), pytest.raises(OutputBusyError, match="another geosr run"):
        to_raster(hr, out)
    assert not out.exists()
    to_raster(hr, out)
    assert out.exists() and not lock_path(out).exists()


# -- Ctrl-C ------------------------------------------------------------------------------------
def test_sr__ctrl_c_exits_130_and_keeps_the_tiles(scene: dict[str, Any],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    folder, out = scene["dir"], scene["dir"] / "o.tif"
    real = runner.write_mosaic
    temps: list[Path] = []

    def interrupted_mosaic(plan: Any, store: Any, path: Path, *a: Any, **kw: Any) -> None:
        real(plan, store, path, *a, **kw)  # the temporary GeoTIFF is written, then Ctrl-C
        temps.append(path)
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "write_mosaic", interrupted_mosaic)
    r = invoke(*gf_args(scene, out, "0.01"))
    assert r.exit_code == 130, r.output
    text = " ".join(r.output.split())
    assert f"interrupted: the finished tiles are kept in {out}.tiles/" in text
    assert "--resume to continue from them" in text and "Aborted" not in text
    assert temps and not temps[0].exists() and not out.exists()
    assert leftovers(folder, "o.tif") == ["o.tif.tiles"]

    monkeypatch.setattr(runner, "write_mosaic", real)
    r = invoke(*gf_args(scene, out, "0.01"), "--resume", "--json")
    assert r.exit_code == 0, r.output
    tiles = json.loads(r.stdout)["tiles"]
    assert tiles["reused"] == tiles["total"] > 0 and tiles["done"] == 0


def test_sr__ctrl_c_before_any_tile(scene: dict[str, Any],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*a: Any, **kw: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "compute_stats", interrupted)
    before = set(os.listdir(scene["dir"]))
    r = invoke(*gf_args(scene, scene["dir"] / "o.tif", "0.01"))
    assert r.exit_code == 130, r.output
    assert f"nothing was written to {scene['dir'] / 'o.tif'}" in " ".join(r.output.split())
    assert set(os.listdir(scene["dir"])) == before


def test_cli__ctrl_c_in_any_command_exits_130(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from geosr.cli import methods

    def interrupted(*a: Any, **kw: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(methods, "click", type("C", (), {"echo": interrupted}))
    r = CliRunner().invoke(cli, ["methods"])
    assert r.exit_code == 130 and "interrupted" in r.output


# -- a full disk -------------------------------------------------------------------------------
def _full_disk_at_mosaic(monkeypatch: pytest.MonkeyPatch, exc: Exception) -> list[Path]:
    real = runner.write_mosaic
    temps: list[Path] = []

    def mosaic(plan: Any, store: Any, path: Path, *a: Any, **kw: Any) -> None:
        real(plan, store, path, *a, **kw)  # a partial temporary file exists
        temps.append(path)
        raise exc

    monkeypatch.setattr(runner, "write_mosaic", mosaic)
    return temps


def test_sr__disk_full_while_writing_the_output(scene: dict[str, Any],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    folder, out = scene["dir"], scene["dir"] / "o.tif"
    temps = _full_disk_at_mosaic(monkeypatch, OSError(errno.ENOSPC, "No space left on device"))
    r = invoke(*gf_args(scene, out, "0.01"))
    assert r.exit_code == 1, r.output
    text = " ".join(r.output.split())
    assert (f"no space left on device writing {out} (needs about 0.1 MB: 160×144 px × 1 band "
            "× float32, compressed less; as much again while the COG is made") in text
    assert "free space or write elsewhere; --resume (resume=True) keeps the finished" in text
    assert "Errno" not in text and ".tif." not in text  # no bare OSError, no temp file name
    assert temps and leftovers(folder, "o.tif") == []


def test_sr__gdal_write_error_on_a_full_disk(scene: dict[str, Any],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from geosr.raster import io

    gdal = rasterio.errors.RasterioIOError("Write failed. See previous exception for details.")
    _full_disk_at_mosaic(monkeypatch, gdal)
    monkeypatch.setattr(io.shutil, "disk_usage", lambda p: type("U", (), {"free": 0})())
    out = scene["dir"] / "o.tif"
    r = invoke(*gf_args(scene, out, "0.01"), "--resume")
    assert r.exit_code == 1, r.output
    text = " ".join(r.output.split())
    assert f"no space left on device writing {out} (" in text
    assert f"the finished tiles are kept in {out}.tiles/: free space or write elsewhere, " \
        "then rerun with --resume" in text
    assert leftovers(scene["dir"], "o.tif") == ["o.tif.tiles"]


def test_sr__disk_full_while_writing_tiles(scene: dict[str, Any],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    real = TileStore.put

    def put(self: TileStore, key: str, array: Any) -> None:
        if key != "scene-model":
            raise OSError(errno.ENOSPC, "No space left on device")
        real(self, key, array)

    monkeypatch.setattr(TileStore, "put", put)
    out = scene["dir"] / "o.tif"
    r = invoke(*gf_args(scene, out, "0.01"))
    assert r.exit_code == 1, r.output
    text = " ".join(r.output.split())
    assert f"no space left on device writing the tiles of {out} in {out}.tiles/ (needs " \
        "about 0.3 MB: 16 tiles, 65,536 px × float32, uncompressed)" in text
    assert leftovers(scene["dir"], "o.tif") == []


def test_sr__cut_short_cog_is_never_renamed_into_place(scene: dict[str, Any],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    real = runner.to_cog

    def truncating(src: Path, dst: Path, **kw: Any) -> None:  # GDAL said nothing
        real(src, dst, **kw)
        data = dst.read_bytes()
        dst.write_bytes(data[: len(data) - 1000])

    monkeypatch.setattr(runner, "to_cog", truncating)
    out = scene["dir"] / "o.tif"
    r = invoke(*gf_args(scene, out, "0.01"))
    assert r.exit_code == 1, r.output
    assert "is cut short" in r.output
    assert leftovers(scene["dir"], "o.tif") == []


# -- creation options --------------------------------------------------------------------------
@pytest.mark.parametrize("co,needle", [
    ("COMPRESS=NOPE", "--co COMPRESS=NOPE: GDAL's COG driver does not accept it"),
    ("NOPE=1", "does not support creation option NOPE"),
    ("ZLEVEL=9", "it is a GTiff option: pass --no-cog"),
])
def test_sr__bad_creation_option_refused_before_any_work(
        scene: dict[str, Any], monkeypatch: pytest.MonkeyPatch, co: str, needle: str) -> None:
    def no_work(*a: Any, **kw: Any) -> None:
        raise AssertionError("the run started")

    monkeypatch.setattr(runner, "compute_stats", no_work)
    before = set(os.listdir(scene["dir"]))
    r = invoke("sr", *base_args(scene, scene["dir"] / "o.tif", **{"--method": "mmsr"}),
               "--co", co)
    assert r.exit_code == 2, r.output
    assert needle in " ".join(r.output.split())
    assert set(os.listdir(scene["dir"])) == before


def test_sr__valid_creation_options_are_written(scene: dict[str, Any]) -> None:
    out = scene["dir"] / "o.tif"
    r = invoke("sr", *base_args(scene, out), "--co", "COMPRESS=ZSTD", "--co", "PREDICTOR=3")
    assert r.exit_code == 0, r.output
    with rasterio.open(out) as src:
        assert src.compression.name.upper() == "ZSTD"
        assert src.tags(ns="IMAGE_STRUCTURE").get("PREDICTOR") == "3"


def test_batch__bad_creation_option_refused_up_front(scene: dict[str, Any]) -> None:
    m = scene["dir"] / "m.jsonl"
    m.write_text(json.dumps({"id": "a", "lr": "lr.tif", "guide": "guide.tif",
                             "output": "a.tif"}))
    r = CliRunner().invoke(cli, ["batch", str(m), "--scale", "4", "--method", "bicubic",
                                 "--co", "COMPRESS=NOPE", "-q"])
    assert r.exit_code == 2, r.output
    assert "scene 'a': --co COMPRESS=NOPE" in " ".join(r.output.split())
    assert not (scene["dir"] / "a.tif").exists()


# -- output names -----------------------------------------------------------------------------
def test_sr__png_output_name_refused(scene: dict[str, Any]) -> None:
    before = set(os.listdir(scene["dir"]))
    for extra in ([], ["--dry-run"]):
        r = invoke("sr", *base_args(scene, scene["dir"] / "out.png"), *extra)
        assert r.exit_code == 2, r.output
        text = " ".join(r.output.split())
        assert "names a PNG file, but geosr writes GeoTIFF (COG)" in text
        assert "`gdal_translate out.tif out.png`" in text
    assert set(os.listdir(scene["dir"])) == before
