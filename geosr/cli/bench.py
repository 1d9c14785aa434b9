"""``geosr bench``: RMSE/MAE/ratio to bicubic against seconds per output megapixel and peak
memory, per method (and pipeline mode), on a folder of pairs or a georeferenced scene."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
import cloup

from geosr.cli.common import configure_logging, require
from geosr.cli.options import (
    HELP_SETTINGS,
    GeosrOption,
    eval_json_opt,
    evaluation_options,
    options_per_method,
    overlap_opt,
    quiet_opt,
    report_dir_opt,
    report_note_opt,
    tile_size_opt,
    verbose_opt,
    workers_opt,
)
from geosr.errors import GeosrError
from geosr.evaluation import bench
from geosr.evaluation.evaluate import center_crop, load_pairs
from geosr.evaluation.report import write_report
from geosr.models.api import check_scale
from geosr.pipeline.config import TilingConfig

_TIF = (".tif", ".tiff")


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    tmp.replace(path)


def _check_png(path: Path | None, option: str) -> None:
    if path is None:
        return
    if path.suffix.lower() != ".png":
        raise click.BadParameter(f"{str(path)!r} must be a .png file, e.g. {option} bench.png",
                                 param_hint=option)
    if not path.parent.is_dir():
        raise click.BadParameter(f"the folder {str(path.parent)!r} does not exist; create it "
                                 "first", param_hint=option)


@cloup.command("bench", context_settings=HELP_SETTINGS)
@click.argument("data", type=click.Path(exists=True, path_type=Path))
@cloup.option_group(
    "Data",
    click.option("--guide", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                 cls=GeosrOption, required_unless="DATA is a folder of pairs",
                 help="Guide raster when DATA is an HR reference GeoTIFF (e.g. an orthophoto "
                 "for a DSM)."),
    click.option("--crop", type=int, show_default="none: whole pairs",
                 help="Folder of pairs: centre-crop every HR pair to CROP x CROP pixels first "
                 "(a reduced protocol for quick comparisons)."),
    click.option("--limit", type=int, show_default="all",
                 help="Folder of pairs: run only the first N pairs."),
)
@evaluation_options
@cloup.option_group(
    "Mode and tiling (a GeoTIFF scene)",
    click.option("--modes", default=None, metavar="MODE[,MODE]", show_default="tile",
                 help="Pipeline modes to run a GeoTIFF scene in: tile, scene, hybrid. Scene "
                 "and hybrid apply to learned methods only."),
    click.option("--scene-iterations", type=click.IntRange(min=1),
                 show_default="the method's --iterations",
                 help="Steps of the scene network's fit (scene/hybrid modes)."),
    click.option("--hybrid-iterations", type=click.IntRange(min=1), show_default="100",
                 help="Per-tile fine-tune steps of the hybrid mode."),
    tile_size_opt, overlap_opt, workers_opt,
    click.option("--workdir", type=click.Path(file_okay=False, path_type=Path),
                 show_default="a temporary folder, removed",
                 help="GeoTIFF scene: keep the pooled LR and the outputs in this folder."),
)
@cloup.option_group(
    "Output",
    eval_json_opt,
    click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path),
                 metavar="PATH.png", show_default="off",
                 help="Plot RMSE against seconds per output megapixel (log; needs "
                 'pip install "geosr[report]").'),
    report_dir_opt,
    report_note_opt,
)
@cloup.option_group("Run control", verbose_opt, quiet_opt)
def bench_cmd(data, guide, crop, limit, methods, scale, iterations, preset, device, seed,
              method_option, sets, modes, scene_iterations, hybrid_iterations, tile_size,
              overlap, workers, workdir, json_path, plot_path, report_dir, report_note,
              verbose, quiet) -> None:
    """Benchmark methods: quality (RMSE, MAE, ratio to bicubic) against wall time per output
    megapixel and peak memory.

    DATA is a folder of pairs (the layouts of `geosr eval`: the HR target is pooled SCALE x
    SCALE, super-resolved whole with the guide and scored), or an HR reference GeoTIFF
    (e.g. a DSM) with --guide: it is average-pooled SCALE x into an LR GeoTIFF and
    super-resolved back through the tiled pipeline (as `geosr dem-sr` does) for each
    method and --modes, and each output is scored against the reference where both are
    valid. Prints a table; --json, --plot and --report keep the results.
    """
    configure_logging(verbose, quiet)

    scene = data.is_file() and data.suffix.lower() in _TIF
    if scene and guide is None:
        raise click.UsageError(
            f"{data} is a GeoTIFF: a scene benchmark needs its guide; pass --guide GUIDE.tif "
            "(e.g. the orthophoto of a DSM), or give a folder of pairs")
    if not scene:
        wrong = [o for o, v in (("--modes", modes), ("--scene-iterations", scene_iterations),
                                ("--hybrid-iterations", hybrid_iterations),
                                ("--tile-size", tile_size),
                                ("--overlap", overlap), ("--workers", workers),
                                ("--workdir", workdir)) if v is not None]
        if wrong:
            raise click.UsageError(
                f"{', '.join(wrong)} apply to a GeoTIFF scene (DATA an HR .tif with --guide); "
                "pairs are super-resolved whole, without tiles: drop them")
    elif crop is not None or limit is not None:
        raise click.UsageError("--crop and --limit apply to a folder of pairs; for a GeoTIFF "
                               "scene, crop the reference first (gdal_translate -srcwin ...)")
    _check_png(plot_path, "--plot")
    if plot_path is not None or report_dir is not None:
        require("matplotlib", "report", "a figure (--plot, --report)")
    try:
        check_scale(scale)
        names = [m.strip() for m in methods.split(",") if m.strip()]
        common = {"iterations": iterations, "preset": preset, "device": device, "seed": seed}
        opts = options_per_method(names, common, method_option, sets)
        if scene:

            mode_list = bench.check_modes(modes or "tile")
            tiling = TilingConfig(tile_size=tile_size, overlap=overlap, workers=workers)
            bench.scene_jobs({"bicubic": {}, **opts}, mode_list)  # fails early, exit 2
            scene_opts = {k: v for k, v in (("iterations", scene_iterations),
                                            ("hybrid_iterations", hybrid_iterations))
                          if v is not None}
            for m in mode_list:
                if m != "tile":
                    bench.scene_config(m, scene_opts)
        else:

            pairs = load_pairs(data, guide)
            if limit:
                pairs = pairs[:limit]
            if crop:
                pairs = [center_crop(p, crop) for p in pairs]
    except GeosrError as exc:
        raise click.BadParameter(str(exc)) from exc

    to_file = json_path is not None and str(json_path) != "-"
    rows: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []

    def save_partial() -> None:
        # Long benchmarks: keep what is finished on disk, so a stopped run loses nothing.
        if to_file:
            _write_json(json_path, {"partial": True, "data": str(data), "scale": scale,
                                    "rows": rows, "records": records})

    def on_row(row: dict[str, Any]) -> None:
        rows.append(row)
        save_partial()
        if not quiet:
            click.echo(f"  {row['pair']} {row['method']}: RMSE {row['rmse']:.4f} "
                       f"({row['seconds']:.2f} s)", err=True)

    def on_record(rec: dict[str, Any]) -> None:
        records.append(rec)
        save_partial()
        if not quiet:
            click.echo(f"  {rec['method']} ({rec['mode']}): RMSE {rec['rmse']:.4g}, "
                       f"{rec['seconds']:.1f} s, {rec['seconds_per_megapixel']:.3g} s/Mpx",
                       err=True)

    try:
        if scene:
            result = bench.bench_scene(data, guide, opts, scale, modes=mode_list, tiling=tiling,
                                       scene_options=scene_opts, workdir=workdir,
                                       on_record=on_record)
        else:
            result = bench.bench_pairs(pairs, opts, scale, dataset=data.name, on_result=on_row,
                                       keep_outputs=report_dir is not None)
            result.update(data=str(data), crop=crop, limit=limit)
    except GeosrError as exc:
        raise click.ClickException(str(exc)) from exc
    outputs = result.pop("outputs", None)
    title = f"{result.get('dataset') or data.name}, x{scale}"
    if plot_path is not None:
        bench.write_plot(plot_path, result["records"], title=f"RMSE against time: {title}")
        if not quiet:
            click.echo(f"wrote plot {plot_path}", err=True)
    if report_dir is not None:

        page = write_report(
            report_dir, None if scene else result, outputs, bench=result["records"],
            bench_settings=bench.settings_lines(result), note=report_note,
            title=f"geosr benchmark report: {title}",
            elevation=True if preset == "dem" else None)
        if scene:
            _write_json(report_dir / "result.json", result)
        if not quiet:
            click.echo(f"wrote report {page}", err=True)
    if json_path is not None and not to_file:
        json.dump(result, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
        return
    click.echo(bench.format_table(result))
    if to_file:
        _write_json(json_path, result)
