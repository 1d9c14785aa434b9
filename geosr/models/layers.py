"""Building blocks shared by the learned methods.

The key piece is :func:`local_attention`, the cross-domain adaptive filter of MMSR
(Dong et al., ECCV 2022, eq. 1-4) and of RobSelf's reference filter: for every pixel
``p``, weights are a softmax over a ``k x k`` neighbourhood ``N(p)`` of
``<query(p), key(p+o)>`` and the output is ``sum_o w_o * value(p+o)``; keys and values
outside the image are zero (the reference code's zero-padded ``F.unfold``).

The reference code materialises the unfolded ``C*k^2``-per-pixel tensor (~3 GiB per
tensor at 320^2, k=11). Here pixels are processed in square blocks of ``b x b``: one
batched GEMM computes the dot products of the block's queries with its
``(b+k-1)^2`` key region, the ``k^2`` that belong to each pixel's neighbourhood are
gathered, and the weighted sum is again one GEMM against the value region. Per pixel
this holds ``C*(b+k-1)^2/b^2`` floats instead of ``C*k^2`` (~24x less for k=11, b=8),
all through standard differentiable ops, so autograd gives exact gradients.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn


def local_attention_unfold(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, size: int):
    """Naive reference formulation with ``F.unfold`` (the oracle; memory ~ C*k^2 per pixel)."""
    b, c, h, w = q.shape
    pad = size // 2
    ku = F.unfold(k, size, padding=pad).view(b, c, size * size, h, w)
    vu = F.unfold(v, size, padding=pad).view(b, v.shape[1], size * size, h, w)
    logits = (q.unsqueeze(2) * ku).sum(1)  # (b, k^2, h, w)
    attn = torch.softmax(logits, dim=1)
    return (attn.unsqueeze(1) * vu).sum(2)


class _ContiguousGrad(torch.autograd.Function):
    """Identity whose backward makes the incoming gradient contiguous.

    The gradient that flows back through the block-to-image permutation is strided;
    handing it to ``bmm``'s backward as is makes that copy once per block.
    """

    @staticmethod
    def forward(ctx, x):  # type: ignore[override]
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        return grad.contiguous()


@functools.lru_cache(maxsize=64)
def _gather_index(size: int, block: int) -> torch.Tensor:
    """For each pixel of a ``block x block`` tile, the flat positions of its ``size^2``
    neighbours inside the ``(block+size-1)^2`` region (row-major)."""
    region = block + size - 1
    py, px = torch.meshgrid(torch.arange(block), torch.arange(block), indexing="ij")
    oy, ox = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    idx = (py.reshape(-1, 1) + oy.reshape(1, -1)) * region + (px.reshape(-1, 1) + ox.reshape(1, -1))
    return idx  # (block^2, size^2)


def _regions(x: torch.Tensor, size: int, block: int, nh: int, nw: int) -> torch.Tensor:
    """``(B, C, H, W)`` -> ``(B*nh*nw, C, R*R)``, the zero-padded key region of every block."""
    pad = size // 2
    region = block + size - 1
    h, w = x.shape[-2:]
    xp = F.pad(x, (pad, pad + nw * block - w, pad, pad + nh * block - h))
    r = xp.unfold(2, region, block).unfold(3, region, block)  # B,C,nh,nw,R,R
    bsz, c = x.shape[:2]
    return r.permute(0, 2, 3, 1, 4, 5).reshape(bsz * nh * nw, c, region * region)


def local_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, size: int, *, block: int = 8
) -> torch.Tensor:
    """Local cross-domain attention, equal to :func:`local_attention_unfold` (see module doc).

    ``q``, ``k``: ``(B, C, H, W)``; ``v``: ``(B, Cv, H, W)``; ``size`` odd. Returns
    ``(B, Cv, H, W)``.
    """
    if size % 2 != 1:
        raise ValueError(f"neighbourhood size must be odd, got {size}")
    bsz, c, h, w = q.shape
    cv = v.shape[1]
    block = max(1, min(block, h, w))
    nh, nw = -(-h // block), -(-w // block)
    n = bsz * nh * nw
    # Queries of each block: (n, b^2, C).
    qp = F.pad(q, (0, nw * block - w, 0, nh * block - h))
    qb = qp.view(bsz, c, nh, block, nw, block).permute(0, 2, 4, 3, 5, 1).reshape(n, block * block, c)
    kr = _regions(k, size, block, nh, nw)  # (n, C, R^2)
    idx = _gather_index(size, block).to(q.device)
    scores = torch.bmm(qb, kr)  # (n, b^2, R^2)
    logits = scores.gather(2, idx.unsqueeze(0).expand(n, -1, -1))  # (n, b^2, k^2)
    attn = torch.softmax(logits, dim=-1)
    dense = torch.zeros_like(scores).scatter(2, idx.unsqueeze(0).expand(n, -1, -1), attn)
    # In MMSR and RobSelf keys and values are the same features: extract them once.
    vr = kr if v is k else _regions(v, size, block, nh, nw)  # (n, Cv, R^2)
    out = _ContiguousGrad.apply(torch.bmm(dense, vr.transpose(1, 2)))  # (n, b^2, Cv)
    out = out.view(bsz, nh, nw, block, block, cv).permute(0, 5, 1, 3, 2, 4)
    return out.reshape(bsz, cv, nh * block, nw * block)[:, :, :h, :w]


class ResBlock(nn.Module):
    """conv -> ReLU -> conv, plus identity (MMSR's block: no scaling, no final ReLU)."""

    def __init__(self, channels: int, kernel: int) -> None:
        super().__init__()
        pad = kernel // 2
        self.conv1 = nn.Conv2d(channels, channels, kernel, padding=pad)
        self.conv2 = nn.Conv2d(channels, channels, kernel, padding=pad)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))
