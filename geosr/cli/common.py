"""Helpers shared by the commands."""

from __future__ import annotations

import logging

import click

from geosr.errors import MissingExtraError, require_extra
from geosr.pipeline.config import is_deterministic


def configure_logging(verbose: int, quiet: int) -> None:
    level = max(10, 30 - 10 * (verbose - quiet))
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("geosr").setLevel(level)


def wants_gpu(method: str, device: str | None) -> bool:
    """Whether the tile tasks of ``method`` may run on a GPU (learned, device not cpu)."""
    return not is_deterministic(method) and device != "cpu"


def require(module: str, extra: str, feature: str) -> None:
    """Exit 1, before any work, naming ``pip install "geosr[EXTRA]"`` when ``module`` (of
    the packaging extra ``extra``) that ``feature`` needs is not installed."""
    try:
        require_extra(module, extra, feature)
    except MissingExtraError as exc:
        raise click.ClickException(str(exc)) from exc
