"""Visual evaluation reports: one self-contained HTML page with matplotlib figures.

``write_report(folder, result, outputs)`` renders the result of
:func:`geosr.evaluation.evaluate.evaluate` (run with ``keep_outputs=True``): a summary table on top,
RMSE against seconds across methods, then per pair the guide, the LR input, bicubic, each
method and the reference on one colour scale, an absolute-error map per method on one
shared error scale, and the pair's metrics table. Images are embedded as PNG data URIs
(``embed=False``: PNG files next to ``index.html``); the page loads nothing from the
network.

Benchmark results (RMSE against time per megapixel) come in as a generic list of records
``{"method", "rmse", "seconds_per_megapixel"}`` (optional ``"label"``, ``"dataset"``,
``"mae"``, ``"ratio_to_bicubic"``, ``"megapixels_per_second"``, ``"peak_rss_mb"``): the
``"records"`` of ``geosr bench --json`` (:mod:`geosr.evaluation.bench`) go straight to
``write_report(folder, bench=records)``.

Elevation (a ``dem`` preset, a reference band in metres or feet, or ``elevation=True``)
is drawn as elevation: each output, the LR and the reference as hillshaded colour relief
(matplotlib's ``LightSource``, the quicklook's, with the pixel size: xarray-spatial's
hillshade ignores it), and the signed error (output − reference) on a diverging colour
map centred on 0, in the reference band's unit (else its CRS's linear unit: heights are
taken to be in the same unit as the grid). No data is a hatched grey everywhere, named in
a legend.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from geosr.errors import InputError, import_extra
from geosr.evaluation.quicklook import _stretch, colour_relief, nodata_legend, show_nodata
from geosr.raster.atomic import atomic_write
from geosr.version import __version__

logger = logging.getLogger(__name__)

_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1400px;
       color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
tr.best td { font-weight: bold; }
.note { background: #fff4d6; border: 1px solid #e0c060; padding: 0.5em 0.8em; }
.settings { font-size: 0.9em; color: #444; }
img { max-width: 100%; height: auto; display: block; margin: 0.4em 0; }
code { background: #f3f3f3; padding: 0 0.2em; }
"""


# -- figures -----------------------------------------------------------------------------
def _mpl() -> Any:
    matplotlib = import_extra("matplotlib", "report", "a figure (--report, --plot)")

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _panel_grid(plt, n: int, shape: tuple[int, int], extra: float):
    """Two rows of ``n`` tick-free panels shaped like an ``(h, w)`` raster."""
    h, w = shape
    cw = 2.3
    fig, axes = plt.subplots(2, n, figsize=(cw * n + 0.8, 2 * cw * h / w + extra),
                             layout="constrained", squeeze=False)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    return fig, axes


def _png(fig: Any, dpi: int) -> bytes:
    """The figure as a PNG with an adaptive 256-colour palette (about 3x smaller)."""
    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    _mpl().close(fig)
    buf.seek(0)
    with Image.open(buf) as im:
        small = im.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT)
    out = io.BytesIO()
    small.save(out, format="PNG", optimize=True)
    return out.getvalue()


def _guide_rgb(guide: np.ndarray) -> np.ndarray:

    return _stretch(np.asarray(guide, np.float32)[:3])


