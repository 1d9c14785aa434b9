"""Bicubic upsampling in numpy: PyTorch's ``F.interpolate(mode="bicubic",
align_corners=False)`` to float32 rounding, without torch."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from geosr.models.classical import bicubic_upsample


def _torch_bicubic(x: np.ndarray, scale: int) -> np.ndarray:
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None]
    return F.interpolate(t, scale_factor=scale, mode="bicubic", align_corners=False)[0].numpy()


@pytest.mark.parametrize(("shape", "scale"), [
    ((1, 7, 9), 4), ((2, 5, 6), 3), ((1, 32, 40), 2), ((1, 3, 2), 5), ((1, 24, 24), 8),
])
def test_bicubic__matches_pytorch_to_float32_rounding(shape, scale):
    x = (np.random.default_rng(0).normal(size=shape) * 100 + 500).astype(np.float32)
    ours, theirs = bicubic_upsample(x, scale), _torch_bicubic(x, scale)
    assert ours.shape == theirs.shape and ours.dtype == np.float32
    # the same values up to float32 rounding of ~700 (one or two ulps)
    np.testing.assert_allclose(ours, theirs, rtol=2e-6, atol=1e-4)
    assert not np.array_equal(ours, np.repeat(np.repeat(x, scale, 1), scale, 2))


def test_bicubic__nan_spreads_like_pytorch():
    x = np.ones((1, 8, 8), np.float32)
    x[0, 2, 5] = np.nan
    np.testing.assert_array_equal(np.isnan(bicubic_upsample(x, 4)),
                                  np.isnan(_torch_bicubic(x, 4)))


def test_bicubic__needs_no_torch():
    code = ("import sys, numpy as np; from geosr import super_resolve\n"
            "out = super_resolve(np.ones((1, 4, 4)), np.ones((3, 8, 8)), 2, method='bicubic')\n"
            "assert out.shape == (1, 8, 8) and 'torch' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)
