"""geosr.super_resolve on arrays given in another axis order: the message names the fix."""

from __future__ import annotations

import numpy as np
import pytest

import geosr
from geosr.errors import InputError


def test_super_resolve__channel_last_guide_says_moveaxis(tiny_pair) -> None:
    lr, guide, scale = tiny_pair
    with pytest.raises(InputError) as err:
        geosr.super_resolve(lr, np.moveaxis(guide, 0, -1), scale, method="bicubic")
    msg = str(err.value)
    assert "(32, 40, 3)" in msg and "np.moveaxis(guide, -1, 0)" in msg and "crop" not in msg
    out = geosr.super_resolve(lr, guide, scale, method="bicubic")  # as the message says
    assert out.shape == (1, 32, 40)


def test_super_resolve__channel_last_lr_says_moveaxis(tiny_pair) -> None:
    lr, guide, scale = tiny_pair
    with pytest.raises(InputError, match=r"np\.moveaxis\(lr, -1, 0\)"):
        geosr.super_resolve(np.moveaxis(lr, 0, -1), guide, scale, method="bicubic")


def test_super_resolve__wrong_size_guide_still_says_crop(tiny_pair) -> None:
    lr, guide, scale = tiny_pair
    with pytest.raises(InputError, match="crop or resample") as err:
        geosr.super_resolve(lr, guide[:, :-4], scale, method="bicubic")
    assert "moveaxis" not in str(err.value)
