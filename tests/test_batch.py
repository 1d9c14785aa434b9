"""``geosr batch``: manifests, per-scene status, failures recorded, resume, report."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner

from geosr.batch import read_manifest, run_batch
from geosr.cli.main import cli
from tests.geodata import CRS, LR_PIXEL, ORIGIN, SCALE, scene_arrays, write_raster


def make_scene_files(folder: Path, name: str, seed: int, *, rows: int = 20, cols: int = 24,
                     shift: float = 0.0) -> tuple[str, str]:
    lr, rgb = scene_arrays(rows, cols, seed)
    lr_t = Affine(LR_PIXEL, 0, ORIGIN[0], 0, -LR_PIXEL, ORIGIN[1])
    g_t = Affine(LR_PIXEL / SCALE, 0, ORIGIN[0] + shift, 0, -LR_PIXEL / SCALE, ORIGIN[1])
    return (write_raster(folder / f"{name}_lr.tif", lr, lr_t, nodata=-9999.0),
            write_raster(folder / f"{name}_rgb.tif", rgb, g_t))


def six_scenes(folder: Path) -> Path:
    """A CSV manifest of 6 scenes: 4 good, one whose guide lies elsewhere, one corrupt LR."""
    rows = []
    for i in range(6):
        lr, guide = make_scene_files(folder, f"s{i}", seed=i,
                                     shift=50_000.0 if i == 2 else 0.0)
        rows.append({"id": f"s{i}", "lr": Path(lr).name, "guide": Path(guide).name,
                     "output": f"out/s{i}.tif"})
    data = Path(folder / "s4_lr.tif").read_bytes()
    Path(folder / "s4_lr.tif").write_bytes(data[: len(data) // 3])  # truncated GeoTIFF
    rows[5]["method"] = "bicubic"  # a per-scene override
    (folder / "out").mkdir()
    m = folder / "scenes.csv"
    with m.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["id", "lr", "guide", "output", "method"])
        w.writeheader()
        w.writerows(rows)
    return m


def test_batch__two_broken_scenes(tmp_path: Path) -> None:
    m = six_scenes(tmp_path)
    report = tmp_path / "report.json"
    r = CliRunner().invoke(cli, ["batch", str(m), "--scale", "4", "--method", "guided-filter",
                                 "--report", str(report), "-q"])
    assert r.exit_code == 1, r.output
    assert "failed scenes: s2, s4" in r.output
    rep = json.loads(report.read_text())
    assert rep["counts"] == {"total": 6, "done": 4, "failed": 2, "skipped": 0}
    by_id = {s["id"]: s for s in rep["scenes"]}
    assert by_id["s2"]["status"] == "failed" and "do not overlap" in by_id["s2"]["error"]
    assert by_id["s4"]["status"] == "failed" and "failed to read the lr raster" in by_id["s4"]["error"].lower()
    for s in rep["scenes"]:
        assert set(s) >= {"status", "seconds", "output", "error"}
    outs = sorted(p.name for p in (tmp_path / "out").glob("*.tif"))
    assert outs == ["s0.tif", "s1.tif", "s3.tif", "s5.tif"]
    assert (tmp_path / "out" / "s0.stac.json").exists()
    with rasterio.open(tmp_path / "out" / "s5.tif") as dst:
        assert dst.tags()["GEOSR_METHOD"] == "bicubic"
    # per-scene status on disk; --resume skips the finished scenes and retries the others
    state = tmp_path / "scenes.geosr" / "scenes"
    assert json.loads((state / "s0.json").read_text())["status"] == "done"
    assert json.loads((state / "s4.json").read_text())["status"] == "failed"
    r = CliRunner().invoke(cli, ["batch", str(m), "--scale", "4", "--method", "guided-filter",
                                 "--resume", "--json", "-q"])
    assert r.exit_code == 1
    rep2 = json.loads(r.stdout)
    assert rep2["counts"] == {"total": 6, "done": 0, "failed": 2, "skipped": 4}


def test_batch__parallel_scenes_equal_sequential(tmp_path: Path) -> None:
    m = six_scenes(tmp_path)
    scenes = [s for s in read_manifest(m) if s.id in ("s0", "s1", "s3")]
    defaults = {"scale": 4, "method": "guided-filter", "stac": False}
    rep = run_batch(scenes, defaults, state_dir=tmp_path / "st", jobs=2)
    assert rep["counts"]["done"] == 3, rep
    seq = [dataclasses.replace(s, output=s.output.replace(".tif", "_seq.tif")) for s in scenes]
    run_batch(seq, defaults, state_dir=tmp_path / "st2", jobs=1)
    for a, b in zip(scenes, seq, strict=True):
        assert Path(a.output).read_bytes() == Path(b.output).read_bytes()


def test_read_manifest__jsonl_and_stac(tmp_path: Path) -> None:
    lr, guide = make_scene_files(tmp_path, "a", 0)
    (tmp_path / "m.jsonl").write_text(
        json.dumps({"lr": "a_lr.tif", "guide": "a_rgb.tif", "output": "o.tif", "scale": 2,
                    "options": {"eps": 0.01}, "guide_bands": "1,2,3"}) + "\n\n")
    [s] = read_manifest(tmp_path / "m.jsonl")
    assert s.id == "o" and s.lr == lr and dict(s.settings)["options"] == {"eps": 0.01}
    assert dict(s.settings)["guide_bands"] == (1, 2, 3)
    items = {"type": "FeatureCollection", "features": [{
        "type": "Feature", "id": "scene-1", "stac_version": "1.0.0", "geometry": None,
        "properties": {"datetime": "2024-05-01T10:00:00Z", "geosr:scale": 4},
        "assets": {"lr": {"href": "./a_lr.tif"}, "guide": {"href": "a_rgb.tif"}}, "links": []}]}
    (tmp_path / "items.json").write_text(json.dumps(items))
    [s] = read_manifest(tmp_path / "items.json", output_dir=tmp_path / "out")
    assert s.output == str(tmp_path / "out" / "scene-1.tif") and s.guide == guide
    assert dict(s.settings)["scale"] == 4


def test_read_manifest__network_is_relative_to_the_manifest(tmp_path: Path) -> None:
    """A per-scene network file (``--network`` of one scene) resolves like lr and guide,
    and wins over the command line's."""
    from geosr.batch import scene_config

    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "m.csv").write_text(
        "lr,guide,output,mode,network\na.tif,b.tif,o.tif,hybrid,nets/n.pt\n"
        "c.tif,d.tif,p.tif,scene,\n")
    a, b = read_manifest(tmp_path / "sub" / "m.csv")
    assert dict(a.settings)["network"] == str(tmp_path / "sub" / "nets" / "n.pt")
    defaults = {"scale": 4, "network": "/archive/default.pt"}
    assert scene_config(a, defaults).scene.network == str(tmp_path / "sub/nets/n.pt")
    cfg = scene_config(b, defaults).scene
    assert cfg.mode == "scene" and cfg.network == "/archive/default.pt"
    # with tile mode the batch refuses before running any scene
    (tmp_path / "m.csv").write_text("lr,guide,output\na.tif,b.tif,o.tif\n")
    r = CliRunner().invoke(cli, ["batch", str(tmp_path / "m.csv"), "--scale", "4",
                                 "--mode", "tile", "--network", str(tmp_path / "n.pt")])
    assert r.exit_code == 2 and "--network needs --mode scene or hybrid" in r.output
    assert not (tmp_path / "m.geosr").exists()


