"""A small georeferenced example scene, generated (no download).

A synthetic surface model at 0.5 m (rolling terrain, flat- and gable-roofed buildings,
trees) and an RGB "orthophoto" rendered from it (hillshaded land cover: grass, roads,
roofs, tree crowns, shadows). The LR DSM is the surface average-pooled by ``scale``
(``size`` x ``size`` pixels of ``0.5 * scale`` m), in UTM zone 33N (EPSG:32633)::

    geosr dem-sr --example -o out.tif          # or, from Python:
    from geosr.raster.example import write_example
    paths = write_example("folder")            # {"lr": ..., "guide": ..., "reference": ...}
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

#: Upper-left corner of the scene (UTM 33N, near Vienna).
ORIGIN = (600000.0, 5340000.0)
CRS = "EPSG:32633"
HR_PIXEL = 0.5


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cell: int) -> np.ndarray:
    """Value noise: random values on a coarse lattice, bicubic-ish (smoothstep) upsampled."""
    h, w = shape
    gh, gw = h // cell + 2, w // cell + 2
    lattice = rng.standard_normal((gh, gw))
    y = np.arange(h) / cell
    x = np.arange(w) / cell
    y0, x0 = y.astype(int), x.astype(int)
    fy, fx = y - y0, x - x0
    sy, sx = fy * fy * (3 - 2 * fy), fx * fx * (3 - 2 * fx)
    a = lattice[y0][:, x0]
    b = lattice[y0][:, x0 + 1]
    c = lattice[y0 + 1][:, x0]
    d = lattice[y0 + 1][:, x0 + 1]
    top = a + (b - a) * sx[None]
    bot = c + (d - c) * sx[None]
    return top + (bot - top) * sy[:, None]


def make_scene(size: int = 64, scale: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    """Arrays of the scene: ``dsm`` (HR, float32), ``rgb`` (3, HR, uint8), ``lr`` (float32)."""
    rng = np.random.default_rng(seed)
    n = size * scale
    yy, xx = np.mgrid[0:n, 0:n] * HR_PIXEL
    ground = 180.0 + 0.04 * xx + 0.02 * yy + 3.0 * _smooth_noise(rng, (n, n), max(8, n // 4))
    dsm = ground.copy()
    cover = np.zeros((n, n), np.uint8)  # 0 grass, 1 road, 2 roof, 3 tree
    # roads: one horizontal and one vertical band
    road_w = max(3, n // 24)
    r0, c0 = int(n * 0.55), int(n * 0.35)
    cover[r0 : r0 + road_w, :] = 1
    cover[:, c0 : c0 + road_w] = 1
    # buildings
    n_build = max(3, (n * n) // 3000)
    for _ in range(n_build):
        bh, bw = rng.integers(n // 16 + 4, n // 6 + 6, size=2)
        r, c = rng.integers(0, n - bh), rng.integers(0, n - bw)
        if (cover[r : r + bh, c : c + bw] == 1).any() or (cover[r : r + bh, c : c + bw] == 2).any():
            continue
        height = rng.uniform(4.0, 18.0)
        base = ground[r : r + bh, c : c + bw].min()
        roof = np.full((bh, bw), base + height)
        if rng.random() < 0.5:  # gable roof along the longer side
            if bw >= bh:
                t = 1 - np.abs(np.linspace(-1, 1, bh))[:, None]
            else:
                t = 1 - np.abs(np.linspace(-1, 1, bw))[None, :]
            roof = roof + 3.0 * t
        dsm[r : r + bh, c : c + bw] = roof
        cover[r : r + bh, c : c + bw] = 2
    # trees: gaussian crowns on grass
    n_trees = max(4, (n * n) // 1500)
    for _ in range(n_trees):
        r, c = rng.integers(0, n, size=2)
        if cover[r, c] != 0:
            continue
        rad = rng.uniform(2.0, 5.0) / HR_PIXEL
        d2 = ((np.arange(n)[:, None] - r) ** 2 + (np.arange(n)[None, :] - c) ** 2) / rad**2
        crown = rng.uniform(5.0, 12.0) * np.exp(-2.0 * d2)
        where = (crown > 0.5) & (cover != 2) & (cover != 1)
        dsm = np.where(where, np.maximum(dsm, ground + crown), dsm)
        cover[where] = 3
    # render: land-cover albedo x hillshade (sun from the north-west)
    gy, gx = np.gradient(dsm, HR_PIXEL)
    slope = np.arctan(np.hypot(gx, gy))
    aspect = np.arctan2(-gx, gy)
    az, alt = np.deg2rad(315.0), np.deg2rad(40.0)
    shade = np.sin(alt) * np.cos(slope) + np.cos(alt) * np.sin(slope) * np.cos(az - aspect)
    shade = np.clip(shade, 0.0, 1.0)
    palette = np.array(
        [[95, 140, 70], [120, 118, 115], [170, 90, 75], [40, 90, 45]], dtype=np.float64
    )
    albedo = palette[cover].transpose(2, 0, 1)
    texture = 1.0 + 0.08 * _smooth_noise(rng, (n, n), 3)
    rgb = albedo * (0.35 + 0.85 * shade)[None] * texture[None]
    rgb += rng.normal(0.0, 2.0, rgb.shape)
    rgb = np.clip(rgb, 0, 255).astype(np.uint8)
    lr = dsm.reshape(size, scale, size, scale).mean(axis=(1, 3))
    return {"dsm": dsm.astype(np.float32), "rgb": rgb, "lr": lr.astype(np.float32)}


def write_example(
    folder: str | os.PathLike[str], *, size: int = 64, scale: int = 4, seed: int = 0
) -> dict[str, str]:
    """Write the example scene as GeoTIFFs into ``folder``; return their paths.

    ``lr``: ``example_dsm_lr.tif`` (size x size, ``0.5*scale`` m, float32, nodata -9999);
    ``guide``: ``example_rgb.tif`` (3 x size*scale x size*scale, 0.5 m, uint8);
    ``reference``: ``example_dsm_reference.tif`` (the 0.5 m surface the LR was pooled from).
    """
    import rasterio
    from affine import Affine

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    scene = make_scene(size, scale, seed)
    hr_t = Affine(HR_PIXEL, 0.0, ORIGIN[0], 0.0, -HR_PIXEL, ORIGIN[1])
    lr_t = Affine(HR_PIXEL * scale, 0.0, ORIGIN[0], 0.0, -HR_PIXEL * scale, ORIGIN[1])
    paths = {
        "lr": str(folder / "example_dsm_lr.tif"),
        "guide": str(folder / "example_rgb.tif"),
        "reference": str(folder / "example_dsm_reference.tif"),
    }
    common = {"driver": "GTiff", "crs": CRS, "tiled": True, "compress": "deflate"}
    n = size * scale
    with rasterio.open(
        paths["lr"], "w", width=size, height=size, count=1, dtype="float32",
        transform=lr_t, nodata=-9999.0, **common,
    ) as dst:
        dst.write(scene["lr"], 1)
        dst.set_band_description(1, "surface elevation")
        dst.set_band_unit(1, "metre")
    with rasterio.open(
        paths["guide"], "w", width=n, height=n, count=3, dtype="uint8", transform=hr_t,
        photometric="RGB", **common,
    ) as dst:
        dst.write(scene["rgb"])
    with rasterio.open(
        paths["reference"], "w", width=n, height=n, count=1, dtype="float32",
        transform=hr_t, nodata=-9999.0, **common,
    ) as dst:
        dst.write(scene["dsm"], 1)
        dst.set_band_description(1, "surface elevation (reference)")
        dst.set_band_unit(1, "metre")
    return paths
