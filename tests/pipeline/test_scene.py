"""Scene and hybrid modes (geosr.pipeline.scene): one network fitted on random crops of the scene."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch
from click.testing import CliRunner

from geosr import get_method, pipeline
from geosr.cli.main import cli
from geosr.errors import OptionError
from geosr.models.backproject import back_project
from geosr.models.optimize import OptimConfig, fit_samples, masked_cycle_loss
from geosr.pipeline.config import OutputConfig, RunConfig, SceneConfig, TilingConfig
from geosr.raster.store import TileStore

FAST = {"iterations": 8, "preset": "dem", "width": 8}
TILING = TilingConfig(tile_size=16, overlap=8)


def _run(scene: dict[str, Any], name: str, mode: str, back_project: int = 10,
         **kw: Any) -> dict[str, Any]:
    cfg = SceneConfig(mode=mode, crop=12, pool=6, hybrid_iterations=3,
                      back_project=back_project)
    return pipeline.run(scene["lr"], scene["guide"], scene["dir"] / name, RunConfig(scale=scene["scale"], method="mmsr", method_options=FAST, tiling=TILING, scene=cfg, output=OutputConfig(cog=False, **kw)))


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1, masked=True).filled(np.nan)


def test_fit_samples__draws_a_sample_per_step_and_learns() -> None:
    rng = np.random.default_rng(0)
    samples = []
    for _ in range(3):
        g = rng.random((3, 32, 32), dtype=np.float32)
        lr = torch.nn.functional.avg_pool2d(torch.from_numpy(g[:1])[None], 4)[0].numpy()
        samples.append((lr, g, np.ones_like(lr, bool)))
    drawn: list[int] = []

    def draw(step: int) -> Any:
        drawn.append(step)
        return samples[step % 3]

    model = get_method("mmsr", **FAST).build_model(3, 4)
    steps, loss, _ = fit_samples(model, draw, 4, OptimConfig(iterations=12, device="cpu"))
    assert drawn == list(range(12)) and steps == 12 and np.isfinite(loss)



def test_fit_samples__average_tail_leaves_the_mean_of_the_last_steps_weights() -> None:
    rng = np.random.default_rng(1)
    g = rng.random((3, 32, 32), dtype=np.float32)
    lr = torch.nn.functional.avg_pool2d(torch.from_numpy(g[:1])[None], 4)[0].numpy()
    sample = (lr, g, np.ones_like(lr, bool))
    seen: list[dict[str, torch.Tensor]] = []
    model = get_method("mmsr", **FAST).build_model(3, 4)

    def progress(step: int, total: int, loss: float) -> None:  # after each update
        seen.append({k: v.detach().clone() for k, v in model.state_dict().items()})

    cfg = OptimConfig(iterations=10, device="cpu", bf16="off", average_tail=0.3)
    fit_samples(model, lambda step: sample, 4, cfg, progress=progress)
    final = model.state_dict()
    last = seen[-1]
    moved = False
    for k, v in final.items():
        mean = torch.stack([s[k] for s in seen[-3:]]).mean(0)  # 30 % of 10 steps
        torch.testing.assert_close(v, mean, rtol=1e-5, atol=1e-6)
        moved |= not torch.equal(v, last[k])
    assert moved, "the averaged weights equal the last step's"


def _pool(x: np.ndarray, s: int = 4) -> np.ndarray:
    return x.reshape(x.shape[0], x.shape[1] // s, s, x.shape[2] // s, s).mean(axis=(2, 4))


def test_back_project__makes_the_prediction_pool_to_the_lr() -> None:
    rng = np.random.default_rng(2)
    lr = rng.normal(size=(1, 12, 10)).astype(np.float32)
    hr = rng.normal(size=(1, 48, 40)).astype(np.float32)
    valid = np.ones_like(lr, bool)
    valid[0, :3, :4] = False
    before = np.abs(_pool(hr) - lr)[valid].max()
    out = back_project(hr, lr, valid, 4, 10)
    after = np.abs(_pool(out) - lr)[valid].max()
    assert after < 1e-2 * before
    # the correction depends on the LR residual only: detail that pools to zero is kept
    detail = rng.normal(size=hr.shape).astype(np.float32)
    detail -= np.kron(_pool(detail), np.ones((4, 4))).astype(np.float32)
    np.testing.assert_allclose(back_project(hr + detail, lr, valid, 4, 10) - detail, out,
                               atol=1e-4)
    # a prediction that already pools to the LR is left alone, as is everything at 0 steps
    consistent = hr - np.kron(_pool(hr) - lr, np.ones((4, 4))).astype(np.float32)
    np.testing.assert_allclose(back_project(consistent, lr, np.ones_like(valid), 4, 10),
                               consistent, atol=1e-5)
    assert back_project(hr, lr, valid, 4, 0) is hr


def test_scene_mode__mirrors_the_inputs_about_the_tile_edge() -> None:
    from geosr.pipeline.tiles import SCENE_MIRROR, _predict_mirrored

    rng = np.random.default_rng(3)
    lr = rng.normal(size=(1, 6, 9)).astype(np.float32)
    guide = np.kron(lr, np.ones((1, 4, 4), np.float32))  # a guide that pools to the LR
    seen = {}

    class Net:  # a stand-in network: nearest upsampling of its LR input
        def predict_from(self, state, x, g, s):
            seen["x"], seen["g"] = x, g
            return np.kron(x, np.ones((1, s, s), np.float32))

    out = _predict_mirrored(Net(), b"", lr, guide, 4)
    p = SCENE_MIRROR
    assert seen["x"].shape == (1, 6 + 2 * p, 9 + 2 * p)
    np.testing.assert_array_equal(seen["x"][:, p:-p, p:-p], lr)
    np.testing.assert_array_equal(seen["x"][:, p - 1, p:-p], lr[:, 0])  # mirrored, edge kept
    # LR and guide are mirrored about the same line: the padded guide still pools to the LR
    np.testing.assert_allclose(_pool(seen["g"]), seen["x"], atol=1e-6)
    np.testing.assert_array_equal(out, guide)  # cropped back to the tile
    tiny = _predict_mirrored(Net(), b"", lr[:, :2, :3], guide[:, :8, :12], 4)
    assert tiny.shape == (1, 8, 12)  # no more mirroring than the input has pixels


def test_scene_mode__back_projection_enforces_the_cycle(scene: dict[str, Any]) -> None:
    lr = scene["lr_array"]
    err = {}
    for n in (0, 10):
        _run(scene, f"bp{n}.tif", "scene", back_project=n)
        down = _pool(_read(scene["dir"] / f"bp{n}.tif")[None])[0]
        ok = np.isfinite(down) & np.isfinite(lr)
        err[n] = float(np.abs(down[ok] - lr[ok]).mean())
    assert err[10] < 0.2 * err[0], err
    with pytest.raises(OptionError, match="back-projection"):
        SceneConfig(mode="scene", back_project=-1)


def test_tile_mode__method_back_projects_its_output(scene: dict[str, Any]) -> None:
    """In tile mode the method's ``back_project`` (MMSR's default 10, set by
    --back-project) makes a short fit's output pool back to the LR."""
    lr = scene["lr_array"]
    err = {}
    for n in (0, 10):
        out = scene["dir"] / f"tile_bp{n}.tif"
        pipeline.run(scene["lr"], scene["guide"], out, RunConfig(scale=scene["scale"], method="mmsr", method_options={**FAST, "back_project": n}, tiling=TILING, output=OutputConfig(cog=False)))
        down = _pool(_read(out)[None])[0]
        ok = np.isfinite(down) & np.isfinite(lr)
        err[n] = float(np.abs(down[ok] - lr[ok]).mean())
    # tiles overlap and are blended, so the mosaic is not exactly consistent, but close
    assert err[10] < 0.2 * err[0], err


