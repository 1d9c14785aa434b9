"""Exceptions raised by geosr.

Every message says what is wrong *and* what to do about it. Subclasses also
inherit a builtin so that callers catching ``ValueError``/``OSError`` keep working.
"""

from __future__ import annotations


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
