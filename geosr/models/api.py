"""In-memory public API: ``super_resolve`` on ``(band, row, col)`` numpy arrays."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from geosr.errors import InputError, OptionError
from geosr.models import get_method
from geosr.normalize import BandStats, fit_plane, prepare_guide, prepare_lr


def check_scale(scale: Any) -> int:
    """Return ``scale`` as an int >= 2 or raise an OptionError that says what to pass."""
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real):
        raise OptionError(f"scale must be an integer >= 2, got {scale!r}; pass e.g. scale=4")
    if float(scale) != int(scale):
        raise OptionError(
            f"scale must be an integer >= 2, got {scale!r}; non-integer factors are not "
            "supported: resample the LR so that the guide is an integer multiple of it"
        )
    if int(scale) < 2:
        raise OptionError(
            f"scale must be an integer >= 2, got {scale!r}; the output is scale x finer "
            "than the LR, so scale=4 turns 10 m pixels into 2.5 m pixels"
        )
    return int(scale)


def _as_bands(x: Any, what: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise InputError(
            f"{what} must be a (band, row, col) or (row, col) array, got shape {arr.shape}; "
            "move the band axis first (e.g. np.moveaxis(img, -1, 0) for row, col, band images)"
        )
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise InputError(f"{what} must hold real numbers, got dtype {arr.dtype}")
    return arr.astype(np.float32, copy=False)


def _looks_channel_last(shape: tuple[int, ...]) -> bool:
    """A ``(row, col, band)`` image: a last axis of 1-4 bands, a first axis much larger."""
    return len(shape) == 3 and 1 <= shape[-1] <= 4 and shape[0] >= 4 * shape[-1]


def _channel_last_error(lr: np.ndarray, guide: np.ndarray, scale: int) -> InputError | None:
    """The error for an LR or guide given ``(row, col, band)``, if one looks like it."""
    for what, arr in (("lr", lr), ("guide", guide)):
        moved = {"lr": lr, "guide": guide}
        moved[what] = np.moveaxis(arr, -1, 0)
        h, w = moved["lr"].shape[1:]
        fits = moved["guide"].shape[1:] == (h * scale, w * scale)
        if arr.ndim == 3 and (fits or _looks_channel_last(arr.shape)):
            return InputError(
                f"{what} has shape {arr.shape}, which looks like (row, col, band) with the "
                f"bands last; geosr takes (band, row, col): pass "
                f"np.moveaxis({what}, -1, 0)"
            )
    return None


def validate_pair(lr: Any, guide: Any, scale: Any) -> tuple[np.ndarray, np.ndarray, int]:
    """Check shapes and scale of an (LR, guide) pair; return float32 arrays and the scale."""
    scale = check_scale(scale)
    lr = _as_bands(lr, "lr")
    guide = _as_bands(guide, "guide")
    h, w = lr.shape[1:]
    expect = (h * scale, w * scale)
    if guide.shape[1:] != expect:
        hint = _channel_last_error(lr, guide, scale)
        if hint is not None:
            raise hint
    if h < 2 or w < 2:
        raise InputError(f"lr must be at least 2x2 pixels, got {h}x{w}")
    if guide.shape[1:] != expect:
        raise InputError(
            f"guide is {guide.shape[1]}x{guide.shape[2]} pixels but must be exactly scale x "
            f"the LR ({h}x{w} x {scale} = {expect[0]}x{expect[1]}); crop or resample the "
            "guide onto the LR grid refined by the scale (the CLI does this for GeoTIFFs)"
        )
    if not np.isfinite(lr).any():
        raise InputError(
            "lr has no valid pixel (all NaN/inf); NaN marks nodata, so there is nothing "
            "to super-resolve: check the nodata value or the window you read"
        )
    return lr, guide, scale


def super_resolve(
    lr: Any,
    guide: Any,
    scale: int,
    method: str = "mmsr",
    **options: Any,
) -> np.ndarray:
    """Super-resolve ``lr`` (band, row, col) by ``scale`` using ``guide`` (band, row, col).

    NaN in ``lr`` marks nodata: those pixels are ignored by the fit and come back as NaN
    (over their ``scale x scale`` HR footprint). Every LR band is processed separately with
    the same guide. ``options`` go to the method (see ``geosr.get_method``). Returns a
    float32 array of shape ``(bands, scale*rows, scale*cols)`` in the units of ``lr``.
    """

    progress = options.pop("progress", None)
    lr, guide, scale = validate_pair(lr, guide, scale)
    m = get_method(method, **options)
    g = prepare_guide(guide, BandStats.from_array(guide))
    out = np.empty((lr.shape[0], lr.shape[1] * scale, lr.shape[2] * scale), np.float32)
    for b in range(lr.shape[0]):
        out[b] = run_band(m, lr[b : b + 1], g, scale, progress=progress)[0]
    return out


def run_band(
    method: Any,
    band: np.ndarray,
    guide_norm: np.ndarray,
    scale: int,
    *,
    progress: Any = None,
    snapshot_steps: Any = (),
) -> Any:
    """Normalise one LR band ``(1, h, w)``, run ``method``, map back to the LR's units.

    Returns the ``(1, H, W)`` result (NaN over nodata); with ``snapshot_steps`` (learned
    methods only) returns ``{steps: result}`` for those steps and the final one.
    """
    if method.normalised:
        fitted = fit_plane(band[0]) if getattr(method.options, "detrend", False) else None
        plane = None if fitted is None else fitted[0]
        if plane is not None:
            h, w = band.shape[-2:]
            low, high = plane.on_grid(0, 0, h, w), plane.on_grid(0, 0, h * scale, w * scale,
                                                                  1.0 / scale)
            band = band - low
        stats = BandStats.from_array(band)
        x, valid = prepare_lr(band, stats)
        invert = stats.invert if plane is None else (lambda p: stats.invert(p) + high)
    else:  # a resampler: the LR's own values
        valid = np.isfinite(band)
        x, invert = np.where(valid, band, 0.0).astype(np.float32), np.asarray
    hr_valid = np.repeat(np.repeat(valid, scale, axis=1), scale, axis=2)

    def finish(pred: np.ndarray) -> np.ndarray:
        hr = np.array(invert(pred), dtype=np.float32)
        hr[~hr_valid] = np.nan
        return hr

    if not valid.any():
        return np.full(hr_valid.shape, np.nan, np.float32)
    if snapshot_steps:
        res = method.fit(x, guide_norm, scale, valid, progress=progress,
                         snapshot_steps=snapshot_steps)
        return {k: finish(v) for k, v in res.snapshots.items()}
    return finish(method(x, guide_norm, scale, mask=valid, progress=progress))
