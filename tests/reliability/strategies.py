"""hypothesis strategies of :class:`~benchmarks.reliability.cases.InputCase`: GeoTIFF headers
and shapes for ``geosr sr``."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from benchmarks.reliability.cases import (
    CRSS,
    DTYPES,
    GUIDE_SLOPES,
    HOLES,
    NODATA,
    ORIENTATIONS,
    InputCase,
    nodata_fits,
)

#: (tile size, overlap) in LR pixels; None: the default tiling (one tile for these sizes)
TILINGS = (None, (4, 1), (6, 3), (8, 4))


@st.composite
def lr_headers(draw: Any) -> dict[str, Any]:
    """dtype, nodata tag and holes of an LR."""
    dtype = draw(st.sampled_from(DTYPES))
    nodata = draw(st.sampled_from([k for k in NODATA if nodata_fits(dtype, k)]))
    has_holes = nodata != "none" or dtype.startswith("float")  # NaN needs no tag
    holes = draw(st.sampled_from(HOLES if has_holes else ("none",)))
    return {"dtype": dtype, "nodata": nodata, "holes": holes}


def sizes(min_side: int = 1, max_side: int = 13) -> st.SearchStrategy[dict[str, int]]:
    side = st.integers(min_side, max_side)
    return st.fixed_dictionaries({"height": side, "width": side})


def geometry() -> st.SearchStrategy[dict[str, Any]]:
    """Orientation and CRS of the LR and of the guide."""
    return st.fixed_dictionaries({
        "lr_orientation": st.sampled_from(ORIENTATIONS),
        "guide_orientation": st.sampled_from(ORIENTATIONS),
        "lr_crs": st.sampled_from(tuple(CRSS)),
        "guide_crs": st.sampled_from(tuple(CRSS)),
    })


def guides() -> st.SearchStrategy[dict[str, Any]]:
    """Image band count, alpha band, --guide-bands, dtype and resolution of the guide."""
    return st.fixed_dictionaries({
        "guide_bands": st.integers(1, 5),
        "guide_alpha": st.booleans(),
        "select_bands": st.booleans(),
        "guide_dtype": st.sampled_from(tuple(GUIDE_SLOPES)),
        "guide_oversample": st.sampled_from((1, 1, 2)),
    })


def runs() -> st.SearchStrategy[dict[str, Any]]:
    """Method, scale and tiling."""
    return st.fixed_dictionaries({
        "method": st.sampled_from(("bicubic", "lanczos")),
        "scale": st.sampled_from((2, 3, 4, 8)),
        "tiling": st.sampled_from(TILINGS),
    })


@st.composite
def cases(draw: Any, *, headers: bool = True, shape: bool = True, geo: bool = True,
          guide: bool = True, run: bool = True, usable: bool = False) -> InputCase:
    """An InputCase; the groups switched off keep the defaults (a north-up 9 x 7 float32 LR
    in UTM with an RGB guide, bicubic x2). ``usable``: only inputs geosr must super-resolve
    (no rotated LR, 2 x 2 LR pixels or more, some valid pixels, 3+ guide bands or
    --guide-bands)."""
    kw: dict[str, Any] = {}
    for on, strategy in ((headers, lr_headers()), (shape, sizes(2 if usable else 1)),
                         (geo, geometry()), (guide, guides()), (run, runs())):
        if on:
            kw.update(draw(strategy))
    if usable:
        if kw.get("holes") == "all":
            kw["holes"] = "patch"
        if kw.get("lr_orientation") in ("rotated", "sheared"):
            kw["lr_orientation"] = draw(st.sampled_from(("north-up", "bottom-up")))
        if kw.get("guide_bands", 3) < 3:
            kw["select_bands"] = True
    return InputCase(**kw)
