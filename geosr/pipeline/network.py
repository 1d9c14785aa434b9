"""Network files: a fitted scene network saved for later runs (``--save-network``,
``--network``).

A batch over an archive of one sensor pair fits the same kind of network again and again.
A network fitted on one scene (``--mode scene`` or ``hybrid``) is a better start for the
next scene than random weights; ``benchmarks/modes/network_reuse.py`` measures how much
better. The file holds the weights and what they need to be applied again: the method,
its options, the scale and the guide's band count. Loading it checks these against the
run, and every mismatch is an error that names the fix. The network sees normalised
inputs (each scene's own statistics), so it carries over between scenes with different
value ranges.

The file is ``torch.save`` output that ``torch.load(weights_only=True)`` reads: a format
tag, the metadata as JSON text and the weights as one byte tensor (the bytes of
:func:`geosr.models.learned.dump_state`). It is written atomically.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

from geosr.errors import InputError
from geosr.models import get_method
from geosr.models.base import MethodOptions
from geosr.models.learned import LearnedOptions, load_state
from geosr.pipeline.plan import Plan
from geosr.raster.io import temp_path
from geosr.version import __version__

FORMAT = "geosr-network"
VERSION = 1


def _loop_option_names() -> set[str]:
    """Options of the optimisation loop: they do not change the network's shape."""

    return {f.name for f in dataclasses.fields(LearnedOptions)} - {
        f.name for f in dataclasses.fields(MethodOptions)}


#: options that neither shape the weights nor change what they compute: the filter's block
#: size (a speed knob), the displacement field's smoothness penalty and the translation
#: head's loss weight (loss terms), RobSelf's translator initialisation and weight decay
#: (they act before and during the fit only)
_NOT_NETWORK = {"block", "field_tv", "trans_weight", "translator_init", "weight_decay"}

#: network options added after network files were first written, with the value that the
#: network in an older file (one without the key) was built with
_ADDED_OPTIONS = {"source_dilation": 1, "extraction": "plain", "filter_reduction": 1,
                  "shared_head": None, "detrend": False}


def network_options(options: dict[str, Any]) -> dict[str, Any]:
    """The options that define the network (loop settings such as iterations removed)."""
    skip = _loop_option_names() | _NOT_NETWORK
    return {k: v for k, v in sorted(options.items()) if k not in skip}


def method_options(plan: Plan) -> dict[str, Any]:
    """Every option of the plan's method, defaults included (as JSON would give them)."""

    opts = dataclasses.asdict(get_method(plan.method, **plan.options).options)
    return json.loads(json.dumps(opts, default=str))


def save_network(
    path: str | os.PathLike[str], plan: Plan, state: bytes, summary: dict[str, Any] | None
) -> Path:
    """Write the scene network ``state`` of ``plan`` to ``path`` (atomically)."""
    import torch


    meta = {
        "geosr": __version__,
        "method": plan.method,
        "options": method_options(plan),
        "scale": plan.scale,
        "guide_channels": len(plan.guide_bands),
        "fitted_on": {"lr": plan.lr.path, "guide": plan.guide.path,
                      "crs": str(plan.grid.crs), "fit": summary},
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    blob = {"format": FORMAT, "version": VERSION,
            "meta": json.dumps(meta, default=str),
            "state": torch.frombuffer(bytearray(state), dtype=torch.uint8)}
    p = Path(path)
    tmp = temp_path(p, ".tmp")
    try:
        torch.save(blob, tmp)
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return p


def read_network(path: str | os.PathLike[str]) -> tuple[dict[str, Any], bytes]:
    """The metadata and weights (bytes) of a network file; :class:`InputError` if it is not one."""
    import torch

    p = Path(path)
    if not p.is_file():
        raise InputError(f"the network file {str(p)!r} does not exist; give a file written "
                         "by --save-network")
    try:
        blob = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(f"{str(p)!r} is not a geosr network file ({type(exc).__name__}); "
                         "give a file written by --save-network") from exc
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise InputError(f"{str(p)!r} is not a geosr network file; give a file written by "
                         "--save-network")
    if blob.get("version") != VERSION:
        raise InputError(f"{str(p)!r} is a version {blob.get('version')} network file; this "
                         f"geosr reads version {VERSION}: fit the network again with "
                         "--save-network")
    return json.loads(blob["meta"]), blob["state"].numpy().tobytes()


def load_network(path: str | os.PathLike[str], plan: Plan) -> bytes:
    """The weights of the network file at ``path``, checked against ``plan``: the same
    method, scale, guide band count and network options, and weights that fit the network
    the plan builds."""

    meta, state = read_network(path)
    where = f"the network file {str(path)!r}"
    if meta["method"] != plan.method:
        raise InputError(f"{where} holds a {meta['method']} network, but this run's method is "
                         f"{plan.method}: pass --method {meta['method']}, or fit a new network")
    if meta["scale"] != plan.scale:
        raise InputError(f"{where} was fitted at scale {meta['scale']}, but this run's scale is "
                         f"{plan.scale}: pass --scale {meta['scale']}, or fit a new network")
    channels = len(plan.guide_bands)
    if meta["guide_channels"] != channels:
        raise InputError(f"{where} was fitted with a {meta['guide_channels']}-band guide, but "
                         f"this run's guide has {channels}: choose the bands with "
                         "--guide-bands, or fit a new network")
    ours = network_options(method_options(plan))
    older = {k: v for k, v in _ADDED_OPTIONS.items() if k in ours and k not in meta["options"]}
    saved = network_options({**meta["options"], **older})
    if saved != ours:
        diff = ", ".join(f"{k}={saved.get(k)!r} (this run: {ours.get(k)!r})"
                         for k in sorted(set(saved) | set(ours)) if saved.get(k) != ours.get(k))
        raise InputError(f"{where} was fitted with other network options: {diff}; use the "
                         "same --preset and -O options, or fit a new network")
    model = get_method(plan.method, **plan.options).build_model(channels, plan.scale)
    try:
        model.load_state_dict(load_state(state))
    except RuntimeError as exc:  # weights of another geosr version's network
        first = str(exc).splitlines()[0]
        raise InputError(f"{where} does not fit the {plan.method} network of this geosr "
                         f"({first}); fit the network again with --save-network") from exc
    return state
