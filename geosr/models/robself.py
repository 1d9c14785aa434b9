"""RobSelf: self-supervised guided super-resolution that is robust to a misaligned guide.

X. Dong et al., 2026 (RobSelf). Built from the paper's description (Fig. 2 and §4), then
compared with the authors' code (GitHub palmdong/RobSelf, MIT; never part of geosr) by
``benchmarks/robself/official.py``: extraction layers, a multi-level misalignment-aware feature
translator that estimates a dense guide-to-source displacement field and aligns the guide
features by resampling (**Re**, 2 offsets per pixel) or by a deformable convolution
(**De**, ``2 k^2`` offsets per pixel), a translation head whose output ``I_trans`` is weakly
supervised by the LR source, a content-aware reference filter, and a prediction head.
Loss: ``|down(I_sr) - LR|_1 + lambda |down(I_trans) - LR|_1`` with lambda = 1 (``trans_weight``).

Choices the paper leaves open (docs/methods.md#choices-the-paper-leaves-open); where the
authors' published code chose otherwise, an option gives their choice and
docs/benchmarks/robself.md#side-by-side-with-the-authors-code measures it:
- extraction layers: two 3x3 convs + ReLU per modality (``width`` channels); the source
  convs are dilated by the scale (``source_dilation``), so that their taps fall on the
  neighbouring LR pixels of the bilinearly upsampled source;
- translator: a 1x1 fusion of ``[F_source, F_guide]``, then ``levels`` encoder levels
  (stride-2 3x3 conv + 3x3 conv) and as many decoder levels (bilinear x2, concat skip,
  two 3x3 convs), and a 3x3 output conv that is **zero-initialised** (the fit starts from
  the identity alignment); displacements are bounded by ``max_disp * tanh(.)`` HR pixels
  and regularised by their total variation, weighted by ``field_tv`` (0.1; 0 gives the
  paper's two-term loss; docs/benchmarks/robself.md#dilated-source-convs-and-a-smooth-field);
- deformable alignment in plain torch: ``grid_sample`` of the ``k^2`` offset taps, then
  a linear (1x1) map of the stacked taps, i.e. a deformable convolution;
- heads: 2 residual 1x1 blocks + 1x1 conv (as MMSR's head); shared between ``I_trans`` and ``I_sr``
  except in the NIR preset (the paper's "separate prediction heads");
- reference filter: the importance map selects a kernel per pixel (``M > eta * mean(M)``
  takes the large ``m x m`` kernel); both sizes run in one ``m x m`` pass whose softmax
  covers only the centred ``n x n`` taps where the small kernel is chosen, which equals
  evaluating both densely and selecting (:func:`reference_filter`, ``one_pass``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from geosr.models.base import check_odd_sizes
from geosr.models.layers import ResBlock, local_attention
from geosr.models.learned import LearnedMethod, LearnedOptions
from geosr.models.mmsr import bicubic_base

#: preset -> {scale: (levels, m, n)}, eta (None = no threshold: one kernel size)
PRESETS: dict[str, tuple[dict[int, tuple[int, int, int]], float | None]] = {
    "depth": ({2: (3, 7, 5), 4: (4, 7, 5), 8: (5, 13, 7)}, 0.7),
    "nir": ({2: (4, 3, 3), 4: (5, 3, 3), 8: (5, 3, 3)}, None),
    # DEM/thermal: MMSR's smaller neighbourhoods for smooth sources (our choice).
    "dem": ({2: (3, 5, 3), 4: (4, 5, 3), 8: (5, 7, 5)}, 0.7),
    "thermal": ({2: (3, 5, 3), 4: (4, 5, 3), 8: (5, 7, 5)}, 0.7),
}


def _conv_relu(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation),
        nn.ReLU(inplace=True),
    )


def _extraction(cin: int, width: int, dilation: int, kind: str) -> nn.Sequential:
    """``plain``: two 3x3 convs + ReLU; ``residual`` (the authors' code): a 3x3 conv +
    LeakyReLU and two residual blocks of 3x3 convs with LeakyReLU (five convs)."""
    if kind == "plain":
        return nn.Sequential(_conv_relu(cin, width, dilation=dilation),
                             _conv_relu(width, width, dilation=dilation))
    return nn.Sequential(nn.Conv2d(cin, width, 3, padding=dilation, dilation=dilation),
                         nn.LeakyReLU(), *(ResBlock(width, 3, dilation, leaky=True)
                                           for _ in range(2)))


class Translator(nn.Module):
    """Multi-level encoder-decoder: ``[F_source, F_guide]`` -> displacement channels.

    ``init``: the output conv starts at zero (``zero``: exactly the identity alignment) or
    with weights drawn from N(0, 0.001) and zero bias (``normal``, the authors' code)."""

    def __init__(self, width: int, levels: int, out_channels: int, init: str = "zero") -> None:
        super().__init__()
        self.fuse = nn.Sequential(nn.Conv2d(2 * width, width, 1), nn.ReLU(inplace=True))
        self.down = nn.ModuleList(
            nn.Sequential(_conv_relu(width, width, 2), _conv_relu(width, width))
            for _ in range(levels)
        )
        self.up = nn.ModuleList(
            nn.Sequential(_conv_relu(2 * width, width), _conv_relu(width, width))
            for _ in range(levels)
        )
        self.out = nn.Conv2d(width, out_channels, 3, padding=1)
        if init == "normal":
            nn.init.normal_(self.out.weight, mean=0.0, std=0.001)
        else:
            nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, f_source: torch.Tensor, f_guide: torch.Tensor) -> torch.Tensor:
        x = self.fuse(torch.cat([f_source, f_guide], 1))
        skips = []
        for down in self.down:
            skips.append(x)
            x = down(x)
        for up, skip in zip(self.up, reversed(skips), strict=True):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = up(torch.cat([x, skip], 1))
        return self.out(x)


def warp(x: torch.Tensor, disp: torch.Tensor) -> torch.Tensor:
    """Sample ``x`` (B, C, H, W) at ``p + disp(p)``; ``disp`` (B, 2, H, W) = (dy, dx) pixels."""
    _, _, h, w = x.shape
    ys = torch.arange(h, device=x.device, dtype=x.dtype).view(1, h, 1)
    xs = torch.arange(w, device=x.device, dtype=x.dtype).view(1, 1, w)
    gy = (ys + disp[:, 0]) * (2.0 / max(h - 1, 1)) - 1.0
    gx = (xs + disp[:, 1]) * (2.0 / max(w - 1, 1)) - 1.0
    grid = torch.stack([gx, gy], dim=-1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)


class ResampleAlign(nn.Module):
    """RobSelf-Re: warp the guide features by one displacement per pixel (N = 2)."""

    offsets = 2

    def __init__(self, width: int) -> None:
        super().__init__()

    def forward(self, f_guide: torch.Tensor, disp: torch.Tensor) -> torch.Tensor:
        return warp(f_guide, disp)


class DeformAlign(nn.Module):
    """RobSelf-De: a ``k x k`` deformable convolution (N = 2 k^2 offsets) in plain torch."""

    def __init__(self, width: int, kernel: int = 3) -> None:
        super().__init__()
        self.kernel = kernel
        self.offsets = 2 * kernel * kernel
        self.linear = nn.Conv2d(width * kernel * kernel, width, 1)
        r = kernel // 2
        taps = [(dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1)]
        self.register_buffer("taps", torch.tensor(taps, dtype=torch.float32).view(-1, 2, 1, 1),
                             persistent=False)

    def forward(self, f_guide: torch.Tensor, disp: torch.Tensor) -> torch.Tensor:
        b, _, h, w = disp.shape
        d = disp.view(b, -1, 2, h, w)
        sampled = [warp(f_guide, d[:, t] + self.taps[t]) for t in range(d.shape[1])]
        return self.linear(torch.cat(sampled, 1))


class Head(nn.Module):
    """Two residual 1x1 blocks and a 1x1 conv, like MMSR's prediction head: the spatial
    work is done by the translator and the filter, and full-resolution 3x3 heads (run
    twice when shared) would make a step dearer than MMSR's."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(ResBlock(width, 1), ResBlock(width, 1), nn.Conv2d(width, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def total_variation(disp: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of a displacement field between neighbouring pixels, in
    pixels (rows and columns summed)."""
    return ((disp[..., 1:, :] - disp[..., :-1, :]).abs().mean()
            + (disp[..., :, 1:] - disp[..., :, :-1]).abs().mean())


def importance(f: torch.Tensor) -> torch.Tensor:
    """``M = mean_c || grad f_c ||_2`` with forward differences (zero at the far border)."""
    gx = F.pad(f[..., :, 1:] - f[..., :, :-1], (0, 1, 0, 0))
    gy = F.pad(f[..., 1:, :] - f[..., :-1, :], (0, 0, 0, 1))
    return torch.sqrt(gx * gx + gy * gy + 1e-12).mean(1, keepdim=True)


def reference_filter(
    q: torch.Tensor, kv: torch.Tensor, imp: torch.Tensor, m: int, n: int,
    eta: float | None, block: int = 8, one_pass: bool = True,
) -> torch.Tensor:
    """Content-aware reference filter: pixels whose importance exceeds ``eta * mean`` use the
    large ``m x m`` kernel, the others the small ``n x n`` one (``eta=None``: ``n`` only).

    ``one_pass``: one ``m x m`` pass in which the other pixels' softmax covers their centred
    ``n x n`` taps only; it equals filtering with both kernels and selecting per pixel
    (``one_pass=False``, the formulation as written in the paper), forward and backward,
    at the cost of the larger kernel alone.
    """
    if eta is None or m == n:
        return local_attention(q, kv, kv, n, block=block)
    narrow = imp <= eta * imp.mean(dim=(-2, -1), keepdim=True)
    if not one_pass:
        small = local_attention(q, kv, kv, n, block=block)
        large = local_attention(q, kv, kv, m, block=block)
        sel = narrow.to(small.dtype)
        return sel * small + (1 - sel) * large
    if m < n:  # the larger kernel runs, the smaller is the narrow one
        return local_attention(q, kv, kv, n, block=block, narrow=~narrow, narrow_size=m)
    return local_attention(q, kv, kv, m, block=block, narrow=narrow, narrow_size=n)


class RobSelfNet(nn.Module):
    def __init__(
        self, guide_channels: int, scale: int, *, variant: str = "re", width: int = 64,
        levels: int = 4, m: int = 7, n: int = 5, eta: float | None = 0.7,
        shared_head: bool = True, max_disp: float = 8.0, deform_kernel: int = 3, block: int = 8,
        residual: bool = False, field_tv: float = 0.0, source_dilation: int = 1,
        extraction: str = "plain", filter_reduction: int = 1, translator_init: str = "zero",
    ) -> None:
        super().__init__()
        self.field_tv = field_tv
        self.residual = residual
        self.m, self.n, self.eta, self.block = m, n, eta, block
        #: the reference filter in one pass (see reference_filter; False: two, as in the
        #: paper, for comparison)
        self.one_pass = True
        self.max_disp = max_disp
        # Source extraction taps ``source_dilation`` HR px apart (the methods pass the scale:
        # on the bilinearly upsampled LR, adjacent HR pixels hold nearly the same blurred
        # value, and only taps that reach the neighbouring LR pixels see both sides of an edge).
        self.extract_source = _extraction(1, width, source_dilation, extraction)
        self.extract_guide = _extraction(guide_channels, width, 1, extraction)
        self.align = ResampleAlign(width) if variant == "re" else DeformAlign(width, deform_kernel)
        self.translator = Translator(width, levels, self.align.offsets, translator_init)
        self.trans_head = Head(width)
        self.pred_head = self.trans_head if shared_head else Head(width)
        # The filter's queries, keys and values: ``width // filter_reduction`` channels, and
        # with a reduction a 1x1 conv back to ``width`` after it (the authors' code: 4).
        inner = width // filter_reduction
        self.proj_source = nn.Conv2d(width, inner, 1)
        self.proj_guide = nn.Conv2d(width, inner, 1)
        self.expand = nn.Conv2d(inner, width, 1) if filter_reduction > 1 else nn.Identity()

    def decayed_parameters(self) -> list[nn.Parameter]:
        return list(self.extract_guide.parameters())

    def displacement(self, f_source: torch.Tensor, f_guide: torch.Tensor) -> torch.Tensor:
        raw = self.translator(f_source, f_guide)
        return self.max_disp * torch.tanh(raw / self.max_disp)

    def features(self, lr: torch.Tensor, guide: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``F_source`` (from the bilinearly upsampled LR) and ``F_guide``."""
        up = F.interpolate(lr, size=guide.shape[-2:], mode="bilinear", align_corners=False)
        return self.extract_source(up), self.extract_guide(guide)

    def forward(self, lr: torch.Tensor, guide: torch.Tensor):
        f_s, f_g = self.features(lr, guide)
        disp = self.displacement(f_s, f_g)
        aligned = self.align(f_g, disp)
        i_trans = self.trans_head(aligned)
        # Content-aware reference filter: weights from <source neighbour, aligned guide
        # centre>, output from source neighbours only.
        q, kv = self.proj_guide(aligned), self.proj_source(f_s)
        filtered = self.expand(reference_filter(q, kv, importance(f_s), self.m, self.n,
                                                self.eta, self.block, self.one_pass))
        i_sr = self.pred_head(filtered)
        if self.residual:  # I_sr corrects bicubic; I_trans stays a full prediction
            i_sr = i_sr + bicubic_base(lr, guide.shape[-2:])
        if self.field_tv > 0:
            return i_sr, [i_trans], self.field_tv * total_variation(disp)
        return i_sr, [i_trans]


@dataclasses.dataclass(frozen=True)
class RobSelfOptions(LearnedOptions):
    preset: str = "depth"
    levels: int | None = None
    m: int | None = None
    n: int | None = None
    eta: float | None = None
    width: int = 64
    #: bound of the displacement field, HR pixels
    max_disp: float = 8.0
    block: int = 8
    #: I_sr = bicubic + the prediction head's output (not in the paper; see MMSR's option)
    residual: bool = False
    #: weight of the displacement field's total variation in the loss (0: none, the
    #: paper's loss); 0.1 measured better with and without misalignment
    #: (docs/benchmarks/robself.md#dilated-source-convs-and-a-smooth-field)
    field_tv: float = 0.1
    #: dilation of the two source extraction convs, HR pixels (None: the scale, i.e. taps
    #: on the neighbouring LR pixels; 1: plain 3x3 convs on the upsampled LR)
    source_dilation: int | None = None
    #: extraction layers: "plain" (two 3x3 convs + ReLU per modality) or "residual" (the
    #: authors' code: a 3x3 conv and two residual blocks of 3x3 convs, LeakyReLU)
    extraction: str = "plain"
    #: the reference filter works on width // filter_reduction channels (the authors' code: 4)
    filter_reduction: int = 1
    #: the translator's output conv at the start: "zero" (the identity alignment) or
    #: "normal" (N(0, 0.001), the authors' code)
    translator_init: str = "zero"
    #: one prediction head for I_trans and I_sr (None: shared except in the NIR preset)
    shared_head: bool | None = None
    #: Adam weight decay on the guide extraction layers (MMSR's code; the authors' RobSelf
    #: code: 0)
    weight_decay: float = 5e-4
    #: mean prediction of the last 20 % of the steps (0: last step); see MMSROptions
    average_tail: float = 0.2
    #: weight of I_trans's cycle loss next to I_sr's (the paper's lambda: 1)
    trans_weight: float = 1.0
    #: back-projection onto the LR (0: the paper's output); the default follows MMSR's,
    #: where it was measured, so that the two compare like with like
    back_project: int = 10

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {self.preset!r}")
        check_odd_sizes(self, "n", "m")
        if self.levels is not None and not 1 <= self.levels <= 8:
            raise ValueError(f"levels must be in 1..8, got {self.levels}")
        if not self.max_disp > 0:
            raise ValueError(f"max_disp must be > 0, got {self.max_disp}")
        if not self.field_tv >= 0:
            raise ValueError(f"field_tv must be >= 0, got {self.field_tv}")
        if self.extraction not in ("plain", "residual"):
            raise ValueError(f"extraction must be plain or residual, got {self.extraction!r}")
        if self.translator_init not in ("zero", "normal"):
            raise ValueError(f"translator_init must be zero or normal, got {self.translator_init!r}")
        if self.filter_reduction not in (1, 2, 4, 8):
            raise ValueError(f"filter_reduction must be 1, 2, 4 or 8, got {self.filter_reduction}")
        if not self.trans_weight >= 0:
            raise ValueError(f"trans_weight must be >= 0, got {self.trans_weight}")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.source_dilation is not None and not 1 <= self.source_dilation <= 32:
            raise ValueError(f"source_dilation must be in 1..32 (or unset: the scale), "
                             f"got {self.source_dilation}")

    def dilation(self, scale: int) -> int:
        """The source convs' dilation at ``scale``: ``source_dilation``, or the scale if unset."""
        return self.source_dilation or scale

    def settings(self, scale: int) -> tuple[int, int, int, float | None]:
        table, eta = PRESETS[self.preset]
        levels, m, n = table.get(scale) or table[min(table, key=lambda s: abs(s - scale))]
        return (self.levels or levels, self.m or m, self.n or n,
                self.eta if self.eta is not None else eta)


class _RobSelf(LearnedMethod):
    Options = RobSelfOptions
    variant = "re"

    def build_model(self, guide_channels: int, scale: int) -> RobSelfNet:
        o = self.options
        levels, m, n, eta = o.settings(scale)
        return RobSelfNet(
            guide_channels, scale, variant=self.variant, width=o.width, levels=levels, m=m,
            n=n, eta=eta, max_disp=o.max_disp, block=o.block,
            shared_head=o.preset != "nir" if o.shared_head is None else o.shared_head,
            residual=o.residual, field_tv=o.field_tv, source_dilation=o.dilation(scale),
            extraction=o.extraction, filter_reduction=o.filter_reduction,
            translator_init=o.translator_init,
        )

    def resolved_options(self, scale: int) -> dict[str, Any]:
        levels, m, n, eta = self.options.settings(scale)
        return {**super().resolved_options(scale), "levels": levels, "m": m, "n": n,
                "eta": eta, "source_dilation": self.options.dilation(scale)}

    def optim_overrides(self) -> dict[str, Any]:
        return {"weight_decay": self.options.weight_decay, "aux_weight": self.options.trans_weight}

    def halo(self, scale: int) -> int:
        levels, m, n, _ = self.options.settings(scale)
        # the extraction convs: two per branch, or five with the residual extraction; the
        # source's are dilated, the guide's extra ones reach one HR px each
        convs = 2 if self.options.extraction == "plain" else 5
        reach = convs * self.options.dilation(scale) + convs - 2
        # the misalignment bound + filter radius + source convs + guide/head convs, in LR px
        return max(4, math.ceil((self.options.max_disp + max(m, n) // 2 + reach + 6) / scale)
                   + 2)


class RobSelfRe(_RobSelf):
    """RobSelf with resampling alignment (2 offsets per pixel)."""

    name = "robself-re"
    variant = "re"


class RobSelfDe(_RobSelf):
    """RobSelf with deformable-convolution alignment (2 k^2 offsets per pixel)."""

    name = "robself-de"
    variant = "de"
