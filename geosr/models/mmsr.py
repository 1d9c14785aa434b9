"""MMSR: mutual modulation for self-supervised cross-modal super-resolution.

X. Dong, N. Yokoya, L. Wang, T. Uezato, "Learning Mutual Modulation for
Self-Supervised Cross-Modal Super-Resolution", ECCV 2022 (§4.1 architecture).

Source branch (no spatial context): bilinear LR upsampling, 1x1 convs, 2 residual blocks
of 1x1 convs. Guide branch: 3x3 convs, 2 residual blocks of 3x3 convs. Mutual
modulation: source-to-guide (guide centre vs ``n x n`` source neighbours) and
guide-to-source (source centre vs ``m x m`` guide neighbours), each a cross-domain
adaptive filter (:func:`geosr.models.layers.local_attention`); the two are fused by a
1x1 conv and a prediction head of 3 residual 1x1 blocks and a 1x1 conv gives the HR source.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from geosr.models.base import check_odd_sizes
from geosr.models.layers import ResBlock, local_attention, local_attention_unfold
from geosr.models.learned import LearnedMethod, LearnedOptions

#: neighbourhood sizes (n: source-to-guide, m: guide-to-source) from the paper
PRESETS: dict[str, tuple[int, int]] = {"depth": (11, 5), "dem": (5, 3), "thermal": (5, 3)}


class MutualModulation(nn.Module):
    def __init__(self, width: int, n: int, m: int, block: int = 8, impl: str = "blocked") -> None:
        super().__init__()
        self.n, self.m, self.block, self.impl = n, m, block, impl
        self.proj_source = nn.Conv2d(width, width, 1)
        self.proj_guide = nn.Conv2d(width, width, 1)
        self.fuse = nn.Conv2d(2 * width, width, 1)

    def forward(self, f_source: torch.Tensor, f_guide: torch.Tensor) -> torch.Tensor:
        s = self.proj_source(f_source)
        g = self.proj_guide(f_guide)
        # Source-to-guide: the guide centre weighs the source neighbours (eq. 1-2).
        s2g = self._filter(g, s, self.n)
        # Guide-to-source: the source centre weighs the guide neighbours (eq. 3-4).
        g2s = self._filter(s, g, self.m)
        return self.fuse(torch.cat([s2g, g2s], dim=1))

    def _filter(self, query: torch.Tensor, kv: torch.Tensor, size: int) -> torch.Tensor:
        if self.impl == "unfold":  # the reference formulation, for benchmarks only
            return local_attention_unfold(query, kv, kv, size)
        if self.impl == "none":  # convolution-only floor, for benchmarks only
            return kv
        return local_attention(query, kv, kv, size, block=self.block)


class MMSRNet(nn.Module):
    def __init__(
        self, guide_channels: int, scale: int, *, width: int = 64, n: int = 11, m: int = 5,
        block: int = 8, impl: str = "blocked", residual: bool = False,
    ) -> None:
        super().__init__()
        self.scale = scale
        self.residual = residual
        self.source = nn.Sequential(
            nn.Conv2d(1, width, 1), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 1), nn.ReLU(inplace=True),
            ResBlock(width, 1), ResBlock(width, 1),
        )
        self.guide = nn.Sequential(
            nn.Conv2d(guide_channels, width, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True),
            ResBlock(width, 3), ResBlock(width, 3),
        )
        self.modulation = MutualModulation(width, n, m, block, impl)
        self.head = nn.Sequential(
            ResBlock(width, 1), ResBlock(width, 1), ResBlock(width, 1), nn.Conv2d(width, 1, 1)
        )
        if residual:  # start the fit at bicubic: the correction is zero at step 0
            nn.init.zeros_(self.head[-1].weight)
            nn.init.zeros_(self.head[-1].bias)

    def decayed_parameters(self) -> list[nn.Parameter]:
        """The guide branch carries weight decay 5e-4 in the reference code."""
        return list(self.guide.parameters())

    def forward(self, lr: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(lr, size=guide.shape[-2:], mode="bilinear", align_corners=False)
        if torch.is_grad_enabled():
            # The source branch is 1x1 convs only: recomputing it in the backward pass costs
            # little and spares keeping five of its feature maps (130 MB at 320^2, width 64).
            source = checkpoint(self.source, up, use_reentrant=False)
        else:
            source = self.source(up)
        f = self.modulation(source, self.guide(guide))
        if self.residual:
            return bicubic_base(lr, guide.shape[-2:]) + self.head(f)
        return self.head(f)


def bicubic_base(lr: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """The bicubic upsampling of the ``bicubic`` method: the base of residual predictions."""
    return F.interpolate(lr, size=tuple(size), mode="bicubic", align_corners=False)


@dataclasses.dataclass(frozen=True)
class MMSROptions(LearnedOptions):
    preset: str = "depth"
    #: override the preset's source-to-guide / guide-to-source neighbourhood sizes
    n: int | None = None
    m: int | None = None
    width: int = 64
    #: block size of the memory-efficient local filter (speed only, same result)
    block: int = 8
    #: predict a correction of bicubic upsampling (zero at the start) instead of the HR
    #: image itself; not in the paper, and measured worse: the fit barely leaves bicubic
    #: (docs/benchmarks/quality.md#things-that-did-not-help)
    residual: bool = False
    #: output the mean prediction of the last 20 % of the steps (0: the paper's last-step
    #: output). Same trajectory, so same cost; on the misaligned Middlebury x4 crops at
    #: 1000 steps it lowered RMSE by 3 % (MMSR) and 1 % (RobSelf-Re), MAE by 9 % and 6 %
    average_tail: float = 0.2
    #: back-project the output onto the LR, 10 iterations (0: the paper's output). On the
    #: 13 mmsr_samples pairs at x4 it lowered the mean RMSE at 1000 steps by 7 % (every
    #: pair gained) and a 150-step fit's by 18 % (docs/benchmarks/modes.md#short-fits-back-projected)
    back_project: int = 10

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {self.preset!r}")
        check_odd_sizes(self, "n", "m")
        if self.width < 1 or self.block < 1:
            raise ValueError("width and block must be >= 1")

    @property
    def sizes(self) -> tuple[int, int]:
        n, m = PRESETS[self.preset]
        return (self.n or n, self.m or m)


class MMSR(LearnedMethod):
    """MMSR (ECCV 2022), faithful to the paper: see the module docstring."""

    name = "mmsr"
    Options = MMSROptions

    def build_model(self, guide_channels: int, scale: int) -> MMSRNet:
        n, m = self.options.sizes
        return MMSRNet(
            guide_channels, scale, width=self.options.width, n=n, m=m, block=self.options.block,
            residual=self.options.residual,
        )

    def resolved_options(self, scale: int) -> dict[str, Any]:
        n, m = self.options.sizes
        return {**super().resolved_options(scale), "n": n, "m": m}

    def halo(self, scale: int) -> int:
        n, m = self.options.sizes
        # guide branch: 6 3x3 convs; attention: n//2 + m//2 HR pixels; bilinear: 1 LR px.
        return max(4, math.ceil((6 + n // 2 + m // 2) / scale) + 2)
