"""Exceptions raised by geosr.

Every message says what is wrong *and* what to do about it. Subclasses also
inherit a builtin so that callers catching ``ValueError``/``OSError`` keep working.
"""

from __future__ import annotations

from typing import Any


class GeosrError(Exception):
    """Root of all geosr errors."""


class InputError(GeosrError, ValueError):
    """An input array or raster is unusable as given (shape, values, bands)."""


class OptionError(GeosrError, ValueError):
    """An unknown method or option, or an option value out of range."""


class GridError(GeosrError, ValueError):
    """The rasters cannot be put on one output grid (CRS, footprints, resolution)."""


class RasterIOError(GeosrError, OSError):
    """A raster could not be read or the output could not be written."""


class OutputBusyError(InputError):
    """Another geosr run holds the output's lock (it is writing the same output)."""


class MissingExtraError(GeosrError, ImportError):
    """An optional dependency is not installed; the message names the packaging extra
    (``pip install "geosr[EXTRA]"``) that brings it."""


def _missing(module: str, extra: str, feature: str) -> MissingExtraError:
    return MissingExtraError(
        f"{feature} needs the optional package {module!r}, which is not installed; "
        f'install it with: pip install "geosr[{extra}]"')


def require_extra(module: str, extra: str, feature: str) -> None:
    """Fail early, without importing it, when ``module`` of the extra ``extra`` is missing
    (``feature``: what needs it, e.g. "--cluster-workers")."""
    import importlib.util

    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise _missing(module, extra, feature)


def import_extra(module: str, extra: str, feature: str) -> Any:
    """``importlib.import_module(module)``, or a :class:`MissingExtraError` naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise _missing(module, extra, feature) from exc
