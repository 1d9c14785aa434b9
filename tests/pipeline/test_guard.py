"""The self-check on the coarser copy, and the guard that writes lanczos where the method
would not beat it."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import rasterio
from affine import Affine

from geosr.pipeline import RunConfig, TilingConfig, run
from geosr.pipeline.config import OutputConfig
from tests.geodata import write_raster

T_LR = Affine(4.0, 0, 600000.0, 0, -4.0, 5340000.0)
T_HR = Affine(1.0, 0, 600000.0, 0, -1.0, 5340000.0)


def _scene(tmp_path, guide_of, seed: int = 0) -> tuple[str, str]:
    """A 48x48 LR (4 m) pooled from a 192x192 HR surface, and a 3-band guide at 1 m."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:192, 0:192].astype(np.float32)
    blocks = (rng.random((12, 12)) > 0.5).astype(np.float32)
    edges = np.kron(blocks, np.ones((16, 16), np.float32))  # sharp-edged "buildings"
    hr = 100 + 0.05 * xx + 8.0 * edges
    lr = hr.reshape(48, 4, 48, 4).mean(axis=(1, 3))
    guide = guide_of(hr, edges, rng)
    return (write_raster(tmp_path / "lr.tif", lr, T_LR),
            write_raster(tmp_path / "guide.tif", guide, T_HR))


def _read(path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1)


def test_guard_fires_on_a_noise_guide_and_writes_lanczos(tmp_path) -> None:
    lr, guide = _scene(tmp_path, lambda hr, e, rng: rng.normal(0, 1, (3, 192, 192)))
    cfg = RunConfig(scale=4, method="guided-filter", method_options={"eps": 1e-4},
                    guard=True, stac=True, tiling=TilingConfig(tile_size=24))
    s = run(lr, guide, tmp_path / "out.tif", cfg)
    assert s["guard"]["fired"] and s["self_check"]["ratio_to_lanczos"] > 1
    assert s["method"] == "lanczos"
    run(lr, guide, tmp_path / "lz.tif", RunConfig(scale=4, method="lanczos"))
    assert np.array_equal(_read(tmp_path / "out.tif"), _read(tmp_path / "lz.tif"))
    with rasterio.open(tmp_path / "out.tif") as src:
        tags = src.tags()
    assert tags["GEOSR_METHOD"] == "lanczos" and "wrote lanczos" in tags["GEOSR_GUARD"]
    assert json.loads(tags["GEOSR_SELF_CHECK"])["method"] == "guided-filter"
    item = json.loads((tmp_path / "out.stac.json").read_text())
    assert item["properties"]["geosr:guard"]["fired"] is True
    assert item["properties"]["geosr:self_check"]["ratio_to_lanczos"] > 1
    assert not list(tmp_path.glob(".geosr-self-check-*"))  # its work folder is gone


def test_guard_keeps_a_method_that_wins_on_the_coarser_copy(tmp_path) -> None:
    """A guide that shows the edges: the guided filter beats lanczos, at both scales."""
    lr, guide = _scene(tmp_path, lambda hr, e, rng: np.stack([e, e, 0.05 * hr]))
    cfg = RunConfig(scale=4, method="guided-filter", guard=True)
    s = run(lr, guide, tmp_path / "out.tif", cfg)
    assert not s["guard"]["fired"] and s["method"] == "guided-filter"
    assert s["self_check"]["ratio_to_lanczos"] < 1


def test_no_self_check_without_the_guard_or_for_resamplers(tmp_path) -> None:
    lr, guide = _scene(tmp_path, lambda hr, e, rng: rng.normal(0, 1, (3, 192, 192)))
    s = run(lr, guide, tmp_path / "a.tif", RunConfig(scale=4, method="guided-filter"))
    assert s["self_check"] is None and s["guard"] is None and s["method"] == "guided-filter"
    s = run(lr, guide, tmp_path / "b.tif", RunConfig(scale=4, method="cubic", guard=True,
                                                      output=OutputConfig(cog=False)))
    assert s["self_check"] is None and s["guard"] is None


def test_steps_are_reported_during_tile_fits_and_the_self_check(tmp_path) -> None:
    lr, guide = _scene(tmp_path, lambda hr, e, rng: np.stack([e, e, 0.05 * hr]))
    steps: list[tuple[int, int]] = []
    checks: list[Any] = []
    opts = {"iterations": 3, "device": "cpu", "width": 8}
    tiling = TilingConfig(tile_size=24, overlap=6)
    s = run(lr, guide, tmp_path / "m.tif",
            RunConfig(scale=4, method="mmsr", method_options=opts, tiling=tiling),
            step_progress=lambda i, n, loss: steps.append((i, n)))
    tiles = s["tiles"]["total"]
    assert tiles == 9 and [i for i, _ in steps] == list(range(1, 3 * tiles + 1))
    assert all(n == 3 * tiles for _, n in steps)
    run(lr, guide, tmp_path / "g.tif",
        RunConfig(scale=4, method="mmsr", method_options=opts, tiling=tiling, guard=True),
        check_progress=lambda i, n, loss: checks.append(i))
    assert checks and max(checks) == 3  # the coarse copy's fit reported its steps