def test_scene_mode__one_network_for_every_tile(scene: dict[str, Any]) -> None:
    s = _run(scene, "scene.tif", "scene", keep_tiles=True)
    assert s["mode"]["mode"] == "scene" and s["scene_fit"]["steps"] == FAST["iterations"]
    assert s["scene_fit"]["crops"] == 6 and s["tiles"]["done"] > 1
    out = _read(scene["dir"] / "scene.tif")
    lr = scene["lr_array"]
    assert np.isfinite(out).sum() > 0.9 * out.size
    # nodata of the LR stays nodata
    assert np.isnan(out[3 * 4 : 7 * 4, 30 * 4 : 36 * 4]).all()
    # the scene network is in the store, and a resumed run reuses it instead of refitting
    store = TileStore(scene["dir"] / "scene.tif.tiles")
    assert store.has("scene-model")
    plan = pipeline.compute_stats(pipeline.make_plan(scene["lr"], scene["guide"], RunConfig(scale=4, method="mmsr", method_options=FAST, tiling=TILING, scene=SceneConfig(mode="scene", crop=12, pool=6))))
    plan2, summary = pipeline.runner.scene_network(plan, store)
    assert summary == {"reused": True} and plan2.scene_state is not None
    # cycle consistency holds roughly where the LR is valid (a sanity check of the units)
    down = out.reshape(lr.shape[0], 4, lr.shape[1], 4).mean(axis=(1, 3))
    ok = np.isfinite(down) & np.isfinite(lr)
    assert np.abs(down[ok] - lr[ok]).mean() < np.nanstd(lr)


