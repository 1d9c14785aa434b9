"""STAC items for outputs: footprint, ``proj:`` fields and processing lineage (pystac).

``write_item(plan, output)`` writes ``<output stem>.stac.json`` next to the output::

    {"type": "Feature", "id": "dsm_0p5m", "bbox": [lon/lat], "geometry": {...},
     "properties": {"proj:code": "EPSG:32633", "proj:shape": [h, w], "proj:transform": [...],
                    "processing:lineage": "...", "processing:software": {"geosr": "0.1.0"},
                    "geosr:method": "mmsr", "geosr:scale": 4, ...},
     "assets": {"data": {"href": "./dsm_0p5m.tif", "roles": ["data"], ...}},
     "links": [{"rel": "derived_from", "href": "/data/dsm_2m.tif", "title": "LR"}, ...]}

The item is written atomically; it is metadata about a finished output, so (unlike the
raster) it records the processing time.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from geosr.errors import import_extra
from geosr.pipeline.plan import Plan
from geosr.raster.io import absolute
from geosr.version import __version__

PROCESSING_SCHEMA = "https://stac-extensions.github.io/processing/v1.2.0/schema.json"
COG_MEDIA_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
GEOTIFF_MEDIA_TYPE = "image/tiff; application=geotiff"


def item_path(output: str | os.PathLike[str]) -> Path:
    """Where the STAC item of ``output`` goes: ``<stem>.stac.json`` in the same folder."""
    out = Path(output)
    return out.with_name(out.stem + ".stac.json")


def _rasterio_version() -> tuple[int, int]:
    import rasterio

    major, minor = rasterio.__version__.split(".")[:2]
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)


def _footprint(plan: Plan) -> tuple[dict[str, Any], list[float], list[float]]:
    """(geometry in WGS84, its bbox, bbox in the output CRS)."""
    from rasterio.warp import transform_geom

    g = plan.grid
    t = g.transform
    x0, y0 = t.c, t.f
    x1, y1 = t @ (g.width, g.height)
    native = [min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)]
    ring = [[native[0], native[1]], [native[2], native[1]], [native[2], native[3]],
            [native[0], native[3]], [native[0], native[1]]]
    # rasterio >= 1.5 always cuts at the antimeridian (GDAL's geometry transformer does)
    # and warns that the option is deprecated; older versions need it asked for.
    cut = {} if _rasterio_version() >= (1, 5) else {"antimeridian_cutting": True}
    geom = transform_geom(g.crs, "EPSG:4326", {"type": "Polygon", "coordinates": [ring]},
                          precision=7, **cut)
    geom = json.loads(json.dumps(geom))  # rasterio's Geometry -> plain dicts/lists

    def coords(c: Any) -> list[list[float]]:
        if c and isinstance(c[0], (int, float)):
            return [c]
        return [p for sub in c for p in coords(sub)]

    pts = coords(geom["coordinates"])
    lons, lats = [p[0] for p in pts], [p[1] for p in pts]
    west, east = min(lons), max(lons)
    if geom["type"] == "MultiPolygon":  # cut at the antimeridian: west > east (RFC 7946 5.2)
        parts = [[p[0] for p in coords(part)] for part in geom["coordinates"]]
        left = [min(x) for x in parts if min(x) >= 0]  # parts that end at +180
        right = [max(x) for x in parts if max(x) <= 0]  # parts that start at -180
        if left and right and len(left) + len(right) == len(parts):
            west, east = min(left), max(right)
    return geom, [west, min(lats), east, max(lats)], native


def make_item(
    plan: Plan,
    output: str | os.PathLike[str],
    *,
    cog: bool = True,
    datetime: dt.datetime | None = None,
    properties: dict[str, Any] | None = None,
) -> Any:
    """A ``pystac.Item`` describing ``output`` made from ``plan`` (``properties``: more
    ``geosr:`` properties, e.g. the self-check's)."""
    pystac = import_extra("pystac", "stac", "a STAC item (--stac)")
    from pystac.extensions.projection import ProjectionExtension


    out = Path(output)
    geom, bbox, native = _footprint(plan)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    g = plan.grid
    item = pystac.Item(
        id=out.stem,
        geometry=geom,
        bbox=bbox,
        datetime=datetime or now,
        properties={"created": now.isoformat().replace("+00:00", "Z")},
    )
    proj = ProjectionExtension.ext(item, add_if_missing=True)
    epsg = g.crs.to_epsg()
    if epsg is not None:
        proj.code = f"EPSG:{epsg}"
    else:
        proj.wkt2 = g.crs.to_wkt()
    proj.shape = [g.height, g.width]
    proj.transform = list(g.transform)[:6]
    proj.bbox = native
    inputs = (f"LR {os.path.basename(plan.lr.path)} band {plan.lr_band}, guide "
              f"{os.path.basename(plan.guide.path)} bands "
              f"{','.join(str(b) for b in plan.guide_bands)}")
    item.stac_extensions.append(PROCESSING_SCHEMA)
    item.properties.update({
        "processing:lineage": (
            f"Guided super-resolution x{plan.scale} with geosr {__version__} method "
            f"{plan.method} of {inputs}; guide resampled ({plan.guide_resampling}) onto the "
            "output grid, the LR grid refined by the scale over both footprints"
        ),
        "processing:software": {"geosr": __version__},
        "geosr:method": plan.method,
        "geosr:scale": plan.scale,
        "geosr:options": json.loads(json.dumps(plan.options, default=str)),
        "geosr:lr_band": plan.lr_band,
        "geosr:guide_bands": list(plan.guide_bands),
        "geosr:guide_resampling": plan.guide_resampling,
        **(properties or {}),
    })
    item.add_asset("data", pystac.Asset(
        href=f"./{out.name}",
        media_type=COG_MEDIA_TYPE if cog else GEOTIFF_MEDIA_TYPE,
        roles=["data"],
        title=f"{plan.method} x{plan.scale}",
    ))
    for title, path in (("LR", plan.lr.path), ("guide", plan.guide.path)):
        item.add_link(pystac.Link("derived_from", absolute(path),
                                  media_type=GEOTIFF_MEDIA_TYPE, title=title))
    return item


def write_item(
    plan: Plan,
    output: str | os.PathLike[str],
    *,
    cog: bool = True,
    datetime: dt.datetime | None = None,
    properties: dict[str, Any] | None = None,
) -> Path:
    """Write the STAC item of ``output`` atomically next to it; return its path."""
    target = item_path(output)
    item = make_item(plan, output, cog=cog, datetime=datetime, properties=properties)
    data = json.dumps(item.to_dict(include_self_link=False), indent=2).encode()
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
