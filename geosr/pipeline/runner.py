"""A run: prepare -> statistics -> (scene network) -> tiles -> mosaic -> write.

::

    from geosr.pipeline import RunConfig, TilingConfig, run
    config = RunConfig(scale=4, method="guided-filter", tiling=TilingConfig(tile_size=256))
    summary = run("dsm.tif", "rgb.tif", "out.tif", config)

``make_plan`` only reads metadata; ``compute_stats`` reads the scene once (decimated for big
rasters) to get one set of normalisation statistics for every tile; ``run_tile`` is a pure
function of ``(plan, tile, store)`` (each tile reads its own windows and writes one file to
the store); ``write_mosaic`` writes the output block by block from the store. ``run`` ties
them together with dask's local threaded scheduler, or sends the tile tasks to a
``distributed`` cluster when given a ``client`` (tasks of learned methods that run on a GPU
then carry ``resources={"GPU": 1}``). ``run(..., resume=True)`` keeps the tile store when
the run fails, reuses its intact tiles and cleans up what a killed run left behind; with a
seed, a resumed run writes the same bytes as an uninterrupted one.

Defaults (``TilingConfig``): tiles of ``512 // scale`` LR pixels (64..256) for
deterministic (classical) methods, which bounds the memory of one tile to a few hundred MB,
and 128 LR pixels for learned ones (each tile fits its own network); overlap
``max(method.halo(scale), 8)`` LR pixels; every tile is predicted with
``method.halo(scale)`` extra LR pixels of context per side; ``cpu_count // 2`` tiles at
once (1..4) for classical methods, 1 for learned ones.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from geosr.errors import InputError, RasterIOError
from geosr.pipeline.auto import Choice
from geosr.pipeline.auto import record as record_costs
from geosr.pipeline.auto import resolve as resolve_auto
from geosr.pipeline.auto import total as auto_total
from geosr.pipeline.config import (
    ProgressCallback,
    RunConfig,
    SceneConfig,
    StageCallback,
    is_resampler,
)
from geosr.pipeline.mosaic import write_mosaic
from geosr.pipeline.network import load_network, save_network
from geosr.pipeline.plan import Plan, make_plan, warn_partial_cover
from geosr.pipeline.scene import network_for_scene
from geosr.pipeline.selfcheck import SelfCheck, self_check
from geosr.pipeline.stac import item_path, write_item
from geosr.pipeline.stats import compute_stats
from geosr.pipeline.tiles import run_tiles
from geosr.raster.io import (
    check_output_folder,
    check_output_format,
    check_output_path,
    check_written,
    disk_full,
    raster_info,
    remove_stale_temps,
    temp_path,
    to_cog,
)
from geosr.raster.lock import output_lock
from geosr.raster.store import TileStore, store_path

logger = logging.getLogger(__name__)

#: ``progress(step, total, loss)`` of an optimisation
FitProgress = Callable[[int, int, float], None]


def scene_network(
    plan: Plan, store: Any, *, progress: Callable[[int, int, float], None] | None = None,
    init: bytes | None = None,
) -> tuple[Plan, dict[str, Any]]:
    """The plan with its scene network: reused from the tile store (a resumed run), taken
    from the network file ``plan.scene.network`` (fitted further when
    ``plan.scene.iterations`` is given; ``init``: its weights, if already loaded), or
    fitted now; stored in the tile store."""

    key = "scene-model"
    if store.has(key):
        state = bytes(np.asarray(store.get(key)))
        return dataclasses.replace(plan, scene_state=state), {"reused": True}
    plan, summary = network_for_scene(plan, progress=progress, init=init)
    assert plan.scene_state is not None
    store.put(key, np.frombuffer(plan.scene_state, dtype=np.uint8))
    return plan, summary


@dataclasses.dataclass
class _Clock:
    """Wall time per stage, reported in the run's summary."""

    on_stage: StageCallback | None
    t0: float = dataclasses.field(default_factory=time.perf_counter)
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)

    @contextlib.contextmanager
    def stage(self, name: str, *, announce: bool = True) -> Iterator[None]:
        if announce and self.on_stage is not None:
            self.on_stage(name)
        t = time.perf_counter()
        yield
        self.seconds[name] = time.perf_counter() - t

    def total(self) -> float:
        return time.perf_counter() - self.t0


