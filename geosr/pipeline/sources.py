"""Where tiles read their pixels: the files (FileSource) or another source."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from geosr.pipeline.plan import Plan
from geosr.raster.grid import Window
from geosr.raster.io import guide_vrt, read_guide, read_lr

logger = logging.getLogger(__name__)


# -- input sources -----------------------------------------------------------------------
class FileSource:
    """Pixels of the plan's input files (``plan.lr.path``, ``plan.guide.path``).

    A source has two methods: ``read_lr(plan, window, out_shape=None)`` returns an absolute
    LR window of the plan's band as ``(1, h, w)`` float32, NaN = nodata (physical values:
    the files' band scale and offset applied, here and for the guide);
    ``guide_reader(plan, target, resampling)`` is a context manager yielding
    ``read(window) -> (C, h, w)`` float32 (NaN = no data) of the guide's plan bands
    resampled onto ``target`` (an :class:`OutputGrid` or ``(crs, transform, w, h)``).
    """

    def read_lr(
        self, plan: Plan, window: Window, out_shape: tuple[int, int] | None = None
    ) -> np.ndarray:

        return read_lr(plan.lr.path, plan.lr_band, window, nodata=plan.lr_nodata,
                       out_shape=out_shape)

    @contextlib.contextmanager
    def guide_reader(
        self, plan: Plan, target: Any, resampling: str
    ) -> Iterator[Callable[[Window], np.ndarray]]:

        physical = [plan.guide.scale_offset(b) for b in plan.guide_bands]
        with guide_vrt(plan.guide, target, resampling) as (vrt, mask_band):
            yield lambda w: read_guide(vrt, mask_band, plan.guide_bands, w, physical)


def input_source(plan: Plan) -> Any:
    """The plan's pixel source (:class:`FileSource` unless it has another)."""
    return plan.source if plan.source is not None else FileSource()


# -- tile task ---------------------------------------------------------------------------
def read_tile_inputs(plan: Plan, ctx: Window) -> tuple[np.ndarray, np.ndarray]:
    """LR ``(1, h, w)`` (NaN = nodata) and guide on the output grid ``(C, s*h, s*w)`` of a
    grid-relative LR window."""
    return read_tile_lr(plan, ctx), read_tile_guide(plan, ctx)


def read_tile_lr(plan: Plan, ctx: Window) -> np.ndarray:
    return input_source(plan).read_lr(plan, plan.lr_window(ctx))


def read_tile_guide(plan: Plan, ctx: Window) -> np.ndarray:
    with input_source(plan).guide_reader(plan, plan.grid, plan.guide_resampling) as read:
        return read(ctx.scaled(plan.scale))

