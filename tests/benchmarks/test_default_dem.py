"""The default-command benchmark's bookkeeping: the method's own output, solved back from
the guard's blend."""

from __future__ import annotations

import numpy as np
import rasterio
from affine import Affine

from benchmarks.quality.default_dem import unblend
from tests.geodata import write_raster

T = Affine(1.0, 0, 600000.0, 0, -1.0, 5340000.0)


def test_unblend_recovers_the_method_from_the_blend_and_lanczos(tmp_path) -> None:
    rng = np.random.default_rng(0)
    method = (100 + rng.normal(0, 5, (16, 16))).astype(np.float32)
    lanczos = (100 + rng.normal(0, 5, (16, 16))).astype(np.float32)
    blend = (0.35 * method + 0.65 * lanczos).astype(np.float32)
    out = unblend(write_raster(tmp_path / "blend.tif", blend, T),
                  write_raster(tmp_path / "lanczos.tif", lanczos, T), 0.35,
                  tmp_path / "method.tif")
    with rasterio.open(out) as src:
        got = src.read(1)
        assert src.transform == T
    np.testing.assert_allclose(got, method, rtol=0, atol=1e-3)  # float32 / 0.35


def test_value_step_finds_the_rounding_of_float32_heights() -> None:
    from benchmarks.quality.reference_floor import above_floor, value_step

    rng = np.random.default_rng(1)
    heights = 1338 + rng.uniform(0, 40, 5000)
    # stored as float32, as the DSMs are: 0.1 m steps show as gaps of 0.0999756
    assert value_step(np.round(heights, 1).astype(np.float32)) == 0.1
    assert value_step(np.round(heights / 0.01) * 0.01) == 0.01
    assert value_step(heights.astype(np.float32)) is None  # never rounded
    assert value_step(np.full(10, 5.0)) is None
    assert abs(above_floor(0.05, 0.03) - 0.04) < 1e-12
    assert above_floor(0.02, 0.03) == 0.0


def test_levers_replay_the_auto_choice_and_measure_the_plane(tmp_path) -> None:
    from benchmarks.quality.levers import fitted_like, lr_plane

    assert fitted_like({"mode": "tile", "iterations": 774}) == ["--mode", "tile",
                                                                "--iterations", "774"]
    assert fitted_like({"mode": "scene", "iterations": 855})[:4] == [
        "--mode", "scene", "--scene-iterations", "855"]
    assert fitted_like({"mode": "scene", "iterations": 855}, 0.5)[:4] == [
        "--mode", "scene", "--scene-iterations", "427"]
    assert fitted_like({"mode": "tile", "iterations": 1}, 0.5)[3] == "1"
    # 2 m pixels; rising 30 m per km eastwards and 10 m per km northwards (rows go south)
    rows, cols = np.indices((20, 30)) + 0.5
    z = 500 + 0.06 * cols - 0.02 * rows
    got = lr_plane(write_raster(tmp_path / "plane.tif", z.astype(np.float32),
                                Affine(2.0, 0, 600000.0, 0, -2.0, 5340000.0)))
    assert abs(got["m_per_km_x"] - 30) < 0.01 and abs(got["m_per_km_y"] - 10) < 0.01
    assert got["variance_explained"] > 0.999


def test_a_moved_guide_and_an_output_cut_to_its_cover_are_scored_in_place(tmp_path) -> None:
    from benchmarks.quality.default_dem import misregistered_guide, parse_shift, score

    assert parse_shift("-3,3") == (-3.0, 3.0) and parse_shift(None) is None

    rng = np.random.default_rng(2)
    target = (100 + rng.normal(0, 5, (20, 24))).astype(np.float32)
    t_path = write_raster(tmp_path / "target.tif", target, T)
    guide = write_raster(tmp_path / "guide.tif", rng.random((3, 40, 48)).astype(np.float32),
                         Affine(0.5, 0, 600000.0, 0, -0.5, 5340000.0))
    moved = misregistered_guide(guide, t_path, (2.0, 1.0), tmp_path / "moved.tif")
    with rasterio.open(moved) as src:  # 2 target pixels east, 1 south, in metres
        assert (src.transform.c, src.transform.f) == (600002.0, 5339999.0)
    # an output cut by 4 px on the west and north, holding the target's own values there
    cut = write_raster(tmp_path / "cut.tif", target[4:, 4:],
                       Affine(1.0, 0, 600004.0, 0, -1.0, 5339996.0))
    assert score(cut, t_path)["rmse"] == 0.0
    off = write_raster(tmp_path / "off.tif", target[:-4, :-4],
                       Affine(1.0, 0, 600004.0, 0, -1.0, 5339996.0))
    assert score(off, t_path)["rmse"] > 1.0