def finished_output(lr: str, guide: str, out: Path, config: RunConfig,
                    clock: _Clock) -> dict[str, Any]:
    """A resumed run whose output exists: nothing to compute; the STAC item is written if
    a killed run stopped between the output and its item."""

    logger.info("%s exists: the job is finished, nothing to resume", out)
    if not config.output.keep_tiles:
        TileStore(store_path(out)).remove_if_store()
    stac_path = None
    if config.stac:
        stac_path = item_path(out)
        if not stac_path.exists():
            write_item(make_plan(lr, guide, config), out, cog=config.output.cog)
        stac_path = str(stac_path)
    return {"output": str(out), "status": "exists", "stac": stac_path,
            "tiles": None, "seconds": {"total": round(clock.total(), 3)}}


def prepare(lr: str, guide: str, out_path: str | os.PathLike[str], config: RunConfig,
            ) -> tuple[Path, RunConfig, Plan, bytes | None, Choice | None]:
    """Check the output paths, resolve ``auto`` mode, plan the work and load a given network
    file (so that a bad one fails before any work): ``(output path, the configuration run,
    plan, network weights or None, auto mode's choice or None)``."""
    check_output_format(out_path)
    out = check_output_path(out_path, overwrite=config.output.overwrite, inputs=(lr, guide))
    if config.save_network is not None:
        check_output_path(config.save_network, overwrite=config.output.overwrite,
                          inputs=(lr, guide))
    # each input's metadata is read once (a URL is one request), for auto mode and the plan
    lr_info, guide_info = raster_info(lr, "LR"), raster_info(guide, "guide")
    config, choice = resolve_auto(lr_info, guide_info, config)
    if choice is not None:
        logger.info("auto: %s", choice.reason)
    plan = make_plan(lr_info, guide_info, config)
    warn_partial_cover(plan)
    init = None
    if plan.scene.network is not None:

        init = load_network(plan.scene.network, plan)
    return out, config, plan, init, choice


def fit_scene_network(plan: Plan, store: TileStore, config: RunConfig, init: bytes | None,
                      progress: Callable[[int, int, float], None] | None,
                      ) -> tuple[Plan, dict[str, Any]]:
    """Scene and hybrid modes: the plan with its scene network (and the network file
    written when ``config.save_network`` asks for it)."""
    plan, summary = scene_network(plan, store, progress=progress, init=init)
    if config.save_network is not None:

        assert plan.scene_state is not None
        save_network(config.save_network, plan, plan.scene_state, summary)
        summary = {**summary, "saved_to": config.save_network}
    return plan, summary


def run_coarse(lr: Path, guide: str, out: Path, config: RunConfig,
               progress: FitProgress | None = None) -> np.ndarray:
    """The self-check's run on the coarse copy: the pipeline (``progress(step, total,
    loss)`` follows its fits), then the output's band 1."""
    import rasterio

    run(lr, guide, out, config, scene_progress=progress, step_progress=progress)
    with rasterio.open(out) as src:
        return src.read(1, masked=True).astype(np.float32).filled(np.nan)


