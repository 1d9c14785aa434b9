"""``geosr eval``: degrade HR references, run methods, report RMSE/MAE/time/memory."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
import cloup

from geosr.cli.common import configure_logging, require
from geosr.cli.options import (
    HELP_SETTINGS,
    eval_json_opt,
    evaluation_options,
    options_per_method,
    quiet_opt,
    report_dir_opt,
    report_note_opt,
    verbose_opt,
)
from geosr.errors import GeosrError
from geosr.evaluation.evaluate import center_crop, evaluate, format_table, load_pairs
from geosr.evaluation.misalign import Misalignment
from geosr.evaluation.report import write_report
from geosr.models.api import check_scale


@cloup.command("eval", context_settings=HELP_SETTINGS)
@click.argument("data", type=click.Path())
@cloup.option_group(
    "Data",
    click.option("--guide", type=click.Path(dir_okay=False), show_default="the pairs' own",
                 help="Guide image when DATA is a single HR file (e.g. an HR GeoTIFF; any path "
                 "GDAL opens: /vsizip/..., https://...)."),
    click.option("--pairs", "only", default="", show_default="all",
                 help="Comma-separated pair names to run."),
    click.option("--limit", type=int, show_default="all", help="Run only the first N pairs."),
    click.option("--crop", type=int, show_default="none: whole pairs",
                 help="Centre-crop every HR pair to CROP x CROP pixels first (a reduced "
                 "protocol for quick comparisons)."),
    click.option("--guide-noise", type=float, default=0.0,
                 help="Std of Gaussian noise added to the guide (guide units)."),
    click.option("--misalign", "misalign_spec", default=None, is_flag=False,
                 flag_value="default", metavar="SPEC", show_default="off",
                 help="Misalign the guide only: 'default' or e.g. "
                 "translation=6,rotation=2,perspective=0.02 (HR px, degrees, fraction of size)."),
    click.option("--misalign-seed", type=int, default=0),
)
@evaluation_options
@cloup.option_group(
    "Output",
    eval_json_opt,
    click.option("--snapshots", default="", show_default="none",
                 help="Also report RMSE after these steps, e.g. 100,250,500."),
    report_dir_opt,
    report_note_opt,
)
@cloup.option_group("Run control", verbose_opt, quiet_opt)
def eval_cmd(data, guide, methods, scale, iterations, preset, device, seed, method_option, sets,
             guide_noise, misalign_spec, misalign_seed, snapshots, only, limit, crop, json_path,
             report_dir, report_note, verbose, quiet) -> None:
    """Evaluate methods on HR references degraded by SCALE x SCALE average pooling.

    DATA is a dataset folder (target/ + guide/, depth/ + rgb/, *_nir + *_rgb files, or
    .npz pairs) or one HR raster with --guide. Prints a table of RMSE, MAE, ratio to
    bicubic, seconds and peak memory per pair and on average.
    """
    configure_logging(verbose, quiet)
    if report_dir is not None:
        require("matplotlib", "report", "an HTML report (--report)")
    try:
        check_scale(scale)
        names = [m.strip() for m in methods.split(",") if m.strip()]
        common = {"iterations": iterations, "preset": preset, "device": device, "seed": seed}
        opts = options_per_method(names, common, method_option, sets)
        pairs = load_pairs(data, guide)

        mis = Misalignment.parse(misalign_spec) if misalign_spec is not None else None
    except GeosrError as exc:
        raise click.BadParameter(str(exc)) from exc
    if only:
        keep = {s.strip().lower() for s in only.split(",")}
        pairs = [p for p in pairs if p.name.lower() in keep]
    if limit:
        pairs = pairs[:limit]
    if crop:

        pairs = [center_crop(p, crop) for p in pairs]
    steps = [int(s) for s in snapshots.split(",") if s.strip()]

    done: list[dict[str, Any]] = []

    def echo_row(row: dict[str, Any]) -> None:
        # Long benchmarks: keep what is finished on disk, so a stopped run loses nothing.
        done.append(row)
        if json_path is not None and str(json_path) != "-":
            json_path.write_text(json.dumps({"partial": True, "scale": scale, "rows": done},
                                            indent=2) + "\n")
        if not quiet:
            click.echo(f"  {row['pair']} {row['method']}: RMSE {row['rmse']:.4f} "
                       f"({row['seconds']:.1f} s)", err=True)

    try:
        result = evaluate(pairs, opts, scale, guide_noise=guide_noise, snapshot_steps=steps,
                          misalignment=mis, misalign_seed=misalign_seed, on_result=echo_row,
                          keep_outputs=report_dir is not None)
    except GeosrError as exc:
        raise click.ClickException(str(exc)) from exc
    result["data"] = str(data)
    result["crop"] = crop
    if report_dir is not None:

        outputs = result.pop("outputs")
        page = write_report(report_dir, {**result, "limit": limit}, outputs, note=report_note,
                            elevation=True if preset == "dem" else None)
        if not quiet:
            click.echo(f"wrote report {page}", err=True)
    if json_path is not None and str(json_path) == "-":
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    click.echo(format_table(result))
    if json_path is not None:
        json_path.write_text(json.dumps(result, indent=2) + "\n")