def test_self_check_line_and_ratio() -> None:
    from geosr.pipeline.selfcheck import SelfCheck, pool

    sc = SelfCheck("mmsr", 0.86, 1.0, 100, (0, 0, 8, 8), 3.0)
    assert sc.beats_lanczos and "mmsr 0.86× lanczos at the coarser scale" in sc.line()
    a = np.arange(16, dtype=np.float32).reshape(4, 4)
    a[0, 0] = np.nan
    p = pool(a, 2)
    assert p[0, 0] == np.float32(np.mean([1, 4, 5])) and p[1, 1] == np.float32(12.5)




def test_blend_weight_is_the_least_squares_weight_rounded_and_clipped() -> None:
    from geosr.pipeline.selfcheck import blend_weight

    truth = np.zeros((8, 8), np.float32)
    one = np.ones_like(truth)
    assert blend_weight(one, -one, truth) == 0.5  # errors +1 and -1: halfway
    assert blend_weight(2 * one, -one, truth) == 0.35  # 1/3, to the nearest 0.05
    assert blend_weight(one, truth, truth) == 0.0  # lanczos is exact
    assert blend_weight(truth, one, truth) == 1.0  # the method is exact
    assert blend_weight(3 * one, 2 * one, truth) == 0.0  # clipped: below 0 would be best
    nan_truth = truth.copy()
    nan_truth[0] = np.nan  # NaN anywhere is left out
    assert blend_weight(one, -one, nan_truth) == 0.5


def test_what_the_guard_writes_follows_the_blend() -> None:
    from geosr.pipeline.selfcheck import SelfCheck

    def check(rmse: float, w: float, b_rmse: float) -> SelfCheck:
        return SelfCheck("mmsr", rmse, 1.0, 100, (0, 0, 8, 8), 1.0, w, b_rmse)

    assert check(0.8, 1.0, 0.8).writes == "method"
    assert check(0.8, 0.7, 0.75).writes == "blend"
    assert check(1.2, 0.4, 0.95).writes == "blend"  # worse alone, better blended
    assert check(1.2, 0.0, 1.0).writes == "lanczos"
    assert check(1.6, 0.05, 0.995).writes == "lanczos"  # a sliver within the margin
    assert check(0.99, 0.95, 0.985).writes == "method"  # a blend within the margin
    assert check(0.74, 0.85, 0.736).writes == "method"  # no better than the method
    assert "0.70 of it blended with lanczos 0.75×" in check(0.8, 0.7, 0.75).line()
    assert check(0.8, 0.7, 0.75).to_dict()["blend_ratio_to_lanczos"] == 0.75


def test_guard_writes_the_blend_the_self_check_chose(tmp_path, monkeypatch) -> None:
    """The output is w * method + (1 - w) * lanczos, tile by tile, and says so."""
    import geosr.pipeline.runner as runner
    from geosr.pipeline.selfcheck import SelfCheck

    lr, guide = _scene(tmp_path, lambda hr, e, rng: np.stack([e, e, 0.05 * hr]))
    monkeypatch.setattr(runner, "self_check", lambda *a, **k: SelfCheck(
        "guided-filter", 1.1, 1.0, 100, (0, 0, 8, 8), 1.0, 0.3, 0.9))
    tiling = TilingConfig(tile_size=24)
    s = run(lr, guide, tmp_path / "out.tif",
            RunConfig(scale=4, method="guided-filter", guard=True, tiling=tiling))
    assert s["guard"]["fired"] and s["guard"]["blend_weight"] == 0.3
    assert s["guard"]["wrote"] == "guided-filter+lanczos"
    run(lr, guide, tmp_path / "gf.tif", RunConfig(scale=4, method="guided-filter",
                                                   tiling=tiling))
    run(lr, guide, tmp_path / "lz.tif", RunConfig(scale=4, method="lanczos", tiling=tiling))
    want = 0.3 * _read(tmp_path / "gf.tif") + 0.7 * _read(tmp_path / "lz.tif")
    np.testing.assert_allclose(_read(tmp_path / "out.tif"), want, rtol=0, atol=1e-3)
    with rasterio.open(tmp_path / "out.tif") as src:
        tags = src.tags()
    assert json.loads(tags["GEOSR_BLEND"]) == {"guided-filter": 0.3, "lanczos": 0.7}
    assert "wrote that blend" in tags["GEOSR_GUARD"]


def test_guard_writing_lanczos_says_the_network_file_was_not_written(tmp_path,
                                                                     monkeypatch) -> None:
    import geosr.pipeline.runner as runner
    from geosr.pipeline.config import SceneConfig
    from geosr.pipeline.selfcheck import SelfCheck

    lr, guide = _scene(tmp_path, lambda hr, e, rng: np.stack([e, e, 0.05 * hr]))
    monkeypatch.setattr(runner, "self_check", lambda *a, **k: SelfCheck(
        "mmsr", 1.3, 1.0, 100, (0, 0, 8, 8), 1.0, 0.0, 1.0))
    net = tmp_path / "net.pt"
    s = run(lr, guide, tmp_path / "out.tif",
            RunConfig(scale=4, method="mmsr", guard=True, save_network=net,
                      method_options={"iterations": 2, "width": 8, "device": "cpu"},
                      scene=SceneConfig(mode="scene", iterations=2)))
    assert s["guard"]["wrote"] == "lanczos" and not net.exists()
    assert f"{str(net)!r} was not written" in s["guard"]["reason"]
