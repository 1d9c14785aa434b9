"""Shared click options for the commands (one decorator per option), in the help sections
of :data:`SECTIONS` (cloup option groups).

Conventions shared by every command: method options are ``-O KEY=VALUE`` (to every method
that accepts KEY) or ``--set METHOD.KEY=VALUE`` (to one method); ``--json`` alone prints
JSON on stdout and ``--json PATH`` writes it to a file (commands without a positional
argument); ``--bidx`` is rio's name for ``--lr-band``; every default is shown in ``--help``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import cloup

from geosr.errors import OptionError
from geosr.models.api import check_scale
from geosr.pipeline.config import GUIDE_RESAMPLING, method_options_for

F = Callable[..., Any]


def _parse_scale(ctx: click.Context, param: click.Parameter, value: Any) -> int | None:
    if value is None:
        return None

    try:
        num: Any = float(value) if any(c in str(value) for c in ".eE") else int(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a number; pass an integer factor >= 2, e.g. --scale 4"
        ) from None
    try:
        return check_scale(num)
    except OptionError as exc:
        raise click.BadParameter(str(exc).replace("scale=4", "--scale 4")) from None


def _parse_bands(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    try:
        bands = tuple(int(b) for b in value.replace(" ", "").split(",") if b)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a list of band numbers; pass e.g. --guide-bands 1,2,3"
        ) from None
    if not bands or min(bands) < 1:
        raise click.BadParameter(
            f"{value!r}: band numbers are 1-based; pass e.g. --guide-bands 1,2,3"
        )
    return bands


def _parse_key_values(
    ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
) -> tuple[tuple[str, str], ...]:
    out = []
    for item in value:
        key, sep, val = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE; pass e.g. {param.opts[0]} KEY=VALUE")
        out.append((key.strip(), val.strip()))
    return tuple(out)


def parse_option_value(text: str) -> Any:
    """``-O key=value`` values: JSON literals (numbers, true/false, null) or plain strings."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def options_for_method(method: str, method_option: tuple[tuple[str, str], ...],
                       sets: tuple[tuple[str, str, str], ...]) -> dict[str, Any]:
    """The options of a run of one method: ``-O KEY=VALUE`` and ``--set METHOD.KEY=VALUE``
    (METHOD must be the run's method)."""
    out = {k: parse_option_value(v) for k, v in method_option}
    for meth, key, value in sets:
        if meth != method:
            raise click.BadParameter(
                f"--set {meth}.{key}={value} names {meth!r} but the method is {method!r}; "
                f"write --set {method}.{key}={value} or -O {key}={value}", param_hint="--set")
        out[key] = parse_option_value(value)
    return out


def options_per_method(
    names: list[str], common: dict[str, Any], method_option: tuple[tuple[str, str], ...],
    sets: tuple[tuple[str, str, str], ...],
) -> dict[str, dict[str, Any]]:
    """Options per method of a comparison: the ``common`` flat settings and ``-O KEY=VALUE``
    where a method accepts them (``-O`` must fit at least one), ``--set METHOD.KEY=VALUE``
    for METHOD (one of ``names``)."""
    given = {k: v for k, v in common.items() if v is not None}
    out: dict[str, dict[str, Any]] = {name: method_options_for(name, given) for name in names}
    for key, value in method_option:
        takers = [n for n in names if method_options_for(n, {key: None})]
        if not takers:
            raise click.BadParameter(
                f"-O {key}={value}: none of the methods {', '.join(names)} has an option "
                f"{key!r} (`geosr methods` lists them)", param_hint="-O")
        for n in takers:
            out[n][key] = parse_option_value(value)
    for meth, key, value in sets:
        if meth not in out:
            raise click.BadParameter(
                f"--set {meth}.{key}={value}: {meth!r} is not among the methods run "
                f"({', '.join(names)}); add it to -m or name one of them", param_hint="--set")
        out[meth][key] = parse_option_value(value)
    return out


def _stack(*decorators: F) -> F:
    def apply(f: F) -> F:
        for d in reversed(decorators):
            f = d(f)
        return f

    return apply


