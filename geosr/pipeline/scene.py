"""Scene and hybrid modes: one network for a whole scene instead of one per tile.

The paper-faithful ``tile`` mode fits a fresh network to every tile, so its cost grows with
the scene: a 10^8-pixel DEM is thousands of fits. ``scene`` mode fits *one* network on
random crops drawn from the whole scene (each optimisation step sees another crop, with
the same cycle loss and optimiser as a tile fit) and then applies it once to every tile;
``hybrid`` starts each tile's fit from that network and runs only a short fine-tune.

The crops are normalised with the scene statistics the tiles use, so the network sees
the same value range everywhere. They are drawn with a generator seeded from the
method's seed, so a seeded run is reproducible. The fitted weights are kept in the tile
store (``scene-model.pt``) so that ``--resume`` does not refit them.

::

    plan = make_plan(...); plan = compute_stats(plan)
    plan = fit_scene(plan, SceneConfig(mode="scene", iterations=500))
    # plan.scene_state now holds the weights; predict_tile applies them
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from geosr.errors import OptionError
from geosr.models import get_method
from geosr.normalize import prepare_guide, prepare_lr
from geosr.pipeline.config import SceneConfig, check_mode
from geosr.pipeline.network import load_network
from geosr.pipeline.plan import Plan
from geosr.pipeline.sources import read_tile_inputs
from geosr.raster.grid import Window

logger = logging.getLogger(__name__)

def _read(plan: Plan, win: Window) -> tuple[np.ndarray, np.ndarray]:
    """LR (1, h, w) and guide-on-output-grid (C, s*h, s*w) of a grid-relative LR window."""

    return read_tile_inputs(plan, win)


def sample_crops(plan: Plan, cfg: SceneConfig, seed: int | None) -> list[tuple[Any, ...]]:
    """Read ``cfg.pool`` random crops (normalised ``(lr, guide, mask)``) of the scene."""

    assert plan.lr_stats is not None and plan.guide_stats is not None
    h, w = plan.grid.lr_window.height, plan.grid.lr_window.width
    c = min(cfg.crop, h, w)
    rng = np.random.default_rng(0 if seed is None else seed)
    crops: list[tuple[Any, ...]] = []
    tries = 0
    while len(crops) < cfg.pool and tries < 20 * cfg.pool:
        tries += 1
        r0 = int(rng.integers(0, h - c + 1))
        c0 = int(rng.integers(0, w - c + 1))
        lr, guide = _read(plan, Window(r0, c0, r0 + c, c0 + c))
        if plan.lr_plane is not None:
            lr = lr - plan.lr_plane.on_grid(r0, c0, c, c)
        x, valid = prepare_lr(lr, plan.lr_stats)
        if valid.mean() < cfg.min_valid:
            continue
        crops.append((x, prepare_guide(guide, plan.guide_stats), valid))
    if not crops:
        raise OptionError(
            f"no {c}x{c} LR crop of the scene has {cfg.min_valid:.0%} valid pixels; use "
            "--mode tile, or a smaller --scene-crop"
        )
    return crops


def fit_scene(
    plan: Plan,
    cfg: SceneConfig,
    *,
    progress: Callable[[int, int, float], None] | None = None,
    init_state: bytes | None = None,
) -> tuple[Plan, dict[str, Any]]:
    """Fit the scene network (from ``init_state`` when given, e.g. a network file's
    weights); returns the plan carrying its weights, and a summary."""

    check_mode(plan.method, cfg.mode)
    method = get_method(plan.method, **plan.options)
    seed = method.options.seed
    t0 = time.perf_counter()
    crops = sample_crops(plan, cfg, seed)
    t_read = time.perf_counter() - t0
    order = np.random.default_rng(0 if seed is None else seed + 1)
    perm: list[int] = []

    def draw(step: int) -> tuple[Any, ...]:
        if not perm:
            perm.extend(order.permutation(len(crops)).tolist())
        return crops[perm.pop()]

    channels = crops[0][1].shape[0]
    state, summary = method.fit_scene(
        draw, channels, plan.scale, iterations=cfg.iterations, progress=progress,
        init_state=init_state,
    )
    summary.update(crops=len(crops), crop_lr_px=crops[0][0].shape[-1],
                   read_seconds=round(t_read, 3))
    logger.info("scene network: %s", summary)
    return dataclasses.replace(plan, scene_state=state), summary


def network_for_scene(
    plan: Plan, *, progress: Callable[[int, int, float], None] | None = None,
    init: bytes | None = None,
) -> tuple[Plan, dict[str, Any]]:
    """The plan carrying its scene network: taken from the network file
    ``plan.scene.network`` (:mod:`geosr.pipeline.network`; fitted further when
    ``plan.scene.iterations`` is given; ``init``: its weights, if the caller has loaded
    and checked them already) or fitted now; and a summary."""
    if init is None and plan.scene.network is not None:

        init = load_network(plan.scene.network, plan)
    if init is not None and plan.scene.iterations is None:
        plan, summary = dataclasses.replace(plan, scene_state=init), {"steps": 0}
    else:
        plan, summary = fit_scene(plan, plan.scene, progress=progress, init_state=init)
    if init is not None:
        summary["network"] = plan.scene.network
    return plan, summary
