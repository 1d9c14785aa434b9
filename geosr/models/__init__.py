"""Method registry: an explicit, typed table (no import-time scanning)."""

from __future__ import annotations

from typing import Any

from geosr.errors import OptionError
from geosr.models.base import Method


def _registry() -> dict[str, type[Method]]:
    # Imported lazily so that ``import geosr`` (and ``geosr --help``) stays fast.
    from geosr.models.classical import Bicubic, GuidedFilter
    from geosr.models.cmsr import CMSR
    from geosr.models.mmsr import MMSR
    from geosr.models.p2p import P2P
    from geosr.models.resample import Cubic, Lanczos
    from geosr.models.robself import RobSelfDe, RobSelfRe

    return {cls.name: cls for cls in (Bicubic, Lanczos, Cubic, GuidedFilter, P2P, CMSR, MMSR, RobSelfRe,
                                      RobSelfDe)}


def list_methods() -> list[str]:
    """Names of all registered methods."""
    return sorted(_registry())


def get_method_class(name: str) -> type[Method]:
    reg = _registry()
    try:
        return reg[name]
    except KeyError:
        raise OptionError(
            f"unknown method {name!r}; choose one of: {', '.join(sorted(reg))}"
        ) from None


def get_method(name: str, **options: Any) -> Method:
    """Build the method ``name`` with keyword ``options`` (unknown options are errors)."""
    return get_method_class(name)(**options)


__all__ = ["Method", "get_method", "get_method_class", "list_methods"]
