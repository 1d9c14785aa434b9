"""The default-command benchmark's bookkeeping: the method's own output, solved back from
the guard's blend."""

from __future__ import annotations

import numpy as np
import rasterio
from affine import Affine

from benchmarks.quality.default_dem import unblend
from tests.geodata import write_raster

T = Affine(1.0, 0, 600000.0, 0, -1.0, 5340000.0)


def test_unblend_recovers_the_method_from_the_blend_and_lanczos(tmp_path) -> None:
    rng = np.random.default_rng(0)
    method = (100 + rng.normal(0, 5, (16, 16))).astype(np.float32)
    lanczos = (100 + rng.normal(0, 5, (16, 16))).astype(np.float32)
    blend = (0.35 * method + 0.65 * lanczos).astype(np.float32)
    out = unblend(write_raster(tmp_path / "blend.tif", blend, T),
                  write_raster(tmp_path / "lanczos.tif", lanczos, T), 0.35,
                  tmp_path / "method.tif")
    with rasterio.open(out) as src:
        got = src.read(1)
        assert src.transform == T
    np.testing.assert_allclose(got, method, rtol=0, atol=1e-3)  # float32 / 0.35
