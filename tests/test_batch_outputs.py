"""What ``geosr batch`` leaves for GDAL and STAC users: files with the usual permissions, a
STAC Collection of the items, the input items' times, the inputs as the manifest names them."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from click.testing import CliRunner

from geosr.cli.main import cli
from geosr.raster.atomic import atomic_write
from geosr.raster.store import TileStore
from tests.test_batch import make_scene_files


@pytest.fixture(params=[0o022, 0o027])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def stac_manifest(folder: Path) -> Path:
    """A STAC ItemCollection of two scenes whose inputs lie in ``inputs/``: one with a
    datetime, one with a start/end interval."""
    (folder / "inputs").mkdir()
    feats = []
    for i, when in enumerate([{"datetime": "2022-05-04T10:20:30Z"},
                              {"datetime": None, "start_datetime": "2022-06-01T00:00:00Z",
                               "end_datetime": "2022-06-02T00:00:00Z"}]):
        make_scene_files(folder / "inputs", f"s{i}", seed=i)
        feats.append({
            "type": "Feature", "stac_version": "1.0.0", "id": f"scene-{i}",
            "geometry": None, "properties": {**when, "geosr:scale": 4},
            "assets": {"lr": {"href": f"inputs/s{i}_lr.tif"},
                       "guide": {"href": f"./inputs/s{i}_rgb.tif"}},
            "links": []})
    (folder / "out").mkdir()
    m = folder / "items.json"
    m.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    return m


def test_batch__collection_times_names_and_permissions(tmp_path: Path, umask: int) -> None:
    m = stac_manifest(tmp_path)
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["batch", str(m), "--output-dir", str(out), "--method",
                                 "bicubic", "--mode", "tile", "--json", "-q"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    expected = 0o666 & ~umask  # 0644 under umask 022, 0640 under 027; not mkstemp's 0600
    state = tmp_path / "items.geosr"
    written = [out / "scene-0.stac.json", out / "scene-1.stac.json", out / "collection.json",
               state / "report.json", state / "scenes" / "scene-0.json"]
    for p in written:
        assert mode(p) == expected, (p, oct(mode(p)))
    assert not list(out.glob(".*.tmp")) and not list(state.rglob(".*.tmp"))

    # the items' datetime is the input items', not the processing time
    i0 = json.loads((out / "scene-0.stac.json").read_text())["properties"]
    assert i0["datetime"] == "2022-05-04T10:20:30Z"
    assert i0["geosr:datetime_source"] == "input item"
    i1 = json.loads((out / "scene-1.stac.json").read_text())["properties"]
    assert i1["datetime"] is None
    assert (i1["start_datetime"], i1["end_datetime"]) == ("2022-06-01T00:00:00Z",
                                                          "2022-06-02T00:00:00Z")

    # the collection: extent from the items, links both ways
    assert rep["collection"] == str(out / "collection.json")
    coll = pystac.Collection.from_file(str(out / "collection.json"))
    assert coll.id == "items"
    assert sorted(i.id for i in coll.get_items()) == ["scene-0", "scene-1"]
    [[west, south, east, north]] = coll.extent.spatial.bboxes
    assert 16 < west < east < 17 and 48 < south < north < 49
    [[t0, t1]] = coll.extent.temporal.intervals
    assert (t0.isoformat(), t1.isoformat()) == ("2022-05-04T10:20:30+00:00",
                                                "2022-06-02T00:00:00+00:00")
    assert json.loads((out / "scene-0.stac.json").read_text())["collection"] == "items"

    # the provenance tags name the inputs as the manifest does
    with rasterio.open(out / "scene-0.tif") as f:
        tags = f.tags()
    assert tags["GEOSR_LR"] == "inputs/s0_lr.tif"
    assert tags["GEOSR_GUIDE"] == "./inputs/s0_rgb.tif"

    # a resumed batch keeps the finished scenes in the collection
    r = CliRunner().invoke(cli, ["batch", str(m), "--output-dir", str(out), "--method",
                                 "bicubic", "--resume", "--json", "-q"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["counts"]["skipped"] == 2
    coll = pystac.Collection.from_file(str(out / "collection.json"))
    assert len(list(coll.get_items())) == 2


def test_batch__collection_where_asked(tmp_path: Path) -> None:
    m = stac_manifest(tmp_path)
    target = tmp_path / "catalog" / "scenes.json"
    r = CliRunner().invoke(cli, ["batch", str(m), "--output-dir", str(tmp_path / "out"),
                                 "--method", "bicubic", "--mode", "tile", "--collection",
                                 str(target), "-q"])
    assert r.exit_code == 0, r.output
    coll = json.loads(target.read_text())
    assert sorted(ln["href"] for ln in coll["links"] if ln["rel"] == "item") == [
        "../out/scene-0.stac.json", "../out/scene-1.stac.json"]
    assert not (tmp_path / "out" / "collection.json").exists()


def test_atomic_write__umask_permissions(tmp_path: Path, umask: int) -> None:
    p = atomic_write(tmp_path / "a.json", '{"a": 1}')
    assert p.read_text() == '{"a": 1}' and mode(p) == 0o666 & ~umask
    atomic_write(p, b"2", sync=True)
    assert p.read_bytes() == b"2" and mode(p) == 0o666 & ~umask
    assert [q.name for q in tmp_path.iterdir()] == ["a.json"]


def test_atomic_write__leaves_nothing_on_error(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.json").write_text("old")

    def fail(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="No space"):
        atomic_write(tmp_path / "a.json", "new")
    assert (tmp_path / "a.json").read_text() == "old"
    assert [q.name for q in tmp_path.iterdir()] == ["a.json"]


def test_tile_store__umask_permissions(tmp_path: Path, umask: int) -> None:
    store = TileStore(tmp_path / "out.tif.tiles")
    store.open("fingerprint")
    store.put("t0", np.zeros((4, 4), np.float32))
    files = [p for p in store.path.iterdir() if p.is_file()]
    assert len(files) >= 2
    for p in files:
        assert mode(p) == 0o666 & ~umask, p
