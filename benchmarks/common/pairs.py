"""Shared by the benchmarks that fit one pair at a time outside ``geosr eval``
(``benchmarks/modes/crop_steps.py``, ``warm_start.py``, ``short_fits.py``,
``benchmarks/speed_and_memory/precision.py``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from geosr.cli.options import parse_option_value
from geosr.evaluation.evaluate import degrade
from geosr.normalize import BandStats, prepare_guide, prepare_lr


def prepared(pair: Any, scale: int):
    """A pair as ``geosr eval`` degrades and the API normalises it:
    ``(hr, lr, lr_norm, guide_norm, valid, lr_stats)``; ``lr_stats.invert`` maps back."""
    hr, lr = degrade(pair.target, scale)
    guide = pair.guide[:, : hr.shape[0], : hr.shape[1]]
    g = prepare_guide(guide, BandStats.from_array(guide))
    stats = BandStats.from_array(lr[None])
    x, valid = prepare_lr(lr[None], stats)
    return hr, lr, x, g, valid, stats


def method_options(items: list[str]) -> dict[str, Any]:
    """``--set OPTION=VALUE`` items, values parsed as ``geosr ... -O`` parses them."""
    return {k: parse_option_value(v) for k, _, v in (i.partition("=") for i in items)}


def emit(result: dict[str, Any], path: str | None) -> None:
    """Print the result as JSON, and write it to ``path`` when one is given."""
    text = json.dumps(result, indent=2)
    print(text)
    if path:
        Path(path).write_text(text + "\n")
