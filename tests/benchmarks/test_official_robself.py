"""``benchmarks/robself/official.py``: the side-by-side harness with the authors' RobSelf
code (never part of this repository) and its pure-torch deformable convolution."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from benchmarks.robself.deform_conv import DeformConv2d
from benchmarks.robself.official import (
    make_crops,
    merge,
    misaligned_guide,
    parse_misalign,
    parse_part,
    parse_size,
    zscore,
)
from geosr.evaluation.evaluate import Pair
from geosr.normalize import BandStats, prepare_guide, prepare_lr

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "robself" / "official.py"
DEVICE_SCRIPT = SCRIPT.parent / "device_fullsize.sh"


def test_official__skips_cleanly_without_a_checkout(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, str(SCRIPT), "--official", str(tmp_path / "none"),
                        "--json", str(tmp_path / "r.json")], capture_output=True, text=True,
                       cwd=SCRIPT.parents[2])
    assert r.returncode == 0, r.stderr
    assert "no official RobSelf checkout" in r.stdout and "skipping" in r.stdout
    assert not (tmp_path / "r.json").exists()


def test_deform_conv__zero_offsets_is_a_plain_convolution() -> None:
    torch.manual_seed(0)
    layer = DeformConv2d(4, 5, 3, padding=1)
    x = torch.randn(1, 4, 9, 11)
    out = layer(x, torch.zeros(1, 18, 9, 11))
    torch.testing.assert_close(out, F.conv2d(x, layer.weight, layer.bias, padding=1),
                               atol=1e-5, rtol=0)


def test_deform_conv__whole_pixel_offsets_move_every_tap() -> None:
    torch.manual_seed(0)
    layer = DeformConv2d(2, 2, 3, padding=1)
    x = torch.randn(1, 2, 10, 12)
    off = torch.zeros(1, 18, 10, 12)
    off[:, 0::2], off[:, 1::2] = 1.0, -2.0  # every tap one row down, two columns left
    shifted = torch.zeros_like(x)
    shifted[..., :-1, 2:] = x[..., 1:, :-2]
    ref = F.conv2d(shifted, layer.weight, layer.bias, padding=1)
    torch.testing.assert_close(layer(x, off)[..., 1:-2, 3:-1], ref[..., 1:-2, 3:-1],
                               atol=1e-5, rtol=0)


def test_deform_conv__initialised_like_a_conv() -> None:
    torch.manual_seed(3)
    a = DeformConv2d(4, 6, 3, padding=1)
    torch.manual_seed(3)
    b = torch.nn.Conv2d(4, 6, 3, padding=1)
    torch.testing.assert_close(a.weight, b.weight)
    torch.testing.assert_close(a.bias, b.bias)


def test_official__standardisation_is_geosrs(rng: np.random.Generator) -> None:
    lr = rng.normal(50, 7, (8, 10))
    guide = rng.uniform(0, 255, (3, 32, 40))
    g, s, mean, std = zscore(lr, guide)
    ours, _ = prepare_lr(lr[None].astype(np.float32), BandStats.from_array(lr[None]))
    np.testing.assert_allclose(ours[0], s, atol=1e-5)
    np.testing.assert_allclose(prepare_guide(guide, BandStats.from_array(guide)), g, atol=1e-5)


def test_official__misaligned_guide_shifts_and_keeps_a_zero_misalignment(
        rng: np.random.Generator) -> None:
    guide = rng.normal(size=(3, 40, 40)).astype(np.float32)
    np.testing.assert_allclose(misaligned_guide(guide, 8, 8, 16, [0.0, 0.0], 0.0, 4),
                               guide[:, 8:24, 8:24], atol=1e-5)
    moved = misaligned_guide(guide, 8, 8, 16, [2.0, -3.0], 0.0, 4)
    np.testing.assert_allclose(moved, guide[:, 10:26, 5:21], atol=1e-5)


def test_official__misalignment_spec() -> None:
    assert parse_misalign("shift=2:4,rotation=1") == {"shift": (2.0, 4.0), "rotation": (1.0, 1.0)}
    with pytest.raises(SystemExit):
        parse_misalign("scale=2")


def test_official__a_rectangular_guide_crop_rotates_about_its_own_centre(
        rng: np.random.Generator) -> None:
    guide = rng.normal(size=(3, 40, 60)).astype(np.float32)
    np.testing.assert_allclose(misaligned_guide(guide, 6, 6, (20, 44), [0.0, 0.0], 0.0, 6),
                               guide[:, 6:26, 6:50], atol=1e-4)  # float32 sample grid
    np.testing.assert_allclose(misaligned_guide(guide, 6, 6, (20, 44), [1.0, 2.0], 0.0, 6),
                               guide[:, 7:27, 8:52], atol=1e-4)
    # a 180-degree turn about the crop's centre reverses the crop in both axes
    turned = misaligned_guide(guide, 6, 6, (20, 44), [0.0, 0.0], 180.0, 6)
    np.testing.assert_allclose(turned, guide[:, 6:26, 6:50][:, ::-1, ::-1], atol=1e-3)


def test_official__full_size_keeps_the_margin_and_cuts_to_the_unit(
        rng: np.random.Generator) -> None:
    pairs = [Pair(f"p{i}", rng.normal(size=(100 + i, 90)).astype(np.float32),
                  rng.normal(size=(3, 100 + i, 90)).astype(np.float32)) for i in (0, 7)]
    crops = make_crops(pairs, None, 3, 0, 0.0, 5, 16)
    assert [(p.name, y, x, h, w) for p, y, x, h, w in crops] == [
        ("p0", 5, 5, 80, 80), ("p7", 5, 5, 96, 80)]
    some = make_crops(pairs[:1], 24, 3, 0, 0.0, 5)
    assert len(some) == 3 and all(h == w == 24 for *_, h, w in some)
    assert all(5 <= y <= 100 - 24 - 5 and 5 <= x <= 90 - 24 - 5 for _, y, x, _, _ in some)


def test_official__size_and_part_arguments() -> None:
    assert parse_size("full") is None and parse_size("48") == 48
    assert parse_part("2/4") == (2, 4)
    for bad in ("0/3", "4/3", "x"):
        with pytest.raises(argparse.ArgumentTypeError, match="--part"):
            parse_part(bad)
    with pytest.raises(argparse.ArgumentTypeError, match="--size"):
        parse_size("4")


def _part(tmp_path: Path, name: str, rows: dict[str, dict], steps: int = 1000) -> Path:
    doc = {"commands": [f"python official.py --json {name}"], "data": "d", "scale": 4,
           "size": "full", "steps": steps, "seed": 0, "device": "cuda",
           "rows": [{"name": n, "pair": n.split("@")[0], "misalign": {"spec": "eval"},
                     "bicubic": 3.0, "runs": runs} for n, runs in rows.items()]}
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


def test_official__merge_joins_the_parts_and_refuses_another_setup(tmp_path: Path) -> None:
    a = _part(tmp_path, "a.json", {"x@0,0": {"m": {"rmse": 1.0, "seconds_per_step": 0.1},
                                             "r": {"rmse": 2.0, "seconds_per_step": 0.1}}})
    b = _part(tmp_path, "b.json", {"y@0,0": {"m": {"rmse": 3.0, "seconds_per_step": 0.1},
                                             "r": {"rmse": 1.0, "seconds_per_step": 0.1}},
                                   "z@0,0": {"m": {"rmse": 5.0, "seconds_per_step": 0.1}}})
    out = merge([a, b])
    assert [r["name"] for r in out["rows"]] == ["x@0,0", "y@0,0", "z@0,0"]
    assert len(out["commands"]) == 2
    s = out["summary"]["eval"]
    # z has no "r": only the two pairs with both runs are summarised
    assert s["crops"] == 2 and s["m"]["mean_rmse"] == 2.0 and s["r"]["mean_rmse"] == 1.5
    assert s["m"]["wins"] == {"r": 1} and s["r"]["wins"] == {"m": 1}
    other = _part(tmp_path, "c.json", {}, steps=300)
    with pytest.raises(SystemExit, match="steps"):
        merge([a, other])


def test_device_script__runs_parts_and_merges_them_on_the_cpu(tmp_path: Path,
                                                               shared_data: Path) -> None:
    """The prepared GPU script, on the CPU: three processes share the four fits (two
    pairs, one step of two geosr methods: no official checkout needed), then their union
    and the timing run."""
    env = {**os.environ, "JOBS": "3", "PAIRS": "2", "STEPS": "1", "DEVICE": "cpu",
           "RUNS": "mmsr robself-re", "DATA": str(shared_data / "middlebury_dctnet"),
           "OUT": str(tmp_path), "DEADLINE": "300", "TIMING_STEPS": "1",
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    r = subprocess.run(["bash", str(DEVICE_SCRIPT), "run"], capture_output=True, text=True,
                       env=env, cwd=SCRIPT.parents[2])
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads((tmp_path / "fullsize.json").read_text())
    assert sorted(r["pair"] for r in out["rows"]) == ["middlebury_01", "middlebury_02"]
    assert all(sorted(r["runs"]) == ["mmsr", "robself-re"] for r in out["rows"])
    assert len(out["commands"]) == 3  # one per process, each with its own --part
    assert out["size"] == "full" and out["steps"] == 1 and out["device"] == "cpu"
    assert out["summary"]["eval"]["crops"] == 2
    assert all(r["misalign"]["spec"] == "eval" and r["shape"][0] % 16 == 0 for r in out["rows"])
    timing = json.loads((tmp_path / "timing.json").read_text())
    assert [r["pair"] for r in timing["rows"]] == ["middlebury_01"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fullsize.json", "run.log",
                                                         "timing.json"]
