"""The synthetic misalignment protocol of `geosr eval --misalign`."""

from __future__ import annotations

import numpy as np
import pytest

from geosr.errors import OptionError
from geosr.evaluation.misalign import Misalignment, misalign, random_homography


def test_misalignment__parse():
    assert Misalignment.parse("default") == Misalignment(6.0, 2.0, 0.02)
    assert Misalignment.parse("translation=3,rotation=0") == Misalignment(3.0, 0.0, 0.02)
    with pytest.raises(OptionError, match="translation=6"):
        Misalignment.parse("shift=3")


def test_misalign__zero_magnitudes_is_identity(rng):
    img = rng.random((3, 20, 24)).astype(np.float32)
    out = misalign(img, Misalignment(0, 0, 0), seed=1)
    np.testing.assert_allclose(out, img, atol=1e-4)


def test_misalign__seeded_and_bounded(rng):
    img = rng.random((1, 40, 50)).astype(np.float32)
    spec = Misalignment(6, 2, 0.02)
    np.testing.assert_array_equal(misalign(img, spec, 5), misalign(img, spec, 5))
    assert not np.allclose(misalign(img, spec, 5), misalign(img, spec, 6))
    # corners move by at most translation + rotation + jitter
    h = random_homography(40, 50, spec, np.random.default_rng(3))
    corners = np.array([[0, 0, 1], [49, 0, 1], [49, 39, 1], [0, 39, 1]], float).T
    moved = h @ corners
    moved = moved[:2] / moved[2]
    bound = 6 * np.sqrt(2) + np.deg2rad(2) * np.hypot(25, 20) + 0.02 * np.hypot(50, 40)
    assert np.abs(moved - corners[:2]).max() <= bound + 1e-6


def test_misalign__pure_translation_shifts_the_guide():
    """Bilinear sampling is exact on a linear ramp: the interior moves by (dx, dy)."""
    from geosr.evaluation.misalign import warp_image

    yy, xx = np.mgrid[0:30, 0:30].astype(np.float32)
    img = (0.5 * xx + 0.25 * yy)[None]
    spec = Misalignment(translation=4, rotation=0, perspective=0)
    h = random_homography(30, 30, spec, np.random.default_rng(0))
    dx, dy = h[0, 2], h[1, 2]
    assert max(abs(dx), abs(dy)) > 0.1  # the draw moved something
    out = warp_image(img, h)
    want = 0.5 * (xx + dx) + 0.25 * (yy + dy)
    np.testing.assert_allclose(out[0, 6:24, 6:24], want[6:24, 6:24], atol=1e-3)
