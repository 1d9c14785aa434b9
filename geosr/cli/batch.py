"""``geosr batch MANIFEST``: run many scenes with the options of ``geosr sr`` as defaults.

Exit status: 0 when every scene succeeded (or was already done), 1 when any scene failed
(the JSON report names them and their errors), 2 for a bad manifest or options, 130 when
interrupted (Ctrl-C).
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import click
import cloup

from geosr.batch import read_manifest, run_batch, state_dir_for
from geosr.cli.common import configure_logging, require, wants_gpu
from geosr.cli.options import HELP_SETTINGS, batch_options, parse_option_value
from geosr.cli.progress import JsonProgress
from geosr.cluster import dask_client
from geosr.errors import GeosrError, OptionError
from geosr.models import get_method_class
from geosr.pipeline.config import OutputConfig, SceneConfig
from geosr.raster.io import check_output_format

logger = logging.getLogger(__name__)


def batch_defaults(kw: dict[str, Any], preset: str | None) -> dict[str, Any]:
    """The per-scene defaults from the command line (a scene's own settings win)."""
    options = {k: parse_option_value(v) for k, v in kw["method_option"]}
    per_method: dict[str, dict[str, Any]] = {}
    for meth, key, value in kw.get("sets", ()):
        get_method_class(meth)  # an unknown method is an error (exit 2)
        per_method.setdefault(meth, {})[key] = parse_option_value(value)
    return {
        "scale": kw["scale"], "method": kw["method"], "preset": preset,
        "iterations": kw["iterations"], "seed": kw["seed"], "device": kw["device"],
        "options": options, "lr_band": kw["lr_band"], "guide_bands": kw["guide_bands"],
        "nodata": kw["nodata"], "tile_size": kw["tile_size"], "overlap": kw["overlap"],
        "workers": None if (kw["scheduler"] or kw["cluster_workers"]) else kw["workers"],
        "cog": kw["cog"], "overwrite": kw["overwrite"],
        "creation_options": kw["creation_options"], "keep_tiles": kw["keep_tiles"],
        "stac": kw["stac"], "mode": kw["mode"], "scene_iterations": kw["scene_iterations"],
        "scene_crop": kw["scene_crop"], "hybrid_iterations": kw["hybrid_iterations"],
        "back_project": kw["back_project"], "prefit": kw["prefit"], "network": kw["network"],
        "guard": kw["guard"] == "on", "budget": kw["budget"],
        "method_sets": per_method,
        "resampling": None if kw.get("resampling", "auto") == "auto" else kw["resampling"],
    }


@cloup.command("batch", context_settings=HELP_SETTINGS)
@click.argument("manifest", type=click.Path(dir_okay=False))
@cloup.option_group(
    "Scenes",
    click.option("--preset", type=click.Choice(["dem", "thermal", "none"]), default="none",
                 help="Method preset for every scene (as dem-sr / thermal-sr)."),
    click.option("--output-dir", type=click.Path(file_okay=False), default=None,
                 show_default="none: each scene names its output",
                 help="Folder for the outputs of scenes that name none (OUTPUT_DIR/<id>.tif)."),
    click.option("--jobs", "-j", type=click.IntRange(min=1), default=1,
                 help="Scenes processed at once (separate processes unless a dask cluster "
                 "runs the tiles); each runs --workers tiles at once."),
    click.option("--state-dir", type=click.Path(file_okay=False), default=None,
                 show_default="MANIFEST_STEM.geosr/ next to the manifest",
                 help="Per-scene status files and the report."),
    click.option("--report", type=click.Path(dir_okay=False), default=None,
                 show_default="STATE_DIR/report.json", help="Where to write the JSON report."),
    click.option("--collection", type=click.Path(dir_okay=False), default=None,
                 show_default="collection.json in the folder the items share",
                 help="Where to write the STAC Collection of the scenes' items."),
)
@batch_options
def batch_cmd(manifest: str, preset: str, output_dir: str | None, jobs: int,
              state_dir: str | None, report: str | None, collection: str | None,
              **kw: Any) -> None:
    """Super-resolve every scene of MANIFEST (CSV, JSON lines or a STAC ItemCollection).

    \b
    Each scene names lr, guide and output (relative to the manifest's folder) and may set
    scale, method, preset, iterations, seed, device, options (JSON), lr_band, guide_bands,
    nodata, tile_size, overlap, workers, cog; the command-line options are the defaults.
    \b
    geosr batch scenes.csv --scale 4 --method mmsr --jobs 2 --resume
    geosr batch items.json --output-dir out/ --scale 4 --cluster-workers 4
    geosr batch scenes.jsonl --scheduler tcp://scheduler:8786 --resume
    """

    configure_logging(kw["verbose"], kw["quiet"])
    mode = kw["progress_mode"]
    stderr = sys.stderr
    rep: Any = None
    if mode == "json":

        rep = JsonProgress(stderr)
    state = state_dir or state_dir_for(manifest)
    try:
        scenes = read_manifest(manifest, output_dir=output_dir)
        defaults = batch_defaults(kw, None if preset == "none" else preset)
        if kw["scheduler"] or kw["cluster_workers"]:
            require("distributed", "cluster",
                    "--scheduler" if kw["scheduler"] else "--cluster-workers")
        if any(dict(sc.settings).get("stac", defaults["stac"]) for sc in scenes):
            for module in ("pystac", "rio_stac"):
                require(module, "stac", "a STAC item per scene (--stac, on by default in a "
                        "batch; --no-stac to go without)")
        for sc in scenes:  # what would fail a scene later (a network file with tile mode,
            # a creation option GDAL does not take, a .png output): say so now
            st = {**defaults, **dict(sc.settings)}
            try:
                SceneConfig(mode=st.get("mode") or "tile", network=st.get("network"))
                OutputConfig(cog=st.get("cog", True),
                             creation_options=tuple(st.get("creation_options") or ()))
                check_output_format(sc.output)
            except GeosrError as exc:
                raise OptionError(f"scene {sc.id!r}: {exc}") from exc
        n = len(scenes)

        def on_scene(res: dict[str, Any], finished: int, total: int) -> None:
            if rep is not None:
                rep.emit("scene", 100.0 * finished / total, id=res["id"],
                         status=res["status"], finished=finished, scenes=total,
                         error=res.get("error"))
            elif not kw["quiet"] and res["status"] != "running":
                msg = f"[{finished}/{total}] {res['id']}: {res['status']}"
                if res.get("error"):
                    msg += f" ({res['error']})"
                click.echo(msg, err=True)

        def progress_factory(scene: Any, index: int) -> Any:
            if rep is None:
                return None

            return JsonProgress(stderr, span=(100.0 * index / n, 100.0 * (index + 1) / n),
                                extra={"scene": scene.id})

        with dask_client(
            scheduler=kw["scheduler"], cluster_workers=kw["cluster_workers"],
            threads_per_worker=kw["workers"] or 1,
            gpu=bool(kw["scheduler"] or kw["cluster_workers"])
            and wants_gpu(kw["method"], kw["device"]),
        ) as client:
            result = run_batch(
                scenes, defaults, state_dir=state, jobs=jobs, resume=kw["resume"],
                client=client, report_path=report, on_scene=on_scene,
                progress_factory=progress_factory if jobs == 1 else None,
                manifest=str(manifest), collection_path=collection,
            )
    except GeosrError as exc:
        if rep is not None:
            rep.error(str(exc), 2)
        raise click.UsageError(str(exc)) from exc
    except KeyboardInterrupt:
        msg = (f"interrupted: the scenes' status is in {state}/ and their finished tiles are "
               "kept; rerun the same command with --resume to continue")
        if rep is not None:
            rep.error(msg, 130)
        click.echo(f"\n{msg}", err=True)
        raise click.exceptions.Exit(130) from None
    except OSError as exc:  # e.g. the state folder cannot be created
        msg = f"{exc}; pass --state-dir/--report in a writable folder"
        if rep is not None:
            rep.error(msg, 1)
        raise click.ClickException(msg) from exc
    c = result["counts"]
    if kw["as_json"]:
        click.echo(json.dumps(result, indent=2, default=str))
    if rep is not None:
        rep.done(counts=c)
    if not kw["quiet"]:
        click.echo(f"{c['done']} done, {c['skipped']} already done, {c['failed']} failed of "
                   f"{c['total']} scenes in {result['seconds']:.1f} s; report: "
                   f"{report or str(state) + '/report.json'}", err=True)
    if c["failed"]:
        failed = [s["id"] for s in result["scenes"] if s["status"] == "failed"]
        click.echo(f"failed scenes: {', '.join(failed)} (see the report; rerun with --resume)",
                   err=True)
        sys.exit(1)
