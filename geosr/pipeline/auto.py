"""``--mode auto``: choose the mode and the step counts that fit a time budget.

The cost model is measured on the running machine: a few timed optimisation steps of the
method on a random scene crop, and one timed inference of a tile, cached per machine, method,
options, sizes, device and thread count in ``$XDG_CACHE_HOME/geosr/cost-model.json``. From
it and the plan (output size, tiles), :func:`choose`:

- runs deterministic methods, and learned methods that cannot share one network across a
  scene (P2P, CMSR), in ``tile`` mode as they are;
- takes ``tile`` mode (a 1000-step fit per tile, the papers' protocol) where the tiles' fits
  and the self-check on the coarser copy fit in the budget (a GPU on a small scene), or
  where at least :data:`TILE_FRACTION` of those steps do (with the steps that fit);
- otherwise ``scene`` mode on crops of :data:`SCENE_CROP` LR pixels, with as many steps as
  the budget leaves once the self-check (the same fit on the coarser copy), the tiles'
  inference and the mosaic are paid: between :data:`MIN_STEPS` and :data:`MAX_STEPS`.

Each plans to fill :data:`PLAN_FRACTION` of the budget, the rest a margin for the estimate's
error. It returns the estimated seconds per stage, which ``--dry-run`` prints and the run's summary
puts next to the measured ones. A finished run records how long each stage took against its
estimate (:func:`record`); later choices scale each stage's estimate by the median of its
last :data:`CALIBRATION_RUNS` such ratios, so that a short timing taken at a busy or an idle
moment, or a stage that costs more than its timed steps, does not bend every later budget.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from geosr.models import get_method, get_method_class
from geosr.pipeline.config import RunConfig, SceneConfig, is_deterministic, is_resampler
from geosr.pipeline.plan import Plan, make_plan

#: default budgets (seconds) when none is given: a CPU and a GPU
DEFAULT_BUDGET = {"cpu": 300.0, "cuda": 600.0}
SCENE_CROP = 32
#: the share of the budget a choice plans to fill: the rest absorbs a calibrated estimate's
#: remaining error (within 2-3 % of the measured seconds,
#: docs/benchmarks/modes.md#corrected-by-the-runs-it-planned), so that runs end inside it
PLAN_FRACTION = 0.95
MIN_STEPS, MAX_STEPS = 100, 1000
#: tile mode with fewer steps where at least this fraction of them fits the budget: on the
#: IGN lidar DSM (buildings) 774-step tile fits gave 0.965x lanczos, a 1000-step scene
#: network 0.999x (docs/benchmarks/quality.md#the-default-command-on-real-elevation-data)
TILE_FRACTION = 0.7
#: seconds per output pixel of statistics, mosaic and COG (measured on the example scenes)
IO_SECONDS_PER_PIXEL = 2e-6


def _device(config: RunConfig) -> str:
    """The device kind a learned method will run on ("cpu" or "cuda")."""
    from geosr.models.optimize import resolve_device

    return resolve_device(str(config.options.get("device", "auto"))).type


def _machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")),
                       cpu)
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else ""
    return f"{platform.node()}|{cpu}|{gpu}|threads={torch.get_num_threads()}"


def cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "geosr" / "cost-model.json"


@dataclasses.dataclass(frozen=True)
class Costs:
    """Measured seconds: one scene-fit step on a ``crop``² LR sample (of which
    ``step_overhead_seconds`` does not depend on the crop's size: the optimiser, Python,
    kernel launches), and a tile's inference per HR pixel (back-projection included)."""

    step_seconds: float
    infer_seconds_per_pixel: float
    crop: int
    measured: bool = True
    step_overhead_seconds: float = 0.0
    #: stage (:data:`STAGES`) -> the factor its estimate is scaled by (absent: 1, no run
    #: recorded yet)
    calibration: dict[str, float] = dataclasses.field(default_factory=dict)
    #: the cache entry these costs came from ("": not cached, nothing to calibrate)
    key: str = ""

    def factor(self, stage: str) -> float:
        return self.calibration.get(stage, 1.0)

    def step_at(self, side: int) -> float:
        """Seconds of one step on a ``side``² LR crop: the overhead, plus the rest in
        proportion to the pixels."""
        rest = max(self.step_seconds - self.step_overhead_seconds, 0.0)
        return self.step_overhead_seconds + rest * (side / self.crop) ** 2


