"""Network files (geosr.pipeline.network): a scene network saved by one run and started from by others."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner

from geosr import pipeline
from geosr.cli.main import cli
from geosr.errors import InputError, OptionError
from geosr.pipeline.config import OutputConfig, RunConfig, SceneConfig, TilingConfig
from geosr.pipeline.network import read_network

FAST = {"iterations": 6, "preset": "dem", "width": 8}
TILING = TilingConfig(tile_size=16, overlap=8)


def _run(scene: dict[str, Any], name: str, mode: str, *, method: str = "mmsr",
         options: dict[str, Any] | None = None, scale: int | None = None,
         network: Path | None = None, scene_iterations: int | None = None,
         save: Path | None = None, **out: Any) -> dict[str, Any]:
    cfg = SceneConfig(mode=mode, crop=12, pool=4, hybrid_iterations=2,
                      iterations=scene_iterations, network=None if network is None else str(network))
    return pipeline.run(scene["lr"], scene["guide"], scene["dir"] / name, RunConfig(scale=scale or scene["scale"], method=method, method_options=options or FAST, tiling=TILING, scene=cfg, output=OutputConfig(cog=False, **out), save_network=save))


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1, masked=True).filled(np.nan)


@pytest.fixture
def saved(scene: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    """A scene-mode run that saved its network."""
    net = scene["dir"] / "net.pt"
    summary = _run(scene, "first.tif", "scene", save=net)
    return net, summary


def test_save_network__applied_as_is_reproduces_the_run_that_saved_it(scene, saved) -> None:
    net, first = saved
    assert first["scene_fit"]["saved_to"] == str(net) and first["scene_fit"]["steps"] == 6
    meta, state = read_network(net)
    assert meta["method"] == "mmsr" and meta["scale"] == scene["scale"]
    assert meta["guide_channels"] == 3 and meta["options"]["width"] == 8
    assert meta["fitted_on"]["lr"] == str(scene["lr"]) and len(state) > 1000
    again = _run(scene, "again.tif", "scene", network=net)
    assert again["scene_fit"] == {"steps": 0, "network": str(net)}  # nothing was fitted
    a, b = _read(scene["dir"] / "first.tif"), _read(scene["dir"] / "again.tif")
    np.testing.assert_array_equal(a, b)
    assert np.isfinite(a).sum() > 0.9 * a.size
    assert list(scene["dir"].glob(".net.pt.*")) == []  # no temporary file left


def test_network__hybrid_fine_tunes_and_scene_iterations_fit_further(scene, saved) -> None:
    net, _ = saved
    hyb = _run(scene, "hybrid.tif", "hybrid", network=net)
    assert hyb["scene_fit"]["steps"] == 0 and hyb["tiles"]["done"] > 1
    more = _run(scene, "more.tif", "scene", network=net, scene_iterations=3)
    assert more["scene_fit"]["steps"] == 3 and more["scene_fit"]["network"] == str(net)
    first = _read(scene["dir"] / "first.tif")
    for name in ("hybrid.tif", "more.tif"):  # both changed the saved network's output
        out = _read(scene["dir"] / name)
        ok = np.isfinite(out) & np.isfinite(first)
        assert ok.sum() > 0.9 * out.size and not np.allclose(out[ok], first[ok])


@pytest.mark.parametrize(
    "change,message",
    [
        ({"method": "robself-re"}, "holds a mmsr network.*--method mmsr"),
        ({"scale": 2}, "fitted at scale 4.*--scale 4"),
        ({"options": {**FAST, "width": 16}}, r"width=8 \(this run: 16\)"),
    ],
)
def test_network__a_mismatch_is_refused_before_any_work(scene, saved, change, message) -> None:
    net, _ = saved
    with pytest.raises(InputError, match=message):
        _run(scene, "bad.tif", "scene", network=net, **change)
    assert not (scene["dir"] / "bad.tif").exists()
    assert not (scene["dir"] / "bad.tif.tiles").exists()


def test_network__an_older_robself_file_is_read_with_its_plain_source_convs(scene) -> None:
    """A RobSelf network file written before ``source_dilation`` existed was fitted with
    plain 3x3 source convs: it is refused under today's default (dilated convs) with the
    option that reproduces it named, and accepted with that option."""
    import torch

    opts = {**FAST, "source_dilation": 1}
    net = scene["dir"] / "old.pt"
    _run(scene, "old.tif", "scene", method="robself-re", options=opts, save=net)
    blob = torch.load(net, weights_only=True)
    meta = json.loads(blob["meta"])
    del meta["options"]["source_dilation"]  # as an older geosr wrote it
    torch.save({**blob, "meta": json.dumps(meta)}, net)
    with pytest.raises(InputError, match=r"source_dilation=1 \(this run: None\)"):
        _run(scene, "new.tif", "scene", method="robself-re", options=FAST, network=net)
    again = _run(scene, "again.tif", "scene", method="robself-re", options=opts, network=net)
    assert again["scene_fit"] == {"steps": 0, "network": str(net)}
    np.testing.assert_array_equal(_read(scene["dir"] / "old.tif"), _read(scene["dir"] / "again.tif"))


def test_network__an_older_robself_file_without_the_authors_options_still_loads(scene) -> None:
    """Files written before RobSelf had the authors' code's choices as options
    (``extraction``, ``filter_reduction``, ``shared_head``, ``translator_init``,
    ``weight_decay``) or the loss's ``trans_weight`` were fitted with today's defaults of
    those options: they load as they are."""
    import torch

    opts = {**FAST, "source_dilation": 1}
    net = scene["dir"] / "old.pt"
    _run(scene, "old.tif", "scene", method="robself-re", options=opts, save=net)
    blob = torch.load(net, weights_only=True)
    meta = json.loads(blob["meta"])
    for key in ("extraction", "filter_reduction", "shared_head", "translator_init", "weight_decay",
                "trans_weight"):
        del meta["options"][key]
    torch.save({**blob, "meta": json.dumps(meta)}, net)
    again = _run(scene, "again.tif", "scene", method="robself-re", options=opts, network=net)
    assert again["scene_fit"] == {"steps": 0, "network": str(net)}
    np.testing.assert_array_equal(_read(scene["dir"] / "old.tif"), _read(scene["dir"] / "again.tif"))


def test_network__loop_options_may_differ(scene, saved) -> None:
    """Iterations, seed, the learning rate or the filter's block size do not change the
    network: accepted."""
    net, _ = saved
    s = _run(scene, "ok.tif", "hybrid", network=net,
             options={**FAST, "iterations": 3, "seed": 5, "lr": 1e-3, "block": 4})
    assert s["status"] == "done"


def test_network__not_a_network_file(scene) -> None:
    bad = scene["dir"] / "bad.pt"
    bad.write_bytes(b"not a network")
    with pytest.raises(InputError, match="not a geosr network file"):
        _run(scene, "x.tif", "scene", network=bad)
    with pytest.raises(InputError, match="does not exist"):
        _run(scene, "x.tif", "scene", network=scene["dir"] / "missing.pt")


def test_network__tile_mode_refuses_both_options(scene, saved) -> None:
    net, _ = saved
    with pytest.raises(OptionError, match="--network needs --mode scene"):
        SceneConfig(mode="tile", network=str(net))
    with pytest.raises(OptionError, match="--save-network needs --mode scene or hybrid"):
        _run(scene, "t.tif", "tile", save=scene["dir"] / "t.pt")


def test_save_network__existing_file_needs_overwrite(scene, saved) -> None:
    net, _ = saved
    before = net.read_bytes()
    with pytest.raises(InputError, match="exists; pass --overwrite"):
        _run(scene, "second.tif", "scene", save=net)
    assert net.read_bytes() == before and not (scene["dir"] / "second.tif").exists()
    _run(scene, "second.tif", "scene", save=net, overwrite=True, options={**FAST, "seed": 3})
    assert net.read_bytes() != before


def test_cli__save_then_start_from_the_network(scene) -> None:
    d, runner = scene["dir"], CliRunner()
    common = ["--lr", str(scene["lr"]), "--guide", str(scene["guide"]), "--scale", "4",
              "--iterations", "4", "-O", "width=8", "--tile-size", "16", "--overlap", "8",
              "--scene-crop", "12", "--no-cog", "-q", "--json"]
    r = runner.invoke(cli, ["dem-sr", *common, "-o", str(d / "a.tif"), "--mode", "scene",
                            "--save-network", str(d / "n.pt")])
    assert r.exit_code == 0, r.output
    assert (d / "n.pt").is_file()
    r = runner.invoke(cli, ["dem-sr", *common, "-o", str(d / "b.tif"), "--mode", "hybrid",
                            "--hybrid-iterations", "2", "--network", str(d / "n.pt")])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["scene_fit"]["network"] == str(d / "n.pt")
    r = runner.invoke(cli, ["dem-sr", *common, "-o", str(d / "c.tif"), "--mode", "scene",
                            "--network", str(d / "n.pt"), "--scale", "2"])
    assert r.exit_code == 2 and "--scale 4" in r.output
    r = runner.invoke(cli, ["dem-sr", *common, "-o", str(d / "c.tif"), "--mode", "tile",
                            "--network", str(d / "n.pt")])
    assert r.exit_code == 2 and "--network needs --mode scene" in r.output
    r = runner.invoke(cli, ["dem-sr", *common, "-o", str(d / "d.tif"), "--guard", "off",
                            "--network", str(d / "n.pt")])  # auto mode applies the network
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["mode"]["mode"] == "scene" and summary["scene_fit"]["network"] == str(d / "n.pt")


def test_cli__network_shows_what_a_file_holds(scene, saved) -> None:
    net, _ = saved
    runner = CliRunner()
    r = runner.invoke(cli, ["network", str(net), "--json"])
    assert r.exit_code == 0, r.output
    meta = json.loads(r.stdout)
    assert meta["method"] == "mmsr" and meta["scale"] == 4 and meta["weights_bytes"] > 1000
    assert meta["fitted_on"]["fit"]["steps"] == 6
    r = runner.invoke(cli, ["network", str(net)])
    assert r.exit_code == 0 and "mmsr network, scale 4, 3-band guide" in r.stdout
    assert "width=8" in r.stdout and "iterations" not in r.stdout  # network options only
    bad = scene["dir"] / "bad.pt"
    bad.write_text("nope")
    r = runner.invoke(cli, ["network", str(bad)])
    assert r.exit_code == 2 and "not a geosr network file" in r.output