class GeosrOption(click.Option):
    """A click option whose help can say ``[required unless --example]``."""

    def __init__(self, *args: Any, required_unless: str | None = None, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.required_unless = required_unless

    def get_help_extra(self, ctx: click.Context) -> Any:
        extra = super().get_help_extra(ctx)
        if self.required_unless:
            extra["required"] = f"required unless {self.required_unless}"
        return extra


def _parse_sets(
    ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
) -> tuple[tuple[str, str, str], ...]:
    """``--set METHOD.KEY=VALUE`` -> ``(METHOD, KEY, VALUE)`` triples."""
    out = []
    for item in value:
        key, sep, val = item.partition("=")
        meth, dot, opt = key.strip().partition(".")
        if not sep or not dot or not meth or not opt:
            raise click.BadParameter(
                f"{item!r} is not METHOD.OPTION=VALUE; pass e.g. --set mmsr.iterations=500",
                ctx=ctx, param=param)
        out.append((meth, opt.strip(), val.strip()))
    return tuple(out)


# -- inputs and output -------------------------------------------------------------------
lr_opt = click.option(
    "--lr", "lr", type=click.Path(dir_okay=False, readable=False), default=None,
    cls=GeosrOption, required_unless="--example",
    help="Low-resolution raster to super-resolve (any GDAL format with a CRS).",
)
guide_opt = click.option(
    "--guide", "guide", type=click.Path(dir_okay=False, readable=False), default=None,
    cls=GeosrOption, required_unless="--example",
    help="High-resolution guide raster (RGB or multispectral); any CRS and resolution.",
)
scale_opt = click.option(
    "--scale", type=str, callback=_parse_scale, default=None, metavar="INTEGER",
    cls=GeosrOption, required_unless="--example",
    help="Integer factor: the output pixels are SCALE times smaller than the LR pixels "
    "(--example: 4 unless given).",
)
output_opt = click.option(
    "-o", "--output", "output", type=click.Path(dir_okay=False, readable=False), required=True,
    help="Output GeoTIFF (float32, the LR's CRS, a COG unless --no-cog).",
)
lr_band_opt = click.option(
    "--lr-band", "--bidx", "lr_band", type=click.IntRange(min=1), default=None,
    show_default="1",
    help="Band of a multiband LR to super-resolve (1-based; --bidx as in rio).",
)
guide_bands_opt = click.option(
    "--guide-bands", callback=_parse_bands, default=None, metavar="B1,B2,...",
    show_default="all but alpha",
    help="Guide bands to use (1-based, e.g. 1,2,3).",
)
nodata_opt = click.option(
    "--nodata", type=float, default=None, show_default="the LR's",
    help="LR nodata value (overrides the file's); also the output's nodata value.",
)
resampling_opt = click.option(
    "--resampling", type=click.Choice(["auto", *GUIDE_RESAMPLING]), default="auto",
    show_default=True,
    help="How the guide is warped onto the output grid (GDAL's names, as gdalwarp -r); "
    "auto: average where the guide's pixels are finer than the output's, else bilinear.",
)
example_opt = click.option(
    "--example", is_flag=True,
    help="Run on the built-in example scene (a generated 2 m DSM and 0.5 m RGB "
    "orthophoto, UTM 33N) instead of --lr/--guide; --scale defaults to 4.",
)

# -- method ------------------------------------------------------------------------------
method_opt = click.option(
    "--method", default="mmsr", show_default=True,
    help="Method name (see `geosr methods`).",
)
iterations_opt = click.option(
    "--iterations", type=click.IntRange(min=1), default=None, show_default="the method's",
    help="Optimisation steps per tile (learned methods only; `geosr methods` lists each "
    "method's default).",
)
device_opt = click.option(
    "--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None, show_default="auto",
    help="Torch device (learned methods only).",
)
seed_opt = click.option(
    "--seed", type=int, default=None, show_default="none: not seeded",
    help="Random seed (learned methods only).",
)
method_option_opt = click.option(
    "-O", "--method-option", "method_option", multiple=True, callback=_parse_key_values,
    metavar="KEY=VALUE",
    help="A method option, to every method given that accepts it, e.g. -O eps=0.001 "
    "(repeatable; `geosr methods` lists them).",
)
set_opt = click.option(
    "--set", "sets", multiple=True, callback=_parse_sets, metavar="METHOD.OPTION=VALUE",
    help="A method option for one method, e.g. --set mmsr.iterations=500 (repeatable).",
)

# -- mode: a network per tile, or one for the scene ----------------------------------------
mode_opt = click.option(
    "--mode", type=click.Choice(["auto", "tile", "scene", "hybrid"]), default="auto",
    show_default=True,
    help="Learned methods: tile fits a network per tile (the papers' protocol); scene fits "
    "one network on random crops of the whole scene and applies it to every tile (much "
    "faster on large scenes); hybrid fine-tunes that network per tile; auto picks tile or "
    "scene and the steps so that the run fits --budget, from a few steps timed on this "
    "machine (cached). --dry-run shows the choice and the estimated time per stage.",
)
budget_opt = click.option(
    "--budget", default=None, metavar="TIME",
    show_default="5m on a CPU, 10m on a GPU",
    help="Time --mode auto plans the run to take, e.g. 10m, 90s, 1h.",
)
scene_iterations_opt = click.option(
    "--scene-iterations", type=click.IntRange(min=1), default=None,
    show_default="--iterations",
    help="Steps of the scene network's fit (--mode scene/hybrid).",
)
scene_crop_opt = click.option(
    "--scene-crop", type=click.IntRange(min=4), default=48, show_default=True,
    help="Side of the random scene crops the scene network is fitted on, in LR pixels.",
)
hybrid_iterations_opt = click.option(
    "--hybrid-iterations", type=click.IntRange(min=1), default=100, show_default=True,
    help="Per-tile fine-tune steps from the scene network (--mode hybrid).",
)
back_project_opt = click.option(
    "--back-project", type=click.IntRange(min=0), default=None, metavar="N",
    show_default="10 for MMSR and RobSelf",
    help="Back-project each tile's output onto its LR, N iterations, so that it "
    "average-pools back to the LR (0: off, the papers' output); in scene/hybrid modes also "
    "the scene network's output.",
)
prefit_opt = click.option(
    "--prefit", type=click.IntRange(min=0), default=None, metavar="N", show_default="0",
    help="Learned methods fitted per tile: first fit N steps on the tile's own coarser copy "
    "(the LR pooled by the scale, the LR as the answer), each ~1/scale^2 of a step. Short "
    "fits gain most: e.g. --prefit 300 --iterations 95 (docs/benchmarks/modes.md, "
    "'Pre-fitting on the input's coarser copy'); 0: off, the papers' start.",
)
network_opt = click.option(
    "--network", type=click.Path(dir_okay=False), default=None, metavar="PATH.pt",
    show_default="none: fit one",
    help="Start from a network saved by --save-network (e.g. fitted on another scene of the "
    "same sensors) instead of fitting the scene network: --mode scene applies it as is, "
    "--mode hybrid fine-tunes it per tile; with --scene-iterations it is first fitted further "
    "on this scene.",
)
save_network_opt = click.option(
    "--save-network", type=click.Path(dir_okay=False), default=None, metavar="PATH.pt",
    show_default="off",
    help="Also write the scene network (--mode scene/hybrid) to this file, for --network in "
    "later runs.",
)

# -- tiling ------------------------------------------------------------------------------
tile_size_opt = click.option(
    "--tile-size", type=click.IntRange(min=2), default=None,
    show_default="512/scale for classical, 128 for learned methods",
    help="Tile size in LR pixels.",
)
overlap_opt = click.option(
    "--overlap", type=click.IntRange(min=0), default=None,
    show_default="max(method halo, 8)",
    help="Overlap of neighbouring tiles in LR pixels, blended with cosine ramps.",
)
workers_opt = click.option(
    "--workers", type=click.IntRange(min=1), default=None,
    show_default="CPUs/2, 1..4, for classical methods; 1 for learned and per cluster worker",
    help="Tiles processed at once by this process; with --cluster-workers, threads per "
    "worker process.",
)

# -- execution: resume, dask.distributed, progress -------------------------------------------
resume_opt = click.option(
    "--resume", is_flag=True,
    help="Continue an interrupted run: reuse the intact tiles of OUTPUT.tiles/, keep them if "
    "this run fails too; an existing output means the job is done.",
)
scheduler_opt = click.option(
    "--scheduler", metavar="ADDRESS", default=None, show_default="none: local threads",
    help="Send the tile tasks to a running dask.distributed scheduler, e.g. "
    "tcp://host:8786 (inputs and output on a filesystem the workers share).",
)
cluster_workers_opt = click.option(
    "--cluster-workers", type=click.IntRange(min=1), default=None, metavar="N",
    show_default="none: local threads",
    help="Start a local dask.distributed cluster of N worker processes for the tile tasks "
    '(needs pip install "geosr[cluster]", as --scheduler does).',
)
progress_opt = click.option(
    "--progress", "progress_mode", type=click.Choice(["auto", "bar", "json", "none"]),
    default="auto", show_default=True,
    help="Progress on stderr: a bar (auto: unless -q), NDJSON events (json; for GUIs and "
    "scripts), or nothing.",
)

# -- output writing ----------------------------------------------------------------------
creation_opt = click.option(
    "--co", "--creation-option", "creation_options", multiple=True,
    callback=_parse_key_values, metavar="KEY=VALUE",
    help="GDAL creation option of the output's driver, checked by GDAL before the run: "
    "the COG driver's (e.g. --co LEVEL=9, --co COMPRESS=ZSTD), or GTiff's with --no-cog "
    "(e.g. --co ZLEVEL=9) (repeatable).",
)
cog_opt = click.option(
    "--cog/--no-cog", default=True, show_default=True,
    help="Write a Cloud-Optimised GeoTIFF (with overviews) or a plain tiled GeoTIFF.",
)
overwrite_opt = click.option(
    "--overwrite", is_flag=True, help="Replace the output if it exists."
)
stac_opt = click.option(
    "--stac/--no-stac", default=False, show_default=True,
    help="Write a STAC item (OUTPUT_STEM.stac.json: footprint, proj:, lineage) next to the "
    'output (needs pip install "geosr[stac]").',
)
guard_opt = click.option(
    "--guard", type=click.Choice(["on", "off"]), default="on", show_default=True,
    help="First run the method on the input's own coarser copy (the LR pooled by the scale, "
    "the LR as the answer) and compare it with GDAL's lanczos there; then write what did best "
    "there: the method, lanczos, or the blend w*method + (1-w)*lanczos with the least error "
    "(only where it beats both by 2%), and say so. Resamplers skip it. off: keep the "
    "method's output whatever the self-check says.",
)
keep_tiles_opt = click.option(
    "--keep-tiles", is_flag=True,
    help="Keep the tile store OUTPUT.tiles/ (a rerun of the same job reuses it).",
)
dry_run_opt = click.option(
    "--dry-run", is_flag=True,
    help="Print the plan (output grid, CRS, tiles, estimated work) as JSON and exit.",
)
json_opt = click.option(
    "--json", "as_json", is_flag=False, flag_value="-", default=None, metavar="[PATH]",
    type=click.Path(dir_okay=False, allow_dash=True), show_default="off",
    help="The JSON summary (timing, tiles): alone (or -) on stdout, with PATH to that file.",
)
json_switch_opt = click.option(
    "--json", "as_json", is_flag=True, help="Print a JSON summary on stdout."
)
quicklook_opt = click.option(
    "--quicklook", type=click.Path(dir_okay=False, readable=False), default=None,
    metavar="PATH.png", show_default="off",
    help="Also write a PNG quicklook: LR, guide and output side by side at the same extent "
    '(from decimated reads, cheap on large rasters; needs pip install "geosr[report]").',
)
verbose_opt = click.option("-v", "--verbose", count=True, show_default=False,
                           help="More log messages (repeatable).")
quiet_opt = click.option("-q", "--quiet", count=True, show_default=False,
                         help="Fewer messages, no progress bar.")


#: context settings of every command: defaults shown in ``--help``, a wider help page
HELP_SETTINGS: dict[str, Any] = {"show_default": True, "max_content_width": 100}

#: the help sections of the super-resolution commands (cloup option groups)
SECTIONS = ("Inputs and output", "Method", "Mode and budget", "Tiling", "Output format",
            "Run control")


def _sections(groups: dict[str, tuple[F, ...]]) -> F:
    """Decorator: the options of ``groups`` under their section titles, in order."""
    assert set(groups) <= set(SECTIONS), set(groups) - set(SECTIONS)
    return _stack(*(cloup.option_group(title, *opts) for title, opts in groups.items()))


def common_options(f: F) -> F:
    """All options shared by ``dem-sr``, ``thermal-sr`` and ``sr``, in help sections."""
    return _sections({
        "Inputs and output": (lr_opt, guide_opt, scale_opt, output_opt, example_opt,
                              lr_band_opt, guide_bands_opt, nodata_opt, resampling_opt),
        "Method": (method_opt, iterations_opt, device_opt, seed_opt, method_option_opt,
                   set_opt),
        "Mode and budget": (mode_opt, budget_opt, guard_opt, scene_iterations_opt,
                            scene_crop_opt, hybrid_iterations_opt, back_project_opt,
                            prefit_opt, network_opt, save_network_opt),
        "Tiling": (tile_size_opt, overlap_opt, workers_opt),
        "Output format": (cog_opt, creation_opt, overwrite_opt, stac_opt, quicklook_opt,
                          keep_tiles_opt),
        "Run control": (dry_run_opt, json_opt, progress_opt, resume_opt, scheduler_opt,
                        cluster_workers_opt, verbose_opt, quiet_opt),
    })(f)


def batch_options(f: F) -> F:
    """The options of ``sr`` that ``geosr batch`` takes as defaults for every scene (the
    per-scene inputs and output come from the manifest), in the same help sections."""
    return _sections({
        "Inputs and output": (scale_opt, lr_band_opt, guide_bands_opt, nodata_opt,
                              resampling_opt),
        "Method": (method_opt, iterations_opt, device_opt, seed_opt, method_option_opt,
                   set_opt),
        "Mode and budget": (mode_opt, budget_opt, guard_opt, scene_iterations_opt,
                            scene_crop_opt, hybrid_iterations_opt, back_project_opt,
                            prefit_opt, network_opt),
        "Tiling": (tile_size_opt, overlap_opt, workers_opt),
        "Output format": (
            cog_opt, creation_opt, overwrite_opt,
            click.option("--stac/--no-stac", default=True, show_default=True,
                         help="Write a STAC item next to every output (needs "
                         'pip install "geosr[stac]").'),
            keep_tiles_opt),
        "Run control": (json_switch_opt, progress_opt, resume_opt, scheduler_opt,
                        cluster_workers_opt, verbose_opt, quiet_opt),
    })(f)


#: ``--report DIR`` and ``--report-note`` of ``geosr eval`` and ``geosr bench``
report_dir_opt = click.option(
    "--report", "report_dir", type=click.Path(file_okay=False, path_type=Path),
    show_default="off", help="Also write an HTML report (figures embedded) to "
    'DIR/index.html (needs pip install "geosr[report]").')
report_note_opt = click.option(
    "--report-note", show_default="none", help="A highlighted line on top of the report, "
    "e.g. to say that the settings are reduced.")
#: ``--json`` of ``geosr eval`` and ``geosr bench``: a file, or stdout without a value
eval_json_opt = click.option(
    "--json", "json_path", is_flag=False, flag_value="-", default=None, metavar="[PATH]",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path), show_default="off",
    help="The full result as JSON: alone (or -) on stdout instead of the table, with PATH to "
    "that file (kept up to date during the run).",
)


def evaluation_options(f: F) -> F:
    """Methods and their settings, shared by ``geosr eval`` and ``geosr bench``."""
    return cloup.option_group(
        "Method",
        click.option("--methods", "-m", default="bicubic,guided-filter,mmsr", show_default=True,
                     help="Comma-separated methods (bicubic and lanczos always run as "
                     "yardsticks)."),
        click.option("--scale", type=int, default=4, show_default=True),
        click.option("--iterations", type=int, show_default="each method's",
                     help="Optimisation steps of learned methods."),
        click.option("--preset", show_default="each method's",
                     help="Neighbourhood preset of learned methods (depth, dem, thermal)."),
        click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]),
                     show_default="auto", help="Torch device."),
        click.option("--seed", type=int, show_default="none: not seeded",
                     help="Seed of learned methods."),
        method_option_opt,
        set_opt,
    )(f)