def guarded(plan: Plan, config: RunConfig, out: Path, progress: FitProgress | None = None,
            ) -> tuple[Plan, SelfCheck | None, dict[str, Any] | None]:
    """The self-check of the plan's method, and the plan to run (the guard), as
    :attr:`SelfCheck.writes` says: the plan with the best blend's weight (:attr:`Plan.blend`),
    the plan itself, or a lanczos plan."""
    if not config.guard or is_resampler(plan.method):
        return plan, None, None
    check = self_check(plan, config, functools.partial(run_coarse, progress=progress),
                       workdir=out.parent)
    if check is None:
        return plan, None, {"fired": False, "reason": "the LR is too small for a coarser copy"}
    logger.info("%s", check.line())
    writes = check.writes
    if writes == "method":
        return plan, check, {"fired": False, "wrote": plan.method}
    keep = f"(--guard off keeps {plan.method} alone)"
    if writes == "blend":
        w = check.blend_weight
        reason = (f"{plan.method} {check.ratio:.2f}× lanczos at the coarser scale, "
                  f"{w:.2f} {plan.method} + {1 - w:.2f} lanczos {check.blend_ratio:.2f}×: "
                  f"wrote that blend {keep}")
        return dataclasses.replace(plan, blend=w), check, {
            "fired": True, "wrote": f"{plan.method}+lanczos", "method": plan.method,
            "blend_weight": w, "reason": reason}
    lz = dataclasses.replace(config, method="lanczos", method_options=(),
                             scene=SceneConfig(), save_network=None, guard=False)
    fallback = dataclasses.replace(make_plan(plan.lr, plan.guide, lz), lr_stats=plan.lr_stats,
                                   guide_stats=plan.guide_stats)
    reason = (f"{plan.method} {check.ratio:.2f}× lanczos at the coarser scale: wrote lanczos "
              f"instead {keep}")
    if config.save_network is not None:  # lanczos fits nothing: say the file is not written
        reason += (f"; no network was fitted, so {config.save_network!r} was not written "
                   "(--guard off fits and saves it)")
    return fallback, check, {"fired": True, "wrote": "lanczos", "method": plan.method,
                             "reason": reason}


def check_tags(check: SelfCheck | None, guard: dict[str, Any] | None) -> dict[str, str]:
    """Dataset tags recording the self-check and the guard's decision."""
    tags = {}
    if check is not None:
        # no wall time in the tags: a resumed run writes the same bytes
        tags["GEOSR_SELF_CHECK"] = json.dumps(
            {k: v for k, v in check.to_dict().items() if k != "seconds"}, sort_keys=True)
    if guard is not None:
        tags["GEOSR_GUARD"] = guard.get("reason") or f"kept {guard.get('wrote')}"
        if "blend_weight" in guard:  # the output's weights, per method
            w = guard["blend_weight"]
            tags["GEOSR_BLEND"] = json.dumps({guard["method"]: w, "lanczos": round(1 - w, 6)})
    return tags


def auto_summary(choice: Choice | None, seconds: dict[str, float]) -> dict[str, Any] | None:
    """Auto mode's choice with the measured seconds next to the estimated ones."""
    if choice is None:
        return None
    d = choice.to_dict()
    io = sum(seconds.get(k, 0.0) for k in ("plan", "stats", "mosaic", "cog"))
    actual = {"self_check": seconds.get("self-check", 0.0), "scene": seconds.get("scene", 0.0),
              "tiles": seconds.get("tiles", 0.0), "io": io}
    d["actual_seconds"] = {k: round(v, 1) for k, v in actual.items() if k in choice.estimate}
    d["estimated_total_seconds"] = round(auto_total(choice.estimate), 1)
    d["actual_total_seconds"] = round(seconds.get("total", 0.0), 1)
    return d


def calibrate(choice: Choice | None, seconds: dict[str, float], *, guard: dict[str, Any] | None,
              scene_summary: dict[str, Any] | None, counts: dict[str, int],
              client: Any) -> None:
    """Record this run's measured stages against auto mode's estimates (the cost model's
    calibration), leaving out what did not run here as estimated."""
    if choice is None or choice.costs is None:
        return
    actual = {"self_check": seconds.get("self-check", 0.0)}
    fired = bool(guard and guard.get("fired"))
    if "scene" in seconds and not fired and not (scene_summary or {}).get("reused"):
        actual["scene"] = seconds["scene"]
    if not fired and client is None and counts.get("reused", 0) == 0:
        actual["tiles"] = seconds.get("tiles", 0.0)
    record_costs(choice, actual)


