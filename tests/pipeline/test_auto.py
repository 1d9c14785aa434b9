"""``--mode auto``: the choice on tiny plans with a fixed cost model, budgets, the dry-run."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from geosr.cli.main import cli
from geosr.errors import OptionError
from geosr.pipeline import RunConfig, make_plan, run_config
from geosr.pipeline import auto as auto_mode
from geosr.pipeline.config import SceneConfig, parse_budget

#: 0.1 s a step on a 32-px crop, 1 µs per inferred pixel
COSTS = auto_mode.Costs(step_seconds=0.1, infer_seconds_per_pixel=1e-6, crop=32)


def _plan(scene, method="mmsr", **opts):
    return make_plan(scene["lr"], scene["guide"],
                     RunConfig(scale=4, method=method, method_options=opts))


@pytest.mark.parametrize(("text", "seconds"), [("10m", 600), ("90s", 90), ("1h30m", 5400),
                                                ("300", 300), (45, 45)])
def test_budgets(text, seconds) -> None:
    assert parse_budget(text) == seconds


@pytest.mark.parametrize("bad", ["ten minutes", "5x", "0", "-3m"])
def test_bad_budgets_name_the_fix(bad) -> None:
    with pytest.raises(OptionError, match="budget"):
        parse_budget(bad)


def test_classical_methods_stay_in_tile_mode(scene) -> None:
    cfg = RunConfig(scale=4, method="guided-filter", scene=SceneConfig(mode="auto"))
    out, choice = auto_mode.choose(cfg, _plan(scene, "guided-filter"), 60, COSTS)
    assert out.scene.mode == "tile" and choice.mode == "tile" and "deterministic" in choice.reason


def test_tile_mode_when_the_fits_fit_the_budget(scene) -> None:
    cfg = RunConfig(scale=4, method="mmsr", method_options={"iterations": 50},
                    scene=SceneConfig(mode="auto"), guard=True)
    plan = _plan(scene, iterations=50)
    out, choice = auto_mode.choose(cfg, plan, 10_000, COSTS)
    assert out.scene.mode == "tile" and choice.iterations == 50
    assert set(choice.estimate) == {"tiles", "io", "self_check"}
    px = plan.layout.predicted_pixels() * 16
    assert choice.estimate["tiles"] == pytest.approx(50 * 0.1 / (32 * 4) ** 2 * px)


def test_scene_mode_with_the_steps_the_budget_leaves(scene) -> None:
    cfg = RunConfig(scale=4, method="mmsr", scene=SceneConfig(mode="auto"), guard=True)
    out, choice = auto_mode.choose(cfg, _plan(scene), 60, COSTS)
    assert out.scene.mode == "scene" and out.scene.crop == auto_mode.SCENE_CROP
    assert out.scene.iterations == choice.iterations
    assert auto_mode.MIN_STEPS <= choice.iterations <= auto_mode.MAX_STEPS
    assert set(choice.estimate) == {"scene", "self_check", "tiles", "io"}
    assert auto_mode.total(choice.estimate) == pytest.approx(auto_mode.PLAN_FRACTION * 60, rel=0.02)
    # more budget, more steps; the guard off frees the self-check's share
    _, more = auto_mode.choose(cfg, _plan(scene), 90, COSTS)
    _, unguarded = auto_mode.choose(RunConfig(scale=4, method="mmsr",
                                              scene=SceneConfig(mode="auto")),
                                    _plan(scene), 60, COSTS)
    assert more.iterations > choice.iterations and unguarded.iterations > choice.iterations
    assert "self_check" not in unguarded.estimate


def test_run_config_defaults_to_auto_with_the_guard() -> None:
    cfg = run_config(scale=4)
    assert cfg.scene.mode == "auto" and cfg.guard and cfg.budget is None
    assert run_config(scale=4, budget="2m").budget == 120


def test_dry_run_prints_the_choice_and_estimates(scene, monkeypatch) -> None:
    monkeypatch.setattr(auto_mode, "measure", lambda *a, **k: COSTS)
    r = CliRunner().invoke(cli, ["dem-sr", "--lr", scene["lr"], "--guide", scene["guide"],
                                 "--scale", "4", "-o", str(scene["dir"] / "o.tif"),
                                 "--budget", "1m", "--dry-run"])
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)
    a = info["auto"]
    assert a["mode"] == "scene" == info["mode"]["mode"] and a["budget_seconds"] == 60
    assert set(a["estimated_seconds"]) == {"scene", "self_check", "tiles", "io"}
    # planned to fill the budget's PLAN_FRACTION, the rest a margin for the estimate's error
    assert a["estimated_total_seconds"] == pytest.approx(auto_mode.PLAN_FRACTION * 60, rel=0.02)
    assert info["mode"]["iterations"] == a["iterations"]
    assert not (scene["dir"] / "o.tif").exists()


def test_the_suite_keeps_out_of_the_users_cost_model_cache() -> None:
    from geosr.pipeline.auto import cache_path

    assert not str(cache_path()).startswith(str(Path.home() / ".cache"))


def test_a_step_costs_its_overhead_plus_its_pixels() -> None:
    c = auto_mode.Costs(step_seconds=0.2, infer_seconds_per_pixel=1e-6, crop=32,
                        step_overhead_seconds=0.05)
    assert c.step_at(32) == pytest.approx(0.2)
    assert c.step_at(16) == pytest.approx(0.05 + 0.15 / 4)
    assert c.step_at(8) > 0.05


def test_the_self_check_estimate_pays_the_step_overhead(scene) -> None:
    cfg = run_config(scale=4, method="mmsr", guard=True)
    plan = make_plan(scene["lr"], scene["guide"],
                     RunConfig(scale=4, method="mmsr", method_options=cfg.options))
    lean = auto_mode.Costs(step_seconds=0.2, infer_seconds_per_pixel=1e-6, crop=32)
    heavy = dataclasses.replace(lean, step_overhead_seconds=0.15)
    _, a = auto_mode.choose(cfg, plan, budget=60, costs=lean)
    _, b = auto_mode.choose(cfg, plan, budget=60, costs=heavy)
    assert a.mode == b.mode == "scene"
    per_step_a = a.estimate["self_check"] / a.iterations
    per_step_b = b.estimate["self_check"] / b.iterations
    assert per_step_b > per_step_a and per_step_b >= 0.15


def test_tile_mode_shortened_when_most_of_its_steps_fit(scene) -> None:
    cfg = run_config(scale=4, method="mmsr", guard=True)
    plan = make_plan(scene["lr"], scene["guide"],
                     RunConfig(scale=4, method="mmsr", method_options=cfg.options))
    costs = auto_mode.Costs(step_seconds=0.1, infer_seconds_per_pixel=1e-6, crop=32)
    _, full = auto_mode.choose(cfg, plan, budget=1e6, costs=costs)
    need = auto_mode.total(full.estimate)
    short_cfg, short = auto_mode.choose(cfg, plan, budget=0.9 * need, costs=costs)
    assert short.mode == "tile" and 700 <= short.iterations < 1000
    assert short_cfg.options["iterations"] == short.iterations
    assert auto_mode.total(short.estimate) <= 0.9 * need * 1.01
    _, scene_choice = auto_mode.choose(cfg, plan, budget=0.5 * need, costs=costs)
    assert scene_choice.mode == "scene"


def test_recorded_runs_calibrate_the_cost_model(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = auto_mode.measure("mmsr", {}, 2, 3, 8, "cpu")
    assert first.key and first.calibration == {} and first.factor("scene") == 1.0

    def choice(costs, scene=10.0, mode="scene"):
        est = {"self_check": 10.0, "scene": scene, "tiles": 6.0, "io": 1.0}
        return auto_mode.Choice(mode, "", 60.0, est, 100, costs)

    # the scene fit took 1.5x its estimate, the self-check its estimate, the inference half
    got = auto_mode.record(choice(first), {"self_check": 10.0, "scene": 15.0, "tiles": 3.0})
    assert got == pytest.approx({"self_check": 1.0, "scene": 1.5, "inference": 0.5})
    second = auto_mode.measure("mmsr", {}, 2, 3, 8, "cpu")  # from the cache, calibrated
    assert second.step_seconds == first.step_seconds  # the timing itself is kept
    assert second.calibration == pytest.approx({"self_check": 1.0, "scene": 1.5,
                                                "inference": 0.5})
    # a run as long as the calibrated estimate confirms 1.5 (ratios are of the timed model);
    # one slow outlier moves nothing: the median of the recorded runs is used
    auto_mode.record(choice(second, 15.0), {"scene": 15.0})
    auto_mode.record(choice(second, 15.0), {"scene": 30.0})
    assert auto_mode.measure("mmsr", {}, 2, 3, 8, "cpu").factor("scene") == pytest.approx(1.5)
    # a run suspended for an hour is not recorded, nor a model that is not from the cache
    assert auto_mode.record(choice(second, 15.0), {"scene": 900.0}) == {}
    assert auto_mode.record(choice(COSTS), {"self_check": 15.0, "scene": 15.0}) == {}
    cache = json.loads(auto_mode.cache_path().read_text())
    assert cache[first.key]["ratios"]["scene"] == [1.5, 1.5, 3.0]
    # tile mode's tiles are fits, calibrated apart from scene mode's inference
    tile = auto_mode.Choice("tile", "", 60.0, {"tiles": 20.0}, 100, second)
    assert auto_mode.record(tile, {"tiles": 40.0}) == pytest.approx({"tile_fits": 2.0})


def test_a_calibrated_stage_gets_fewer_steps(scene) -> None:
    cfg = run_config(scale=4, method="mmsr", guard=True)
    plan = make_plan(scene["lr"], scene["guide"],
                     RunConfig(scale=4, method="mmsr", method_options=cfg.options))
    _, plain = auto_mode.choose(cfg, plan, budget=60, costs=COSTS)
    slow = dataclasses.replace(COSTS, calibration={"scene": 2.0})
    _, fewer = auto_mode.choose(cfg, plan, budget=60, costs=slow)
    assert plain.mode == fewer.mode == "scene" and fewer.iterations < plain.iterations
    assert fewer.estimate["scene"] / fewer.iterations == pytest.approx(
        2 * plain.estimate["scene"] / plain.iterations)
    assert auto_mode.total(fewer.estimate) == pytest.approx(auto_mode.PLAN_FRACTION * 60,
                                                            rel=0.02)


def test_an_auto_run_records_its_stages_in_the_cost_model(scene, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(auto_mode, "MIN_STEPS", 5)
    monkeypatch.setattr(auto_mode, "SCENE_CROP", 8)
    monkeypatch.setattr(auto_mode, "MIN_CALIBRATION_SECONDS", 0.0)
    monkeypatch.setattr(auto_mode, "RATIO_BOUNDS", (0.0, float("inf")))
    r = CliRunner().invoke(cli, ["sr", "--lr", scene["lr"], "--guide", scene["guide"],
                                 "--scale", "4", "-o", str(tmp_path / "o.tif"),
                                 "--budget", "3s", "--json", "-", "-q"])
    assert r.exit_code == 0, r.output
    a = json.loads(r.stdout)["auto"]
    ratios = json.loads(auto_mode.cache_path().read_text())[a["cost_model"]["key"]]["ratios"]
    est, actual = a["estimated_seconds"], a["actual_seconds"]
    assert a["mode"] == "scene" and set(ratios) == {"self_check", "scene", "inference"}
    for key, stage in (("self_check", "self_check"), ("scene", "scene"), ("tiles", "inference")):
        if est[key] < 0.5:  # the summary's seconds are rounded to 0.1 s
            continue
        low, high = (actual[key] - 0.05) / (est[key] + 0.05), (actual[key] + 0.05) / (est[key] - 0.05)
        assert len(ratios[stage]) == 1 and low <= ratios[stage][0] <= high
