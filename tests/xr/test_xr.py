"""geosr.super_resolve_xr: DataArrays in, the CLI's output as a DataArray out."""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pytest
import rasterio
import rioxarray
import xarray as xr
from affine import Affine
from click.testing import CliRunner

import geosr
import geosr.pipeline.stats
import geosr.pipeline.tiles
from geosr import pipeline
from geosr.cli.main import cli
from geosr.errors import GeosrError, GridError, InputError, OptionError
from geosr.pipeline.config import OutputConfig, RunConfig, SceneConfig, TilingConfig
from geosr.xr.inputs import ArraySource
from geosr.xr.write import to_raster
from tests.geodata import write_raster

TILING = TilingConfig(tile_size=12, overlap=3, mosaic_block=64)


@pytest.fixture(autouse=True)
def _quiet_dask_chunk_warnings() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # rioxarray/xarray chunk advice
        yield


def open_da(path: str | Path, **kw: Any) -> xr.DataArray:
    return rioxarray.open_rasterio(path, **kw)


def read(path: str | Path) -> tuple[np.ndarray, Any]:
    with rasterio.open(path) as src:
        return src.read(1), {"crs": src.crs, "transform": src.transform, "nodata": src.nodata,
                             "tags": src.tags(), "desc": src.descriptions, "count": src.count}


def geosr_tags(tags: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in tags.items() if k.startswith("GEOSR_") or k == "TIFFTAG_SOFTWARE"}


def reproject_guide(scene: dict[str, Any], res_m: float) -> tuple[np.ndarray, Affine]:
    """The scene's guide warped to EPSG:4326 at about ``res_m`` metres."""
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    src = scene["guide_array"].astype(np.uint8)
    with rasterio.open(scene["guide"]) as g:
        bounds = g.bounds
    dst_t, dw, dh = calculate_default_transform(
        "EPSG:32633", "EPSG:4326", src.shape[2], src.shape[1], *bounds,
        resolution=(res_m / 111000 * 1.5, res_m / 111000),
    )
    dst = np.zeros((3, dh, dw), np.uint8)
    reproject(src, dst, src_transform=scene["guide_transform"], src_crs="EPSG:32633",
              dst_transform=dst_t, dst_crs="EPSG:4326", resampling=Resampling.cubic)
    return dst, dst_t


def in_memory(data: np.ndarray, transform: Affine, crs: str | None, dims: tuple[str, ...],
              nodata: float | None = None) -> xr.DataArray:
    """A DataArray made in memory (no file): pixel-centre coordinates, CRS, nodata."""
    h, w = data.shape[-2:]
    coords = {"y": transform.f + (np.arange(h) + 0.5) * transform.e,
              "x": transform.c + (np.arange(w) + 0.5) * transform.a}
    if len(dims) == 3:
        coords[dims[0]] = np.arange(1, data.shape[0] + 1)
    da = xr.DataArray(data, dims=dims, coords=coords)
    if crs is not None:
        da = da.rio.write_crs(crs)
    if nodata is not None:
        da = da.rio.write_nodata(nodata)
    return da


# -- same output as the CLI ----------------------------------------------------------------
@pytest.mark.parametrize("method", ["bicubic", "guided-filter"])
@pytest.mark.parametrize("masked", [False, True])
def test_super_resolve_xr__equals_pipeline(scene: dict[str, Any], method: str,
                                           masked: bool) -> None:
    ref_path = scene["dir"] / "cli.tif"
    pipeline.run(scene["lr"], scene["guide"], ref_path, RunConfig(scale=4, method=method, tiling=TILING, output=OutputConfig(cog=False)))
    ref, ref_meta = read(ref_path)

    hr = geosr.super_resolve_xr(open_da(scene["lr"], masked=masked),
                                open_da(scene["guide"]), 4, method=method, tiling=TILING)
    assert isinstance(hr.data, np.ndarray)  # numpy in, numpy out (computed by the call)
    assert hr.dims == ("band", "y", "x") and hr.shape == (1, *ref.shape)
    assert hr.dtype == np.float32
    if masked:  # NaN in the array, the LR's -9999 when written
        assert np.isnan(hr.values).sum() == (ref == -9999.0).sum() and hr.rio.nodata != -9999
    out = scene["dir"] / "xr.tif"
    hr.rio.to_raster(out)
    got, meta = read(out)
    np.testing.assert_array_equal(got, ref)
    for key in ("crs", "transform", "nodata", "desc", "count"):
        assert meta[key] == ref_meta[key], key
    assert geosr_tags(meta["tags"]) == geosr_tags(ref_meta["tags"])
    assert meta["tags"]["GEOSR_LR"] == scene["lr"] and meta["tags"]["GEOSR_METHOD"] == method


