"""Helpers shared by the commands."""

from __future__ import annotations

import logging
from typing import Any

import click

from geosr.pipeline.config import is_deterministic, method_options_for


def configure_logging(verbose: int, quiet: int) -> None:
    level = max(10, 30 - 10 * (verbose - quiet))
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("geosr").setLevel(level)



def wants_gpu(method: str, device: str | None) -> bool:
    """Whether the tile tasks of ``method`` may run on a GPU (learned, device not cpu)."""
    return not is_deterministic(method) and device != "cpu"


def parse_set_value(text: str) -> Any:
    """``--set METHOD.OPTION=VALUE`` values: int, float, none/true/false, or a string."""
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return {"none": None, "true": True, "false": False}.get(text.lower(), text)



def method_options(
    names: list[str], common: dict[str, Any], sets: tuple[str, ...]
) -> dict[str, dict[str, Any]]:
    """Options per method: ``common`` ones where the method accepts them, plus ``--set``."""
    given = {k: v for k, v in common.items() if v is not None}
    out: dict[str, dict[str, Any]] = {name: method_options_for(name, given) for name in names}
    for item in sets:
        key, sep, value = item.partition("=")
        meth, dot, opt = key.partition(".")
        if not sep or not dot or meth not in out:
            raise click.BadParameter(
                f"{item!r}: expected METHOD.OPTION=VALUE with METHOD one of {names}, "
                "e.g. --set mmsr.n=7", param_hint="--set")
        out[meth][opt] = parse_set_value(value)
    return out
