"""The ``geosr`` click group. Subcommands are imported lazily, and ``geosr --help`` lists
them from :data:`SHORT_HELP` without importing any, so that it stays fast.

The group is also rasterio's ``rio geosr`` (entry point group ``rasterio.rio_plugins``).
"""

from __future__ import annotations

import importlib

import click

from geosr.version import __version__

# command name -> (module, attribute)
_COMMANDS: dict[str, tuple[str, str]] = {
    "batch": ("geosr.cli.batch", "batch_cmd"),
    "bench": ("geosr.cli.bench", "bench_cmd"),
    "eval": ("geosr.cli.eval", "eval_cmd"),
    "dem-sr": ("geosr.cli.sr", "dem_sr"),
    "thermal-sr": ("geosr.cli.sr", "thermal_sr"),
    "sr": ("geosr.cli.sr", "sr"),
    "methods": ("geosr.cli.methods", "methods_cmd"),
    "network": ("geosr.cli.network", "network_cmd"),
}


#: command name -> the first line of its help (``tests/cli/test_conventions.py`` checks that
#: they agree)
SHORT_HELP: dict[str, str] = {
    "batch": "Super-resolve every scene of MANIFEST (CSV, JSON lines or a STAC ItemCollection).",
    "bench": "Benchmark methods: quality (RMSE, MAE, ratio to bicubic) against wall time per "
    "output megapixel and peak memory.",
    "eval": "Evaluate methods on HR references degraded by SCALE x SCALE average pooling.",
    "dem-sr": 'Super-resolve a DEM/DSM with an RGB orthophoto (method preset "dem").',
    "thermal-sr": 'Super-resolve a thermal band with an RGB image (method preset "thermal").',
    "sr": "Super-resolve any single-band raster with a guide, with any method (no preset).",
    "methods": "List the registered methods and their options with defaults.",
    "network": "Show what the network file PATH holds (written by --save-network).",
}


class LazyGroup(click.Group):
    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The commands with :data:`SHORT_HELP`, without importing their modules."""
        rows = [(name, SHORT_HELP[name]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in _COMMANDS:
            return None
        module, attr = _COMMANDS[cmd_name]
        return getattr(importlib.import_module(module), attr)

    def invoke(self, ctx: click.Context) -> object:
        """Ctrl-C exits 130 (128 + SIGINT, as shells report it) instead of click's 1; the
        commands that write files say first what they keep."""
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            click.echo("\ninterrupted", err=True)
            raise click.exceptions.Exit(130) from None



@click.group("geosr", cls=LazyGroup)
@click.version_option(__version__, prog_name="geosr")
def cli() -> None:
    """Guided super-resolution of rasters (DEM/DSM, thermal, depth) with an HR image guide.

    No training data: a small network is fitted to each input (MMSR, RobSelf) or a
    classical filter is applied. Run `geosr COMMAND --help` for a command's options.
    """
