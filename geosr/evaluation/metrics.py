"""Scores of a super-resolved raster against its reference, as a DEM user reads them.

- ``rmse``, ``mae``: of the error ``pred - ref``;
- ``bias``: its mean (a systematic offset);
- ``nmad``: 1.4826 x the median absolute deviation of the error from its median (the robust
  spread of DEM accuracy reports, Höhle & Höhle 2009);
- ``le90``: the 90th percentile of the absolute error (linear error at 90 %);
- ``slope_rmse_deg``: RMSE of the terrain slope in degrees, both slopes computed by
  xarray-spatial (Horn's 3x3 method, as ``gdaldem slope``) with the pixel size given.

Pixels where either raster is NaN are left out; a slope needs its whole 3x3 window.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: keys of :func:`dem_metrics`, in table order
METRICS = ("rmse", "mae", "bias", "nmad", "le90", "slope_rmse_deg")
#: the resamplers a user already has; the best of those run on a pair is the yardstick
RESAMPLERS = ("bicubic", "cubic", "lanczos")


def slope_degrees(z: np.ndarray, pixel_size: float = 1.0) -> np.ndarray:
    """Slope in degrees of a 2-D elevation array (NaN where the 3x3 window is incomplete),
    computed by xarray-spatial (Horn's method)."""
    import xarray as xr
    import xrspatial

    z = np.asarray(z, dtype=np.float32)
    h, w = z.shape
    da = xr.DataArray(z, dims=("y", "x"),
                      coords={"y": -np.arange(h) * pixel_size, "x": np.arange(w) * pixel_size})
    with np.errstate(invalid="ignore"):
        return np.asarray(xrspatial.slope(da).values, dtype=np.float64)


def nmad(d: np.ndarray) -> float:
    d = np.asarray(d, dtype=np.float64)
    return float(1.4826 * np.median(np.abs(d - np.median(d)))) if d.size else float("nan")


def dem_metrics(pred: np.ndarray, ref: np.ndarray, pixel_size: float = 1.0) -> dict[str, float]:
    """The :data:`METRICS` of ``pred`` against ``ref`` (2-D, same grid; NaN = no data)."""
    pred = np.asarray(pred, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    ok = np.isfinite(pred) & np.isfinite(ref)
    d = pred[ok] - ref[ok]
    if d.size == 0:
        return dict.fromkeys(METRICS, float("nan"))
    sp = slope_degrees(np.where(ok, pred, np.nan), pixel_size)
    sr = slope_degrees(np.where(ok, ref, np.nan), pixel_size)
    both = np.isfinite(sp) & np.isfinite(sr)
    slope = float(np.sqrt(np.mean((sp[both] - sr[both]) ** 2))) if both.any() else float("nan")
    return {
        "rmse": float(np.sqrt(np.mean(d**2))),
        "mae": float(np.mean(np.abs(d))),
        "bias": float(np.mean(d)),
        "nmad": nmad(d),
        "le90": float(np.percentile(np.abs(d), 90)),
        "slope_rmse_deg": slope,
    }


def add_ratios(rows: list[dict[str, Any]], *, key: str = "pair") -> None:
    """Give every row its RMSE ratio to bicubic, to lanczos and to the best resampler run
    on the same ``key`` (``best_classical`` names it); NaN where one was not run."""
    by: dict[Any, dict[str, float]] = {}
    for r in rows:
        if r["method"] in RESAMPLERS and np.isfinite(r["rmse"]):
            by.setdefault(r[key], {})[r["method"]] = r["rmse"]
    for r in rows:
        ref = by.get(r[key], {})

        def ratio(x: float | None, _r: dict[str, Any] = r) -> float:
            return _r["rmse"] / x if x else float("nan")

        r["ratio_to_bicubic"] = ratio(ref.get("bicubic"))
        r["ratio_to_lanczos"] = ratio(ref.get("lanczos"))
        if ref:
            best = min(ref, key=ref.get)  # type: ignore[arg-type]
            r["best_classical"] = best
            r["ratio_to_best_classical"] = ratio(ref[best])
        else:
            r["best_classical"] = None
            r["ratio_to_best_classical"] = float("nan")