def test_scene_mode__seeded_runs_are_identical(scene: dict[str, Any]) -> None:
    _run(scene, "a.tif", "scene")
    _run(scene, "b.tif", "scene")
    a, b = _read(scene["dir"] / "a.tif"), _read(scene["dir"] / "b.tif")
    np.testing.assert_array_equal(a, b)


def test_hybrid__tile_fits_start_from_the_scene_network() -> None:
    rng = np.random.default_rng(1)
    g = rng.random((3, 40, 40), dtype=np.float32)
    lr = torch.nn.functional.avg_pool2d(torch.from_numpy(g[:1])[None], 4)[0].numpy()
    mask = np.ones_like(lr, bool)
    m = get_method("mmsr", **FAST)
    state, _ = m.fit_scene(lambda step: (lr, g, mask), 3, 4, iterations=5)
    pred = m.predict_from(state, lr, g, 4)
    expected = float(masked_cycle_loss(torch.from_numpy(pred)[None], torch.from_numpy(lr)[None],
                                       torch.ones(1, *lr.shape), 4))
    one = get_method("mmsr", **{**FAST, "iterations": 1})
    res = one.fit(lr, g, 4, mask, init_state=state)
    assert res.losses[0] == pytest.approx(expected, rel=1e-5)
    fresh = one.fit(lr, g, 4, mask)
    assert fresh.losses[0] != pytest.approx(expected, rel=1e-3)


def test_hybrid_mode__runs_through_the_pipeline(scene: dict[str, Any]) -> None:
    s = _run(scene, "hybrid.tif", "hybrid")
    assert s["mode"] == {"mode": "hybrid", "iterations": None, "crop": 12, "pool": 6,
                         "min_valid": 0.5, "hybrid_iterations": 3, "back_project": 10}
    assert np.isfinite(_read(scene["dir"] / "hybrid.tif")).any()


def test_modes__bad_combinations_are_option_errors(scene: dict[str, Any]) -> None:
    for method in ("bicubic", "p2p"):
        with pytest.raises(OptionError, match="--mode tile"):
            pipeline.make_plan(scene["lr"], scene["guide"], RunConfig(scale=4, method=method, scene=SceneConfig(mode="scene")))
    with pytest.raises(OptionError, match="mode must be one of"):
        SceneConfig(mode="global")


