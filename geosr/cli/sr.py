"""``geosr dem-sr``, ``geosr thermal-sr`` and ``geosr sr``: thin shells over
:func:`geosr.pipeline.run`.

Exit status: 0 on success, 2 for bad options or unusable inputs (the message says what to
do) or an output another run is writing, 1 for failures while running, 130 when interrupted
(Ctrl-C).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import click
import cloup

from geosr.cli.common import configure_logging, wants_gpu
from geosr.cli.options import HELP_SETTINGS, common_options, options_for_method
from geosr.cli.progress import JsonProgress
from geosr.cluster import dask_client
from geosr.errors import GeosrError, GridError, InputError, OptionError
from geosr.evaluation.quicklook import check_quicklook_path, quicklook_for_run
from geosr.models.api import super_resolve
from geosr.pipeline.auto import resolve as resolve_auto
from geosr.pipeline.auto import total as auto_total
from geosr.pipeline.config import RunConfig, run_config
from geosr.pipeline.plan import make_plan, warn_partial_cover
from geosr.pipeline.runner import run
from geosr.raster.example import write_example
from geosr.raster.io import check_output_format, check_output_path
from geosr.raster.store import MANIFEST, store_path

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def _inputs(kw: dict[str, Any]) -> Iterator[tuple[str, str, int, str | None]]:
    """The (lr, guide, scale, reference) to run on: the user's (no reference), or the
    generated example scene with its 0.5 m reference surface."""
    if kw["example"]:
        if kw["lr"] or kw["guide"]:
            raise click.UsageError("--example replaces --lr and --guide; pass one or the other")

        scale = kw["scale"] or 4
        with tempfile.TemporaryDirectory(prefix="geosr-example-") as tmp:
            paths = write_example(tmp, size=EXAMPLE_SIZE, scale=scale)
            logger.info("example scene written to %s", tmp)
            yield paths["lr"], paths["guide"], scale, paths["reference"]
        return
    missing = [o for o, k in (("--lr", "lr"), ("--guide", "guide"), ("--scale", "scale")) if not kw[k]]
    if missing:
        raise click.UsageError(
            f"missing {', '.join(missing)}; e.g. --lr dsm.tif --guide rgb.tif --scale 4 "
            "(or --example to try the built-in scene)"
        )
    yield kw["lr"], kw["guide"], kw["scale"], None


#: LR pixels per side of the ``--example`` scene (small: the quick start runs on a laptop CPU)
EXAMPLE_SIZE = 32


def _score_example(output: str, lr: str, guide: str, reference: str, scale: int) -> dict:
    """RMSE of the output and of bicubic upsampling against the example's true surface."""
    import numpy as np
    import rasterio


    with rasterio.open(output) as o, rasterio.open(reference) as r, rasterio.open(lr) as src:
        out, ref, low = o.read(1, masked=True), r.read(1), src.read(1, masked=True)
    bic = super_resolve(low.filled(np.nan)[None], np.zeros((3, *ref.shape), np.float32), scale,
                        method="bicubic")[0]

    def rmse(a):
        ok = np.isfinite(a) & ~np.ma.getmaskarray(out)
        return float(np.sqrt(np.mean((np.asarray(a)[ok] - ref[ok]) ** 2)))

    return {"rmse_m": rmse(out.filled(np.nan)), "bicubic_rmse_m": rmse(bic)}




def _progress_bar(quiet: int) -> tuple[Any, Any]:
    if quiet:
        return None, None
    from tqdm import tqdm

    holder: list[Any] = []

    def update(done: int, total: int) -> None:
        if not holder:
            holder.append(tqdm(total=total, unit="tile", desc="tiles", dynamic_ncols=True,
                               file=click.get_text_stream("stderr"), leave=False))
        bar = holder[0]
        bar.n = done
        bar.refresh()

    class _Closer:
        def close(self) -> None:
            if holder:
                holder[0].close()

    return _Closer(), update


def _reporter(kw: dict[str, Any]) -> tuple[Any, Any, Any]:
    """(closer, tile callback, JsonProgress or None) for ``--progress``."""
    mode = kw.get("progress_mode", "auto")
    if mode == "json":

        rep = JsonProgress(sys.stderr)
        rep.start_heartbeat()
        return None, rep.tiles, rep
    if mode == "none" or (mode == "auto" and kw["quiet"]):
        return None, None, None
    bar, update = _progress_bar(0)
    return bar, update, None



