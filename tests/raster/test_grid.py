from __future__ import annotations

import pytest
from affine import Affine
from rasterio.crs import CRS

from geosr.errors import GridError
from geosr.raster.grid import RasterGeometry, Window, footprint, output_grid

UTM = CRS.from_epsg(32633)
LR = RasterGeometry(UTM, Affine(4, 0, 600000, 0, -4, 5340000), 40, 30)


def guide_geom(dx: float = 0, dy: float = 0, res: float = 1.0, w: int = 160, h: int = 120,
               crs: CRS = UTM) -> RasterGeometry:
    return RasterGeometry(crs, Affine(res, 0, 600000 + dx, 0, -res, 5340000 + dy), w, h)


def test_output_grid__full_overlap() -> None:
    g = output_grid(LR, guide_geom(), 4)
    assert g.crs == UTM
    assert g.lr_window == Window(0, 0, 30, 40)
    assert (g.height, g.width) == (120, 160)
    assert g.transform == Affine(1, 0, 600000, 0, -1, 5340000)


def test_output_grid__partial_overlap_snaps_to_whole_lr_pixels() -> None:
    # guide starts 10 m east and 6 m south of the LR origin: first whole LR pixel is col 3,
    # row 2 (12 m, 8 m)
    g = output_grid(LR, guide_geom(dx=10, dy=-6), 4)
    assert g.lr_window.col0 == 3 and g.lr_window.row0 == 2
    assert g.transform == LR.transform @ Affine.translation(3, 2) @ Affine.scale(0.25)
    # right/bottom: guide ends at 170 m east, 126 m south -> cols < 42 -> clipped to 40
    assert g.lr_window.col1 == 40 and g.lr_window.row1 == 30


def test_output_grid__edge_tolerance() -> None:
    # a guide edge 0.2 output px inside an LR pixel edge still counts as covering it
    g = output_grid(LR, guide_geom(dx=0.2), 4)
    assert g.lr_window.col0 == 0


def test_output_grid__no_overlap() -> None:
    with pytest.raises(GridError, match="do not overlap.*pass a guide that covers"):
        output_grid(LR, guide_geom(dx=1000), 4)


def test_output_grid__overlap_smaller_than_an_output_pixel() -> None:
    with pytest.raises(GridError, match="overlap by only 0.5 x .*output pixels"):
        output_grid(LR, guide_geom(dx=159.5), 4)


def test_output_grid__missing_crs() -> None:
    with pytest.raises(GridError, match="LR raster has no CRS.*rio edit-info"):
        output_grid(RasterGeometry(None, LR.transform, 40, 30), guide_geom(), 4)
    with pytest.raises(GridError, match="guide raster has no CRS"):
        output_grid(LR, guide_geom(crs=None), 4)


def test_output_grid__guide_too_coarse() -> None:
    with pytest.raises(GridError, match=r"4.0x coarser.*--scale 2 or less"):
        output_grid(LR, guide_geom(res=4.0, w=40, h=30), 4)
    with pytest.raises(GridError, match=r"--scale 3 or less"):
        output_grid(LR, guide_geom(res=2.5, w=64, h=48), 4)
    with pytest.raises(GridError, match=r"at most 2 units \(the guide must be finer"):
        output_grid(LR, guide_geom(res=10.0, w=16, h=12), 4)
    # 2x coarser than the output is still accepted
    output_grid(LR, guide_geom(res=2.0, w=80, h=60), 4)


def test_output_grid__rotated_lr() -> None:
    rot = RasterGeometry(UTM, Affine(4, 1, 600000, 0, -4, 5340000), 40, 30)
    with pytest.raises(GridError, match="north-up"):
        output_grid(rot, guide_geom(), 4)


def test_footprint__other_crs() -> None:
    from rasterio.warp import transform_bounds

    geo = CRS.from_epsg(4326)
    b = transform_bounds(UTM, geo, *LR.bounds)
    res = (b[2] - b[0]) / 400
    g = RasterGeometry(geo, Affine(res, 0, b[0], 0, -res, b[3]), 400,
                       int((b[3] - b[1]) / res) + 1)
    poly = footprint(g, UTM)
    assert poly.buffer(1.0).contains(footprint(LR, UTM))
    grid = output_grid(LR, g, 4)
    assert grid.lr_window == Window(0, 0, 30, 40)


def test_window__ops() -> None:
    w = Window(2, 3, 10, 12)
    assert w.shape == (8, 9)
    assert w.scaled(2) == Window(4, 6, 20, 24)
    assert w.expanded(2) == Window(0, 1, 12, 14)
    assert w.intersection(Window(0, 0, 3, 4)) == Window(2, 3, 3, 4)
    assert w.intersection(Window(20, 20, 30, 30)) is None
    assert w.slices((2, 3)) == (slice(0, 8), slice(0, 9))
