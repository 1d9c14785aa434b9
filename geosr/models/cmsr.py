"""CMSR: cross-modal super-resolution by internal learning on the single input pair.

A. Shacht, S. Benaim, L. Wolf et al., "Single Pair Cross-Modality Super Resolution",
CVPR 2021 (and its supplement). ZSSR-style: training pairs are random crops of the LR
source ("father") and their ``scale``-times average-pooled versions ("son"); a residual
3x3 conv net with a guide branch learns son -> father with the guide at the father's
resolution; at test time it maps the LR to the HR with the full-resolution guide.

As in the paper: a learned warp of the guide handles misalignment (an affine transform,
identity at the start, then a smooth deformation is switched on halfway), alternating
scales (with probability ``p = 0.3`` the pair is built at the guide's native resolution by
bicubic up-sampling of the modality patch instead of down-sampling the guide), and at the
end an 8-way flip/rotation ensemble with the median and a back-projection onto the LR.

Our choices where the reference differs or is silent: the smooth deformation is a
``grid x grid`` displacement lattice upsampled bicubically (in place of a thin-plate
spline); Adam at 1e-4 without plateau decay (the shared loop's schedule); 1500 steps;
8 conv layers of 64 channels in the main branch, 2 of 32 in the guide branch.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from geosr.models.learned import LearnedMethod, LearnedOptions


class GuideWarp(nn.Module):
    """Affine + smooth deformation of the guide, as sampling grids in [-1, 1] coordinates."""

    def __init__(self, grid: int = 8) -> None:
        super().__init__()
        self.affine = nn.Parameter(torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
        self.lattice = nn.Parameter(torch.zeros(1, 2, grid, grid))
        self.deform = False

    def grid(self, y0: float, y1: float, x0: float, x1: float, h: int, w: int, like) -> torch.Tensor:
        """Sampling grid (1, h, w, 2) for the window [y0, y1] x [x0, x1] of the unit square."""
        ys = torch.linspace(y0, y1, h, device=like.device, dtype=like.dtype)
        xs = torch.linspace(x0, x1, w, device=like.device, dtype=like.dtype)
        yy, xx = torch.meshgrid(ys * 2 - 1, xs * 2 - 1, indexing="ij")
        pts = torch.stack([xx, yy, torch.ones_like(xx)], -1)  # (h, w, 3)
        out = pts @ self.affine.t()  # (h, w, 2) as (x, y)
        if self.deform:
            disp = F.grid_sample(self.lattice, torch.stack([xx, yy], -1)[None], mode="bicubic",
                                 padding_mode="border", align_corners=True)[0]
            out = out + disp.permute(1, 2, 0)
        return out[None]


class CMSRNet(nn.Module):
    def __init__(self, guide_channels: int, scale: int, *, width: int = 64, layers: int = 8,
                 crop: int = 32, p_up: float = 0.3) -> None:
        super().__init__()
        self.scale, self.crop, self.p_up = scale, crop, p_up
        self.warp = GuideWarp()
        self.guide_branch = nn.Sequential(
            nn.Conv2d(guide_channels, 32, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(inplace=True),
        )
        body: list[nn.Module] = [nn.Conv2d(33, width, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(layers - 2):
            body += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True)]
        body.append(nn.Conv2d(width, 1, 3, padding=1))
        self.body = nn.Sequential(*body)
        self.steps = 0
        self.total_steps = 1

    def net(self, src_up: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        """Residual prediction at the guide's resolution from the upsampled source."""
        return src_up + self.body(torch.cat([src_up, self.guide_branch(guide)], 1))

    @staticmethod
    def _filled(lr: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Invalid LR pixels take the mean of the valid ones (the residual net and the
        back-projection would otherwise carry whatever value they hold)."""
        if mask is None:
            return lr
        mean = (lr * mask).sum() / mask.sum().clamp_min(1.0)
        return torch.where(mask > 0, lr, mean)

    def training_loss(self, lr, guide, mask, scale) -> torch.Tensor:
        r = self.scale
        lr = self._filled(lr, mask)
        self.steps += 1
        self.warp.deform = self.steps > self.total_steps // 2
        _, _, h, w = lr.shape
        c = min(self.crop, h, w)
        y = int(torch.randint(0, h - c + 1, ()).item())
        x = int(torch.randint(0, w - c + 1, ()).item())
        father = lr[..., y : y + c, x : x + c]
        fmask = mask[..., y : y + c, x : x + c]
        win = (y / h, (y + c) / h, x / w, (x + c) / w)
        if torch.rand(()).item() < self.p_up:
            # Alternating scales: the modality patch up-sampled to the guide's resolution.
            father = F.interpolate(father, scale_factor=r, mode="bicubic", align_corners=False)
            fmask = fmask.repeat_interleave(r, -2).repeat_interleave(r, -1)
            size = c * r
        else:
            size = c
        son = F.avg_pool2d(father, r) if size >= r else father
        son_up = F.interpolate(son, size=(size, size), mode="bicubic", align_corners=False)
        # The guide over the same window at the father's resolution, through the warp.
        g = F.grid_sample(guide, self._window_grid(win, size, guide), mode="bilinear",
                          padding_mode="border", align_corners=False)
        pred = self.net(son_up, g)
        return ((pred - father).abs() * fmask).sum() / fmask.sum().clamp_min(1.0)

    def _window_grid(self, win, size: int, like) -> torch.Tensor:
        y0, y1, x0, x1 = win
        # pixel centres of a size x size raster over the window
        dy, dx = (y1 - y0) / (2 * size), (x1 - x0) / (2 * size)
        return self.warp.grid(y0 + dy, y1 - dy, x0 + dx, x1 - dx, size, size, like)

    def _full(self, lr, guide) -> torch.Tensor:
        """The whole HR prediction (one ensemble member) with the warped full guide."""
        _, _, hh, ww = guide.shape
        g = F.grid_sample(guide, self._rect_grid(hh, ww, guide), mode="bilinear",
                          padding_mode="border", align_corners=False)
        up = F.interpolate(lr, size=(hh, ww), mode="bicubic", align_corners=False)
        return self.net(up, g)

    def _rect_grid(self, hh: int, ww: int, like) -> torch.Tensor:
        dy, dx = 1 / (2 * hh), 1 / (2 * ww)
        return self.warp.grid(dy, 1 - dy, dx, 1 - dx, hh, ww, like)

    def predict(self, lr, guide, mask=None, backprojection: int = 10) -> torch.Tensor:
        """8-way flip/rotation ensemble, median, then back-projection onto the valid LR."""
        lr = self._filled(lr, mask)
        keep = torch.ones_like(lr) if mask is None else mask
        outs = []
        for k in range(4):
            for flip in (False, True):
                a, b = torch.rot90(lr, k, (-2, -1)), torch.rot90(guide, k, (-2, -1))
                if flip:
                    a, b = a.flip(-1), b.flip(-1)
                o = self._full(a, b)
                if flip:
                    o = o.flip(-1)
                outs.append(torch.rot90(o, -k, (-2, -1)))
        hr = torch.stack(outs).median(dim=0).values
        for _ in range(backprojection):
            err = (lr - F.avg_pool2d(hr, self.scale)) * keep
            hr = hr + F.interpolate(err, scale_factor=self.scale, mode="bicubic",
                                    align_corners=False)
        return hr

    def forward(self, lr, guide):
        return self.predict(lr, guide)


@dataclasses.dataclass(frozen=True)
class CMSROptions(LearnedOptions):
    iterations: int = 1500
    lr: float = 1e-4
    #: father crop side in LR pixels
    crop: int = 32
    #: probability of an alternating-scale (up-sampled modality) training pair
    p_up: float = 0.3
    width: int = 64

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.crop < 2:
            raise ValueError(f"crop must be >= 2 LR pixels, got {self.crop}")
        if not 0.0 <= self.p_up < 1.0:
            raise ValueError(f"p_up must be in [0, 1), got {self.p_up}")


class CMSR(LearnedMethod):
    """CMSR (CVPR 2021) through geosr's shared loop: see the module docstring."""

    name = "cmsr"
    scene_modes = False  # it trains on father/son crops of one image and back-projects per image
    Options = CMSROptions

    def build_model(self, guide_channels: int, scale: int) -> CMSRNet:
        o = self.options
        net = CMSRNet(guide_channels, scale, width=o.width, crop=o.crop, p_up=o.p_up)
        net.total_steps = o.iterations
        return net

    def optim_overrides(self) -> dict[str, Any]:
        return {"lr_decay": 1.0, "weight_decay": 0.0}

    def halo(self, scale: int) -> int:
        return 4  # 8 + 2 convs of 3x3 at HR: a few LR pixels of context