def pair_figure(
    arrays: Mapping[str, np.ndarray], methods: Sequence[str], scale: int, *, dpi: int = 80,
    cmap: str = "viridis", err_cmap: str = "magma",
) -> bytes:
    """PNG of one pair: guide / LR / each method / reference, then |error| per method.

    ``arrays``: ``{"hr", "lr", "guide", METHOD...}`` as kept by ``evaluate``. Values share
    one colour scale (the reference's 1st-99th percentile), errors share another (0 to the
    largest 99th percentile of |error| over the methods).
    """
    plt = _mpl()
    hr, lr = arrays["hr"], arrays["lr"]
    ok = np.isfinite(hr)
    vmin, vmax = (np.percentile(hr[ok], (1, 99)) if ok.any() else (0.0, 1.0))
    errs = {m: np.abs(arrays[m] - hr) for m in methods}
    emax = max((float(np.nanpercentile(e, 99)) for e in errs.values() if np.isfinite(e).any()),
               default=1.0) or 1.0
    cols = ["guide", f"LR (x{scale} avg-pooled)", *methods, "reference"]
    n = len(cols)
    h, w = hr.shape
    fig, axes = _panel_grid(plt, n, hr.shape, 0.9)
    top = axes[0]
    top[0].imshow(_guide_rgb(arrays["guide"]), interpolation="nearest")
    im = top[1].imshow(lr, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest",
                       extent=(-0.5, w - 0.5, h - 0.5, -0.5))
    for ax, m in zip(top[2:-1], methods, strict=True):
        ax.imshow(arrays[m], cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    top[-1].imshow(hr, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    for ax, c in zip(top, cols, strict=True):
        ax.set_title(c, fontsize=9)
    bottom = axes[1]
    eim = None
    for ax, m in zip(bottom[2:-1], methods, strict=True):
        eim = ax.imshow(errs[m], cmap=err_cmap, vmin=0, vmax=emax, interpolation="nearest")
        rmse = float(np.sqrt(np.nanmean((arrays[m] - hr) ** 2)))
        ax.set_title(f"|error| {m}\nRMSE {rmse:.4g}", fontsize=8)
    for ax in (bottom[0], bottom[1], bottom[-1]):
        ax.axis("off")
    for ax in [*top, *bottom[2:-1]]:
        show_nodata(ax)
    if not all(np.isfinite(arrays[k]).all() for k in ("hr", "lr", *methods)):
        nodata_legend(fig)
    fig.colorbar(im, ax=list(top), shrink=0.85, pad=0.01, label="value")
    if eim is not None:
        fig.colorbar(eim, ax=list(bottom), shrink=0.85, pad=0.01, label="|error| (shared scale)")
    return _png(fig, dpi)


#: units of the values that say "elevation" (with a ``dem`` preset)
LENGTH_UNITS = {"m", "metre", "meter", "metres", "meters", "ft", "foot", "feet", "us-ft",
                "us survey foot", "foot_us"}


def error_limit(errors: Sequence[np.ndarray]) -> float:
    """The symmetric colour limit of signed errors: the largest 99th percentile of |error|."""
    lims = [float(np.nanpercentile(np.abs(e), 99)) for e in errors if np.isfinite(e).any()]
    return max(lims, default=1.0) or 1.0


def elevation_figure(
    arrays: Mapping[str, np.ndarray], methods: Sequence[str], scale: int, *,
    pixel_size: float = 1.0, unit: str | None = None, dpi: int = 80,
    cmap: str = "gist_earth", err_cmap: str = "RdBu_r",
) -> bytes:
    """PNG of one elevation pair: guide / LR / each method / reference as hillshaded colour
    relief on one elevation scale (the reference's 1st-99th percentile), then per method
    the signed error (output − reference) on a diverging map centred on 0 (± the largest
    99th percentile of |error|). ``unit`` labels both colour bars; no data is hatched grey.
    """
    plt = _mpl()
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    hr, lr = arrays["hr"], arrays["lr"]
    ok = np.isfinite(hr)
    vmin, vmax = (np.percentile(hr[ok], (1, 99)) if ok.any() else (0.0, 1.0))
    vmax = vmax if vmax > vmin else vmin + 1e-6
    errs = {m: arrays[m] - hr for m in methods}
    elim = error_limit(list(errs.values()))
    u = f" ({unit})" if unit else " (the reference's unit)"
    cols = ["guide", f"LR (x{scale} avg-pooled)", *methods, "reference"]
    n = len(cols)
    h, w = hr.shape
    fig, axes = _panel_grid(plt, n, hr.shape, 1.1)
    top, bottom = axes
    top[0].imshow(_guide_rgb(arrays["guide"]), interpolation="nearest")
    shaded = [(lr, pixel_size * scale), *((arrays[m], pixel_size) for m in methods),
              (hr, pixel_size)]
    for ax, (z, res) in zip(top[1:], shaded, strict=True):
        ax.imshow(colour_relief(z, res, vmin, vmax, cmap), interpolation="nearest",
                  extent=(-0.5, w - 0.5, h - 0.5, -0.5))
    for ax, c in zip(top, cols, strict=True):
        ax.set_title(c if c == "guide" else f"{c}\nhillshade", fontsize=8)
    for ax, m in zip(bottom[2:-1], methods, strict=True):
        ax.imshow(errs[m], cmap=err_cmap, vmin=-elim, vmax=elim, interpolation="nearest")
        d = errs[m][np.isfinite(errs[m])]
        rmse = float(np.sqrt(np.mean(d**2))) if d.size else float("nan")
        bias = float(np.mean(d)) if d.size else float("nan")
        ax.set_title(f"error {m}\nRMSE {rmse:.3g}, bias {bias:+.2g}{unit and ' ' + unit or ''}",
                     fontsize=8)
    for ax in (bottom[0], bottom[1], bottom[-1]):
        ax.axis("off")
    for ax in [*top, *bottom[2:-1]]:
        show_nodata(ax)
    fig.colorbar(ScalarMappable(Normalize(vmin, vmax), cmap=cmap), ax=list(top), shrink=0.85,
                 pad=0.01, label=f"elevation{u}")
    fig.colorbar(ScalarMappable(Normalize(-elim, elim), cmap=err_cmap), ax=list(bottom),
                 shrink=0.85, pad=0.01, label=f"error, output − reference{u}")
    nodata_legend(fig)
    return _png(fig, dpi)


def is_elevation(result: Mapping[str, Any], elevation: bool | None = None) -> bool:
    """Whether to draw ``result``'s pairs as elevation: as asked, else when a method runs
    with the ``dem`` preset or a pair's unit is a length (m, ft)."""
    if elevation is not None:
        return elevation
    if any((opts or {}).get("preset") == "dem" for opts in result.get("methods", {}).values()):
        return True
    return any(str((m or {}).get("unit") or "").lower() in LENGTH_UNITS
               for m in result.get("pairs", {}).values())


_MARKERS = "osD^vP*X"


def rmse_time_figure(
    records: Sequence[Mapping[str, Any]], x_key: str, x_label: str, *, dpi: int = 90,
    title: str | None = None, marker_key: str | None = None,
) -> bytes:
    """PNG scatter of RMSE against ``x_key`` (log scale), one colour per method.

    ``records``: ``{"method", "rmse", x_key}`` plus an optional ``"label"`` written next
    to the point. ``marker_key`` (e.g. ``"mode"``): records with different values of it
    get different markers and legend entries ("mmsr (scene)"). Several records of one
    method (and ``marker_key`` value), e.g. iterations, are joined by a line in the order
    given.
    """
    plt = _mpl()
    fig, ax = plt.subplots(figsize=(6.4, 4.0), layout="constrained")
    series: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for r in records:
        kind = str(r.get(marker_key) or "") if marker_key else ""
        series.setdefault((str(r["method"]), kind), []).append(r)
    colours = {m: f"C{i % 10}" for i, m in enumerate(dict.fromkeys(m for m, _ in series))}
    shapes = {k: _MARKERS[i % len(_MARKERS)]
              for i, k in enumerate(dict.fromkeys(k for _, k in series))}
    for (m, kind), rs in series.items():
        xs = [max(float(r[x_key]), 1e-6) for r in rs]
        ys = [float(r["rmse"]) for r in rs]
        colour, marker = colours[m], shapes[kind]
        name = f"{m} ({kind})" if kind and len(shapes) > 1 else m
        ax.plot(xs, ys, marker + ("-" if len(rs) > 1 else ""), color=colour, label=name, ms=7)
        for x, y, r in zip(xs, ys, rs, strict=True):
            if r.get("label"):
                ax.annotate(str(r["label"]), (x, y), xytext=(4, 4),
                            textcoords="offset points", fontsize=7, color=colour)
    ax.set_xscale("log")
    ax.set_xlabel(x_label)
    ax.set_ylabel("RMSE (lower is better)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return _png(fig, dpi)


# -- html --------------------------------------------------------------------------------
class _Images:
    """Embeds PNGs as data URIs, or writes them next to the page."""

    def __init__(self, folder: Path, embed: bool) -> None:
        self.folder, self.embed, self.n = folder, embed, 0

    def tag(self, png: bytes, alt: str, name: str) -> str:
        self.n += 1
        if self.embed:
            src = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
        else:
            fname = f"{self.n:02d}_{_slug(name)}.png"
            (self.folder / fname).write_bytes(png)
            src = fname
        return f'<img src="{src}" alt="{html.escape(alt)}">'


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)[:60]


def _fmt(v: Any, digits: int = 4) -> str:
    if isinstance(v, float):
        return "nan" if not np.isfinite(v) else f"{v:.{digits}g}"
    return html.escape(str(v))


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]], *, table_id: str = "",
           cls: str = "", best: int | None = None) -> str:
    """HTML table; ``best``: index of a numeric column whose smallest value is bolded."""
    low = None
    if best is not None and rows:
        vals = [r[best] for r in rows if isinstance(r[best], float) and np.isfinite(r[best])]
        low = min(vals) if vals else None
    attrs = (f' id="{table_id}"' if table_id else "") + (f' class="{cls}"' if cls else "")
    out = [f"<table{attrs}><thead><tr>"
           + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr></thead><tbody>"]
    for r in rows:
        mark = ' class="best"' if low is not None and r[best] == low else ""
        out.append(f"<tr{mark}>" + "".join(f"<td>{_fmt(v)}</td>" for v in r) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


_HEAD = ["method", "pairs", "RMSE", "MAE", "bias", "NMAD", "LE90", "slope RMSE (°)",
         "RMSE / lanczos", "RMSE / best resampler", "RMSE / bicubic", "seconds", "peak MB"]
#: the metric columns of _HEAD, in order (a missing one shows as an empty cell)
_KEYS = ("rmse", "mae", "bias", "nmad", "le90", "slope_rmse_deg", "ratio_to_lanczos",
         "ratio_to_best_classical", "ratio_to_bicubic", "seconds", "peak_rss_mb")


def _cells(r: Mapping[str, Any]) -> list[Any]:
    return [r[k] if r.get(k) is not None else "" for k in _KEYS]


def _settings(result: Mapping[str, Any], pairs: Sequence[str]) -> list[str]:
    items = [f"data: <code>{html.escape(str(result.get('data', '?')))}</code>",
             f"scale: x{result['scale']} (LR = {result['scale']}x{result['scale']} average "
             "pooling of the reference)",
             f"pairs ({len(pairs)}): " + html.escape(", ".join(pairs))]
    if result.get("crop"):
        items.append(f"<b>reduced protocol</b>: every pair centre-cropped to "
                     f"{result['crop']}x{result['crop']} HR pixels")
    if result.get("limit"):
        items.append(f"<b>reduced protocol</b>: first {result['limit']} pairs only")
    for m, opts in result.get("methods", {}).items():
        if opts:
            o = ", ".join(f"{k}={v}" for k, v in opts.items())
            items.append(f"{html.escape(m)} options: <code>{html.escape(o)}</code>")
    if result.get("guide_noise"):
        items.append(f"guide noise std: {result['guide_noise']}")
    if result.get("misalignment"):
        items.append(f"guide misalignment: {html.escape(json.dumps(result['misalignment']))}")
    return items


def _eval_sections(result: Mapping[str, Any], outputs: Mapping[str, Any] | None,
                   imgs: _Images, dpi: int, elevation: bool | None = None) -> list[str]:
    mean = result["mean"]
    parts = ["<h2>Summary (mean over pairs)</h2>"]
    parts.append(_table(_HEAD, [
        [m, s["pairs"], *_cells(s)] for m, s in mean.items()
    ], table_id="summary", cls="metrics", best=2))
    recs = [{"method": m, "rmse": s["rmse"], "seconds": s["seconds"]} for m, s in mean.items()]
    parts.append(imgs.tag(
        rmse_time_figure(recs, "seconds", "seconds per pair (mean, log scale)", dpi=dpi,
                         title="RMSE against time"),
        "RMSE against seconds per method", "rmse_seconds"))
    pairs = list(dict.fromkeys(r["pair"] for r in result["rows"]))
    for name in pairs:
        parts.append(f"<h2>Pair {html.escape(name)}</h2>")
        rows = [r for r in result["rows"] if r["pair"] == name]
        if outputs is not None and name in outputs:
            ms = [r["method"] for r in rows]
            if is_elevation(result, elevation):
                meta = result.get("pairs", {}).get(name, {})
                png = elevation_figure(outputs[name], ms, result["scale"], dpi=dpi,
                                       pixel_size=float(meta.get("pixel_size") or 1.0),
                                       unit=meta.get("unit") or meta.get("crs_unit"))
                alt = (f"{name}: guide, then LR, outputs and reference as hillshades; signed "
                       "error maps")
            else:
                png = pair_figure(outputs[name], ms, result["scale"], dpi=dpi)
                alt = f"{name}: guide, LR, outputs, reference and error maps"
            parts.append(imgs.tag(png, alt, f"pair_{name}"))
        parts.append(_table(_HEAD[:1] + _HEAD[2:], [
            [r["method"], *_cells(r)] for r in rows
        ], cls="metrics pair-metrics", best=1))
    return parts


#: optional columns of the benchmark table: (record key, heading), shown when any record has it
_BENCH_EXTRA = (("mae", "MAE"), ("bias", "bias"), ("nmad", "NMAD"), ("le90", "LE90"),
                ("slope_rmse_deg", "slope RMSE (°)"), ("ratio_to_lanczos", "RMSE / lanczos"),
                ("ratio_to_best_classical", "RMSE / best resampler"),
                ("ratio_to_bicubic", "RMSE / bicubic"),
                ("megapixels_per_second", "megapixels / s"), ("peak_rss_mb", "peak MB"))


def _bench_sections(bench: Sequence[Mapping[str, Any]], imgs: _Images, dpi: int,
                    settings: Sequence[str] = ()) -> list[str]:
    for r in bench:
        missing = {"method", "rmse", "seconds_per_megapixel"} - set(r)
        if missing:
            raise InputError(f"benchmark record {dict(r)} lacks {sorted(missing)}; each record "
                             "needs method, rmse and seconds_per_megapixel")
    parts = ["<h2>Benchmark: RMSE against time per megapixel</h2>"]
    if settings:
        parts.append('<ul class="settings" id="bench-settings">'
                     + "".join(f"<li>{html.escape(s)}</li>" for s in settings) + "</ul>")
    lead = [k for k in ("mode", "dataset") if any(r.get(k) for r in bench)]
    extra = [(k, h) for k, h in _BENCH_EXTRA if any(r.get(k) is not None for r in bench)]
    labels = any(r.get("label") for r in bench)
    head = ["method", *lead, "RMSE", "seconds / megapixel", *(h for _, h in extra),
            *(["label"] if labels else [])]
    parts.append(_table(head, [
        [r["method"], *(r.get(k) or "" for k in lead), float(r["rmse"]),
         float(r["seconds_per_megapixel"]),
         *(float(r[k]) if r.get(k) is not None else "" for k, _ in extra),
         *([r.get("label") or ""] if labels else [])] for r in bench
    ], table_id="bench", cls="metrics", best=1 + len(lead)))
    parts.append(imgs.tag(
        rmse_time_figure(bench, "seconds_per_megapixel", "seconds per output megapixel (log)",
                         dpi=dpi, title="RMSE against time per megapixel",
                         marker_key="mode" if "mode" in lead else None),
        "RMSE against seconds per megapixel", "bench"))
    return parts


def write_report(
    folder: str | os.PathLike[str],
    result: Mapping[str, Any] | None = None,
    outputs: Mapping[str, Mapping[str, np.ndarray]] | None = None,
    *,
    bench: Sequence[Mapping[str, Any]] | None = None,
    bench_settings: Sequence[str] = (),
    title: str | None = None,
    note: str | None = None,
    embed: bool = True,
    dpi: int = 80,
    elevation: bool | None = None,
) -> Path:
    """Write ``folder/index.html`` (and ``result.json``); return the page's path.

    ``result``: what :func:`geosr.evaluation.evaluate.evaluate` returned (without or with
    ``"outputs"``); ``outputs``: its ``"outputs"`` when popped before (no pictures per pair
    without them). ``bench``: benchmark records, see the module docstring;
    ``bench_settings``: lines of text listed above them (data, scale, options). ``note``: a
    highlighted line on top (say here when the settings are reduced). ``elevation``: draw
    the pairs as elevation (hillshades, signed errors) or not; None decides by
    :func:`is_elevation`. Existing report files in ``folder`` are replaced.
    """
    if result is None and not bench:
        raise InputError("nothing to report: pass an evaluation result and/or bench records")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    imgs = _Images(out, embed)
    if result is not None and outputs is None:
        outputs = result.get("outputs")
    title = title or "geosr evaluation report"
    now = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")

    body = [f"<h1>{html.escape(title)}</h1>",
            f'<p class="settings">geosr {html.escape(__version__)} · {html.escape(now)}</p>']
    if note:
        body.append(f'<p class="note" id="note">{html.escape(note)}</p>')
    if result is not None:
        pairs = list(dict.fromkeys(r["pair"] for r in result["rows"]))
        body.append('<ul class="settings">'
                    + "".join(f"<li>{s}</li>" for s in _settings(result, pairs)) + "</ul>")
        body += _eval_sections(result, outputs, imgs, dpi, elevation)
        clean = {k: v for k, v in result.items() if k != "outputs"}
        (out / "result.json").write_text(json.dumps(clean, indent=2, default=str) + "\n")
    if bench:
        body += _bench_sections(bench, imgs, dpi, bench_settings)
    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")
    index = out / "index.html"
    atomic_write(index, page)
    logger.info("wrote report %s (%d images)", index, imgs.n)
    return index