def test_cli__mode_in_dry_run_and_errors(scene: dict[str, Any]) -> None:
    r = CliRunner().invoke(cli, ["dem-sr", "--lr", scene["lr"], "--guide", scene["guide"],
                                 "--scale", "4", "-o", str(scene["dir"] / "o.tif"),
                                 "--mode", "hybrid", "--hybrid-iterations", "20",
                                 "--back-project", "0", "--dry-run"])
    assert r.exit_code == 0, r.output
    mode = json.loads(r.output)["mode"]
    assert mode["hybrid_iterations"] == 20 and mode["back_project"] == 0
    assert json.loads(r.output)["options"]["back_project"] == 0  # the fits' outputs too
    r = CliRunner().invoke(cli, ["dem-sr", "--lr", scene["lr"], "--guide", scene["guide"],
                                 "--scale", "4", "-o", str(scene["dir"] / "o.tif"),
                                 "--prefit", "300", "--iterations", "55", "--dry-run"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["options"]["prefit"] == 300
    r = CliRunner().invoke(cli, ["sr", "--method", "p2p", "--lr", scene["lr"], "--guide",
                                 scene["guide"], "--scale", "4", "-o",
                                 str(scene["dir"] / "o.tif"), "--prefit", "10", "--dry-run"])
    assert r.exit_code == 2 and "prefit" in r.output and "leave" in r.output
    r = CliRunner().invoke(cli, ["sr", "--method", "guided-filter", "--lr", scene["lr"],
                                 "--guide", scene["guide"], "--scale", "4",
                                 "-o", str(scene["dir"] / "o.tif"), "--mode", "scene"])
    assert r.exit_code == 2 and "use --mode tile" in r.output
    assert not (scene["dir"] / "o.tif").exists()


def test_batch__mode_per_scene_and_from_defaults() -> None:
    from geosr.batch import Scene, scene_config

    sc = Scene("a", "lr.tif", "g.tif", "o.tif", (("mode", "hybrid"), ("hybrid_iterations", 7)))
    kw = scene_config(sc, {"scale": 4, "method": "mmsr", "mode": "tile",
                               "scene_iterations": 50})
    assert kw.scene == SceneConfig(mode="hybrid", iterations=50, hybrid_iterations=7)
    kw = scene_config(Scene("b", "lr.tif", "g.tif", "o.tif"), {"scale": 4})
    assert kw.scene.mode == "auto" and kw.scene.back_project == 10 and kw.guard
    assert "back_project" not in kw.options  # MMSR's own default applies
    sc = Scene("c", "lr.tif", "g.tif", "o.tif", (("mode", "scene"), ("back_project", 0)))
    kw = scene_config(sc, {"scale": 4, "back_project": 10})
    assert kw.scene.back_project == 0 and kw.options["back_project"] == 0
    kw = scene_config(Scene("d", "lr.tif", "g.tif", "o.tif", (("method", "bicubic"),)),
                          {"scale": 4, "back_project": 5})
    assert kw.options == {}  # bicubic has nothing to back-project
    sc = Scene("e", "lr.tif", "g.tif", "o.tif", (("prefit", 50),))
    assert scene_config(sc, {"scale": 4, "prefit": 300}).options["prefit"] == 50
    assert scene_config(Scene("f", "lr.tif", "g.tif", "o.tif"),
                            {"scale": 4, "prefit": 300}).options["prefit"] == 300


def test_json_progress__fit_events_first_last_and_at_most_a_second_apart(monkeypatch) -> None:
    import io

    from geosr.cli import progress

    clock = [100.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    buf = io.StringIO()
    rep = progress.JsonProgress(buf)
    for step in range(1, 26):
        clock[0] += 0.3  # a 0.3 s step: an event every fourth step or so
        rep.scene(step, 25, 0.5)
    events = [json.loads(line) for line in buf.getvalue().splitlines()]
    steps = [e["step"] for e in events]
    assert steps[0] == 1 and steps[-1] == 25 and 7 <= len(steps) <= 10
    assert all(b - a <= 4 for a, b in zip(steps, steps[1:], strict=False))
    pct = [e["percent"] for e in events]
    assert pct == sorted(pct) and 30.0 <= pct[0] < pct[-1] == 55.0


def test_json_progress__heartbeat_while_nothing_happens() -> None:
    import io
    import time

    from geosr.cli.progress import JsonProgress

    buf = io.StringIO()
    rep = JsonProgress(buf)
    rep.stage("tiles")
    rep.start_heartbeat()
    time.sleep(2.2)
    rep.done(output="x")
    events = [json.loads(line)["event"] for line in buf.getvalue().splitlines()]
    assert events[0] == "stage" and events[-1] == "done" and "alive" in events
