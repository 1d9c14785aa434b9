"""The tile task: read a tile's windows, predict, store; and the executors that run them."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from geosr.errors import OptionError
from geosr.models import get_method, get_method_class
from geosr.models.backproject import back_project
from geosr.models.device import torch_threads
from geosr.normalize import prepare_guide, prepare_lr
from geosr.pipeline.config import ProgressCallback, is_deterministic
from geosr.pipeline.plan import Plan
from geosr.pipeline.sources import read_tile_guide, read_tile_lr
from geosr.raster.io import absolute
from geosr.raster.store import TileStore
from geosr.raster.tiling import Tile

logger = logging.getLogger(__name__)


#: so that threads (local scheduler, multi-threaded dask workers) cannot interleave seeds.
LEARNED_LOCK = threading.Lock()


def predict_normalised(
    plan: Plan, x: np.ndarray, guide: np.ndarray, valid: np.ndarray
) -> np.ndarray:
    """The method on one tile's normalised inputs, as the plan's mode says: a fresh fit
    (tile), the scene network (scene) or a short fit from it (hybrid)."""

    mode = plan.scene.mode
    if mode == "tile":
        return get_method(plan.method, **plan.options)(x, guide, plan.scale, mask=valid,
                                                       progress=_STEP_HOOK)
    if plan.scene_state is None:
        raise ValueError(f"mode {mode!r} needs the scene network; call geosr.pipeline.scene.fit_scene")
    if mode == "scene":
        method = get_method(plan.method, **plan.options)
        pred = _predict_mirrored(method, plan.scene_state, x, guide, plan.scale)
        return back_project(pred, x, valid, plan.scale, plan.scene.back_project)
    # hybrid: the short fit back-projects its own output (LearnedOptions.back_project)
    opts = {**plan.options, "iterations": plan.scene.hybrid_iterations,
            "back_project": plan.scene.back_project}
    method = get_method(plan.method, **opts)
    res = method.fit(x, guide, plan.scale, valid, init_state=plan.scene_state,
                     progress=_STEP_HOOK)
    return res.prediction.astype(np.float32)


#: LR pixels of mirrored input added around a tile before the scene network is applied
SCENE_MIRROR = 4


def _predict_mirrored(method: Any, state: bytes, x: np.ndarray, guide: np.ndarray,
                      scale: int) -> np.ndarray:
    """The scene network on inputs extended by :data:`SCENE_MIRROR` LR pixels of mirrored
    content on every side, cropped back.

    A network applied to an input it was not fitted on errs most in its outermost pixels,
    where its convolutions see zero padding: on the Mashhad DSM most of its error was in
    the outermost HR pixels of the scene. Tiles inside the scene have real pixels
    there (the halo), but tiles at its border do not. Mirroring about the input's edge
    (``symmetric``: LR and guide mirror about the same line, so the mirrored guide still
    pools to the mirrored LR) gives the edge pixels interior-like surroundings.
    """
    p = min(SCENE_MIRROR, x.shape[-2], x.shape[-1])
    q = p * scale
    xp = np.pad(x, ((0, 0), (p, p), (p, p)), mode="symmetric")
    gp = np.pad(guide, ((0, 0), (q, q), (q, q)), mode="symmetric")
    pred = method.predict_from(state, xp, gp, scale)
    return np.ascontiguousarray(pred[:, q:-q, q:-q])


def _raw(lr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A resampler's input: the LR's own values (0 where nodata), and its valid mask."""
    valid = np.isfinite(lr)
    return np.where(valid, lr, 0.0).astype(np.float32), valid