@pytest.mark.parametrize("text,needle", [
    ("lr,guide,output,colour\na.tif,b.tif,o.tif,red\n", "unknown setting 'colour'"),
    ("lr,guide,output\na.tif,b.tif,o.tif\nc.tif,d.tif,o.tif\n", "share the id 'o'"),
    ("lr,output\na.tif,o.tif\n", "no guide"),
])
def test_read_manifest__errors(tmp_path: Path, text: str, needle: str) -> None:
    (tmp_path / "m.csv").write_text(text)
    r = CliRunner().invoke(cli, ["batch", str(tmp_path / "m.csv"), "--scale", "4"])
    assert r.exit_code == 2 and needle in r.output, r.output


def test_batch__stac_item(tmp_path: Path) -> None:
    lr, guide = make_scene_files(tmp_path, "a", 0)
    (tmp_path / "m.jsonl").write_text(json.dumps({"lr": lr, "guide": guide, "output": "a.tif"}))
    r = CliRunner().invoke(cli, ["batch", str(tmp_path / "m.jsonl"), "--scale", "4",
                                 "--method", "bicubic", "-q"])
    assert r.exit_code == 0, r.output
    import pystac

    item = pystac.Item.from_file(str(tmp_path / "a.stac.json"))
    assert item.properties["proj:code"] == CRS and item.properties["proj:shape"] == [80, 96]
    assert item.properties["geosr:method"] == "bicubic"
    assert item.properties["processing:software"]["geosr"]
    assert "a_lr.tif" in item.properties["processing:lineage"]
    assert {ln.title for ln in item.links if ln.rel == "derived_from"} == {"LR", "guide"}
    assert item.assets["data"].href.endswith("a.tif")
    lon, lat = np.mean(item.bbox[0::2]), np.mean(item.bbox[1::2])
    assert 16 < lon < 17 and 48 < lat < 49


def test_stac_footprint__cut_at_the_antimeridian() -> None:
    """A UTM 60N scene across 180 degrees: a cut footprint and a bbox with west > east."""
    from types import SimpleNamespace

    from affine import Affine
    from pyproj import Transformer
    from rasterio.crs import CRS as RioCRS

    from geosr.pipeline.stac import _footprint

    x180, _ = Transformer.from_crs(4326, 32660, always_xy=True).transform(180.0, 62.0)
    grid = SimpleNamespace(crs=RioCRS.from_epsg(32660), width=200, height=200,
                           transform=Affine(100.0, 0, x180 - 10_000, 0, -100.0, 6_890_000))
    geom, bbox, native = _footprint(SimpleNamespace(grid=grid))
    assert geom["type"] == "MultiPolygon"
    west, south, east, north = bbox
    assert 179.5 < west < 180 and -180 < east < -179.5 and 61 < south < north < 63
    assert native == [x180 - 10_000, 6_870_000, x180 + 10_000, 6_890_000]
