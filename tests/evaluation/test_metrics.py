"""DEM metrics against hand-computed values on tiny arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from geosr.evaluation.metrics import add_ratios, dem_metrics, nmad, slope_degrees


def test_slope_of_a_plane() -> None:
    yy, xx = np.mgrid[0:12, 0:15].astype(np.float64)
    z = 0.5 * xx * 2.0  # rises 1 m per 2 m pixel eastward: 26.565°
    s = slope_degrees(z, pixel_size=2.0)
    inner = s[1:-1, 1:-1]
    assert np.allclose(inner, math.degrees(math.atan(0.5)), atol=1e-4)
    assert np.isnan(s[0]).all() and np.isnan(s[:, 0]).all()  # no full 3x3 window


def test_nmad_of_a_known_sample() -> None:
    d = np.array([1.0, 2.0, 3.0, 4.0, 100.0])  # median 3, |d-3| = 2,1,0,1,97 -> median 1
    assert nmad(d) == pytest.approx(1.4826)


def test_dem_metrics_by_hand() -> None:
    ref = np.zeros((8, 8))
    pred = ref.copy()
    pred[:4] = 1.0  # half the pixels 1 m too high
    pred[7, 7] = np.nan
    m = dem_metrics(pred, ref, pixel_size=1.0)
    n = 63
    assert m["rmse"] == pytest.approx(math.sqrt(32 / n))
    assert m["mae"] == pytest.approx(32 / n) and m["bias"] == pytest.approx(32 / n)
    assert m["le90"] == pytest.approx(1.0)
    assert m["nmad"] == 0.0  # median 1 (32 of 63 are 1), and |d - 1| is 0 on 32 of 63
    # a 1 m step over 2 px (Horn's 3x3) is a 14.04° to 26.57° slope on two rows, 0 elsewhere
    assert m["slope_rmse_deg"] > 5


def test_ratios_to_lanczos_and_to_the_best_resampler() -> None:
    rows = [{"pair": "a", "method": "bicubic", "rmse": 2.0},
            {"pair": "a", "method": "lanczos", "rmse": 1.6},
            {"pair": "a", "method": "mmsr", "rmse": 1.2},
            {"pair": "b", "method": "bicubic", "rmse": 1.0},
            {"pair": "b", "method": "mmsr", "rmse": 2.0}]
    add_ratios(rows)
    assert rows[2]["ratio_to_lanczos"] == pytest.approx(0.75)
    assert rows[2]["ratio_to_bicubic"] == pytest.approx(0.6)
    assert rows[2]["best_classical"] == "lanczos" and rows[2]["ratio_to_best_classical"] == pytest.approx(0.75)
    assert math.isnan(rows[4]["ratio_to_lanczos"]) and rows[4]["ratio_to_best_classical"] == 2.0
