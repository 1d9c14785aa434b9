"""Giving the C heap's free pages back to the system (glibc ``malloc_trim``).

glibc only shrinks its heap from the top, so buffers freed below live ones stay resident:
a long optimisation or a block-by-block write would otherwise grow with the work done.
Both the optimisation loop (:func:`geosr.models.optimize.tidier`) and the block writer of
lazy xarray results (:func:`geosr.xr.schedule.compute_by_rows`) trim through here.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable


@functools.lru_cache(maxsize=1)
def malloc_trim() -> Callable[[], None] | None:
    """glibc's ``malloc_trim(0)``, or None where the C library has none (macOS, musl)."""
    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None
    if trim is None:
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int

    def release() -> None:
        trim(0)  # returns whether memory was released; either way is fine

    return release


def trim_heap() -> None:
    """Trim the heap now where the C library can (a no-op elsewhere)."""
    release = malloc_trim()
    if release is not None:
        release()
