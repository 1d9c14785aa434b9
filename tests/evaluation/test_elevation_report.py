"""Elevation in the eval/bench report and the quicklook: hillshades, signed errors in the
reference's unit on a diverging map centred on 0, no data unlike the highest ground."""

from __future__ import annotations

import re
from typing import Any

import matplotlib
import numpy as np
import pytest
from matplotlib.colors import to_rgba

from geosr.evaluation import report as report_mod
from geosr.evaluation.evaluate import Pair, evaluate, load_pairs
from geosr.evaluation.quicklook import NODATA_COLOUR, write_quicklook
from geosr.evaluation.report import elevation_figure, is_elevation, write_report
from tests.geodata import write_raster

matplotlib.use("Agg")


def dsm_pair(unit: str | None = "m") -> Pair:
    yy, xx = np.mgrid[0:40, 0:40].astype(np.float32)
    z = 200 + 0.4 * yy + 12.0 * ((xx > 16) & (yy > 8) & (yy < 28))
    z[2:6, 30:36] = np.nan  # a hole in the reference
    guide = np.stack([np.nan_to_num(z) / 250, (xx > 16).astype(np.float32), yy / 40])
    return Pair("dsm", z.astype(np.float32), guide.astype(np.float32), 0.5, unit)


@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The matplotlib figures the report draws, kept open instead of made PNGs."""
    kept: list[Any] = []

    def keep(fig: Any, dpi: int) -> bytes:
        kept.append(fig)
        return b"\x89PNG"

    monkeypatch.setattr(report_mod, "_png", keep)
    return kept


def colourbar_labels(fig: Any) -> list[str]:
    return [ax.get_ylabel() for ax in fig.axes if ax.get_label() == "<colorbar>"]


def test_elevation_figure__hillshades_signed_error_units_nodata(figures) -> None:
    result = evaluate([dsm_pair()], {"guided-filter": {}}, 4, keep_outputs=True)
    arrays = result["outputs"]["dsm"]
    elevation_figure(arrays, ["bicubic", "guided-filter"], 4, pixel_size=0.5, unit="m")
    [fig] = figures
    labels = colourbar_labels(fig)
    assert labels == ["elevation (m)", "error, output − reference (m)"]
    titles = [ax.get_title() for ax in fig.axes]
    assert sum("hillshade" in t for t in titles) == 4  # LR, 2 methods, reference
    errors = [ax for ax in fig.axes if ax.get_title().startswith("error ")]
    assert len(errors) == 2
    for ax in errors:
        [im] = ax.get_images()
        assert im.get_cmap().name == "RdBu_r"  # diverging
        lo, hi = im.get_clim()
        assert lo == -hi and hi > 0  # centred on 0
        got = np.ma.filled(im.get_array().astype(float), np.nan)
        want = arrays[ax.get_title().split("\n")[0][6:]] - arrays["hr"]
        np.testing.assert_allclose(got, want)  # signed, not |error|
        assert (got < 0).any() and (got > 0).any()
    # no data: transparent pixels over a hatched grey, named in a legend; the highest
    # ground (gist_earth's top, near white) looks different
    ref_ax = next(ax for ax in fig.axes if ax.get_title().startswith("reference"))
    rgba = ref_ax.get_images()[0].get_array()
    assert (rgba[2:6, 30:36, 3] == 0).all() and (rgba[10:20, 20:30, 3] == 1).all()
    face = to_rgba(ref_ax.patch.get_facecolor())
    assert face == to_rgba(NODATA_COLOUR) and ref_ax.patch.get_hatch()
    top = matplotlib.colormaps["gist_earth"](1.0)
    assert np.abs(np.subtract(face[:3], top[:3])).max() > 0.2
    [legend] = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["no data"]


def test_report__elevation_pairs_drawn_as_elevation(tmp_path, figures) -> None:
    result = evaluate([dsm_pair()], {"guided-filter": {}}, 4, keep_outputs=True)
    assert result["pairs"] == {"dsm": {"pixel_size": 0.5, "unit": "m", "crs_unit": None}}
    page = write_report(tmp_path / "rep", result).read_text()
    assert "as hillshades; signed error maps" in page
    assert "error, output − reference (m)" in colourbar_labels(figures[-1])
    assert "value" not in colourbar_labels(figures[-1])


def test_is_elevation() -> None:
    assert is_elevation({"methods": {"mmsr": {"preset": "dem"}}})
    assert is_elevation({"pairs": {"a": {"unit": "m"}}})
    assert not is_elevation({"pairs": {"a": {"unit": "K"}}, "methods": {"mmsr": {}}})
    assert not is_elevation({"pairs": {"a": {"unit": None}}})
    assert is_elevation({}, True) and not is_elevation({"pairs": {"a": {"unit": "m"}}}, False)


def test_eval__unit_from_a_geotiff(tmp_path, scene: dict[str, Any], figures) -> None:
    """A georeferenced HR file's units reach the report: its band's, and its CRS's, which
    labels the colour bars of a DEM whose band names none."""
    import rasterio

    with rasterio.open(scene["lr"], "r+") as f:
        f.set_band_unit(1, "ft")
    [pair] = load_pairs(scene["lr"], guide=scene["guide"])
    assert (pair.unit, pair.crs_unit, pair.pixel_size) == ("ft", "m", 4.0)
    hr = write_raster(tmp_path / "no_unit.tif", scene["lr_array"], scene["lr_transform"])
    [pair] = load_pairs(hr, guide=scene["guide"])
    assert (pair.unit, pair.crs_unit) == (None, "m")
    result = evaluate([pair], {}, 4, keep_outputs=True)
    assert not is_elevation(result)  # a band in the CRS's metres may be anything
    write_report(tmp_path / "rep", result, elevation=True)
    assert "error, output − reference (m)" in colourbar_labels(figures[-1])


def test_generic_report__nodata_hatched_too(tmp_path, figures) -> None:
    result = evaluate([dsm_pair(unit=None)], {"guided-filter": {}}, 4, keep_outputs=True)
    write_report(tmp_path / "rep", result, elevation=False)
    fig = figures[-1]
    assert "value" in colourbar_labels(fig)
    ref_ax = next(ax for ax in fig.axes if ax.get_title() == "reference")
    assert to_rgba(ref_ax.patch.get_facecolor()) == to_rgba(NODATA_COLOUR)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["no data"]


def test_quicklook__nodata_unlike_the_highest_ground(scene, tmp_path, monkeypatch) -> None:
    from matplotlib.figure import Figure

    from geosr import pipeline
    from geosr.pipeline.config import OutputConfig, RunConfig

    out = tmp_path / "out.tif"
    pipeline.run(scene["lr"], scene["guide"], out,
                 RunConfig(scale=4, method="bicubic", output=OutputConfig(cog=False)))
    saved: list[Figure] = []
    real = Figure.savefig

    def savefig(self: Figure, *args: Any, **kw: Any) -> None:
        saved.append(self)
        real(self, *args, **kw)

    monkeypatch.setattr(Figure, "savefig", savefig)
    write_quicklook(tmp_path / "q.png", scene["lr"], scene["guide"], out, kind="dem",
                    max_pixels=80)
    [fig] = saved
    panels = [ax for ax in fig.axes if re.match(r"(LR input|guide|output) ", ax.get_title())]
    assert len(panels) == 3
    for ax in panels:
        assert to_rgba(ax.patch.get_facecolor()) == to_rgba(NODATA_COLOUR)
    out_rgba = panels[2].get_images()[0].get_array()
    assert (out_rgba[..., 3] == 0).any()  # the LR's nodata patch: transparent
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["no data"]


def test_eval_cli__preset_dem_draws_elevation(tmp_path, scene: dict[str, Any]) -> None:
    from click.testing import CliRunner

    from geosr.cli.main import cli

    rep = tmp_path / "rep"
    args = ["eval", scene["lr"], "--guide", scene["guide"], "-m", "guided-filter", "--scale",
            "2", "--report", str(rep), "-q"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    assert "signed error maps" not in (rep / "index.html").read_text()  # no unit, no preset
    r = CliRunner().invoke(cli, [*args, "--preset", "dem"])
    assert r.exit_code == 0, r.output
    assert "as hillshades; signed error maps" in (rep / "index.html").read_text()
