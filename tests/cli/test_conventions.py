"""One spelling across commands: ``-O``/``--set``, ``--json [PATH]``, ``--bidx``,
``--resampling``, and the grouped ``--help`` with every default shown."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import numpy as np
import pytest
import rasterio
from click.testing import CliRunner

from geosr.cli.main import _COMMANDS, SHORT_HELP, cli
from geosr.cli.options import SECTIONS
from geosr.errors import OptionError
from geosr.pipeline.config import RunConfig
from tests.cli.test_sr import base_args, invoke
from tests.geodata import write_raster

REPO = Path(__file__).resolve().parents[2]


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1)


def _gf(scene: dict[str, Any], out: Path, *extra: Any) -> Any:
    """The guided filter, its own output (no guard writing lanczos instead)."""
    return CliRunner().invoke(cli, [str(a) for a in ("sr", *base_args(
        scene, out, **{"--method": "guided-filter"}), "--guard", "off", *extra)])


# -- -O and --set ------------------------------------------------------------------------
def test_sr__set_method_key_is_the_same_as_dash_o(scene):
    d = scene["dir"]
    assert _gf(scene, d / "o.tif", "-O", "eps=0.5").exit_code == 0
    assert _gf(scene, d / "s.tif", "--set", "guided-filter.eps=0.5").exit_code == 0
    assert _gf(scene, d / "default.tif").exit_code == 0
    np.testing.assert_array_equal(_read(d / "o.tif"), _read(d / "s.tif"))
    assert not np.allclose(_read(d / "s.tif"), _read(d / "default.tif"), equal_nan=True)


def test_sr__set_for_another_method_is_a_usage_error(scene):
    res = _gf(scene, scene["dir"] / "x.tif", "--set", "mmsr.eps=0.5")
    assert res.exit_code == 2
    assert "names 'mmsr' but the method is 'guided-filter'" in res.output
    assert not (scene["dir"] / "x.tif").exists()


def _pairs(root: Path) -> Path:
    from tests.evaluation.test_evaluate import _write_pairs

    root.mkdir()
    _write_pairs(root, np.random.default_rng(0), "mmsr")
    return root


def _eval(data: Path, *args: str) -> Any:
    return CliRunner().invoke(cli, ["eval", str(data), "--scale", "4", "-q", *args])


def test_eval__dash_o_goes_to_every_method_that_takes_it(tmp_path):
    data = _pairs(tmp_path / "pairs")
    res = _eval(data, "-m", "bicubic,guided-filter", "-O", "eps=0.25", "--json")
    assert res.exit_code == 0, res.output
    result = json.loads(res.stdout)
    assert result["methods"]["guided-filter"] == {"eps": 0.25}
    assert result["methods"]["bicubic"] == {}  # bicubic has no eps


def test_eval__set_goes_to_one_method_and_dash_o_must_fit_one(tmp_path):
    data = _pairs(tmp_path / "pairs")
    res = _eval(data, "-m", "guided-filter", "--set", "guided-filter.radius=2", "--json", "-")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["methods"]["guided-filter"] == {"radius": 2}
    res = _eval(data, "-m", "bicubic,guided-filter", "-O", "width=8")
    assert res.exit_code == 2 and "none of the methods bicubic, guided-filter" in res.output
    res = _eval(data, "-m", "guided-filter", "--set", "mmsr.width=8")
    assert res.exit_code == 2 and "'mmsr' is not among the methods run" in res.output


# -- --json ------------------------------------------------------------------------------
def test_eval__json_alone_prints_and_json_path_writes(tmp_path):
    data = _pairs(tmp_path / "pairs")
    res = _eval(data, "-m", "guided-filter", "--json")
    assert res.exit_code == 0, res.output
    printed = json.loads(res.stdout)  # the JSON only: no table
    out = tmp_path / "r.json"
    res = _eval(data, "-m", "guided-filter", "--json", str(out))
    assert res.exit_code == 0, res.output
    written = json.loads(out.read_text())
    assert "RMSE" in res.stdout  # the table, as before
    assert [r["rmse"] for r in written["rows"]] == [r["rmse"] for r in printed["rows"]]


def test_sr__json_path_writes_the_summary_json_alone_prints_it(scene):
    d = scene["dir"]
    r = invoke("sr", *base_args(scene, d / "a.tif"), "--json", d / "a.json")
    assert r.stdout.strip() == ""
    written = json.loads((d / "a.json").read_text())
    assert written["output"] == str(d / "a.tif") and written["status"] == "done"
    r = invoke("sr", *base_args(scene, d / "b.tif"), "--json")
    assert json.loads(r.stdout)["output_grid"] == written["output_grid"]


# -- --bidx ------------------------------------------------------------------------------
def test_bidx__is_rio_s_name_for_lr_band(scene):
    d = scene["dir"]
    with rasterio.open(scene["lr"]) as src:
        band, profile = src.read(1), src.profile
    two = write_raster(d / "two.tif", np.stack([band, band[::-1]]), profile["transform"],
                       nodata=profile["nodata"])
    for flag, value, name in (("--bidx", 2, "bidx.tif"), ("--lr-band", 2, "band.tif"),
                              ("--bidx", 1, "one.tif")):
        invoke("sr", *base_args({**scene, "lr": two}, d / name), flag, value)
    np.testing.assert_array_equal(_read(d / "bidx.tif"), _read(d / "band.tif"))
    assert not np.allclose(_read(d / "bidx.tif"), _read(d / "one.tif"), equal_nan=True)


# -- --resampling ------------------------------------------------------------------------
def test_resampling__warps_the_guide_as_asked(scene):
    d = scene["dir"]
    # a guide twice as fine as the output, with detail below the output's pixels
    fine = np.repeat(np.repeat(scene["guide_array"], 2, axis=1), 2, axis=2)
    fine = fine + np.random.default_rng(0).normal(0, 20, fine.shape)
    t = scene["guide_transform"]
    guide = write_raster(d / "fine.tif", fine.astype(np.float32),
                         rasterio.Affine(t.a / 2, 0, t.c, 0, t.e / 2, t.f))
    outs = {}
    for how in ("auto", "nearest", "average"):
        res = _gf({**scene, "guide": guide}, d / f"{how}.tif", "--resampling", how)
        assert res.exit_code == 0, res.output
        outs[how] = _read(d / f"{how}.tif")
    # the guide is finer than the output: auto means average (the default is kept)
    np.testing.assert_array_equal(outs["auto"], outs["average"])
    assert not np.allclose(outs["nearest"], outs["average"], equal_nan=True)
    res = invoke("sr", *base_args(scene, d / "p.tif"), "--resampling", "lanczos", "--dry-run")
    assert json.loads(res.stdout)["guide"]["resampling"] == "lanczos"


def test_resampling__unknown_names_are_refused(scene):
    res = _gf(scene, scene["dir"] / "x.tif", "--resampling", "bicubic")
    assert res.exit_code == 2 and "'bicubic' is not one of" in res.output
    with pytest.raises(OptionError, match="unknown guide resampling 'gauss'"):
        RunConfig(scale=4, method="bicubic", guide_resampling="gauss")


# -- --help ------------------------------------------------------------------------------
def _help(*args: str) -> str:
    res = CliRunner().invoke(cli, [*args, "--help"], terminal_width=200)
    assert res.exit_code == 0, res.output
    return res.output


@pytest.mark.parametrize("command", ["sr", "dem-sr", "thermal-sr", "batch"])
def test_help__grouped_in_sections_in_order(command):
    text = _help(command)
    titles = [t for t in SECTIONS if f"\n{t}:\n" in text]
    assert titles == list(SECTIONS)
    assert [text.index(f"\n{t}:\n") for t in titles] == sorted(
        text.index(f"\n{t}:\n") for t in titles)
    other = text.split("\nOther options:\n", 1)[1] if "\nOther options:\n" in text else ""
    assert other.split() == ["--help", "Show", "this", "message", "and", "exit."]


def _options(command: str) -> list[click.Option]:
    cmd = cli.get_command(click.Context(cli), command)
    return [p for p in cmd.params if isinstance(p, click.Option) and p.name != "help"]


@pytest.mark.parametrize("command", ["sr", "batch", "eval", "bench"])
def test_help__every_default_is_shown(command):
    text = _help(command)
    for opt in _options(command):
        valued = not (opt.is_flag or opt.count or opt.multiple)
        if valued and not opt.required:
            shown = opt.default is not None or isinstance(opt.show_default, str)
            assert shown or getattr(opt, "required_unless", None), opt.name
    assert "[default:" in text


def test_help__required_options_are_marked():
    text = " ".join(_help("dem-sr").split())
    assert "Output GeoTIFF (float32, the LR's CRS, a COG unless --no-cog). [required]" in text
    assert text.count("[required unless --example]") + text.count(
        "; required unless --example]") == 3
    assert "--lr-band, --bidx" in text
    assert "[default: mmsr]" in text and "[default: auto]" in text


def test_geosr_help__imports_no_command():
    """``geosr --help`` lists the commands from a table: no command module, no torch."""
    code = ("import sys; from geosr.cli.main import cli\n"
            "try:\n    cli(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith(('geosr.', 'torch', 'cloup'))))")
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, check=True)
    loaded = json.loads(res.stdout.strip().splitlines()[-1].replace("'", '"'))
    assert loaded == ["geosr.cli", "geosr.cli.main", "geosr.errors", "geosr.version"]
    for name in SHORT_HELP:
        assert name in res.stdout


def test_short_help__agrees_with_each_command():
    assert set(SHORT_HELP) == set(_COMMANDS)
    ctx = click.Context(cli)
    for name, text in SHORT_HELP.items():
        assert cli.get_command(ctx, name).get_short_help_str(limit=1000) == text


# -- batch -------------------------------------------------------------------------------
def test_batch__set_reaches_the_scenes_of_that_method_and_resampling_a_column(tmp_path, scene):
    from geosr.batch import read_manifest, scene_config

    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "id,lr,guide,output,method,resampling\n"
        f"gf,{scene['lr']},{scene['guide']},{tmp_path}/gf.tif,guided-filter,\n"
        f"near,{scene['lr']},{scene['guide']},{tmp_path}/near.tif,guided-filter,nearest\n"
        f"bic,{scene['lr']},{scene['guide']},{tmp_path}/bic.tif,bicubic,auto\n")
    res = CliRunner().invoke(cli, ["batch", str(manifest), "--scale", "4", "--guard", "off",
                                   "--no-stac", "--set", "guided-filter.eps=0.5",
                                   "--resampling", "average", "-q"])
    assert res.exit_code == 0, res.output
    assert _gf(scene, tmp_path / "ref.tif", "-O", "eps=0.5").exit_code == 0
    np.testing.assert_array_equal(_read(tmp_path / "gf.tif"), _read(tmp_path / "ref.tif"))
    assert (tmp_path / "bic.tif").is_file()  # --set for another method leaves bicubic alone

    defaults = {"scale": 4, "method_sets": {"guided-filter": {"eps": 0.5}},
                "resampling": "average"}
    configs = {sc.id: scene_config(sc, defaults) for sc in read_manifest(manifest)}
    assert configs["gf"].options == {"eps": 0.5} and configs["bic"].options == {}
    assert configs["near"].guide_resampling == "nearest"
    assert configs["gf"].guide_resampling == "average"  # the command line's default
    assert configs["bic"].guide_resampling is None  # auto: the built-in default
    res = CliRunner().invoke(cli, ["batch", str(manifest), "--scale", "4", "--set",
                                   "srcnn.eps=1"])
    assert res.exit_code == 2 and "unknown method 'srcnn'" in res.output


def test_sr__json_path_in_a_missing_folder_fails_before_the_run(scene):
    out = scene["dir"] / "o.tif"
    res = CliRunner().invoke(cli, ["sr", *map(str, base_args(scene, out)), "--json",
                                   str(scene["dir"] / "no" / "s.json")])
    assert res.exit_code == 2 and "does not exist" in res.output
    assert not out.exists()
