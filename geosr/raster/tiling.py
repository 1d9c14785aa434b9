"""Tile layout in LR pixels and separable cosine feather weights (pure numpy).

Layout along one axis of ``n`` LR pixels with tile size ``T`` and overlap ``o``: a single
tile when ``n <= T``, else ``k = ceil((n - o) / (T - o))`` tiles of exactly ``T`` pixels
spread evenly from ``0`` to ``n - T`` (so neighbours overlap by at least ``o``). Each tile
is *predicted* on itself plus ``halo`` LR pixels of context per side (clipped to the grid,
so the method sees the same raster edges as an untiled run) and *contributes* over itself
only. Its weight is 1 inside and follows a cosine ramp across the overlap with each
neighbour (complementary, so the weights of two neighbours sum to 1); there is no ramp at
the grid edges.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator

import numpy as np

from geosr.raster.grid import Window


def axis_starts(n: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of ``tile`` pixels covering ``[0, n)`` with >= ``overlap``."""
    if n <= 0:
        raise ValueError(f"axis length must be > 0, got {n}")
    if tile < 1 or overlap < 0 or tile <= overlap:
        raise ValueError(f"need tile > overlap >= 0, got tile={tile}, overlap={overlap}")
    if n <= tile:
        return [0]
    k = math.ceil((n - overlap) / (tile - overlap))
    return [round(i * (n - tile) / (k - 1)) for i in range(k)]


def axis_spans(n: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of every tile along an axis of ``n`` pixels."""
    return [(s, min(s + tile, n)) for s in axis_starts(n, tile, overlap)]


def cosine_ramp(length: int) -> np.ndarray:
    """Rising ramp over ``length`` pixels, 0 < r < 1, with ``r[i] + r[-1 - i] == 1``."""
    t = (np.arange(length, dtype=np.float64) + 0.5) / max(length, 1)
    return (0.5 - 0.5 * np.cos(np.pi * t)).astype(np.float32)


def _ramp(overlap: int, blend: int | None) -> np.ndarray:
    """Rising weight across an overlap of ``overlap`` px: a cosine ramp ``blend`` px wide
    (None: the whole overlap) centred in it, 0 before and 1 after."""
    b = overlap if blend is None else max(1, min(int(blend), overlap))
    pad = (overlap - b) // 2
    w = np.ones(overlap, dtype=np.float32)
    w[:pad] = 0.0
    w[pad : pad + b] = cosine_ramp(b)
    return w


def axis_weight(
    spans: list[tuple[int, int]], i: int, scale: int = 1, blend: int | None = None
) -> np.ndarray:
    """1-D weight of tile ``i`` over its own extent, in pixels refined by ``scale``.

    Ramps up across the overlap with tile ``i - 1`` and down across the overlap with tile
    ``i + 1``; flat 1 elsewhere, including at the grid edges. ``blend``: width of the ramps
    in LR pixels, centred in the overlaps (None: the whole overlap).
    """
    start, stop = spans[i]
    b = None if blend is None else blend * scale
    w = np.ones((stop - start) * scale, dtype=np.float32)
    if i > 0:
        ov = (spans[i - 1][1] - start) * scale
        if ov > 0:
            w[:ov] *= _ramp(ov, b)
    if i + 1 < len(spans):
        ov = (stop - spans[i + 1][0]) * scale
        if ov > 0:
            w[len(w) - ov :] *= _ramp(ov, b)[::-1]
    return w


@dataclasses.dataclass(frozen=True)
class Tile:
    """One tile: grid index, its extent and its prediction window (LR px, grid-relative)."""

    row: int
    col: int
    #: the pixels this tile contributes to the mosaic
    extent: Window
    #: the pixels the method sees: ``extent`` grown by the halo, clipped to the grid
    context: Window

    @property
    def key(self) -> str:
        return f"r{self.row:04d}_c{self.col:04d}"


@dataclasses.dataclass(frozen=True)
class TileLayout:
    """All tiles over a grid of ``height x width`` LR pixels."""

    height: int
    width: int
    tile_size: int
    overlap: int
    halo: int
    row_spans: tuple[tuple[int, int], ...]
    col_spans: tuple[tuple[int, int], ...]
    #: width of the feather ramps in LR px, centred in each overlap (None: the whole overlap)
    blend: int | None = None

    @classmethod
    def build(
        cls, height: int, width: int, tile_size: int, overlap: int, halo: int,
        blend: int | None = None,
    ) -> TileLayout:
        if halo < 0:
            raise ValueError(f"halo must be >= 0, got {halo}")
        if blend is not None and blend < 1:
            raise ValueError(f"blend must be >= 1 LR pixel or None, got {blend}")
        return cls(
            height,
            width,
            tile_size,
            overlap,
            halo,
            tuple(axis_spans(height, tile_size, overlap)),
            tuple(axis_spans(width, tile_size, overlap)),
            blend,
        )

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.row_spans), len(self.col_spans))

    def __len__(self) -> int:
        return len(self.row_spans) * len(self.col_spans)

    def tile(self, row: int, col: int) -> Tile:
        (r0, r1), (c0, c1) = self.row_spans[row], self.col_spans[col]
        extent = Window(r0, c0, r1, c1)
        grid = Window(0, 0, self.height, self.width)
        context = extent.expanded(self.halo).intersection(grid)
        assert context is not None
        return Tile(row, col, extent, context)

    def __iter__(self) -> Iterator[Tile]:
        for r in range(len(self.row_spans)):
            for c in range(len(self.col_spans)):
                yield self.tile(r, c)

    def weight(self, tile: Tile, scale: int = 1) -> np.ndarray:
        """Separable 2-D feather weight of ``tile`` over its extent refined by ``scale``."""
        wr = axis_weight(list(self.row_spans), tile.row, scale, self.blend)
        wc = axis_weight(list(self.col_spans), tile.col, scale, self.blend)
        return wr[:, None] * wc[None, :]

    def tiles_touching(self, window: Window) -> Iterator[Tile]:
        """Tiles whose extent intersects ``window`` (LR px, grid-relative)."""
        rows = [i for i, (a, b) in enumerate(self.row_spans) if a < window.row1 and b > window.row0]
        cols = [j for j, (a, b) in enumerate(self.col_spans) if a < window.col1 and b > window.col0]
        for r in rows:
            for c in cols:
                yield self.tile(r, c)

    def predicted_pixels(self) -> int:
        """LR pixels the method processes over all tiles (context windows included)."""
        return sum(t.context.height * t.context.width for t in self)


def blocks(height: int, width: int, size: int) -> Iterator[Window]:
    """Row-major blocks of ``size x size`` pixels covering a ``height x width`` raster."""
    for r in range(0, height, size):
        for c in range(0, width, size):
            yield Window(r, c, min(r + size, height), min(c + size, width))
