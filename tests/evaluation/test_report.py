"""``geosr eval --report``: the HTML report, its figures, bench records, and Chromium."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from click.testing import CliRunner

from geosr.cli.main import cli
from geosr.errors import InputError
from geosr.evaluation.evaluate import Pair, evaluate, load_pairs
from tests.geodata import shared_data_dir, write_raster

pytest.importorskip("matplotlib")

METHODS = {"guided-filter": {}}


def _pairs(rng: np.random.Generator) -> list[Pair]:
    out = []
    for k in range(2):
        yy, xx = np.mgrid[0:32, 0:32].astype(np.float32)
        target = 10 + 0.2 * yy + 6.0 * (xx > 12 + 4 * k)
        guide = np.stack([target / 20, (xx > 12 + 4 * k).astype(np.float32), yy / 32])
        guide = guide + rng.normal(0, 0.01, guide.shape).astype(np.float32)
        out.append(Pair(f"p{k}", target.astype(np.float32), guide.astype(np.float32)))
    return out


@pytest.fixture
def report(tmp_path, rng) -> Path:
    from geosr.evaluation.report import write_report

    result = evaluate(_pairs(rng), METHODS, 4, keep_outputs=True)
    return write_report(tmp_path / "rep", result, note="reduced settings: tiny test pairs")


def _images(page: str) -> list[str]:
    return re.findall(r'<img src="([^"]+)"', page)


def test_evaluate__keeps_no_outputs_by_default(rng):
    result = evaluate(_pairs(rng)[:1], METHODS, 4)
    assert "outputs" not in result
    json.dumps(result)


def test_evaluate__keep_outputs_holds_every_method(rng):
    result = evaluate(_pairs(rng)[:1], METHODS, 4, keep_outputs=True)
    arrays = result["outputs"]["p0"]
    assert set(arrays) == {"hr", "lr", "guide", "bicubic", "lanczos", "guided-filter"}
    assert arrays["bicubic"].shape == arrays["hr"].shape == (32, 32)
    assert arrays["lr"].shape == (8, 8) and arrays["guide"].shape == (3, 32, 32)


def test_report__self_contained_page_with_embedded_pngs(report):
    from PIL import Image

    page = report.read_text()
    srcs = _images(page)
    assert len(srcs) == 1 + 2  # RMSE-vs-seconds plot + one figure per pair
    for src in srcs:
        assert src.startswith("data:image/png;base64,")
        with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as im:
            assert im.format == "PNG" and im.size[0] > 100
    assert "http://" not in page and "https://" not in page  # nothing from the network
    summary = re.search(r'<table id="summary".*?</table>', page, re.S).group(0)
    assert summary.count("<tr") == 1 + 3  # header + bicubic + lanczos + guided-filter
    assert "reduced settings" in page
    assert json.loads((report.parent / "result.json").read_text())["scale"] == 4


def test_report__images_next_to_the_page(tmp_path, rng):
    from geosr.evaluation.report import write_report

    result = evaluate(_pairs(rng), METHODS, 4, keep_outputs=True)
    outputs = result.pop("outputs")
    page = write_report(tmp_path / "rep", result, outputs, embed=False)
    srcs = _images(page.read_text())
    assert len(srcs) == 3 and all((page.parent / s).is_file() for s in srcs)


def test_report__bench_records(tmp_path):
    from geosr.evaluation.report import write_report

    bench = [
        {"method": "bicubic", "rmse": 2.0, "seconds_per_megapixel": 0.01},
        {"method": "mmsr", "rmse": 1.2, "seconds_per_megapixel": 40.0, "label": "250 it"},
        {"method": "mmsr", "rmse": 1.1, "seconds_per_megapixel": 160.0, "label": "1000 it"},
    ]
    page = write_report(tmp_path / "b", bench=bench, title="bench").read_text()
    table = re.search(r'<table id="bench".*?</table>', page, re.S).group(0)
    assert table.count("<tr") == 1 + 3 and "1000 it" in table
    assert len(_images(page)) == 1
    with pytest.raises(InputError, match="seconds_per_megapixel"):
        write_report(tmp_path / "c", bench=[{"method": "x", "rmse": 1.0}])
    with pytest.raises(InputError, match="nothing to report"):
        write_report(tmp_path / "d")


def test_eval_cli__report_option(tmp_path, rng):
    data = tmp_path / "data"
    data.mkdir()
    for p in _pairs(rng):
        np.savez(data / f"{p.name}.npz", target=p.target, guide=p.guide)
    rep = tmp_path / "rep"
    res = CliRunner().invoke(cli, ["eval", str(data), "-m", "guided-filter", "--crop", "24",
                                   "--report", str(rep), "--report-note", "tiny", "-q"])
    assert res.exit_code == 0, res.output
    page = (rep / "index.html").read_text()
    assert "24x24" in page and "tiny" in page and len(_images(page)) == 3
    assert "guided-filter" in res.stdout  # the table is still printed


def test_load_pairs__resamples_a_georeferenced_guide_onto_the_hr_grid(tmp_path, rng):
    hr = rng.normal(100, 5, (16, 20)).astype(np.float32)
    guide = rng.integers(0, 255, (3, 32, 40)).astype(np.uint8)
    t = Affine(1.0, 0, 730000.0, 0, -1.0, 4012000.0)
    tp = write_raster(tmp_path / "dsm.tif", hr, t, crs="EPSG:32640")
    gp = write_raster(tmp_path / "rgb.tif", guide, t @ Affine.scale(0.5), crs="EPSG:32640")
    (pair,) = load_pairs(tp, gp)
    assert pair.guide.shape == (3, 16, 20)
    expect = guide.astype(np.float32).reshape(3, 16, 2, 20, 2).mean(axis=(2, 4))
    np.testing.assert_allclose(pair.guide, expect, atol=0.51)


def test_load_pairs__real_dsm_and_finer_ortho():
    d = shared_data_dir()
    if d is None or not (d / "geo_mashhad_elevation1_pleiades").is_dir():
        pytest.skip("shared/data/geo_mashhad_elevation1_pleiades is not available")
    m = d / "geo_mashhad_elevation1_pleiades"
    (pair,) = load_pairs(m / "dsm_west_1m.tif", m / "ortho_rgb_west_0p5m.tif")
    assert pair.guide.shape == (3, *pair.target.shape) == (3, 500, 320)


# -- headless Chromium -------------------------------------------------------------------
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars"]
# Appended to a copy of the page: on load, write what the test checks into the DOM.
PROBE = """<script>
window.addEventListener("load", function () {
  var imgs = Array.from(document.images);
  var res = {images: imgs.length,
             loaded: imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length,
             summary_rows: document.querySelectorAll("#summary tbody tr").length};
  var pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify(res);
  document.body.appendChild(pre);
});
</script>"""


def _chromium() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)


def _run_chromium(exe: str, *args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="geosr-chromium-") as profile:
        return subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=120,
                              env={**os.environ, "HOME": profile})


@pytest.mark.slow
def test_report__every_image_loads_in_headless_chromium(report):
    exe = _chromium()
    if exe is None:
        pytest.skip("Chromium is not installed (apt-get install -y chromium)")
    probe = report.with_name("probe.html")
    probe.write_text(report.read_text().replace("</body>", PROBE + "</body>"))
    res = _run_chromium(exe, "--virtual-time-budget=10000", "--dump-dom", probe.as_uri())
    m = re.search(r'<pre id="probe">([^<]*)</pre>', res.stdout)
    assert m, res.stderr[-2000:]
    got = json.loads(m.group(1))
    assert got["images"] == 3 and got["loaded"] == got["images"]
    assert got["summary_rows"] == len(METHODS) + 1  # one row per method, bicubic included
    shot = report.with_name("screenshot.png")
    _run_chromium(exe, "--window-size=1200,1600", f"--screenshot={shot}", report.as_uri())
    from PIL import Image

    with Image.open(shot) as im:
        assert im.size == (1200, 1600)
        assert np.asarray(im.convert("L")).std() > 5  # not a blank page
