from __future__ import annotations

import numpy as np
import pytest

from geosr.raster.grid import Window
from geosr.raster.tiling import (
    TileLayout,
    axis_spans,
    axis_starts,
    axis_weight,
    blocks,
    cosine_ramp,
)


@pytest.mark.parametrize("n", [1, 5, 16, 17, 33, 100, 257])
@pytest.mark.parametrize(("tile", "overlap"), [(16, 4), (16, 8), (10, 0), (64, 8)])
def test_axis_spans__cover_with_overlap(n: int, tile: int, overlap: int) -> None:
    spans = axis_spans(n, tile, overlap)
    assert spans[0][0] == 0 and spans[-1][1] == n
    for a, b in spans:
        assert b - a == min(tile, n)
    for (_, b0), (a1, _) in zip(spans, spans[1:], strict=False):
        assert b0 - a1 >= overlap  # neighbours overlap by at least the overlap
        assert a1 > spans[0][0] - 1


def test_axis_starts__bad_args() -> None:
    with pytest.raises(ValueError):
        axis_starts(10, 4, 4)
    with pytest.raises(ValueError):
        axis_starts(0, 4, 1)


def test_cosine_ramp__complementary() -> None:
    r = cosine_ramp(9)
    np.testing.assert_allclose(r + r[::-1], 1.0, atol=1e-6)
    assert (r > 0).all() and (r < 1).all() and (np.diff(r) > 0).all()


@pytest.mark.parametrize(("n", "tile", "overlap", "scale"), [(50, 16, 4, 1), (37, 12, 3, 4)])
def test_axis_weight__partition_of_unity(n: int, tile: int, overlap: int, scale: int) -> None:
    spans = axis_spans(n, tile, overlap)
    total = np.zeros(n * scale)
    for i, (a, b) in enumerate(spans):
        total[a * scale : b * scale] += axis_weight(spans, i, scale)
    np.testing.assert_allclose(total, 1.0, atol=1e-6)


def test_axis_weight__no_ramp_at_edges() -> None:
    spans = axis_spans(40, 16, 4)
    assert axis_weight(spans, 0)[0] == 1.0
    assert axis_weight(spans, len(spans) - 1)[-1] == 1.0
    single = axis_spans(10, 16, 4)
    assert (axis_weight(single, 0, 3) == 1.0).all()


def test_layout__context_is_halo_clipped_to_grid() -> None:
    lay = TileLayout.build(30, 45, tile_size=16, overlap=4, halo=3)
    assert len(lay) == lay.shape[0] * lay.shape[1] > 4
    for t in lay:
        assert t.context.row0 == max(0, t.extent.row0 - 3)
        assert t.context.col1 == min(45, t.extent.col1 + 3)
        assert t.context.intersection(t.extent) == t.extent


def test_layout__weights_sum_to_one_2d() -> None:
    lay = TileLayout.build(23, 31, tile_size=10, overlap=3, halo=2)
    total = np.zeros((23 * 2, 31 * 2))
    for t in lay:
        sl = t.extent.scaled(2).slices()
        total[sl] += lay.weight(t, 2)
    np.testing.assert_allclose(total, 1.0, atol=1e-6)


def test_layout__tiles_touching() -> None:
    lay = TileLayout.build(40, 40, tile_size=16, overlap=4, halo=0)
    win = Window(0, 0, 2, 2)
    touching = list(lay.tiles_touching(win))
    assert [(t.row, t.col) for t in touching] == [(0, 0)]
    assert len(list(lay.tiles_touching(Window(0, 0, 40, 40)))) == len(lay)


def test_blocks__cover() -> None:
    seen = np.zeros((70, 33), int)
    for b in blocks(70, 33, 16):
        seen[b.slices()] += 1
    assert (seen == 1).all()
