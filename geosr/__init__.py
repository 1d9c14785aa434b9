"""geosr: guided, training-free super-resolution of georeferenced rasters."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from geosr.errors import GeosrError
from geosr.version import __version__

if TYPE_CHECKING:  # pragma: no cover
    from geosr.models import Method


def super_resolve(lr: Any, guide: Any, scale: int, method: str = "mmsr", **options: Any) -> Any:
    """See :func:`geosr.models.api.super_resolve`."""
    from geosr.models.api import super_resolve as _sr

    return _sr(lr, guide, scale, method, **options)


def super_resolve_xr(
    lr: Any, guide: Any, scale: int, *, method: str = "mmsr", **options: Any
) -> Any:
    """Super-resolve georeferenced xarray DataArrays; see :func:`geosr.xr.super_resolve_xr`."""
    from geosr.xr import super_resolve_xr as _srx

    return _srx(lr, guide, scale, method=method, **options)


def get_method(name: str, **options: Any) -> Method:
    """Build a registered method by name; see :func:`geosr.models.get_method`."""
    from geosr.models import get_method as _gm

    return _gm(name, **options)


def list_methods() -> list[str]:
    """Names of the registered methods."""
    from geosr.models import list_methods as _lm

    return _lm()


__all__ = ["GeosrError", "__version__", "get_method", "list_methods", "super_resolve",
           "super_resolve_xr"]