#: bump when what :func:`measure` times changes, so that older cached entries are ignored
COST_MODEL_VERSION = 3
#: the recorded runs whose ratios of measured to estimated seconds calibrate the cost model
CALIBRATION_RUNS = 5
#: a ratio outside these bounds is not recorded (a run suspended, or a machine swapped)
RATIO_BOUNDS = (0.25, 4.0)
#: stages estimated shorter than this (seconds) are too short to calibrate from
MIN_CALIBRATION_SECONDS = 5.0
_TIMED = ("step_seconds", "infer_seconds_per_pixel", "crop", "measured",
          "step_overhead_seconds")
#: the stages calibrated apart: the self-check, tile mode's fits, scene mode's network fit
#: and its tiles' inference
STAGES = ("self_check", "tile_fits", "scene", "inference")


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write_cache(path: Path, cache: dict[str, Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache, indent=1))
        os.replace(tmp, path)
    except OSError:  # a read-only home: measure again next time
        pass


def _calibrated(key: str, entry: dict[str, Any]) -> Costs:
    """The timed costs of a cache entry, with each stage's median ratio of its recorded
    runs."""
    timed = {k: entry[k] for k in _TIMED if k in entry}
    ratios = entry.get("ratios", {})
    return Costs(**timed, key=key, calibration={
        st: round(statistics.median(ratios[st]), 4) for st in STAGES if ratios.get(st)})