def write_json(path: str, data: Any) -> None:
    """``data`` as JSON at ``path``, written to a temporary file and renamed into place."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, default=str)
        f.write("\n")
    os.replace(tmp, path)


def _stamp(path: str) -> float | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def interrupted_message(output: str, stamp_before: float | None) -> str:
    """What an interrupted run says: where its finished tiles are and how to go on."""
    store = store_path(output)
    if (store / MANIFEST).is_file():
        return (f"interrupted: the finished tiles are kept in {store}/; rerun the same command "
                "with --resume to continue from them")
    if _stamp(output) not in (None, stamp_before):
        return f"interrupted after {output} was written"
    return f"interrupted before any tile was finished; nothing was written to {output}"


def run_command(kw: dict[str, Any], *, preset: str | None) -> None:
    """Shared body of the three commands."""
    configure_logging(kw["verbose"], kw["quiet"])
    if kw["as_json"] not in (None, "-"):
        folder = os.path.dirname(os.path.abspath(kw["as_json"]))
        if not os.path.isdir(folder):
            raise click.BadParameter(f"the folder {folder!r} does not exist; create it first",
                                     param_hint="--json")
    bar, update, rep = _reporter(kw)
    stamp = _stamp(kw["output"])
    try:
        summary = _run(kw, preset, update, rep)
    except click.ClickException as exc:
        if rep is not None:
            rep.error(exc.format_message(), exc.exit_code)
        raise
    except KeyboardInterrupt:  # Ctrl-C: exit 130 like any shell command, saying what is kept
        msg = interrupted_message(kw["output"], stamp)
        if rep is not None:
            rep.error(msg, 130)
        click.echo(f"\n{msg}", err=True)
        raise click.exceptions.Exit(130) from None
    finally:
        if bar is not None:
            bar.close()
        if rep is not None:
            rep.stop_heartbeat()
    if summary is None:  # --dry-run
        return
    if rep is not None:
        rep.done(output=summary["output"], status=summary.get("status", "done"))
    if kw["as_json"] == "-":
        click.echo(json.dumps(summary, indent=2, default=str))
        return
    if kw["as_json"]:
        write_json(kw["as_json"], summary)
    if not kw["quiet"]:
        if summary.get("status") == "exists":
            click.echo(f"{summary['output']} exists: nothing to resume (pass --overwrite to "
                       "recompute it)", err=True)
            return
        if summary.get("auto"):
            a = summary["auto"]
            steps = f", {a['iterations']} steps" if a.get("iterations") else ""
            click.echo(f"auto: {a['mode']} mode{steps} (estimated "
                       f"{a['estimated_total_seconds'] / 60:.1f} min, took "
                       f"{a['actual_total_seconds'] / 60:.1f} min)", err=True)
        if summary.get("self_check"):
            sc = summary["self_check"]
            click.echo(f"self-check: {sc['method']} {sc['ratio_to_lanczos']:.2f}× lanczos at "
                       f"the coarser scale (the LR as the answer, {sc['pixels']} px, "
                       f"{sc['seconds']:.0f} s)", err=True)
        if summary.get("guard", {}) and summary["guard"].get("fired"):
            click.echo(f"guard: {summary['guard']['reason']}", err=True)
        t = summary["tiles"]
        g = summary["output_grid"]
        click.echo(
            f"wrote {summary['output']} ({g['width']} x {g['height']} px, {g['crs']}; "
            f"{t['done'] + t['reused']} tiles, {t['skipped']} skipped; "
            f"{summary['seconds']['total']:.1f} s)",
            err=True,
        )
        if "example" in summary:
            ex = summary["example"]
            click.echo(
                f"example: RMSE against the true 0.5 m surface {ex['rmse_m']:.3f} m "
                f"(bicubic: {ex['bicubic_rmse_m']:.3f} m)", err=True,
            )




def _fit_progress(kw: dict[str, Any], rep: Any, kind: str) -> Any:
    """Callback ``(step, total, loss)`` for the optimisation steps of a fit: JSON events
    (``kind``: the self-check, the scene network or the tiles' steps), a bar with an ETA,
    or None."""
    if rep is not None:
        return {"self-check": rep.check, "scene": rep.scene, "steps": rep.steps}[kind]
    mode = kw.get("progress_mode", "auto")
    if mode == "none" or (mode == "auto" and kw["quiet"]):
        return None
    from tqdm import tqdm

    desc = {"self-check": "self-check", "scene": "scene network", "steps": "tile fits"}[kind]
    holder: list[Any] = []

    def update(step: int, total: int, loss: float) -> None:
        if holder and holder[0].total != total:  # a new fit (the self-check runs several)
            holder.pop().close()
        if not holder:
            holder.append(tqdm(total=total, unit="step", desc=desc, dynamic_ncols=True,
                               file=click.get_text_stream("stderr"), leave=False))
        bar = holder[0]
        bar.n = step
        bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
        bar.refresh()
        if step == total:
            holder.pop().close()

    return update


def config_from_flags(kw: dict[str, Any], *, scale: int, preset: str | None,
                      distributed: bool = False) -> RunConfig:
    """The run configuration of the command's flags (``-O`` values parsed here)."""
    return run_config(
        scale=scale, method=kw["method"], preset=preset, iterations=kw["iterations"],
        device=kw["device"], seed=kw["seed"], back_project=kw.get("back_project"),
        prefit=kw.get("prefit"),
        options=options_for_method(kw["method"], kw["method_option"], kw.get("sets", ())),
        guide_resampling=None if kw.get("resampling", "auto") == "auto" else kw["resampling"],
        lr_band=kw["lr_band"], guide_bands=kw["guide_bands"], nodata=kw["nodata"],
        mode=kw.get("mode"), scene_iterations=kw.get("scene_iterations"),
        scene_crop=kw.get("scene_crop"), hybrid_iterations=kw.get("hybrid_iterations"),
        network=kw.get("network"), tile_size=kw["tile_size"], overlap=kw["overlap"],
        workers=None if distributed else kw["workers"], cog=kw["cog"],
        overwrite=kw["overwrite"], creation_options=kw["creation_options"],
        keep_tiles=kw["keep_tiles"], stac=kw.get("stac", False),
        save_network=kw.get("save_network"), guard=kw.get("guard", "on") == "on",
        budget=kw.get("budget"),
    )


def _run(kw: dict[str, Any], preset: str | None, update: Any, rep: Any) -> dict | None:
    try:
        distributed = bool(kw.get("scheduler") or kw.get("cluster_workers"))
        with _inputs(kw) as (lr, guide, scale, reference):
            config = config_from_flags(kw, scale=scale, preset=preset, distributed=distributed)
            if reference is not None:  # the example's files live in a fresh temporary folder:
                # name them without it, so that seeded runs write the same bytes
                config = dataclasses.replace(config, input_names=(
                    f"example/{os.path.basename(lr)}", f"example/{os.path.basename(guide)}"))
            if kw["dry_run"]:

                check_output_format(kw["output"])
                out = check_output_path(kw["output"], overwrite=True, inputs=(lr, guide))
                config, choice = resolve_auto(lr, guide, config)
                plan = make_plan(lr, guide, config)
                warn_partial_cover(plan)
                info = {"output": kw["output"], "output_exists": out.exists(), **plan.to_dict()}
                if choice is not None:
                    info["auto"] = choice.to_dict()
                    info["auto"]["estimated_total_seconds"] = round(auto_total(choice.estimate), 1)
                click.echo(json.dumps(info, indent=2, default=str))
                return None
            if kw.get("quicklook"):

                check_quicklook_path(kw["quicklook"], overwrite=kw["overwrite"])
            with dask_client(
                scheduler=kw.get("scheduler"),
                cluster_workers=kw.get("cluster_workers"),
                threads_per_worker=kw["workers"] or 1,
                gpu=distributed and wants_gpu(kw["method"], kw["device"]),
            ) as client:
                summary = run(
                    lr, guide, kw["output"], config, progress=update,
                    on_stage=rep.stage if rep is not None else None, client=client,
                    resume=kw.get("resume", False),
                    scene_progress=_fit_progress(kw, rep, "scene"),
                    check_progress=_fit_progress(kw, rep, "self-check"),
                    step_progress=_fit_progress(kw, rep, "steps"),
                )
            if reference is not None and summary.get("status") != "exists":
                summary["example"] = _score_example(summary["output"], lr, guide, reference,
                                                    scale)
            if kw.get("quicklook"):

                summary["quicklook"] = quicklook_for_run(
                    kw["quicklook"], lr, guide, summary["output"], preset=preset,
                    lr_band=kw["lr_band"], guide_bands=kw["guide_bands"], nodata=kw["nodata"])
            return summary
    except (InputError, GridError, OptionError) as exc:
        raise click.UsageError(str(exc)) from exc
    except GeosrError as exc:
        raise click.ClickException(str(exc)) from exc
    except (click.ClickException, KeyboardInterrupt):
        raise
    except Exception as exc:  # a method or GDAL failure: exit 1 with the reason
        logger.debug("failure", exc_info=True)
        raise click.ClickException(
            f"{type(exc).__name__}: {exc} (run with -v -v for details)"
        ) from exc


@cloup.command("dem-sr", context_settings=HELP_SETTINGS)
@common_options
def dem_sr(**kw: Any) -> None:
    """Super-resolve a DEM/DSM with an RGB orthophoto (method preset "dem").

    \b
    geosr dem-sr --lr dsm_2m.tif --guide ortho_0p5m.tif --scale 4 -o dsm_0p5m.tif
    geosr dem-sr --example -o out.tif          # try it on the built-in scene
    """
    run_command(kw, preset="dem")


@cloup.command("thermal-sr", context_settings=HELP_SETTINGS)
@common_options
def thermal_sr(**kw: Any) -> None:
    """Super-resolve a thermal band with an RGB image (method preset "thermal").

    \b
    geosr thermal-sr --lr landsat.tif --lr-band 10 --guide rgb.tif --scale 4 -o lst.tif
    """
    run_command(kw, preset="thermal")


@cloup.command("sr", context_settings=HELP_SETTINGS)
@common_options
def sr(**kw: Any) -> None:
    """Super-resolve any single-band raster with a guide, with any method (no preset).

    \b
    geosr sr --method guided-filter --lr lr.tif --guide rgb.tif --scale 4 -o out.tif
    """
    run_command(kw, preset=None)
