"""Synthetic misalignment of a guide, for evaluating robustness (RobSelf's protocol).

A seeded random homography: translation up to ``translation`` pixels per axis, rotation
up to ``rotation`` degrees about the image centre, and perspective jitter moving each
corner by up to ``perspective`` x the image size. Only the guide is warped; the LR is
still made from the aligned HR reference.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from geosr.errors import OptionError


@dataclasses.dataclass(frozen=True)
class Misalignment:
    translation: float = 6.0
    rotation: float = 2.0
    perspective: float = 0.02

    def __post_init__(self) -> None:
        if min(self.translation, self.rotation, self.perspective) < 0:
            raise OptionError("misalignment magnitudes must be >= 0")

    @classmethod
    def parse(cls, text: str) -> Misalignment:
        """``"translation=6,rotation=2,perspective=0.02"`` (any subset; "default" for all)."""
        if text.strip() in ("", "default"):
            return cls()
        kw = {}
        for item in text.split(","):
            key, sep, val = item.partition("=")
            if not sep or key.strip() not in {f.name for f in dataclasses.fields(cls)}:
                raise OptionError(
                    f"bad misalignment {item!r}; use e.g. translation=6,rotation=2,perspective=0.02"
                )
            kw[key.strip()] = float(val)
        return cls(**kw)


def _homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    a = []
    for (x, y), (u, v) in zip(src, dst, strict=True):
        a.append([x, y, 1, 0, 0, 0, -u * x, -u * y, -u])
        a.append([0, 0, 0, x, y, 1, -v * x, -v * y, -v])
    _, _, vt = np.linalg.svd(np.asarray(a, dtype=np.float64))
    h = vt[-1].reshape(3, 3)
    return h / h[2, 2]


def random_homography(h: int, w: int, spec: Misalignment, rng: np.random.Generator) -> np.ndarray:
    """3x3 matrix mapping output pixel (x, y, 1) to the source pixel it samples."""
    corners = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], dtype=np.float64)
    centre = np.array([(w - 1) / 2, (h - 1) / 2])
    ang = np.deg2rad(rng.uniform(-spec.rotation, spec.rotation))
    rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    shift = rng.uniform(-spec.translation, spec.translation, 2)
    jitter = rng.uniform(-spec.perspective, spec.perspective, (4, 2)) * np.array([w, h])
    moved = (corners - centre) @ rot.T + centre + shift + jitter
    return _homography(corners, moved)


def warp_image(img: np.ndarray, hmat: np.ndarray) -> np.ndarray:
    """Warp ``img`` (C, H, W) so that output pixel p shows input at ``hmat @ p`` (bilinear,
    edge values repeated outside)."""
    import torch
    import torch.nn.functional as F

    c, h, w = img.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    pts = np.stack([xs.ravel(), ys.ravel(), np.ones(h * w)])
    src = hmat @ pts
    sx, sy = src[0] / src[2], src[1] / src[2]
    grid = np.stack([sx / max(w - 1, 1) * 2 - 1, sy / max(h - 1, 1) * 2 - 1], -1).reshape(1, h, w, 2)
    out = F.grid_sample(
        torch.from_numpy(np.ascontiguousarray(img, np.float32))[None],
        torch.from_numpy(grid.astype(np.float32)),
        mode="bilinear", padding_mode="border", align_corners=True,
    )
    return out[0].numpy()


def misalign(img: np.ndarray, spec: Misalignment, seed: int) -> np.ndarray:
    """The guide ``img`` (C, H, W) under a random homography drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    return warp_image(img, random_homography(img.shape[1], img.shape[2], spec, rng))
