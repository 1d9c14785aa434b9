"""Shared fixtures: tiny seeded arrays; the path to ../shared/data when present."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

_CANDIDATES = [
    os.environ.get("GEOSR_SHARED_DATA", ""),
    str(Path(__file__).resolve().parents[2] / "shared" / "data"),
    "/work/shared/data",
]


def shared_data_dir() -> Path | None:
    for c in _CANDIDATES:
        if c and Path(c).is_dir():
            return Path(c)
    return None


@pytest.fixture
def shared_data() -> Path:
    d = shared_data_dir()
    if d is None:
        pytest.skip("../shared/data is not available on this machine")
    return d


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def tiny_pair(rng):
    """A smooth LR (1, 8, 10) with a step edge and a matching 3-band guide at x4."""
    scale = 4
    yy, xx = np.mgrid[0:32, 0:40].astype(np.float32)
    hr = 10 + 0.1 * xx + 5.0 * (xx > 18)
    guide = np.stack([hr / 20, (xx > 18).astype(np.float32), yy / 32]) + rng.normal(
        0, 0.01, (3, 32, 40)
    ).astype(np.float32)
    lr = hr.reshape(8, scale, 10, scale).mean(axis=(1, 3))[None]
    return lr.astype(np.float32), guide.astype(np.float32), scale
