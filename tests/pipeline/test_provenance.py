"""The output's provenance tags: the options the method ran with, the inputs as named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import rasterio
from click.testing import CliRunner

from geosr import pipeline
from geosr.cli.main import cli
from geosr.models import get_method
from geosr.pipeline.config import OutputConfig, RunConfig
from geosr.raster.io import without_secrets


def tags_of(path: Path | str) -> dict[str, str]:
    with rasterio.open(path) as f:
        return f.tags()


def test_tags__resolved_options_and_paths_as_given(scene: dict[str, Any], monkeypatch) -> None:
    """``geosr sr`` in a working folder, inputs named relative to it through another folder:
    the tags hold the guided filter's radius (the scale: nothing was given) and the paths as
    typed, not their base names nor absolute paths."""
    d = scene["dir"]
    (d / "inputs").mkdir()
    (d / "run").mkdir()
    for name in ("lr.tif", "guide.tif"):
        shutil.move(d / name, d / "inputs" / name)
    monkeypatch.chdir(d / "run")
    r = CliRunner().invoke(cli, ["sr", "--method", "guided-filter", "--guard", "off", "--lr",
                                 "../inputs/lr.tif",
                                 "--guide", "../inputs/./guide.tif", "--scale", "4", "-o",
                                 "out.tif", "-q"])
    assert r.exit_code == 0, r.output
    tags = tags_of(d / "run" / "out.tif")
    assert json.loads(tags["GEOSR_OPTIONS"]) == {"eps": 0.01, "radius": 4}
    assert tags["GEOSR_LR"] == "../inputs/lr.tif"
    assert tags["GEOSR_GUIDE"] == "../inputs/./guide.tif"


def test_tags__given_options_win_over_defaults(scene: dict[str, Any]) -> None:
    out = scene["dir"] / "out.tif"
    pipeline.run(scene["lr"], scene["guide"], out,
                 RunConfig(scale=4, method="guided-filter", method_options={"radius": 2},
                           output=OutputConfig(cog=False)))
    assert json.loads(tags_of(out)["GEOSR_OPTIONS"]) == {"eps": 0.01, "radius": 2}


def test_tags__input_names_from_the_config(scene: dict[str, Any]) -> None:
    out = scene["dir"] / "out.tif"
    pipeline.run(scene["lr"], scene["guide"], out,
                 RunConfig(scale=4, method="bicubic", output=OutputConfig(cog=False),
                           input_names=("dsm.tif", "https://u:pw@example.com/o.tif?sig=x")))
    tags = tags_of(out)
    assert tags["GEOSR_LR"] == "dsm.tif"
    assert tags["GEOSR_GUIDE"] == "https://u@example.com/o.tif"


@pytest.mark.parametrize("method,options,scale,expected", [
    ("guided-filter", {}, 4, {"radius": 4, "eps": 0.01}),
    ("guided-filter", {}, 2, {"radius": 2}),
    ("mmsr", {"preset": "dem"}, 4, {"preset": "dem", "iterations": 1000}),
    ("robself-re", {}, 4, {"preset": "depth", "source_dilation": 4}),
])
def test_resolved_options(method: str, options: dict, scale: int, expected: dict) -> None:
    got = get_method(method, **options).resolved_options(scale)
    assert got.items() >= expected.items()
    assert None not in {got.get(k, 0) for k in ("radius", "n", "m", "levels", "eta",
                                                "source_dilation")}


def test_resolved_options__mmsr_preset_sizes() -> None:
    from geosr.models.mmsr import PRESETS

    got = get_method("mmsr", preset="dem").resolved_options(4)
    assert (got["n"], got["m"]) == PRESETS["dem"]
    assert get_method("mmsr", preset="dem", n=3).resolved_options(4)["n"] == 3


@pytest.mark.parametrize("given,shown", [
    ("dsm.tif", "dsm.tif"),
    ("../a b/dsm.tif", "../a b/dsm.tif"),
    ("/vsizip/archive.zip/dsm.tif", "/vsizip/archive.zip/dsm.tif"),
    ("s3://bucket/dsm.tif", "s3://bucket/dsm.tif"),
    ("https://user:secret@host/dsm.tif", "https://user@host/dsm.tif"),
    ("/vsicurl/https://host/dsm.tif?X-Amz-Signature=abc", "/vsicurl/https://host/dsm.tif"),
])
def test_without_secrets(given: str, shown: str) -> None:
    assert without_secrets(given) == shown


def test_tags__example_runs_write_the_same_bytes(tmp_path: Path) -> None:
    """The example scene lives in a fresh temporary folder per run: its tags name the files
    without it, so a seeded run's output is byte-identical from run to run."""
    outs = [tmp_path / "a.tif", tmp_path / "b.tif"]
    for out in outs:
        r = CliRunner().invoke(cli, ["dem-sr", "--example", "--method", "bicubic", "--guard",
                                     "off", "-o", str(out), "-q"])
        assert r.exit_code == 0, r.output
    tags = tags_of(outs[0])
    assert tags["GEOSR_LR"].startswith("example/") and tags["GEOSR_GUIDE"].startswith("example/")
    assert outs[0].read_bytes() == outs[1].read_bytes()
