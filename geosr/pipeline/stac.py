"""STAC items and collections for outputs (pystac; ``raster:bands`` by rio-stac).

``write_item(plan, output)`` writes ``<output stem>.stac.json`` next to the output::

    {"type": "Feature", "id": "dsm_0p5m", "bbox": [lon/lat], "geometry": {...},
     "properties": {"datetime": "2024-05-01T10:00:00Z", "created": "...",
                    "processing:datetime": "...", "geosr:datetime_source": "lr:TIFFTAG_DATETIME",
                    "proj:code": "EPSG:32633", "proj:shape": [h, w], "proj:transform": [...],
                    "processing:lineage": "...", "processing:software": {"geosr": "0.1.0"},
                    "geosr:method": "mmsr", "geosr:scale": 4, "geosr:options": {...}, ...},
     "assets": {"data": {"href": "./dsm_0p5m.tif", "roles": ["data"],
                         "raster:bands": [{"data_type": "float32", "nodata": -9999.0,
                                           "statistics": {...}, "spatial_resolution": 0.5}]}},
     "links": [{"rel": "derived_from", "href": "/data/dsm_2m.tif", "title": "LR"}, ...]}

``datetime`` is when the inputs were acquired, not when geosr ran (:func:`acquisition`):
the time a run is given (a STAC input item's, ``RunConfig.datetime``), else the LR's
acquisition tags, else the guide's; with only the processing time known, it is that,
and ``geosr:datetime_source`` says ``processing``. The processing time is always in
``created`` and ``processing:datetime``.

``write_collection(items, path)`` writes a STAC Collection of finished items (``geosr
batch``): extent from the items, relative links both ways. Every file is written
atomically with the usual permissions (:mod:`geosr.raster.atomic`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from geosr.errors import import_extra
from geosr.pipeline.plan import Plan
from geosr.raster.atomic import atomic_write
from geosr.raster.io import absolute, gdal_env, without_secrets
from geosr.version import __version__

logger = logging.getLogger(__name__)

PROCESSING_SCHEMA = "https://stac-extensions.github.io/processing/v1.2.0/schema.json"
RASTER_SCHEMA = "https://stac-extensions.github.io/raster/v1.1.0/schema.json"
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


#: tags that hold when a raster was acquired, most specific first: GDAL's IMAGERY domain,
#: the names vendors and tools use in the default domain, then the TIFF's own date
ACQUISITION_TAGS: tuple[tuple[str | None, str], ...] = (
    ("IMAGERY", "ACQUISITIONDATETIME"),
    (None, "ACQUISITIONDATETIME"),
    (None, "ACQUISITION_DATETIME"),
    (None, "ACQUISITION_DATE"),
    (None, "ACQUISITIONDATE"),
    (None, "DATE_ACQUIRED"),
    (None, "TIFFTAG_DATETIME"),
)


def parse_time(text: str) -> dt.datetime | None:
    """An ISO 8601 time or date, or TIFF's ``YYYY:MM:DD HH:MM:SS``, in UTC (a time without
    a zone is taken as UTC); None when ``text`` is neither."""
    s = str(text).strip()
    m = re.fullmatch(r"(\d{4}):(\d{2}):(\d{2})([ T].*)?", s)
    if m:
        s = f"{m[1]}-{m[2]}-{m[3]}{m[4] or ''}"
    s = re.sub(r"[zZ]$", "+00:00", s)
    try:
        t = dt.datetime.fromisoformat(s)
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return t.astimezone(dt.timezone.utc)


def tagged_time(path: str) -> tuple[dt.datetime, str] | None:
    """When the raster at ``path`` was acquired, by its tags (:data:`ACQUISITION_TAGS`),
    and the tag that says so; None when no tag does (or the raster cannot be opened)."""
    import rasterio

    try:
        with gdal_env(), rasterio.open(path) as src:
            domains = {d: {k.upper(): v for k, v in src.tags(ns=d).items()}
                       for d in {d for d, _ in ACQUISITION_TAGS}}
    except Exception:  # an in-memory source, a file gone since: no time from tags
        return None
    for domain, key in ACQUISITION_TAGS:
        value = domains[domain].get(key)
        t = parse_time(value) if value else None
        if t is not None:
            return t, key if domain is None else f"{domain}/{key}"
        if value:
            logger.debug("%s: cannot read the time %s=%r", path, key, value)
    return None


@dataclasses.dataclass(frozen=True)
class Acquisition:
    """When the inputs were acquired, for an item's ``datetime``, ``start_datetime`` and
    ``end_datetime``; ``source`` says where it comes from (``geosr:datetime_source``)."""

    datetime: dt.datetime | None
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    source: str = "processing"


def acquisition(plan: Plan, given: str | None = None) -> Acquisition | None:
    """The inputs' acquisition time: ``given`` (or the plan's ``datetime``: an ISO time or a
    ``start/end`` interval, e.g. a STAC input item's), else the LR's tags, else the
    guide's; when both inputs have one and they differ, ``start``/``end`` span them. None
    when nothing says (the caller falls back to the processing time)."""
    given = given if given is not None else plan.datetime
    if given:
        if "/" in given:
            a, b = (parse_time(x) if x and x != ".." else None for x in given.split("/", 1))
            if a is not None and b is not None:
                return Acquisition(None, min(a, b), max(a, b), "input item")
        elif (t := parse_time(given)) is not None:
            return Acquisition(t, source="input item")
        logger.warning("cannot read the time %r; reading the inputs' tags instead", given)
    lr, guide = tagged_time(plan.lr.path), tagged_time(plan.guide.path)
    if lr is None and guide is None:
        return None
    first, what = (lr, "lr") if lr is not None else (guide, "guide")
    assert first is not None
    times = [t for t, _ in (x for x in (lr, guide) if x is not None)]
    if len(times) == 2 and times[0] != times[1]:
        return Acquisition(first[0], min(times), max(times), f"{what}:{first[1]}")
    return Acquisition(first[0], source=f"{what}:{first[1]}")


def _metres_per_unit(crs: Any) -> float | None:
    """Metres per unit of a projected CRS; None for a geographic one."""
    if crs is None or crs.is_geographic:
        return None
    try:
        return float(crs.linear_units_factor[1])
    except Exception:  # a CRS without linear units
        return None


def raster_bands(output: str | os.PathLike[str], plan: Plan) -> list[dict[str, Any]]:
    """The output's ``raster:bands`` as rio-stac computes them (data type, nodata, unit,
    statistics and histogram from a read of at most 1024 px a side: the COG's overviews),
    with ``spatial_resolution`` in metres (projected CRSs only)."""
    import rasterio

    get_raster_info = import_extra("rio_stac.stac", "stac", "a STAC item (--stac)").get_raster_info

    with gdal_env(), rasterio.open(output) as src:
        bands = get_raster_info(src, max_size=1024)
    per_metre = _metres_per_unit(plan.grid.crs)
    if per_metre is not None:
        rx, ry = plan.grid.res
        for b in bands:
            b["spatial_resolution"] = round(math.sqrt(abs(rx * ry)) * per_metre, 9)
    return bands


def _written_provenance(output: Path) -> dict[str, Any]:
    """``geosr:method`` and ``geosr:options`` as the output's own tags record them: what
    ran, where the plan at hand may not say (the guard's lanczos, auto mode's choices, an
    item written for a finished output on resume)."""
    import rasterio

    try:
        with gdal_env(), rasterio.open(output) as src:
            tags = src.tags()
        out = {}
        if tags.get("GEOSR_METHOD"):
            out["geosr:method"] = tags["GEOSR_METHOD"]
        if tags.get("GEOSR_OPTIONS"):
            out["geosr:options"] = json.loads(tags["GEOSR_OPTIONS"])
        return out
    except (OSError, ValueError, rasterio.errors.RasterioError):
        return {}


def _utc_text(t: dt.datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def make_item(
    plan: Plan,
    output: str | os.PathLike[str],
    *,
    cog: bool = True,
    datetime: dt.datetime | str | None = None,
    properties: dict[str, Any] | None = None,
) -> Any:
    """A ``pystac.Item`` describing ``output`` made from ``plan`` (``properties``: more
    ``geosr:`` properties, e.g. the self-check's; ``datetime``: the acquisition time,
    overriding :func:`acquisition`)."""
    pystac = import_extra("pystac", "stac", "a STAC item (--stac)")
    from pystac.extensions.projection import ProjectionExtension

    out = Path(output)
    geom, bbox, native = _footprint(plan)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    if isinstance(datetime, dt.datetime):
        datetime = _utc_text(datetime)
    acq = acquisition(plan, datetime) or Acquisition(now)
    g = plan.grid
    item = pystac.Item(
        id=out.stem,
        geometry=geom,
        bbox=bbox,
        datetime=acq.datetime,
        start_datetime=acq.start,
        end_datetime=acq.end,
        properties={"created": _utc_text(now), "processing:datetime": _utc_text(now),
                    "geosr:datetime_source": acq.source},
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
    item.stac_extensions += [PROCESSING_SCHEMA, RASTER_SCHEMA]
    item.properties.update({
        "processing:lineage": (
            f"Guided super-resolution x{plan.scale} with geosr {__version__} method "
            f"{plan.method} of {inputs}; guide resampled ({plan.guide_resampling}) onto the "
            "output grid, the LR grid refined by the scale over both footprints"
        ),
        "processing:software": {"geosr": __version__},
        "geosr:method": plan.method,
        "geosr:scale": plan.scale,
        "geosr:options": json.loads(json.dumps(dict(plan.used_options) or plan.options,
                                               default=str)),
        "geosr:lr_band": plan.lr_band,
        "geosr:guide_bands": list(plan.guide_bands),
        "geosr:guide_resampling": plan.guide_resampling,
        **(properties or {}),
    })
    extra = {}
    if out.is_file():
        extra["raster:bands"] = raster_bands(out, plan)
        item.properties.update(_written_provenance(out))
    item.add_asset("data", pystac.Asset(
        href=f"./{out.name}",
        media_type=COG_MEDIA_TYPE if cog else GEOTIFF_MEDIA_TYPE,
        roles=["data"],
        title=f"{plan.method} x{plan.scale}",
        extra_fields=extra,
    ))
    for title, path in (("LR", plan.lr.path), ("guide", plan.guide.path)):
        item.add_link(pystac.Link("derived_from", without_secrets(absolute(path)),
                                  media_type=GEOTIFF_MEDIA_TYPE, title=title))
    return item


def write_item(
    plan: Plan,
    output: str | os.PathLike[str],
    *,
    cog: bool = True,
    datetime: dt.datetime | str | None = None,
    properties: dict[str, Any] | None = None,
) -> Path:
    """Write the STAC item of ``output`` atomically next to it; return its path."""
    target = item_path(output)
    item = make_item(plan, output, cog=cog, datetime=datetime, properties=properties)
    return atomic_write(target, json.dumps(item.to_dict(include_self_link=False), indent=2))


# -- collections ---------------------------------------------------------------------------
def _href(frm: Path, to: Path) -> str:
    rel = os.path.relpath(to.resolve(), frm.resolve().parent)
    return rel if rel.startswith("..") else f"./{rel}"


def _item_times(d: dict[str, Any]) -> tuple[dt.datetime | None, dt.datetime | None]:
    p = d.get("properties", {})
    first = parse_time(p.get("start_datetime") or p.get("datetime") or "")
    last = parse_time(p.get("end_datetime") or p.get("datetime") or "")
    return first, last


def _spatial(bboxes: list[list[float]]) -> list[float]:
    """The bbox of all bboxes; one that crosses the antimeridian (west > east) makes it
    span every longitude."""
    s, n = min(b[1] for b in bboxes), max(b[3] for b in bboxes)
    if any(b[0] > b[2] for b in bboxes):
        return [-180.0, s, 180.0, n]
    return [min(b[0] for b in bboxes), s, max(b[2] for b in bboxes), n]


def write_collection(
    items: Sequence[str | os.PathLike[str]],
    path: str | os.PathLike[str],
    *,
    collection_id: str,
    description: str | None = None,
) -> Path:
    """Write a STAC Collection of the item files ``items`` at ``path``: extent (space and
    time) from the items, an ``item`` link to each (relative), and each item rewritten with
    its ``collection`` and links back (``collection``, ``parent``, ``root``). Returns the
    path. ``items`` must not be empty."""
    pystac = import_extra("pystac", "stac", "a STAC collection (--stac)")

    target = Path(path)
    docs = [(Path(p), json.loads(Path(p).read_text())) for p in items]
    if not docs:
        raise ValueError("a collection needs at least one item")
    times = [t for _, d in docs for t in _item_times(d) if t is not None]
    coll = pystac.Collection(
        id=collection_id,
        description=description or f"geosr outputs of {collection_id}",
        extent=pystac.Extent(
            pystac.SpatialExtent([_spatial([d["bbox"] for _, d in docs])]),
            pystac.TemporalExtent([[min(times) if times else None,
                                    max(times) if times else None]]),
        ),
        license="other",
        title=collection_id,
    )
    props = [d.get("properties", {}) for _, d in docs]
    coll.summaries = pystac.Summaries({
        k: sorted({p[k] for p in props if k in p}, key=str)
        for k in ("geosr:method", "geosr:scale", "proj:code")
        if any(k in p for p in props)})
    coll.stac_extensions = sorted({e for _, d in docs for e in d.get("stac_extensions", [])})
    out = coll.to_dict(include_self_link=False)
    out["links"] = [{"rel": "root", "href": f"./{target.name}", "type": "application/json",
                     "title": coll.title}]
    out["links"] += [{"rel": "item", "href": _href(target, p), "type": "application/geo+json",
                      "title": d.get("id")} for p, d in docs]
    for p, d in docs:
        back = _href(p, target)
        d["collection"] = collection_id
        d["links"] = [ln for ln in d.get("links", [])
                      if ln.get("rel") not in ("collection", "parent", "root")]
        d["links"] += [{"rel": r, "href": back, "type": "application/json"}
                       for r in ("collection", "parent", "root")]
        atomic_write(p, json.dumps(d, indent=2))
    return atomic_write(target, json.dumps(out, indent=2))
