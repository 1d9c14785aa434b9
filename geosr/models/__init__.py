"""Method registry: an explicit, typed table (no import-time scanning)."""

from __future__ import annotations

import importlib
from typing import Any

from geosr.errors import OptionError
from geosr.models.base import Method

#: method name -> (module, class); a method's module (and torch, for the learned ones) is
#: imported only when that method is asked for, so that ``geosr --help`` stays fast and a
#: classical run never imports torch
_METHODS: dict[str, tuple[str, str]] = {
    "bicubic": ("geosr.models.classical", "Bicubic"),
    "lanczos": ("geosr.models.resample", "Lanczos"),
    "cubic": ("geosr.models.resample", "Cubic"),
    "guided-filter": ("geosr.models.classical", "GuidedFilter"),
    "p2p": ("geosr.models.p2p", "P2P"),
    "cmsr": ("geosr.models.cmsr", "CMSR"),
    "mmsr": ("geosr.models.mmsr", "MMSR"),
    "robself-re": ("geosr.models.robself", "RobSelfRe"),
    "robself-de": ("geosr.models.robself", "RobSelfDe"),
}


def _load(name: str) -> type[Method]:
    module, attr = _METHODS[name]
    cls: type[Method] = getattr(importlib.import_module(module), attr)
    return cls


def list_methods() -> list[str]:
    """Names of all registered methods."""
    return sorted(_METHODS)


def get_method_class(name: str) -> type[Method]:
    if name not in _METHODS:
        raise OptionError(
            f"unknown method {name!r}; choose one of: {', '.join(sorted(_METHODS))}"
        )
    return _load(name)


def get_method(name: str, **options: Any) -> Method:
    """Build the method ``name`` with keyword ``options`` (unknown options are errors)."""
    return get_method_class(name)(**options)


__all__ = ["Method", "get_method", "get_method_class", "list_methods"]
