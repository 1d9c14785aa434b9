"""xarray interface: :func:`super_resolve_xr` on georeferenced DataArrays (rioxarray).

See :mod:`geosr.xr.api` for the design (the pipeline with DataArrays in place of files).
"""

from geosr.xr.api import super_resolve_xr
from geosr.xr.inputs import ArraySource
from geosr.xr.schedule import compute_by_rows
from geosr.xr.write import to_raster

__all__ = ["ArraySource", "compute_by_rows", "super_resolve_xr", "to_raster"]