def predict_tile(plan: Plan, tile: Tile) -> np.ndarray | None:
    """HR prediction over ``tile.extent`` (NaN where the LR is nodata), None if no valid pixel."""
    if plan.lr_stats is None or plan.guide_stats is None:
        raise ValueError("the plan has no scene statistics; call compute_stats(plan) first")
    s = plan.scale
    ctx, ext = tile.context, tile.extent
    inner = ext.slices(origin=(ctx.row0, ctx.col0))
    lr = read_tile_lr(plan, ctx)
    if not np.isfinite(lr[(slice(None), *inner)]).any():
        return None
    guide = read_tile_guide(plan, ctx)
    if get_method_class(plan.method).normalised:
        plane = plan.lr_plane
        x, valid = prepare_lr(lr if plane is None else lr - plane.on_grid(
            ctx.row0, ctx.col0, ctx.height, ctx.width), plan.lr_stats)
        gn = prepare_guide(guide, plan.guide_stats)
        hr = plan.lr_stats.invert(predict_normalised(plan, x, gn, valid))
        if plane is not None:
            hr = (hr + plane.on_grid(ctx.row0, ctx.col0, ctx.height * s, ctx.width * s,
                                     1.0 / s)).astype(np.float32)
    else:  # a resampler works on the LR's own values
        x, valid = _raw(lr)
        hr = predict_normalised(plan, x, guide, valid).astype(np.float32, copy=True)
    if plan.blend is not None:  # the guard's blend with lanczos of the same tile
        raw, raw_valid = _raw(lr)
        lz = get_method("lanczos")(raw, guide, s, mask=raw_valid)
        hr = (plan.blend * hr + (1.0 - plan.blend) * lz).astype(np.float32)
    hr_valid = np.repeat(np.repeat(valid, s, axis=1), s, axis=2)
    hr[~hr_valid] = np.nan
    crop = ext.scaled(s).slices(origin=(ctx.row0 * s, ctx.col0 * s))
    return np.ascontiguousarray(hr[0][crop], dtype=np.float32)


def run_tile(plan: Plan, tile: Tile, store_dir: str) -> str:
    """Predict one tile and write it to the store; returns done/skipped/reused."""

    store = TileStore(store_dir)
    if store.has(tile.key):
        return "reused"
    if is_deterministic(plan.method):
        hr = predict_tile(plan, tile)
    else:
        with LEARNED_LOCK, torch_threads(plan.torch_threads):
            hr = predict_tile(plan, tile)
    if hr is None:
        return "skipped"
    store.put(tile.key, hr)
    return "done"




def _count(results: Sequence[str], total: int) -> dict[str, int]:
    counts = {"total": total, "done": 0, "skipped": 0, "reused": 0}
    for r in results:
        counts[r] += 1
    return counts


def run_tiles(
    plan: Plan,
    store_dir: str,
    *,
    progress: ProgressCallback | None = None,
    client: Any = None,
    step_progress: Callable[[int, int, float], None] | None = None,
) -> dict[str, int]:
    """Run every tile as a dask task: on the local threaded scheduler (``plan.workers``
    threads), or on the ``distributed`` cluster of ``client`` when one is given.

    ``step_progress(step, total, loss)``: the tiles' optimisation steps, counted over all
    tiles (tile and hybrid modes of learned methods, local threads only)."""
    if client is not None:
        return _run_tiles_distributed(plan, store_dir, client, progress)
    from concurrent.futures import ThreadPoolExecutor

    import dask
    from dask.callbacks import Callback
    from dask.threaded import get as threaded_get

    tiles = list(plan.layout)
    total = len(tiles)
    # One graph node holds the plan; every tile task depends on it and on nothing else.
    plan_node = dask.delayed(plan, name="plan", traverse=False)
    tasks = [
        dask.delayed(run_tile, pure=True)(plan_node, t, store_dir, dask_key_name=f"tile-{t.key}")
        for t in tiles
    ]
    done = [0]

    class _Progress(Callback):
        def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, id: Any) -> None:
            if str(key).startswith("tile-"):
                done[0] += 1
                if progress is not None:
                    progress(done[0], total)

    steps = tile_fit_steps(plan)
    # The run's own threads, ended with it: dask keeps its pools' threads alive, and a
    # thread that has run torch keeps its OpenMP team, which slows the process's next fits
    # (the scene fit that follows the self-check's run, on a 2-core CPU). On an error or an
    # interrupt the queued tiles are dropped, not waited for.
    pool = ThreadPoolExecutor(plan.workers, thread_name_prefix="geosr-tiles")
    finished = False
    try:
        with _Progress(), _StepCounter(step_progress, steps * total if steps else 0):
            # the threaded scheduler as a function, not by name: a name makes dask import
            # dask.distributed to look for a client (seconds, and an optional extra)
            results = dask.compute(*tasks, scheduler=threaded_get, num_workers=plan.workers,
                                   pool=pool)
        finished = True
    finally:
        pool.shutdown(wait=finished, cancel_futures=not finished)
    return _count(results, total)