def measure(method: str, options: dict[str, Any], scale: int, channels: int, crop: int,
            device: str, back_project_iterations: int = 10) -> Costs:
    """Time the method here: fit steps on random ``crop``² and (``crop``/2)² LR samples (a
    step's fixed part and its part per pixel), one inference of a tile with its
    back-projection; cached."""
    # compile=true is timed eagerly: compiling each timed network would cost minutes
    opts = {k: v for k, v in options.items() if k not in ("iterations", "prefit", "compile")}
    key = hashlib.sha256(json.dumps(
        [COST_MODEL_VERSION, _machine(), device, method, opts, scale, channels, crop,
         back_project_iterations], sort_keys=True, default=str).encode()).hexdigest()[:24]
    path = cache_path()
    cache = _read_cache(path)
    if key in cache:
        return _calibrated(key, cache[key])
    from geosr.models.backproject import back_project

    rng = np.random.default_rng(0)
    m = get_method(method, **{**opts, "device": device})

    def per_step(side: int, steps: int = 9) -> tuple[float, bytes]:
        """The median of ``steps - 1`` single steps' times (the first one warms up): a
        moment of load elsewhere on the machine moves a few steps, not the median."""
        lr = rng.normal(size=(1, side, side)).astype(np.float32)
        guide = rng.normal(size=(channels, side * scale, side * scale)).astype(np.float32)
        mask = np.ones_like(lr, dtype=bool)
        stamps: list[float] = []

        def tick(step: int, total: int, loss: float) -> None:
            stamps.append(time.perf_counter())

        state, _ = m.fit_scene(lambda step: (lr, guide, mask), channels, scale,
                               iterations=steps, progress=tick)
        return max(float(np.median(np.diff(stamps))), 1e-4), state

    step, state = per_step(crop)
    small = max(crop // 2, 4)
    step_small, _ = per_step(small)
    per_px = max((step - step_small) / (crop**2 - small**2), 0.0)
    overhead = min(max(step - per_px * crop**2, 0.0), step)
    big = 2 * crop
    lr2 = rng.normal(size=(1, big, big)).astype(np.float32)
    g2 = rng.normal(size=(channels, big * scale, big * scale)).astype(np.float32)
    t = time.perf_counter()
    pred = m.predict_from(state, lr2, g2, scale)
    back_project(pred, lr2, np.ones_like(lr2, dtype=bool), scale, back_project_iterations)
    infer = (time.perf_counter() - t) / (big * scale) ** 2
    costs = Costs(step, infer, crop, step_overhead_seconds=overhead, key=key)
    cache = _read_cache(path)  # as it is now: another run may have written it meanwhile
    cache[key] = {k: v for k, v in dataclasses.asdict(costs).items() if k in _TIMED}
    _write_cache(path, cache)
    return costs


def _stage(choice: Choice, key: str) -> str:
    """The calibrated stage of an estimate's key (``tiles`` are fits in tile mode)."""
    if key == "tiles":
        return "tile_fits" if choice.mode == "tile" else "inference"
    return key


def record(choice: Choice, actual: dict[str, float]) -> dict[str, float]:
    """Record a finished run's measured seconds per stage (``self_check``, ``scene``,
    ``tiles``) against ``choice``'s estimates in the cost model's cache. Returns the ratios
    recorded, by :data:`STAGES` name.

    Only for a choice from a cached, measured model; the caller leaves out stages that did not
    run here as estimated (the guard's lanczos, tiles reused by a resumed run or run on a
    cluster). Stages estimated under :data:`MIN_CALIBRATION_SECONDS` are not recorded, nor
    ratios outside :data:`RATIO_BOUNDS`."""
    costs = choice.costs
    if costs is None or not costs.key:
        return {}
    ratios: dict[str, float] = {}
    for k in ("self_check", "scene", "tiles"):
        est = choice.estimate.get(k, 0.0)
        if k not in actual or est <= 0.0 or est < MIN_CALIBRATION_SECONDS:
            continue
        stage = _stage(choice, k)
        # the estimate is the timed model's times its factor: the ratio is to the timed model
        ratio = actual[k] / est * costs.factor(stage)
        if RATIO_BOUNDS[0] <= ratio <= RATIO_BOUNDS[1]:
            ratios[stage] = ratio
    if not ratios:
        return {}
    path = cache_path()
    cache = _read_cache(path)
    entry = cache.get(costs.key)
    if entry is None:
        return {}
    kept = entry.setdefault("ratios", {})
    for stage, v in ratios.items():
        kept[stage] = [*kept.get(stage, []), round(v, 4)][-CALIBRATION_RUNS:]
    _write_cache(path, cache)
    return ratios


@dataclasses.dataclass(frozen=True)
class Choice:
    """What auto mode chose, why, and the estimated seconds per stage."""

    mode: str
    reason: str
    budget: float
    estimate: dict[str, float]
    iterations: int | None = None
    costs: Costs | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {"mode": self.mode, "reason": self.reason, "budget_seconds": self.budget,
             "estimated_seconds": {k: round(v, 1) for k, v in self.estimate.items()}}
        if self.iterations is not None:
            d["iterations"] = self.iterations
        if self.costs is not None:
            d["cost_model"] = dataclasses.asdict(self.costs)
        return d


def choose(config: RunConfig, plan: Plan, budget: float | None = None,
           costs: Costs | None = None) -> tuple[RunConfig, Choice]:
    """The concrete configuration of an ``auto`` run and the choice made (``plan``: the
    run's plan in tile mode; ``costs``: the cost model, measured here when None)."""
    device = "cpu" if is_deterministic(config.method) else _device(config)
    budget = float(budget if budget is not None else DEFAULT_BUDGET[device])
    aim = PLAN_FRACTION * budget
    out_px = plan.grid.width * plan.grid.height
    io = IO_SECONDS_PER_PIXEL * out_px
    tile_cfg = dataclasses.replace(config, scene=dataclasses.replace(config.scene, mode="tile"))
    cls = get_method_class(config.method)
    if is_deterministic(config.method) or not getattr(cls, "scene_modes", False):
        why = ("a deterministic method" if is_deterministic(config.method) else
               f"{config.method} fits a network tied to one image")
        return tile_cfg, Choice("tile", f"{why}: tile mode", budget, {"io": io})
    s = plan.scale
    channels = len(plan.guide_bands)
    costs = costs or measure(config.method, config.options, s, channels, SCENE_CROP, device,
                             config.scene.back_project)
    per_px_step = (costs.step_seconds - costs.step_overhead_seconds) / (costs.crop * s) ** 2
    lay = plan.layout
    tile_px = lay.predicted_pixels() * s * s
    iters = int(config.options.get("iterations", 1000))
    tile_fit = (iters * (costs.step_overhead_seconds * len(lay) + per_px_step * tile_px)
                * costs.factor("tile_fits"))
    check_fit = (iters * (costs.step_overhead_seconds + per_px_step * tile_px / s**2)
                 * costs.factor("self_check"))
    tile_total = tile_fit + (check_fit if config.guard else 0.0) + io
    if tile_total <= aim:
        est = {"tiles": tile_fit, "io": io}
        if config.guard:
            est["self_check"] = check_fit
        return tile_cfg, Choice(
            "tile", f"{len(lay)} tile fits of {iters} steps fit the budget", budget, est,
            iters, costs)
    # just over the budget: the papers' per-tile fit, shortened, rather than a scene network
    fit = int(iters * (aim - io) / (tile_total - io)) if tile_total > io else 0
    if fit >= TILE_FRACTION * iters:
        f = fit / iters
        est = {"tiles": tile_fit * f, "io": io}
        if config.guard:
            est["self_check"] = check_fit * f
        short = dataclasses.replace(tile_cfg, method_options={**config.options, "iterations": fit})
        return short, Choice(
            "tile", f"{len(lay)} tile fits of {fit} steps ({f:.0%} of {iters}) fit the budget",
            budget, est, fit, costs)
    infer = costs.infer_seconds_per_pixel * tile_px * costs.factor("inference")
    infer_check = costs.infer_seconds_per_pixel * tile_px / s**2 * costs.factor("self_check")
    # a step costs about its crop's pixels; crops are clipped to the scene (and the self-check's
    # to its coarser copy, scale² times smaller)
    h, w = plan.grid.lr_window.height, plan.grid.lr_window.width
    step = costs.step_at(min(SCENE_CROP, h, w)) * costs.factor("scene")
    step_check = (costs.step_at(max(4, min(SCENE_CROP, h // s, w // s)))
                  * costs.factor("self_check"))
    check = config.guard and not is_resampler(config.method)
    left = aim - io - infer - (infer_check if check else 0.0)
    per_step = step + (step_check if check else 0.0)
    steps = int(left / per_step) if left > 0 else 0
    steps = max(MIN_STEPS, min(MAX_STEPS, steps))
    est = {"scene": steps * step, "tiles": infer, "io": io}
    if check:
        est["self_check"] = steps * step_check + infer_check
    reason = (f"tile mode would take ~{tile_total / 60:.0f} min; one scene network of {steps} "
              f"steps on {SCENE_CROP}-px crops fits the {budget / 60:.0f} min budget")
    if total(est) > budget * 1.05:
        reason += f" (at the minimum of {MIN_STEPS} steps it takes longer)"
    scene = dataclasses.replace(config.scene, mode="scene", iterations=steps, crop=SCENE_CROP)
    return dataclasses.replace(config, scene=scene), Choice("scene", reason, budget, est,
                                                            steps, costs)


def total(estimate: dict[str, float]) -> float:
    return float(sum(v for v in estimate.values() if math.isfinite(v)))


def resolve(lr: Any, guide: Any, config: RunConfig, costs: Costs | None = None,
            ) -> tuple[RunConfig, Choice | None]:
    """``config`` with its ``auto`` mode resolved (unchanged otherwise), and the choice."""
    if config.scene.mode != "auto":
        return config, None
    if config.scene.network is not None:  # a fitted network: scene mode applies it
        budget = float(config.budget or DEFAULT_BUDGET["cpu"])
        scene = dataclasses.replace(config.scene, mode="scene")
        return (dataclasses.replace(config, scene=scene),
                Choice("scene", "a network file is given: scene mode applies it", budget, {}))
    tile = dataclasses.replace(config, scene=SceneConfig(back_project=config.scene.back_project))
    return choose(config, make_plan(lr, guide, tile), config.budget, costs)
