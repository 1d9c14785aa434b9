"""CMSR: identity warp at the start, back-projection onto the LR, training pairs."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from geosr import get_method
from geosr.models.cmsr import CMSRNet


def test_cmsr__warp_starts_as_identity():
    net = CMSRNet(3, 4, width=8)
    g = torch.randn(1, 3, 12, 20)
    warped = F.grid_sample(g, net._rect_grid(12, 20, g), mode="bilinear",
                           padding_mode="border", align_corners=False)
    torch.testing.assert_close(warped, g, atol=1e-5, rtol=0)


def test_cmsr__prediction_is_back_projected_onto_the_lr():
    torch.manual_seed(0)
    net = CMSRNet(3, 4, width=8)
    lr = torch.randn(1, 1, 6, 7)
    guide = torch.randn(1, 3, 24, 28)
    with torch.no_grad():
        hr = net.predict(lr, guide)
    assert hr.shape == (1, 1, 24, 28)
    assert (F.avg_pool2d(hr, 4) - lr).abs().max() < 0.05


def test_cmsr__training_loss_in_both_scale_modes():
    torch.manual_seed(1)
    lr = torch.randn(1, 1, 10, 12)
    guide = torch.randn(1, 3, 20, 24)
    mask = torch.ones_like(lr)
    for p_up in (0.0, 0.999):  # down-sampled guide pairs / up-sampled modality pairs
        net = CMSRNet(3, 2, width=8, crop=6, p_up=p_up)
        loss = net.training_loss(lr, guide, mask, 2)
        loss.backward()
        assert torch.isfinite(loss) and net.body[0].weight.grad is not None


def test_cmsr__options():
    o = get_method("cmsr").options
    assert (o.iterations, o.lr, o.p_up) == (1500, 1e-4, 0.3)
