"""``benchmarks/robself/official.py``: the side-by-side harness with the authors' RobSelf
code (never part of this repository) and its pure-torch deformable convolution."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from benchmarks.robself.deform_conv import DeformConv2d
from benchmarks.robself.official import misaligned_guide, parse_misalign, zscore
from geosr.normalize import BandStats, prepare_guide, prepare_lr

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "robself" / "official.py"


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
