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
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import OptionError
from .grid import Window

if TYPE_CHECKING:
    from .pipeline import Plan

logger = logging.getLogger(__name__)

MODES = ("tile", "scene", "hybrid")


@dataclasses.dataclass(frozen=True)
class SceneConfig:
    """How the scene network is fitted (``mode`` ``scene`` or ``hybrid``).

    ``iterations``: optimisation steps of the scene fit (None: the method's
    ``iterations``). ``crop``: side of the random crops in LR pixels. ``pool``: how many
    distinct crops are read (steps cycle through them in a shuffled order; more crops
    cover more of the scene but cost more reads). ``min_valid``: a crop needs at least
    this fraction of valid LR pixels. ``hybrid_iterations``: per-tile fine-tune steps of
    the ``hybrid`` mode. ``network``: a network file (:mod:`geosr.netfile`) to start from
    instead of a fresh network: it is used as is, or, when ``iterations`` is given, fitted
    further on this scene for that many steps. ``back_project``: iterations of
    back-projection (:func:`back_project`) applied to each tile's prediction in scene and
    hybrid modes, so that it average-pools back to the tile's LR as a tile fit's output
    does (0: off).
    """

    mode: str = "tile"
    iterations: int | None = None
    crop: int = 48
    pool: int = 128
    min_valid: float = 0.5
    hybrid_iterations: int = 100
    network: str | None = None
    back_project: int = 10

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise OptionError(f"mode must be one of {', '.join(MODES)}; got {self.mode!r}")
        if self.network is not None and self.mode == "tile":
            raise OptionError(
                "--network needs --mode scene or hybrid (scene applies it to every tile, "
                "hybrid fine-tunes it per tile); tile mode fits a fresh network per tile")
        if self.iterations is not None and self.iterations < 1:
            raise OptionError(f"scene iterations must be >= 1, got {self.iterations}")
        if self.crop < 4:
            raise OptionError(f"scene crop must be >= 4 LR pixels, got {self.crop}")
        if self.pool < 1:
            raise OptionError(f"scene crop pool must be >= 1, got {self.pool}")
        if not 0 < self.min_valid <= 1:
            raise OptionError(f"min_valid must be in (0, 1], got {self.min_valid}")
        if self.hybrid_iterations < 1:
            raise OptionError(f"hybrid iterations must be >= 1, got {self.hybrid_iterations}")
        if self.back_project < 0:
            raise OptionError(f"back-projection iterations must be >= 0, got {self.back_project}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if self.mode != "hybrid":
            d.pop("hybrid_iterations")
        if self.network is None:
            d.pop("network")
        return d if self.mode != "tile" else {"mode": "tile"}


def back_project(
    hr: np.ndarray, lr: np.ndarray, valid: np.ndarray, scale: int, iterations: int
) -> np.ndarray:
    """Make an HR prediction ``(1, s*h, s*w)`` consistent with its LR ``(1, h, w)``.

    Iterative back-projection (Irani & Peleg, 1991): the LR residual ``lr - pool(hr)`` (the
    pipeline's degradation is ``scale``-fold average pooling) is upsampled bicubically and
    added, ``iterations`` times; invalid LR pixels contribute no residual. A tile fit
    enforces this consistency through its loss; a network applied to tiles it was not
    fitted on (scene mode) does not, and its errors are largest at low frequencies, which
    this removes. On the San Diego DEM it halved the scene network's RMSE (README,
    "Modes"). The correction is a smooth field that depends only on the LR residual, so
    detail of the prediction that pools to zero is kept as it is.
    """
    import torch
    import torch.nn.functional as F

    if iterations < 1:
        return hr
    x = torch.from_numpy(np.ascontiguousarray(hr, dtype=np.float32))[None]
    target = torch.from_numpy(np.ascontiguousarray(lr, dtype=np.float32))[None]
    m = torch.from_numpy(np.asarray(valid, dtype=np.float32))[None]
    target = torch.where(m > 0, target, 0.0)
    with torch.no_grad():
        for _ in range(iterations):
            r = (target - F.avg_pool2d(x, scale)) * m
            x = x + F.interpolate(r, scale_factor=scale, mode="bicubic", align_corners=False)
    return x[0].numpy()


def check_mode(method: str, mode: str) -> None:
    """Scene and hybrid modes need a learned method whose network is image-agnostic."""
    from .models import get_method_class

    if mode == "tile":
        return
    cls = get_method_class(method)
    if cls.deterministic:
        raise OptionError(
            f"--mode {mode} fits one network for the scene, but {method!r} has nothing to "
            "fit; use --mode tile (the default) with it"
        )
    if not getattr(cls, "scene_modes", False):
        raise OptionError(
            f"--mode {mode} is not available for {method!r} (its network is tied to one "
            "image); use --mode tile, or mmsr / robself-re / robself-de"
        )


def _read(plan: Plan, win: Window) -> tuple[np.ndarray, np.ndarray]:
    """LR (1, h, w) and guide-on-output-grid (C, s*h, s*w) of a grid-relative LR window."""
    from .pipeline import read_tile_inputs

    return read_tile_inputs(plan, win)


def sample_crops(plan: Plan, cfg: SceneConfig, seed: int | None) -> list[tuple[Any, ...]]:
    """Read ``cfg.pool`` random crops (normalised ``(lr, guide, mask)``) of the scene."""
    from .normalize import prepare_guide, prepare_lr

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
    from .models import get_method

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
    ``plan.scene.network`` (:mod:`geosr.netfile`; fitted further when
    ``plan.scene.iterations`` is given; ``init``: its weights, if the caller has loaded
    and checked them already) or fitted now; and a summary."""
    if init is None and plan.scene.network is not None:
        from .netfile import load_network

        init = load_network(plan.scene.network, plan)
    if init is not None and plan.scene.iterations is None:
        plan, summary = dataclasses.replace(plan, scene_state=init), {"steps": 0}
    else:
        plan, summary = fit_scene(plan, plan.scene, progress=progress, init_state=init)
    if init is not None:
        summary["network"] = plan.scene.network
    return plan, summary
