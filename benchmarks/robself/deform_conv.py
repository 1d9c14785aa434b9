"""A pure-torch stand-in for ``torchvision.ops.DeformConv2d``, for running RobSelf's
official code on a CPU-only torch that has no torchvision build with compiled ops.

It follows torchvision's documented semantics: offsets ``(B, 2 * k * k, H, W)``, for each
kernel tap (row-major) a ``(dy, dx)`` pair; bilinear sampling at
``p - padding + tap * dilation + offset`` with zeros outside the image; then the
``k x k`` weights applied to the sampled taps. Weight and bias are created and initialised
as torchvision does (``kaiming_uniform_(a=sqrt(5))``, bias uniform in ``±1/sqrt(fan_in)``),
so a seeded model draws the same initial weights. Stride 1, one offset group, no mask:
what the official network uses.

:func:`install` puts it in ``sys.modules`` as ``torchvision.ops`` only when the real one
cannot be imported; the harness records which one ran.
"""

from __future__ import annotations

import math
import sys
import types

import torch
import torch.nn.functional as F
from torch import nn


def deform_conv2d(x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor,
                  bias: torch.Tensor | None, padding: int = 0, dilation: int = 1) -> torch.Tensor:
    b, c, h, w = x.shape
    cout, cin, kh, kw = weight.shape
    ho, wo = h + 2 * padding - dilation * (kh - 1), w + 2 * padding - dilation * (kw - 1)
    if offset.shape[1] != 2 * kh * kw or offset.shape[-2:] != (ho, wo):
        raise ValueError(f"offset shape {tuple(offset.shape)} does not fit one offset group")
    off = offset.view(b, kh * kw, 2, ho, wo)
    ys = torch.arange(ho, device=x.device, dtype=x.dtype).view(1, ho, 1) - padding
    xs = torch.arange(wo, device=x.device, dtype=x.dtype).view(1, 1, wo) - padding
    taps = []
    for k in range(kh * kw):
        i, j = divmod(k, kw)
        py = ys + i * dilation + off[:, k, 0]
        px = xs + j * dilation + off[:, k, 1]
        grid = torch.stack([px * (2.0 / max(w - 1, 1)) - 1.0, py * (2.0 / max(h - 1, 1)) - 1.0], -1)
        taps.append(F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros",
                                  align_corners=True))
    cols = torch.stack(taps, 2)  # (b, c, k*k, ho, wo)
    out = torch.einsum("bckhw,ock->bohw", cols, weight.reshape(cout, cin, kh * kw))
    return out if bias is None else out + bias.view(1, -1, 1, 1)


class DeformConv2d(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, dilation: int = 1, groups: int = 1, bias: bool = True) -> None:
        super().__init__()
        if stride != 1 or groups != 1:
            raise NotImplementedError("the stand-in supports stride 1 and one group")
        self.padding, self.dilation = padding, dilation
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = nn.init._calculate_fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in)
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor, offset: torch.Tensor, mask=None) -> torch.Tensor:
        if mask is not None:
            raise NotImplementedError("the stand-in has no modulation mask")
        return deform_conv2d(x, offset, self.weight, self.bias, self.padding, self.dilation)


def install() -> str:
    """Make ``from torchvision.ops import DeformConv2d`` work; returns which one it gives."""
    try:
        from torchvision.ops import DeformConv2d as real  # noqa: F401

        real(2, 2, 3, padding=1)(torch.zeros(1, 2, 4, 4), torch.zeros(1, 18, 4, 4))
        return "torchvision"
    except Exception:  # no torchvision, or one without compiled ops for this torch
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
    pkg = types.ModuleType("torchvision")
    ops = types.ModuleType("torchvision.ops")
    ops.DeformConv2d = DeformConv2d  # type: ignore[attr-defined]
    ops.deform_conv2d = deform_conv2d  # type: ignore[attr-defined]
    pkg.ops = ops  # type: ignore[attr-defined]
    pkg.__path__ = []  # type: ignore[attr-defined]
    sys.modules["torchvision"], sys.modules["torchvision.ops"] = pkg, ops
    return "pure-torch stand-in (benchmarks/robself/deform_conv.py)"