def write_output(plan: Plan, store: TileStore, out: Path, config: RunConfig, clock: _Clock,
                 temps: list[Path], tags: dict[str, str] | None = None) -> None:
    """Mosaic the stored tiles into a temporary GeoTIFF (then a COG), renamed into place."""
    output = config.output
    with clock.stage("mosaic"):
        tmp = temp_path(out, ".tif")
        temps.append(tmp)
        write_mosaic(plan, store, tmp, output, config.tiling.mosaic_block, tags)
        check_written(tmp)
    if output.cog:
        with clock.stage("cog"):
            cog = temp_path(out, ".cog.tif")
            temps.append(cog)
            to_cog(tmp, cog, blocksize=output.blocksize, compress=output.compress,
                   creation_options=dict(output.creation_options))
            check_written(cog)
            tmp = cog
    if out.exists() and not output.overwrite:  # appeared while we were working
        raise InputError(f"the output {str(out)!r} appeared during the run; pass --overwrite")
    os.replace(tmp, out)


def _megabytes(n_bytes: float) -> str:
    return f"{n_bytes / 1e6:,.0f} MB" if n_bytes >= 1e7 else f"{n_bytes / 1e6:.1f} MB"


def no_space_message(reason: str, plan: Plan, out: Path, config: RunConfig, *, tiles: bool,
                     kept: bool) -> str:
    """What a run that filled the disk says: what it was writing, about how much room that
    needs, and what to do (free space, write elsewhere, resume)."""
    g, s = plan.grid, plan.scale
    if tiles:
        px = sum(t.extent.shape[0] * t.extent.shape[1] for t in plan.layout) * s * s
        what = (f"the tiles of {out} in {store_path(out)}/ (needs about {_megabytes(px * 4)}: "
                f"{len(plan.layout)} tiles, {px:,} px × float32, uncompressed)")
    else:
        extra = ("; as much again while the COG is made from its temporary GeoTIFF"
                 if config.output.cog else "")
        what = (f"{out} (needs about {_megabytes(g.width * g.height * 4)}: {g.width}×{g.height}"
                f" px × 1 band × float32, compressed less{extra})")
    if kept:
        then = (f"the finished tiles are kept in {store_path(out)}/: free space or write "
                "elsewhere, then rerun with --resume (resume=True)")
    else:
        then = ("free space or write elsewhere; --resume (resume=True) keeps the finished "
                "tiles when a run fails")
    return f"{reason} writing {what}; {then}"


@contextlib.contextmanager
def disk_full_error(plan: Plan, out: Path, config: RunConfig, *, tiles: bool,
                    kept: bool) -> Iterator[None]:
    """Turn a failed write on a full disk (an ``OSError`` with ENOSPC, or GDAL's write error
    with the disk full) into a :class:`RasterIOError` that says so and what to do. Runs
    before the temporary files are removed, while the disk is still full."""
    try:
        yield
    except Exception as exc:
        reason = disk_full(exc, out.parent if str(out.parent) else Path("."))
        if reason is None:
            raise
        raise RasterIOError(no_space_message(reason, plan, out, config, tiles=tiles,
                                             kept=kept)) from exc


def run(
    lr_path: str | os.PathLike[str],
    guide_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    config: RunConfig,
    *,
    progress: ProgressCallback | None = None,
    on_stage: StageCallback | None = None,
    client: Any = None,
    resume: bool = False,
    scene_progress: FitProgress | None = None,
    check_progress: FitProgress | None = None,
    step_progress: FitProgress | None = None,
) -> dict[str, Any]:
    """Super-resolve a georeferenced LR raster with a guide raster into ``out_path``, as
    ``config`` (:class:`RunConfig`, e.g. from :func:`run_config`) says.

    Returns a summary dict (grid, tile counts, timings). The output appears atomically
    (temporary file in the output folder, then ``os.replace``); on any error nothing is
    left at ``out_path`` and no temporary file remains.

    ``progress(done, total)`` follows the tiles, ``on_stage(name)`` the stages,
    ``scene_progress(step, total, loss)`` the scene network's fit (scene and hybrid modes),
    ``check_progress`` the self-check's fits, and ``step_progress(step, total, loss)`` the
    optimisation steps of the tiles' own fits (tile and hybrid modes, counted over all tiles;
    local threads only: a cluster reports whole tiles).
    ``client``: a ``distributed.Client`` to run the tile tasks on (default: local threads).
    ``resume``: continue an interrupted run: intact tiles of its store are reused, the store
    is kept when this run fails too, and an existing output means the job is finished
    (nothing is done unless ``config.output.overwrite``).

    One run at a time writes an output: the run holds an OS lock on ``<out_path>.lock`` from
    start to end, and a second run on the same output raises
    :class:`~geosr.errors.OutputBusyError` at once.
    """
    check_output_folder(out_path)
    with output_lock(out_path):
        return _run_locked(
            os.fspath(lr_path), os.fspath(guide_path), out_path, config, progress=progress,
            on_stage=on_stage, client=client, resume=resume, scene_progress=scene_progress,
            check_progress=check_progress, step_progress=step_progress)


