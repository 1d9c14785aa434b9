"""DataArrays whose cached georeferencing went stale: the coordinates decide."""

from __future__ import annotations

import logging
import warnings
from typing import Any

import pytest
import rioxarray

import geosr


def test_super_resolve_xr__coarsened_lr_uses_its_coordinates(
    scene: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lr = rioxarray.open_rasterio(scene["lr"], masked=True).coarsen(x=4, y=4).mean()
    guide = rioxarray.open_rasterio(scene["guide"])
    stale = lr.rio.transform()
    assert stale.a == 4.0  # rioxarray keeps the file's GeoTransform after coarsen
    true = lr.rio.transform(recalc=True)
    assert true.a == 16.0
    with caplog.at_level(logging.DEBUG, logger="geosr.xr.inputs"):
        hr = geosr.super_resolve_xr(lr, guide, 4, method="bicubic")
    t = hr.rio.transform()
    assert (t.a, t.e) == (true.a / 4, true.e / 4) == (4.0, -4.0)
    assert hr.rio.bounds() == lr.rio.bounds(recalc=True)
    assert hr.shape[-2:] == (9 * 4, 10 * 4)
    assert "disagrees with its coordinates" in caplog.text