def tile_fit_steps(plan: Plan) -> int:
    """Optimisation steps of one tile's fit (0: tiles fit nothing)."""
    if is_deterministic(plan.method) or plan.scene.mode == "scene":
        return 0
    if plan.scene.mode == "hybrid":
        return plan.scene.hybrid_iterations
    opts = plan.options
    return int(opts.get("iterations", get_method(plan.method, **opts).options.iterations))


class _StepCounter:
    """Counts the steps of the tiles' fits in this process while a run's tiles run, and
    hands ``(steps so far, steps of all tiles, loss)`` to ``callback``."""

    def __init__(self, callback: Callable[[int, int, float], None] | None, total: int) -> None:
        self.callback, self.total = callback, total
        self.done = 0
        self.lock = threading.Lock()

    def step(self, step: int, total: int, loss: float) -> None:
        with self.lock:
            self.done += 1
            done = self.done
        if self.callback is not None:
            self.callback(min(done, self.total), self.total, loss)

    def __enter__(self) -> _StepCounter:
        global _STEP_HOOK
        if self.callback is not None and self.total:
            _STEP_HOOK = self.step
        return self

    def __exit__(self, *exc: Any) -> None:
        global _STEP_HOOK
        _STEP_HOOK = None


#: the running local tiles' step counter (learned tiles run one at a time per process)
_STEP_HOOK: Callable[[int, int, float], None] | None = None


def tile_resources(plan: Plan, client: Any) -> dict[str, float] | None:
    """``{"GPU": 1}`` when the tiles of ``plan`` run on a GPU of ``client``'s workers.

    A learned method whose device is not ``cpu`` asks for a GPU when some worker offers one
    (``dask worker --resources GPU=1``); with ``device=cuda`` and no such worker the tasks
    could never start, so that is an error.
    """
    if is_deterministic(plan.method) or plan.options.get("device", "auto") == "cpu":
        return None
    workers = client.scheduler_info().get("workers", {}).values()
    if any(w.get("resources", {}).get("GPU", 0) >= 1 for w in workers):
        return {"GPU": 1}
    if plan.options.get("device") == "cuda":
        raise OptionError(
            "--device cuda was asked for but no worker of the dask scheduler offers a GPU; "
            "start the workers with `dask worker ADDRESS --resources GPU=1`, or pass "
            "--device cpu"
        )
    return None


def _run_tiles_distributed(
    plan: Plan, store_dir: str, client: Any, progress: ProgressCallback | None
) -> dict[str, int]:
    """Tile tasks on a ``distributed`` cluster (the store must be on a shared filesystem)."""
    from distributed import as_completed

    # Workers may run elsewhere or in another folder: absolute paths only.
    plan = dataclasses.replace(
        plan,
        lr=dataclasses.replace(plan.lr, path=absolute(plan.lr.path)),
        guide=dataclasses.replace(plan.guide, path=absolute(plan.guide.path)),
    )
    store_dir = os.path.abspath(store_dir)
    resources = tile_resources(plan, client)
    tiles = list(plan.layout)
    total = len(tiles)
    tag = hashlib.sha256(f"{plan.fingerprint()} {store_dir}".encode()).hexdigest()[:16]
    [plan_f] = client.scatter([plan], hash=False)
    futures = [
        client.submit(run_tile, plan_f, t, store_dir, key=f"geosr-tile-{tag}-{t.key}",
                      resources=resources, pure=False, retries=0)
        for t in tiles
    ]
    results: list[str] = []
    try:
        for fut in as_completed(futures):
            results.append(fut.result())  # raises the task's exception
            if progress is not None:
                progress(len(results), total)
    finally:
        client.cancel([f for f in futures if not f.done()])
        del plan_f
    return _count(results, total)