def _run_locked(
    lr: str,
    guide: str,
    out_path: str | os.PathLike[str],
    config: RunConfig,
    *,
    progress: ProgressCallback | None,
    on_stage: StageCallback | None,
    client: Any,
    resume: bool,
    scene_progress: FitProgress | None,
    check_progress: FitProgress | None,
    step_progress: FitProgress | None,
) -> dict[str, Any]:
    """:func:`run`, with the output's lock held."""
    output = config.output
    clock = _Clock(on_stage)
    if resume:
        remove_stale_temps(Path(out_path))
        if Path(out_path).is_file() and not output.overwrite:
            return finished_output(lr, guide, Path(out_path), config, clock)
    with clock.stage("plan", announce=False):
        out, config, plan, init, choice = prepare(lr, guide, out_path, config)
    with clock.stage("stats"):
        plan = compute_stats(plan)
    with clock.stage("self-check"):
        plan, check, guard = guarded(plan, config, out, check_progress)
    if guard is not None and guard.get("fired"):
        logger.info("guard: %s", guard["reason"])

    store = TileStore(store_path(out))
    temps: list[Path] = []
    ok = False
    try:
        store.open(plan.fingerprint())
        scene_summary = None
        if plan.scene.mode != "tile":  # (the guard's lanczos plan is in tile mode)
            with clock.stage("scene"):
                plan, scene_summary = fit_scene_network(plan, store, config, init,
                                                        scene_progress)
        kept = output.keep_tiles or resume
        with clock.stage("tiles"), disk_full_error(plan, out, config, tiles=True, kept=kept):
            counts = run_tiles(plan, str(store.path), progress=progress, client=client,
                               step_progress=step_progress)
        if counts["done"] + counts["reused"] == 0:
            raise InputError(
                f"the LR raster {plan.lr.path!r} has no valid pixel in any tile; check "
                "--nodata / the file's nodata value"
            )
        with disk_full_error(plan, out, config, tiles=False, kept=kept):
            write_output(plan, store, out, config, clock, temps, check_tags(check, guard))
        ok = True
    except Exception:
        if not (output.keep_tiles or resume):
            store.remove()
        raise
    finally:
        for p in temps:
            if p.exists() and (not ok or p != out):
                p.unlink(missing_ok=True)
    if not output.keep_tiles:
        store.remove()
    stac_path = None
    if config.stac:

        props = {f"geosr:{k}": v for k, v in (("self_check", check and check.to_dict()),
                                               ("guard", guard)) if v is not None}
        stac_path = str(write_item(plan, out, cog=output.cog, properties=props))
    timings = dict(clock.seconds, total=clock.total())
    calibrate(choice, timings, guard=guard, scene_summary=scene_summary, counts=counts,
              client=client)
    out_px = plan.grid.width * plan.grid.height
    return {
        "output": str(out),
        "status": "done",
        "stac": stac_path,
        "method": plan.method,
        "options": plan.options,
        "scale": plan.scale,
        "cog": output.cog,
        "output_grid": plan.grid.to_dict(),
        "tiles": counts,
        "mode": plan.scene.to_dict(),
        "scene_fit": scene_summary,
        "self_check": check.to_dict() if check is not None else None,
        "auto": auto_summary(choice, timings),
        "guard": guard,
        "seconds": {k: round(v, 3) for k, v in timings.items()},
        "output_megapixels": round(out_px / 1e6, 3),
        "megapixels_per_second": round(out_px / 1e6 / max(timings["total"], 1e-9), 3),
    }