def test_super_resolve_xr__equals_cli_and_keeps_2d(scene: dict[str, Any]) -> None:
    out = scene["dir"] / "cli.tif"
    r = CliRunner().invoke(cli, ["sr", "--method", "guided-filter", "--guard", "off", "--lr", scene["lr"],
                                 "--guide", scene["guide"], "--scale", "4", "-o", str(out),
                                 "-q"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    ref, ref_meta = read(out)
    lr2d = open_da(scene["lr"]).squeeze("band", drop=True)
    hr = geosr.super_resolve_xr(lr2d, open_da(scene["guide"]), 4, method="guided-filter")
    assert hr.dims == ("y", "x")
    assert hr.rio.crs == ref_meta["crs"] and hr.rio.transform() == ref_meta["transform"]
    assert hr.rio.nodata == ref_meta["nodata"] == -9999.0
    np.testing.assert_array_equal(hr.values, ref)
    np.testing.assert_array_equal(hr.x.values, (ref_meta["transform"] @ (np.arange(160) + 0.5,
                                                                         np.full(160, 0.5)))[0])
    assert hr.attrs["GEOSR_SCALE"] == "4" and hr.attrs["GEOSR_GUIDE"] == scene["guide"]


def test_super_resolve_xr__in_memory_dataarrays(scene: dict[str, Any]) -> None:
    """DataArrays that never were files (NaN nodata, 2-D LR) give the pipeline's values."""
    ref_path = scene["dir"] / "cli.tif"
    pipeline.run(scene["lr"], scene["guide"], ref_path, RunConfig(scale=4, method="guided-filter", tiling=TILING, output=OutputConfig(cog=False)))
    ref, _ = read(ref_path)
    lr = in_memory(scene["lr_array"], scene["lr_transform"], "EPSG:32633", ("y", "x"))
    guide = in_memory(scene["guide_array"].astype(np.uint8), scene["guide_transform"],
                      "EPSG:32633", ("band", "y", "x"))
    hr = geosr.super_resolve_xr(lr, guide, 4, method="guided-filter", tiling=TILING)
    assert hr.rio.nodata is not None and np.isnan(hr.rio.nodata)
    np.testing.assert_array_equal(np.nan_to_num(hr.values, nan=-9999.0), ref)
    assert hr.attrs["GEOSR_LR"] == "lr" and hr.attrs["GEOSR_GUIDE"] == "guide"


def test_super_resolve_xr__mmsr_seeded_equals_pipeline(scene: dict[str, Any]) -> None:
    lr = np.nan_to_num(scene["lr_array"][:16, :16], nan=-9999.0)
    lr_path = write_raster(scene["dir"] / "small.tif", lr, scene["lr_transform"],
                           nodata=-9999.0)
    opts = {"preset": "dem", "iterations": 3, "seed": 0}
    out = scene["dir"] / "mmsr.tif"
    pipeline.run(lr_path, scene["guide"], out, RunConfig(scale=4, method="mmsr", method_options=opts, output=OutputConfig(cog=False)))
    ref, ref_meta = read(out)
    hr = geosr.super_resolve_xr(open_da(lr_path, chunks=True), open_da(scene["guide"]), 4,
                                method="mmsr", **opts)
    np.testing.assert_array_equal(hr.values[0], ref)
    assert hr.attrs["GEOSR_OPTIONS"] == ref_meta["tags"]["GEOSR_OPTIONS"]
    assert json.loads(hr.attrs["GEOSR_OPTIONS"]).items() >= opts.items()


@pytest.mark.parametrize("mode", ["scene", "hybrid"])
def test_super_resolve_xr__scene_modes_equal_pipeline(scene: dict[str, Any], mode: str) -> None:
    """One scene network, fitted as a task of the lazy graph on crops read through the
    array source, gives the pipeline's values."""
    opts = {"iterations": 4, "width": 8, "preset": "dem"}
    tiling = TilingConfig(tile_size=16, overlap=8)
    cfg = SceneConfig(mode=mode, crop=12, pool=4, hybrid_iterations=2)
    out = scene["dir"] / f"{mode}.tif"
    net = scene["dir"] / "net.pt"
    summary = pipeline.run(scene["lr"], scene["guide"], out, RunConfig(scale=4, method="mmsr", method_options=opts, tiling=tiling, scene=cfg, output=OutputConfig(cog=False), save_network=net))
    assert summary["scene_fit"]["crops"] == 4 and summary["tiles"]["done"] > 1
    ref, _ = read(out)
    lr = open_da(scene["lr"], chunks={"x": 16, "y": 16})
    guide = open_da(scene["guide"], chunks={"x": 64, "y": 64})
    with dask.config.set(scheduler=_no_compute):
        hr = geosr.super_resolve_xr(lr, guide, 4, method="mmsr", tiling=tiling, mode=mode,
                                    scene=cfg, **opts)
    assert dask.is_dask_collection(hr.data)
    keys = [str(k) for k in dict(hr.data.__dask_graph__())]
    assert sum(k.startswith("geosr-scene-") for k in keys) == 1  # one fit for all tiles
    np.testing.assert_array_equal(hr.values[0], ref)
    assert hr.attrs["GEOSR_METHOD"] == "mmsr"
    # started from the saved network, nothing is fitted for the scene: another seed (which
    # a scene fit would follow) still gives the same values
    other = {**opts, "seed": 7}
    from_file = dataclasses.replace(cfg, network=str(net))
    hr = geosr.super_resolve_xr(lr, guide, 4, method="mmsr", tiling=tiling, mode=mode,
                                scene=from_file, **other)
    np.testing.assert_array_equal(hr.values[0], ref)
    if mode == "scene":
        refit = geosr.super_resolve_xr(lr, guide, 4, method="mmsr", tiling=tiling, mode=mode,
                                       scene=cfg, **other)
        assert not np.allclose(refit.values[0], ref, equal_nan=True)


# -- dask ----------------------------------------------------------------------------------
def _no_compute(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("super_resolve_xr computed something")


def test_super_resolve_xr__dask_inputs_stay_lazy(scene: dict[str, Any]) -> None:
    eager = geosr.super_resolve_xr(open_da(scene["lr"]), open_da(scene["guide"]), 4,
                                   method="guided-filter", tiling=TILING)
    lr = open_da(scene["lr"], chunks={"x": 16, "y": 16})
    guide = open_da(scene["guide"], chunks={"x": 64, "y": 64})
    with dask.config.set(scheduler=_no_compute):
        hr = geosr.super_resolve_xr(lr, guide, 4, method="guided-filter", tiling=TILING)
    assert dask.is_dask_collection(hr.data)
    assert hr.data.chunks == ((1,), (64, 64, 16), (64, 64, 32))  # the mosaic blocks
    keys = {str(k) for k in dict(hr.data.__dask_graph__())}
    n_tiles = len(pipeline.make_plan(scene["lr"], scene["guide"], RunConfig(scale=4, method="guided-filter", tiling=TILING)).layout)
    assert sum("geosr-tile-" in k for k in keys) == n_tiles > 9
    assert any("geosr-stats-" in k for k in keys)  # the statistics are part of the graph
    with dask.config.set(scheduler="sync"):
        got = hr.compute()
    xr.testing.assert_identical(got, eager)


def test_to_raster__writes_a_lazy_result_block_by_block(scene: dict[str, Any]) -> None:
    ref_path = scene["dir"] / "cli.tif"
    pipeline.run(scene["lr"], scene["guide"], ref_path, RunConfig(scale=4, method="guided-filter", tiling=TILING, output=OutputConfig(cog=False)))
    ref, ref_meta = read(ref_path)
    lr = open_da(scene["lr"], masked=True, chunks={"x": 16, "y": 16})
    guide = open_da(scene["guide"], chunks={"x": 64, "y": 64})
    hr = geosr.super_resolve_xr(lr, guide, 4, method="guided-filter", tiling=TILING)
    for name, arr, workers in (("lazy.tif", hr, None), ("lazy2.tif", hr, 2),
                               ("numpy.tif", hr.compute(), None)):
        out = scene["dir"] / name
        to_raster(arr, out, compress="DEFLATE", num_workers=workers)
        got, meta = read(out)
        np.testing.assert_array_equal(got, ref)
        for key in ("crs", "transform", "nodata", "desc", "count"):
            assert meta[key] == ref_meta[key], key
        assert geosr_tags(meta["tags"]) == geosr_tags(ref_meta["tags"])
        with rasterio.open(out) as src:
            assert src.compression.name.upper() == "DEFLATE"
            if arr is hr:  # GeoTIFF blocks = the chunks (mosaic blocks of 64 px)
                assert src.block_shapes == [(64, 64)]


def test_super_resolve_xr__lazy_input_error_raised_on_compute(scene: dict[str, Any]) -> None:
    lr = np.full((36, 40), -9999.0, np.float32)
    path = write_raster(scene["dir"] / "empty.tif", lr, scene["lr_transform"], nodata=-9999.0)
    hr = geosr.super_resolve_xr(open_da(path, chunks=True), open_da(scene["guide"], chunks=True),
                                4, method="bicubic")
    with pytest.raises(InputError, match="no valid pixel"):
        hr.compute(scheduler="sync")
    with pytest.raises(InputError, match="no valid pixel"):  # numpy inputs: at once
        geosr.super_resolve_xr(open_da(path), open_da(scene["guide"]), 4, method="bicubic")


# -- guide in another CRS ------------------------------------------------------------------
def test_super_resolve_xr__guide_in_4326(scene: dict[str, Any]) -> None:
    dst, dst_t = reproject_guide(scene, 0.25)
    g_path = write_raster(scene["dir"] / "guide_4326.tif", dst, dst_t, crs="EPSG:4326")
    cli_out = scene["dir"] / "cli_4326.tif"
    pipeline.run(scene["lr"], g_path, cli_out, RunConfig(scale=4, method="guided-filter", tiling=TILING, output=OutputConfig(cog=False)))
    ref, ref_meta = read(cli_out)

    guide = open_da(g_path, chunks={"x": 100, "y": 100})
    hr = geosr.super_resolve_xr(open_da(scene["lr"], masked=True), guide, 4,
                                method="guided-filter", tiling=TILING)
    assert hr.rio.crs == ref_meta["crs"] and hr.rio.transform() == ref_meta["transform"]
    got = hr.values[0]
    # the guide went through the same WarpedVRT as in the CLI: same values
    np.testing.assert_array_equal(np.nan_to_num(got, nan=-9999.0), ref)

    native = geosr.super_resolve_xr(open_da(scene["lr"], masked=True), open_da(scene["guide"]),
                                    4, method="guided-filter", tiling=TILING).values[0]
    bicubic = geosr.super_resolve(scene["lr_array"], scene["guide_array"], 4, "bicubic")[0]
    ok = np.isfinite(got) & np.isfinite(native)
    diff = np.sqrt(np.mean((got - native)[ok] ** 2))
    gain = np.sqrt(np.mean((native - bicubic)[ok] ** 2))
    assert diff < 0.25 * gain, (diff, gain)


def test_super_resolve_xr__in_memory_guide_in_4326(scene: dict[str, Any]) -> None:
    """A 4326 guide made in memory, at ~1.2 m (bilinear onto the 1 m grid), matches the CLI
    on the same pixels written to a file."""
    dst, dst_t = reproject_guide(scene, 1.2)
    g_path = write_raster(scene["dir"] / "guide_4326.tif", dst, dst_t, crs="EPSG:4326")
    cli_out = scene["dir"] / "cli_4326.tif"
    pipeline.run(scene["lr"], g_path, cli_out, RunConfig(scale=4, method="guided-filter", tiling=TILING, output=OutputConfig(cog=False)))
    ref, _ = read(cli_out)
    guide = in_memory(dst, dst_t, "EPSG:4326", ("band", "y", "x")).chunk({"x": 40, "y": 40})
    hr = geosr.super_resolve_xr(open_da(scene["lr"]), guide, 4, method="guided-filter",
                                tiling=TILING)
    np.testing.assert_allclose(hr.values[0], ref, rtol=0, atol=1e-4)


# -- statistics through the array source ---------------------------------------------------
@pytest.mark.parametrize("full_pixels", [None, 200])
def test_array_source__stats_equal_file_stats(scene: dict[str, Any], full_pixels: int | None,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    if full_pixels is not None:  # decimated reads: GDAL's nearest sampling, reproduced
        monkeypatch.setattr(pipeline.stats, "STATS_FULL_PIXELS", full_pixels)
    plan = pipeline.make_plan(scene["lr"], scene["guide"], RunConfig(scale=4, method="bicubic"))
    ref = pipeline.compute_stats(plan)
    with rasterio.open(scene["lr"]) as src:
        lr = src.read(1)
    with rasterio.open(scene["guide"]) as src:
        guide, geom = src.read(), plan.guide.geometry
    source = ArraySource(lr=lr, lr_nodata=-9999.0, guide=guide, guide_geometry=geom)
    got = pipeline.compute_stats(dataclasses.replace(plan, source=source))
    assert got.lr_stats == ref.lr_stats and got.guide_stats == ref.guide_stats
    # and the lazy graph folds the same statistics
    hr = geosr.super_resolve_xr(open_da(scene["lr"], chunks=True),
                                open_da(scene["guide"], chunks=True), 4, method="bicubic")
    stats_key = next(k for k in dict(hr.data.__dask_graph__()) if str(k).startswith("geosr-stats-")
                     and str(k).count("-") == 2)
    lazy_plan = dask.get(dict(hr.data.__dask_graph__()), stats_key)
    assert lazy_plan.lr_stats == ref.lr_stats and lazy_plan.guide_stats == ref.guide_stats


# -- errors --------------------------------------------------------------------------------
def test_super_resolve_xr__errors(scene: dict[str, Any]) -> None:
    lr, guide = open_da(scene["lr"]), open_da(scene["guide"])
    cases: list[tuple[Any, Any, Any, dict[str, Any], type, str]] = [
        (lr.drop_vars("spatial_ref"), guide, 4, {}, GridError, r"no CRS.*rio\.write_crs"),
        (lr, guide.drop_vars("spatial_ref"), 4, {}, GridError, r"guide DataArray has no CRS"),
        (lr, guide, 2.5, {}, OptionError, r"integer.*resample"),
        (lr, guide, 1, {}, OptionError, r"scale must be an integer >= 2.*scale=4"),
        (lr, guide, 16, {}, GridError, r"coarser.*scale 8 or less"),
        (lr.values, guide, 4, {}, InputError, r"xarray\.DataArray.*geosr\.super_resolve"),
        (lr.rename({"x": "a", "y": "b"}), guide, 4, {}, InputError, r"set_spatial_dims"),
        (lr.expand_dims(time=[0]), guide, 4, {}, InputError, r"2-D \(y, x\) or 3-D"),
        (lr, guide.isel(band=[0, 1]), 4, {}, InputError, r"guide_bands=\[1, 2\]"),
        (xr.concat([lr, lr], "band"), guide, 4, {}, InputError, r"lr_band=N"),
        (lr, guide, 4, {"lr_band": 3}, InputError, r"out of range"),
        (lr, guide, 4, {"method": "nope"}, OptionError, r"nope"),
        (lr, guide, 4, {"mode": "scene"}, OptionError, r"nothing to fit.*--mode tile"),
        (lr, guide, 4, {"method": "mmsr", "mode": "hybrid", "scene": SceneConfig(mode="scene")},
         OptionError, r"disagrees"),
        (lr.assign_coords(x=lr.x + 1e6), guide, 4, {}, GridError, r"do not overlap"),
        (xr.DataArray(np.zeros((8, 8)), dims=("y", "x")).rio.write_crs("EPSG:32633"), guide, 4,
         {}, GridError, r"no transform.*write_transform"),
    ]
    for lr_in, g_in, scale, kw, exc, msg in cases:
        with pytest.raises(exc, match=msg) as info:
            geosr.super_resolve_xr(lr_in, g_in, scale, **{"method": "bicubic", **kw})
        assert isinstance(info.value, GeosrError)


def test_super_resolve_xr__untagged_fill_value_warns(scene: dict[str, Any],
                                                     caplog: pytest.LogCaptureFixture) -> None:
    """As for files: an LR without a nodata value holding -9999 is warned about."""
    import logging

    lr = np.nan_to_num(scene["lr_array"], nan=-9999.0)  # 24 fill pixels, no nodata tag
    path = write_raster(scene["dir"] / "untagged.tif", lr, scene["lr_transform"])
    with caplog.at_level(logging.WARNING, logger="geosr"):
        geosr.super_resolve_xr(open_da(path, chunks=True), open_da(scene["guide"]), 4,
                               method="bicubic").compute()
    assert ("LR has 24 pixels equal to -9999 and no nodata value; if they are fill, pass "
            "--nodata -9999") in caplog.text
