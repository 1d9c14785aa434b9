"""geosr eval: reading the staged datasets, the degradation protocol, the CLI."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner
from PIL import Image

import geosr
from geosr.cli.main import cli
from geosr.evaluation.evaluate import degrade, load_pairs, metrics


def test_degrade__average_pools_after_crop():
    t = np.arange(30, dtype=np.float32).reshape(5, 6)
    hr, lr = degrade(t, 2)
    assert hr.shape == (4, 6) and lr.shape == (2, 3)
    assert lr[0, 0] == np.mean([0, 1, 6, 7])


def _write_pairs(root, rng, layout):
    for i in range(2):
        depth = (rng.random((24, 32)) * 200).astype(np.uint8)
        rgb = (rng.random((24, 32, 3)) * 255).astype(np.uint8)
        if layout == "mmsr":
            (root / "target").mkdir(exist_ok=True)
            (root / "guide").mkdir(exist_ok=True)
            Image.fromarray(depth).save(root / "target" / f"{i:02d}.png")
            Image.fromarray(rgb).save(root / "guide" / f"{i:02d}.png")
        else:
            (root / "depth").mkdir(exist_ok=True)
            (root / "rgb").mkdir(exist_ok=True)
            Image.fromarray(depth).save(root / "depth" / f"Scene_{i:02d}_output_depth.png")
            Image.fromarray(rgb).save(root / "rgb" / f"Scene_{i:02d}_output_color.png")


def test_load_pairs__both_folder_layouts(tmp_path, rng):
    for layout in ("mmsr", "middlebury"):
        d = tmp_path / layout
        d.mkdir()
        _write_pairs(d, rng, layout)
        pairs = load_pairs(d)
        assert len(pairs) == 2
        assert pairs[0].target.shape == (24, 32) and pairs[0].guide.shape == (3, 24, 32)


def test_eval_cli__json_with_ratio_to_bicubic(tmp_path, rng):
    _write_pairs(tmp_path, rng, "mmsr")
    out = tmp_path / "r.json"
    res = CliRunner().invoke(
        cli, ["eval", str(tmp_path), "-m", "guided-filter", "--scale", "4", "--json", str(out), "-q"]
    )
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert {r["method"] for r in data["rows"]} == {"bicubic", "lanczos", "guided-filter"}
    assert all(r["ratio_to_bicubic"] == 1.0 for r in data["rows"] if r["method"] == "bicubic")
    assert "guided-filter" in res.output and "RMSE" in res.output


def test_eval_cli__unknown_method_is_usage_error(tmp_path, rng):
    _write_pairs(tmp_path, rng, "mmsr")
    res = CliRunner().invoke(cli, ["eval", str(tmp_path), "-m", "srcnn"])
    assert res.exit_code == 2 and "unknown method" in res.output


def test_eval__reads_the_staged_datasets(shared_data):
    assert len(load_pairs(shared_data / "mmsr_samples")) == 13
    mid = load_pairs(shared_data / "middlebury_dctnet")
    assert len(mid) >= 20 and all(p.guide.shape[0] == 3 for p in mid)


def test_bicubic__reproduces_the_published_yardstick(shared_data):
    """Bicubic on the MMSR authors' 13 pairs: mean RMSE 3.05 (x4) in their notebook."""
    from geosr.evaluation.evaluate import evaluate

    res = evaluate(load_pairs(shared_data / "mmsr_samples"), {}, 4)
    assert abs(res["mean"]["bicubic"]["rmse"] - 3.05) < 0.01


def test_mmsr__beats_bicubic_on_a_real_crop(shared_data):
    """A 96x96 crop of a real depth/RGB pair, x4, a few hundred steps."""
    pair = load_pairs(shared_data / "mmsr_samples")[0]
    hr, lr = degrade(pair.target[100:196, 100:196], 4)
    guide = pair.guide[:, 100:196, 100:196]
    bic = metrics(geosr.super_resolve(lr, guide, 4, method="bicubic")[0], hr)["rmse"]
    mm = metrics(geosr.super_resolve(lr, guide, 4, method="mmsr", iterations=200)[0], hr)["rmse"]
    assert mm < 0.9 * bic
