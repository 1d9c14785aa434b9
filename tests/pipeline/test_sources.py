"""FileSource: the pixels tiles and statistics read from the input files."""

from __future__ import annotations

from typing import Any

import numpy as np
import rasterio

from geosr.pipeline import RunConfig
from geosr.pipeline.plan import make_plan
from geosr.pipeline.sources import FileSource
from geosr.raster.grid import Window


def test_file_source__guide_band_scale_and_offset_applied(scene: dict[str, Any]) -> None:
    config = RunConfig(scale=4, method="bicubic")
    plan = make_plan(scene["lr"], scene["guide"], config)
    win = Window(0, 0, 16, 20)
    with FileSource().guide_reader(plan, plan.grid, "nearest") as read:
        raw = read(win)
    with rasterio.open(scene["guide"], "r+") as dst:
        dst.scales, dst.offsets = (0.5, 1.0, 1.0), (100.0, 0.0, 0.0)
    plan = make_plan(scene["lr"], scene["guide"], config)
    with FileSource().guide_reader(plan, plan.grid, "nearest") as read:
        got = read(win)
    np.testing.assert_allclose(got[0], raw[0] * 0.5 + 100.0)
    np.testing.assert_array_equal(got[1:], raw[1:])
