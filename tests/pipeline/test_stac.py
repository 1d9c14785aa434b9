"""STAC items: the inputs' acquisition time, raster:bands, structure; STAC collections."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import pytest
import rasterio
from shapely.geometry import box, mapping

from geosr import pipeline
from geosr.pipeline.config import OutputConfig, RunConfig
from geosr.pipeline.stac import parse_time, write_collection

UTC = dt.timezone.utc


def tag(path: str, ns: str | None = None, unit: str | None = None, **tags: str) -> None:
    with rasterio.open(path, "r+") as f:
        f.update_tags(ns=ns, **tags) if ns else f.update_tags(**tags)
        if unit:
            f.set_band_unit(1, unit)


def run_item(scene: dict[str, Any], name: str = "out", **config: Any) -> dict[str, Any]:
    out = scene["dir"] / f"{name}.tif"
    cfg = RunConfig(**{"scale": 4, "method": "bicubic", "stac": True, **config})
    summary = pipeline.run(scene["lr"], scene["guide"], out, cfg)
    item = json.loads(Path(summary["stac"]).read_text())
    check_structure(item)
    return item


def check_structure(item: dict[str, Any]) -> None:
    """What the STAC item schema and its extensions require (pystac's ``validate()`` needs
    jsonschema and the schemas from the network; these are the same checks, offline)."""
    assert item["type"] == "Feature" and item["stac_version"] == pystac.get_stac_version()
    assert {"id", "geometry", "bbox", "properties", "links", "assets"} <= set(item)
    p = item["properties"]
    assert "datetime" in p
    if p["datetime"] is None:  # then both ends are required
        assert parse_time(p["start_datetime"]) and parse_time(p["end_datetime"])
    for key in ("datetime", "start_datetime", "end_datetime", "created", "processing:datetime"):
        if p.get(key) is not None:
            assert p[key].endswith("Z") and parse_time(p[key]) is not None, key
    exts = item["stac_extensions"]
    assert any("/raster/" in e for e in exts) and any("/processing/" in e for e in exts)
    for band in item["assets"]["data"]["raster:bands"]:
        assert band["data_type"] in ("float32", "float64")
        assert {"minimum", "maximum", "mean", "stddev", "valid_percent"} <= set(band["statistics"])
    back = pystac.Item.from_dict(item)  # pystac reads it back with the same fields
    assert back.to_dict(include_self_link=False)["properties"] == p
    if importlib.util.find_spec("jsonschema") is not None:  # the schemas, where reachable
        try:
            back.validate()
        except pystac.errors.STACValidationError:
            raise
        except Exception:  # offline: the schemas cannot be fetched
            pass


def test_item__datetime_is_the_lrs_acquisition_not_the_processing_time(scene) -> None:
    tag(scene["lr"], TIFFTAG_DATETIME="2021:06:15 10:30:00")
    before = dt.datetime.now(UTC).replace(microsecond=0)
    p = run_item(scene)["properties"]
    assert p["datetime"] == "2021-06-15T10:30:00Z"
    assert p["geosr:datetime_source"] == "lr:TIFFTAG_DATETIME"
    assert "start_datetime" not in p
    for key in ("created", "processing:datetime"):
        assert parse_time(p[key]) >= before


def test_item__lr_and_guide_times_give_an_interval(scene) -> None:
    tag(scene["lr"], ACQUISITION_DATE="2020-08-01")
    tag(scene["guide"], "IMAGERY", ACQUISITIONDATETIME="2020-07-20T09:00:00+02:00")
    p = run_item(scene)["properties"]
    assert p["datetime"] == "2020-08-01T00:00:00Z"  # the LR's, a date taken as UTC
    assert p["start_datetime"] == "2020-07-20T07:00:00Z"  # the guide's, in UTC
    assert p["end_datetime"] == "2020-08-01T00:00:00Z"
    assert p["geosr:datetime_source"] == "lr:ACQUISITION_DATE"


def test_item__guide_time_when_the_lr_has_none(scene) -> None:
    tag(scene["guide"], "IMAGERY", ACQUISITIONDATETIME="2019-04-02T11:12:13Z")
    tag(scene["lr"], ACQUISITION_DATE="not a date")  # unreadable: ignored
    p = run_item(scene)["properties"]
    assert p["datetime"] == "2019-04-02T11:12:13Z"
    assert p["geosr:datetime_source"] == "guide:IMAGERY/ACQUISITIONDATETIME"


def test_item__processing_time_without_acquisition_tags(scene) -> None:
    before = dt.datetime.now(UTC).replace(microsecond=0)
    p = run_item(scene)["properties"]
    assert p["geosr:datetime_source"] == "processing"
    assert parse_time(p["datetime"]) >= before and p["datetime"] == p["created"]


def test_item__given_time_and_interval_win(scene) -> None:
    tag(scene["lr"], TIFFTAG_DATETIME="2021:06:15 10:30:00")
    p = run_item(scene, datetime="2018-01-02T03:04:05Z")["properties"]
    assert p["datetime"] == "2018-01-02T03:04:05Z" and p["geosr:datetime_source"] == "input item"
    p = run_item(scene, "b", datetime="2018-01-01T00:00:00Z/2018-01-31T00:00:00Z")["properties"]
    assert p["datetime"] is None
    assert (p["start_datetime"], p["end_datetime"]) == ("2018-01-01T00:00:00Z",
                                                        "2018-01-31T00:00:00Z")


def test_item__raster_bands(scene) -> None:
    tag(scene["lr"], unit="metre")
    item = run_item(scene, output=OutputConfig(cog=False))
    [band] = item["assets"]["data"]["raster:bands"]
    with rasterio.open(scene["dir"] / "out.tif") as f:
        a = f.read(1, masked=True)
    assert band["nodata"] == -9999.0 and band["unit"] == "metre"
    assert band["data_type"] == "float32" and band["spatial_resolution"] == 1.0
    st = band["statistics"]
    assert st["minimum"] == pytest.approx(float(a.min()))
    assert st["maximum"] == pytest.approx(float(a.max()))
    assert st["mean"] == pytest.approx(float(a.mean()), rel=1e-6)
    assert st["valid_percent"] == pytest.approx(100 * a.count() / a.size)
    assert st["valid_percent"] < 100  # the LR's nodata patch


def test_item__resolved_options(scene) -> None:
    item = run_item(scene, method="guided-filter")
    assert item["properties"]["geosr:options"] == {"eps": 0.01, "radius": 4}


def test_parse_time() -> None:
    assert parse_time("2021:06:15 10:30:00") == dt.datetime(2021, 6, 15, 10, 30, tzinfo=UTC)
    assert parse_time("2021-06-15T12:30:00+02:00") == dt.datetime(2021, 6, 15, 10, 30,
                                                                  tzinfo=UTC)
    assert parse_time("2021-06-15") == dt.datetime(2021, 6, 15, tzinfo=UTC)
    assert parse_time("yesterday") is None and parse_time("") is None


def test_collection__extent_links_both_ways(tmp_path: Path) -> None:
    def item(name: str, bbox: list[float], when: str) -> Path:
        it = pystac.Item(name, mapping(box(*bbox)), bbox, parse_time(when), {})
        p = tmp_path / "out" / f"{name}.stac.json"
        p.parent.mkdir(exist_ok=True)
        p.write_text(json.dumps(it.to_dict(include_self_link=False)))
        return p

    a = item("a", [10, 40, 11, 41], "2020-01-01T00:00:00Z")
    b = item("b", [12, 39, 13, 40.5], "2021-01-01T00:00:00Z")
    target = write_collection([a, b], tmp_path / "collection.json", collection_id="scenes")
    coll = json.loads(target.read_text())
    assert coll["type"] == "Collection" and coll["id"] == "scenes" and coll["license"]
    assert coll["extent"]["spatial"]["bbox"] == [[10, 39, 13, 41]]
    assert coll["extent"]["temporal"]["interval"] == [["2020-01-01T00:00:00Z",
                                                       "2021-01-01T00:00:00Z"]]
    hrefs = {ln["href"] for ln in coll["links"] if ln["rel"] == "item"}
    assert hrefs == {"./out/a.stac.json", "./out/b.stac.json"}
    got = json.loads(a.read_text())
    assert got["collection"] == "scenes"
    assert {ln["rel"]: ln["href"] for ln in got["links"]}["collection"] == "../collection.json"
    c = pystac.Collection.from_file(str(target))  # pystac follows the links both ways
    items = list(c.get_items())
    assert sorted(i.id for i in items) == ["a", "b"]
    assert np.isclose(items[0].get_collection().extent.spatial.bboxes[0][0], 10)


def test_item__method_and_options_as_the_output_records_them(scene) -> None:
    """An item written for a finished output (``--resume``) from a plan that does not say
    what ran: the output's own tags win."""
    from geosr.pipeline.plan import make_plan
    from geosr.pipeline.stac import write_item

    run_item(scene, method="guided-filter", method_options={"eps": 0.05})
    plan = make_plan(scene["lr"], scene["guide"], RunConfig(scale=4, method="bicubic"))
    p = json.loads(write_item(plan, scene["dir"] / "out.tif").read_text())["properties"]
    assert p["geosr:method"] == "guided-filter"
    assert p["geosr:options"] == {"eps": 0.05, "radius": 4}
