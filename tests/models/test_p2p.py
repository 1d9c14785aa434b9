"""P2P (PixTransform): any image shape, any LR size, masked pixels never drawn."""

from __future__ import annotations

import numpy as np
import torch

from geosr import get_method
from geosr.models.p2p import PixTransformNet


def test_p2p__patch_table_any_shape_and_only_valid_pixels(rng):
    net = PixTransformNet(3, 4)
    lr = torch.from_numpy(rng.normal(size=(1, 1, 5, 9)).astype(np.float32))
    guide = torch.from_numpy(rng.normal(size=(1, 3, 20, 36)).astype(np.float32))
    mask = torch.ones_like(lr)
    mask[..., 1, 2] = 0
    patches, target, _ = net._patch_table(lr, guide, mask)
    assert patches.shape == (5 * 9 - 1, 16, 5)  # 4x4 pixels, 3 guide + 2 coordinate channels
    # the patch of LR pixel (2, 7) is guide rows 8..11, cols 28..31, row-major
    k = 2 * 9 + 7 - 1  # one masked pixel comes before it
    expected = guide[0, :, 8:12, 28:32].permute(1, 2, 0).reshape(16, 3)
    torch.testing.assert_close(patches[k, :, :3], expected)
    assert float(target[k]) == float(lr[0, 0, 2, 7])


def test_p2p__large_lr_still_trains(rng):
    """The reference code trains nothing above 1024^2 LR pixels; here any size works."""
    net = PixTransformNet(3, 2, batch=8)
    lr = torch.zeros(1, 1, 1100, 4)
    guide = torch.zeros(1, 3, 2200, 8)
    loss = net.training_loss(lr, guide, torch.ones_like(lr), 2)
    loss.backward()
    assert net.head[-1].weight.grad is not None and torch.isfinite(loss)


def test_p2p__fits_a_guide_that_explains_the_target(rng):
    """A target that is a function of the guide colour: P2P beats bicubic at x4."""
    import geosr
    from geosr.evaluation.evaluate import degrade, metrics

    yy, xx = np.mgrid[0:48, 0:64]
    edge = ((xx + 2 * yy) % 23 < 11).astype(np.float32)
    guide = np.stack([edge, 1 - edge, 0.5 * np.ones_like(edge)]).astype(np.float32)
    hr, lr = degrade(10 * edge + 0.01 * xx, 4)
    bic = metrics(geosr.super_resolve(lr, guide, 4, method="bicubic")[0], hr)["rmse"]
    out = geosr.super_resolve(lr, guide, 4, method="p2p", iterations=300)
    assert metrics(out[0], hr)["rmse"] < 0.3 * bic
    assert get_method("p2p").options.iterations == 32000  # the paper's budget by default