def test_a_turned_guide_keeps_the_target_centre_and_turns_the_rest_about_it(tmp_path) -> None:
    from benchmarks.quality.default_dem import misregistered_guide

    rng = np.random.default_rng(3)
    t_path = write_raster(tmp_path / "target.tif", rng.random((20, 24)).astype(np.float32), T)
    g_t = Affine(0.5, 0, 600000.0, 0, -0.5, 5340000.0)
    guide = write_raster(tmp_path / "guide.tif", rng.random((3, 40, 48)).astype(np.float32), g_t)
    centre = T * (12, 10)
    turned = misregistered_guide(guide, t_path, None, tmp_path / "turned.tif", rotation=90.0)
    with rasterio.open(turned) as src:
        new = src.transform
        np.testing.assert_array_equal(src.read(), rasterio.open(guide).read())
    # the guide pixel that showed the target's centre still does
    np.testing.assert_allclose(new * (~g_t * centre), centre, atol=1e-6)
    # the one 10 m east of it now lies 10 m north of it (anticlockwise on the map)
    east = ~g_t * (centre[0] + 10, centre[1])
    np.testing.assert_allclose(new * east, (centre[0], centre[1] + 10), atol=1e-6)
    # turned, then moved: 2 target pixels east, 1 south
    both = misregistered_guide(guide, t_path, (2.0, 1.0), tmp_path / "both.tif", rotation=90.0)
    with rasterio.open(both) as src:
        np.testing.assert_allclose(src.transform * (~g_t * centre),
                                   (centre[0] + 2, centre[1] - 1), atol=1e-6)


def test_depth_pairs_are_the_middlebury_arrays_on_a_local_grid(tmp_path) -> None:
    import pytest

    from benchmarks.quality import default_dem
    from geosr.evaluation.evaluate import load_pairs

    folder = default_dem.SHARED / "middlebury2005_fullsize_msgnet"
    if not folder.is_dir():
        pytest.skip("needs ../shared/data/middlebury2005_fullsize_msgnet")
    first = load_pairs(folder)[0]
    pairs = default_dem.depth_pairs(tmp_path, [f"middlebury2005_{first.name}"])
    target, guide, extra = pairs[f"middlebury2005_{first.name}"]
    with rasterio.open(target) as t, rasterio.open(guide) as g:
        assert t.crs is not None and t.transform == g.transform and g.count == 3
        np.testing.assert_array_equal(t.read(1), first.target)
        np.testing.assert_array_equal(g.read(), first.guide)
    assert extra == []


def test_a_depth_set_named_by_its_prefix_gives_all_its_scenes(tmp_path) -> None:
    import pytest

    from benchmarks.quality import default_dem

    if not (default_dem.SHARED / "middlebury_dctnet").is_dir():
        pytest.skip("needs ../shared/data/middlebury_dctnet")
    every = default_dem.depth_pairs(tmp_path, ["middlebury_dctnet"])
    assert len(every) == 20 and "middlebury_dctnet_06" in every
    (tmp_path / "one").mkdir()
    one = default_dem.depth_pairs(tmp_path / "one", ["middlebury_dctnet_06", "mashhad_dsm"])
    assert list(one) == ["middlebury_dctnet_06"]
    assert default_dem.depth_pairs(tmp_path, ["mashhad_dsm"]) == {}


def test_a_centre_window_cuts_the_target_and_the_guide_over_the_same_ground(tmp_path) -> None:
    from benchmarks.quality.default_dem import centre_window

    rng = np.random.default_rng(3)
    target = rng.normal(0, 5, (40, 48)).astype(np.float32)
    guide = rng.random((3, 80, 96)).astype(np.float32)
    t_path = write_raster(tmp_path / "target.tif", target, T)
    g_path = write_raster(tmp_path / "guide.tif", guide,
                          Affine(0.5, 0, 600000.0, 0, -0.5, 5340000.0))
    t2, g2 = centre_window(t_path, g_path, 16, 4, tmp_path, "p")
    with rasterio.open(t2) as t, rasterio.open(g2) as g:
        np.testing.assert_array_equal(t.read(1), target[12:28, 16:32])
        assert (t.transform.c, t.transform.f) == (600016.0, 5340000.0 - 12)
        # the guide: 4 target px (8 guide px) wider on each side, the same pixels
        assert (g.width, g.height) == (48, 48)
        assert (g.transform.c, g.transform.f) == (600012.0, 5340000.0 - 8)
        np.testing.assert_array_equal(g.read(), guide[:, 16:64, 24:72])
    # near the edge the guide is cut where it ends; a window larger than the target is refused
    _, g3 = centre_window(t_path, g_path, 36, 4, tmp_path, "q")
    with rasterio.open(g3) as g:
        assert (g.width, g.height) == (88, 80)
    import pytest
    with pytest.raises(SystemExit, match="larger than"):
        centre_window(t_path, g_path, 44, 4, tmp_path, "r")
