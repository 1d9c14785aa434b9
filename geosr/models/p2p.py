"""P2P / PixTransform: guided super-resolution as a pixel-to-pixel transform.

R. de Lutio, S. D'Aronco, J. D. Wegner, K. Schindler, "Guided Super-Resolution as
Pixel-to-Pixel Transformation", ICCV 2019.

A per-pixel network of the guide only: input = z-scored guide channels + 2 coordinate
channels; a colour branch and a spatial branch of 1x1 convs (-> 32 -> 2048) are summed,
then ReLU and 1x1 convs 2048 -> 32 -> 1. It is trained on ``scale x scale`` guide patches
against single LR pixels (L1 between the patch mean of the prediction and the LR value),
Adam lr 1e-3, batches of 32 LR pixels, weight decay 1e-4 (spatial) / 1e-3 (colour, head).

Unlike the reference code this works for any image shape and any LR size (it handles only
square images and trains nothing above 1024^2 LR pixels): patches are a strided view of
the guide, batches are drawn from the valid LR pixels, and the final prediction runs over
the full image in row chunks. Coordinates are in units of ``coord_unit`` LR pixels (our
choice: the paper scales them but does not fix the unit for arbitrary sizes).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from geosr.models.learned import LearnedMethod, LearnedOptions


def coordinates(h: int, w: int, scale: int, unit: float, like: torch.Tensor) -> torch.Tensor:
    """(1, 2, H, W) pixel-centre coordinates in units of ``unit`` LR pixels."""
    ys = (torch.arange(h, device=like.device, dtype=like.dtype) + 0.5) / (scale * unit)
    xs = (torch.arange(w, device=like.device, dtype=like.dtype) + 0.5) / (scale * unit)
    return torch.stack(torch.meshgrid(ys, xs, indexing="ij"))[None]


class PixTransformNet(nn.Module):
    def __init__(self, guide_channels: int, scale: int, *, batch: int = 32,
                 coord_unit: float = 8.0, weight_decay=(1e-4, 1e-3, 1e-3)) -> None:
        super().__init__()
        self.scale, self.batch, self.coord_unit = scale, batch, coord_unit
        self.weight_decay = weight_decay
        # Per-pixel layers on channels-last rows: nn.Linear is the 1x1 convolution of the
        # paper without the NCHW layout copies of tiny (32, C, r, r) batches.
        self.spatial = nn.Sequential(nn.Linear(2, 32), nn.ReLU(inplace=True), nn.Linear(32, 2048))
        self.colour = nn.Sequential(
            nn.Linear(guide_channels, 32), nn.ReLU(inplace=True), nn.Linear(32, 2048)
        )
        self.head = nn.Sequential(
            nn.ReLU(), nn.Linear(2048, 32), nn.ReLU(inplace=True), nn.Linear(32, 1)
        )
        self._patches: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def param_groups(self) -> list[dict[str, Any]]:
        wd_s, wd_c, wd_h = self.weight_decay
        return [
            {"params": list(self.spatial.parameters()), "weight_decay": wd_s},
            {"params": list(self.colour.parameters()), "weight_decay": wd_c},
            {"params": list(self.head.parameters()), "weight_decay": wd_h},
        ]

    def pixels(self, guide: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        """Per-pixel prediction of channels-last inputs (..., C) and (..., 2) -> (..., 1)."""
        return self.head(self.colour(guide) + self.spatial(coords))

    def _patch_table(self, lr, guide, mask):
        """Guide + coordinate patches of every valid LR pixel: (n, r*r, C+2), targets (n,)."""
        if self._patches is None:
            r = self.scale
            _, c, hh, ww = guide.shape
            h, w = hh // r, ww // r
            x = torch.cat([guide, coordinates(hh, ww, r, self.coord_unit, guide)], 1)[0]
            x = x.reshape(c + 2, h, r, w, r).permute(1, 3, 2, 4, 0).reshape(h * w, r * r, c + 2)
            valid = mask.reshape(-1) > 0
            self._patches = (x[valid].contiguous(), lr.reshape(-1)[valid], valid)
        return self._patches

    def training_loss(self, lr, guide, mask, scale) -> torch.Tensor:
        x, target, _ = self._patch_table(lr, guide, mask)
        idx = torch.randint(0, x.shape[0], (self.batch,), device=x.device)
        patch = x[idx]
        c = patch.shape[-1] - 2
        pred = self.pixels(patch[..., :c], patch[..., c:]).mean(dim=(1, 2))
        return (pred - target[idx]).abs().mean()

    def predict(self, lr, guide, mask=None, rows: int = 64) -> torch.Tensor:
        _, _, hh, ww = guide.shape
        g = guide[0].permute(1, 2, 0)
        coords = coordinates(hh, ww, self.scale, self.coord_unit, guide)[0].permute(1, 2, 0)
        out = [self.pixels(g[y : y + rows], coords[y : y + rows]) for y in range(0, hh, rows)]
        return torch.cat(out, dim=0).permute(2, 0, 1)[None]

    def forward(self, lr, guide):  # the full-image prediction (not used for training)
        return self.predict(lr, guide)


@dataclasses.dataclass(frozen=True)
class P2POptions(LearnedOptions):
    iterations: int = 32000
    lr: float = 1e-3
    batch: int = 32
    coord_unit: float = 8.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.batch < 1:
            raise ValueError(f"batch must be >= 1, got {self.batch}")
        if not self.coord_unit > 0:
            raise ValueError(f"coord_unit must be > 0, got {self.coord_unit}")


class P2P(LearnedMethod):
    """PixTransform (ICCV 2019) through geosr's shared loop: see the module docstring."""

    name = "p2p"
    scene_modes = False  # its network takes pixel coordinates, which are per image
    Options = P2POptions

    def build_model(self, guide_channels: int, scale: int) -> PixTransformNet:
        return PixTransformNet(guide_channels, scale, batch=self.options.batch,
                               coord_unit=self.options.coord_unit)

    def optim_overrides(self) -> dict[str, Any]:
        return {"lr_decay": 1.0}

    def halo(self, scale: int) -> int:
        return 2  # a per-pixel network: context only through the LR values it is fitted to


__all__ = ["P2P", "PixTransformNet"]
