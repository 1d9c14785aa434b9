"""Average pooling onto a coarser grid."""

import numpy as np

from geosr.raster.pooling import block_mean


def test_block_mean__means_of_finite_pixels_and_counts() -> None:
    a = np.arange(24, dtype=np.float32).reshape(4, 6)
    a[0, 0] = np.nan
    mean, count = block_mean(a, 2)
    assert mean.shape == (2, 3) and count.tolist() == [[3, 4, 4], [4, 4, 4]]
    assert mean[0, 0] == np.mean([1, 6, 7]) and mean[1, 2] == np.mean([16, 17, 22, 23])


def test_block_mean__drops_partial_blocks_and_counts_empty_ones() -> None:
    a = np.full((5, 5), np.nan)
    a[:2, :2] = 1.0
    mean, count = block_mean(a, 2)
    assert mean.shape == (2, 2) and count[0, 0] == 4 and count[1, 1] == 0
