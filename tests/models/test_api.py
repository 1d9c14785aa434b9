"""Public API: super_resolve on (band, row, col) arrays and its error messages."""

from __future__ import annotations

import numpy as np
import pytest

import geosr
from geosr.errors import GeosrError, InputError, OptionError


def test_super_resolve__bicubic_keeps_units_and_shape(tiny_pair):
    lr, guide, scale = tiny_pair
    out = geosr.super_resolve(lr, guide, scale, method="bicubic")
    assert out.shape == (1, 32, 40) and out.dtype == np.float32
    # bicubic of a pooled ramp stays in the LR's range and units
    assert abs(float(out.mean()) - float(lr.mean())) < 0.05


def test_super_resolve__constant_input_comes_back(rng):
    lr = np.full((1, 5, 6), 1234.5, np.float32)
    guide = rng.normal(size=(3, 10, 12)).astype(np.float32)
    for method in ("bicubic", "guided-filter"):
        out = geosr.super_resolve(lr, guide, 2, method=method)
        np.testing.assert_allclose(out, 1234.5, atol=1e-3)
    out = geosr.super_resolve(lr, guide, 2, method="mmsr", iterations=3, width=8)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, 1234.5, atol=1.0)


def test_super_resolve__nan_is_nodata(tiny_pair):
    lr, guide, scale = tiny_pair
    lr = lr.copy()
    lr[0, 0, 0] = np.nan
    out = geosr.super_resolve(lr, guide, scale, method="guided-filter")
    assert np.isnan(out[0, :scale, :scale]).all()
    assert np.isfinite(out[0, scale:, :]).all() and np.isfinite(out[0, :, scale:]).all()


def test_super_resolve__multiband_lr(tiny_pair):
    lr, guide, scale = tiny_pair
    two = np.concatenate([lr, 2 * lr])
    out = geosr.super_resolve(two, guide, scale, method="bicubic")
    np.testing.assert_allclose(out[1], 2 * out[0], rtol=1e-5)


@pytest.mark.parametrize(
    "lr_shape,guide_shape,scale,err,match",
    [
        ((1, 8, 10), (3, 30, 40), 4, InputError, "exactly scale x"),
        ((1, 8, 10), (3, 32, 40), 1, OptionError, "integer >= 2"),
        ((1, 8, 10), (3, 32, 40), 0, OptionError, "integer >= 2"),
        ((1, 8, 10), (3, 32, 40), -4, OptionError, "integer >= 2"),
        ((1, 8, 10), (3, 32, 40), 2.5, OptionError, "non-integer"),
        ((1, 1, 8, 10), (3, 32, 40), 4, InputError, "band, row, col"),
        ((8,), (3, 32, 40), 4, InputError, "band, row, col"),
    ],
)
def test_super_resolve__bad_input(lr_shape, guide_shape, scale, err, match):
    with pytest.raises(err, match=match) as info:
        geosr.super_resolve(np.ones(lr_shape, np.float32), np.ones(guide_shape), scale,
                            method="bicubic")
    assert isinstance(info.value, GeosrError)


def test_super_resolve__all_nan_lr(tiny_pair):
    _, guide, scale = tiny_pair
    with pytest.raises(InputError, match="no valid pixel"):
        geosr.super_resolve(np.full((1, 8, 10), np.nan), guide, scale, method="bicubic")


def test_super_resolve__unknown_method_and_option(tiny_pair):
    lr, guide, scale = tiny_pair
    with pytest.raises(OptionError, match="unknown method 'srcnn'.*choose one of"):
        geosr.super_resolve(lr, guide, scale, method="srcnn")
    with pytest.raises(OptionError, match="unknown option.*valid options are"):
        geosr.super_resolve(lr, guide, scale, method="mmsr", iters=10)
