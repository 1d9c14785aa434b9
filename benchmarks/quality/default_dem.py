"""The default ``geosr dem-sr`` against GDAL's resamplers on every real elevation pair.

For each pair (a DSM or vegetation-height raster and its image) and scale: the HR target is
average-pooled into the LR GeoTIFF, ``geosr dem-sr --lr LR --guide GUIDE --scale S -o OUT``
runs with no other option (auto mode, the guard on), and its output is scored with the DEM
metrics against the target, next to ``gdalwarp -r lanczos`` / ``-r cubic`` of the same LR
(``geosr sr --method lanczos|cubic``: bit-identical to rasterio's warp). The self-check's
predicted ratio (on the coarser copy) is recorded next to the true one, for the method's own
output: rerun with ``--guard off`` where the guard wrote lanczos, solved back from the blend
where it wrote one.

Pairs: the Mashhad Elevation1 DSM (west part) with its Pléiades orthophoto, the IGN lidar HD
DSM with its RGB, and the two PixTransform vegetation-height scenes with their 4-band guide
(not georeferenced: written as GeoTIFFs on a local 1 m grid, guide bands 1-3).

    python benchmarks/quality/default_dem.py --scales 4 --json benchmarks/quality/results/default_dem_x4.json

``--pairs NAME --update`` reruns some pairs and replaces just their rows in the JSON;
``-O KEY=VALUE`` runs the command with that method option (e.g. ``-O detrend=true``),
``--method NAME`` with another method, ``--guide-shift DX,DY`` with the guide's
georeferencing off by that many HR pixels (east, south): a misregistered orthophoto.
``--pairs middlebury2005_art,...`` adds the full-size Middlebury 2005 depth maps with their
RGB (written on a local 1 m grid; only when named; ``--pairs middlebury_dctnet`` adds the
20 scenes of that set), ``--command sr`` runs ``geosr sr`` (the method's own preset, e.g.
MMSR's ``depth``) instead of ``dem-sr``, and ``--cli "ARGS"`` adds flags to that command
(e.g. ``--cli "--mode scene --scene-iterations 300 --guard off"``: one fixed fit), and
``--window N`` runs on each target's centre N x N pixels (the guide over the same ground,
16 px wider on each side where it extends so far).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from geosr.evaluation.bench import pool_reference  # noqa: E402
from geosr.evaluation.bench import score_against_reference as score  # noqa: E402

SHARED = Path(os.environ.get("GEOSR_SHARED_DATA", ROOT.parent / "shared" / "data"))


#: the local grid of pairs that are not georeferenced (1 m pixels, UTM 32N)
LOCAL_GRID = Affine(1.0, 0, 600000.0, 0, -1.0, 5200000.0)


def write_local(path: Path, arr: np.ndarray) -> Path:
    """``(bands, h, w)`` as a float32 GeoTIFF on :data:`LOCAL_GRID`."""
    with rasterio.open(path, "w", driver="GTiff", width=arr.shape[2], height=arr.shape[1],
                       count=arr.shape[0], dtype="float32", crs="EPSG:32632",
                       transform=LOCAL_GRID) as dst:
        dst.write(arr.astype(np.float32))
    return path


def pairs(work: Path, names: list[str] | None = None) -> dict[str, tuple[Path, Path, list[str]]]:
    """name -> (HR target GeoTIFF, guide GeoTIFF, extra CLI args): every pair, or those
    ``names`` lists (the others' GeoTIFFs are not written)."""
    out: dict[str, tuple[Path, Path, list[str]]] = {}
    m = SHARED / "geo_mashhad_elevation1_pleiades"
    if m.is_dir():
        out["mashhad_dsm"] = (m / "dsm_west_1m.tif", m / "ortho_rgb_west_0p5m.tif", [])
    ign = SHARED / "lidar_dsm_rgb"
    if ign.is_dir():
        out["ign_lidar_dsm"] = (ign / "ign_lidarhd_870000_6618000_dsm_0p5m.tif",
                                ign / "ign_lidarhd_870000_6618000_rgb_0p5m.tif", [])
    for i in (0, 1):
        f = SHARED / "geo_pixtransform_vhm" / f"vhm_scene{i}.npz"
        if not f.exists() or (names is not None and f"vhm_scene{i}" not in names):
            continue
        with np.load(f) as z:
            target, guide = z["target"].astype(np.float32), z["guide"].astype(np.float32)
        out[f"vhm_scene{i}"] = (write_local(work / f"vhm{i}_target.tif", target[None]),
                                write_local(work / f"vhm{i}_guide.tif", guide),
                                ["--guide-bands", "1,2,3"])
    return {k: v for k, v in out.items() if names is None or k in names}


def parse_shift(text: str | None) -> tuple[float, float] | None:
    """``"DX,DY"`` (HR pixels east, south) as two floats; None for no shift."""
    if not text:
        return None
    dx, dy = (float(v) for v in text.split(","))
    return dx, dy


def misregistered_guide(guide: Path, target: Path, shift: tuple[float, float] | None,
                        path: Path, rotation: float = 0.0) -> Path:
    """A copy of ``guide`` whose geotransform is turned by ``rotation`` degrees
    (anticlockwise on the map) about ``target``'s centre, then moved by ``shift`` HR pixels
    of ``target`` (east, south): every feature of the image lands away from its place, the
    farther from the centre the farther for a rotation."""
    with rasterio.open(target) as t:
        px, py = abs(t.transform.a), abs(t.transform.e)
        centre = t.transform * (t.width / 2, t.height / 2)
    with rasterio.open(guide) as g:
        data, profile = g.read(), g.profile
    dx, dy = shift or (0.0, 0.0)
    moved = (Affine.translation(dx * px, -dy * py) @ Affine.rotation(rotation, pivot=centre)
             @ profile["transform"])
    profile.update(transform=moved)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def add_misregistration_args(ap: argparse.ArgumentParser, note: str = "") -> None:
    """``--guide-shift`` and ``--guide-rotate`` (``note`` ends both helps)."""
    ap.add_argument("--guide-shift", default=None, metavar="DX,DY",
                    help="move the guide's georeferencing by DX,DY HR pixels (east, south)"
                         + note)
    ap.add_argument("--guide-rotate", type=float, default=0.0, metavar="DEG",
                    help="turn the guide's georeferencing by DEG degrees (anticlockwise) "
                         "about the target's centre" + note)


def misregistration(args: argparse.Namespace) -> dict:
    """The JSON record of ``--guide-shift`` and ``--guide-rotate``."""
    shift = parse_shift(args.guide_shift)
    return {"guide_shift_hr_px": list(shift) if shift else None,
            "guide_rotation_deg": args.guide_rotate or None}


def misregister(args: argparse.Namespace, guide: Path, target: Path, path: Path) -> Path:
    """``guide`` as ``--guide-shift``/``--guide-rotate`` misregister it (``path``), or
    ``guide`` itself where neither is set."""
    shift = parse_shift(args.guide_shift)
    if not shift and not args.guide_rotate:
        return guide
    return misregistered_guide(guide, target, shift, path, args.guide_rotate)


def centre_window(target: Path, guide: Path, size: int, margin: int, work: Path,
                  name: str) -> tuple[Path, Path]:
    """Copies of ``target``'s centre ``size``² pixels and of the ``guide`` over the same
    ground, ``margin`` target pixels wider on each side where the guide has them (as an
    orthophoto covers more than the DSM, so that a moved guide still covers the window)."""
    from rasterio.windows import Window, from_bounds
    from rasterio.windows import bounds as window_bounds

    def cut(src: Path, win: Window, out: Path) -> Path:
        with rasterio.open(src) as ds:
            win = win.intersection(Window(0, 0, ds.width, ds.height))
            data, profile = ds.read(window=win), ds.profile
            profile.update(width=int(win.width), height=int(win.height),
                           transform=ds.window_transform(win))
        profile.pop("blockxsize", None), profile.pop("blockysize", None)
        profile.update(driver="GTiff", tiled=False)
        with rasterio.open(out, "w", **profile) as dst:
            dst.write(data)
        return out

    with rasterio.open(target) as t:
        if size > min(t.width, t.height):
            raise SystemExit(f"--window {size} is larger than {name} ({t.width}x{t.height})")
        y0, x0 = (t.height - size) // 2, (t.width - size) // 2
        win = Window(x0, y0, size, size)
        bounds = window_bounds(
            Window(x0 - margin, y0 - margin, size + 2 * margin, size + 2 * margin), t.transform)
    with rasterio.open(guide) as g:
        gwin = from_bounds(*bounds, transform=g.transform).round_offsets().round_lengths()
    return (cut(target, win, work / f"{name}_window_target.tif"),
            cut(guide, gwin, work / f"{name}_window_guide.tif"))


#: depth-map sets (prefix -> folder under the shared data), added only when named
DEPTH_SETS = {"middlebury2005": "middlebury2005_fullsize_msgnet",
              "middlebury_dctnet": "middlebury_dctnet"}


def depth_pairs(work: Path, names: list[str]) -> dict[str, tuple[Path, Path, list[str]]]:
    """The depth maps named and their RGB, as GeoTIFFs on the local grid: a pair by its
    name (``middlebury2005_art``, ``middlebury_dctnet_06``), or a whole set by its prefix
    (``middlebury_dctnet``: its 20 scenes)."""
    from geosr.evaluation.evaluate import load_pairs

    out: dict[str, tuple[Path, Path, list[str]]] = {}
    for prefix, sub in DEPTH_SETS.items():
        folder = SHARED / sub
        if not folder.is_dir() or not any(n == prefix or n.startswith(prefix + "_")
                                          for n in names):
            continue
        for pair in load_pairs(folder):
            key = pair.name.lower().removeprefix("middlebury_")
            name = f"{prefix}_{key}"
            if name in names or prefix in names:
                out[name] = (write_local(work / f"{name}_target.tif", pair.target[None]),
                             write_local(work / f"{name}_guide.tif", pair.guide), [])
    return out


def combine(a: Path, b: Path, out: Path,
            fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Path:
    """``fn`` of band 1 of two rasters on one grid (float64, nodata as NaN), written as a
    float32 GeoTIFF on ``a``'s grid."""
    with rasterio.open(a) as src_a, rasterio.open(b) as src_b:
        va = src_a.read(1, masked=True).astype(np.float64).filled(np.nan)
        vb = src_b.read(1, masked=True).astype(np.float64).filled(np.nan)
        profile = src_a.profile
    profile.update(driver="GTiff", dtype="float32", nodata=np.nan)
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(fn(va, vb).astype(np.float32), 1)
    return out


def unblend(out: Path, lanczos: Path, weight: float, path: Path) -> Path:
    """The method's own output where the guard wrote ``w * method + (1 - w) * lanczos``:
    solved back from the blend and the same lanczos (float32 rounding, divided by ``w``)."""
    return combine(out, lanczos, path, lambda b, lz: (b - (1.0 - weight) * lz) / weight)


def geosr(*args: str, env: dict[str, str] | None = None) -> tuple[dict, float]:
    """Run ``geosr ARGS --json -q`` (with ``env`` as its environment when given): its JSON
    summary and the wall seconds."""
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "geosr", *args, "--json", "-q"],
                       capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-2000:])
    return json.loads(r.stdout), wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scales", default="4")
    ap.add_argument("--pairs", default=None, help="comma-separated pair names (default all)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--update", action="store_true",
                    help="replace only the rows run (by pair and scale) in an existing --json")
    ap.add_argument("-O", dest="options", action="append", default=[], metavar="KEY=VALUE",
                    help="a method option for the learned runs (default: none, the default "
                         "command)")
    ap.add_argument("--command", choices=["dem-sr", "sr"], default="dem-sr",
                    help="the geosr command run (default dem-sr)")
    ap.add_argument("--method", default=None, help="method of the dem-sr run (default: its own)")
    add_misregistration_args(ap)
    ap.add_argument("--window", type=int, default=None, metavar="N",
                    help="run on the centre N x N HR pixels of each target (the guide with "
                         "16 px more on each side where it has them)")
    ap.add_argument("--cli", default="", metavar="ARGS",
                    help="more flags for the command run, in one quoted string")
    args = ap.parse_args()
    opts = [a for o in args.options for a in ("-O", o)] + shlex.split(args.cli)
    if args.method:
        opts = ["--method", args.method, *opts]
    result: dict = {"command": " ".join([f"geosr {args.command} --lr LR --guide GUIDE --scale S -o OUT",
                                         *opts]),
                    **misregistration(args),
                    "window_hr_px": args.window,
                    "rows": []}
    if args.update and args.json and args.json.exists():
        result["rows"] = json.loads(args.json.read_text())["rows"]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        named = args.pairs.split(",") if args.pairs else None
        for name, (target, guide, extra) in {**pairs(work, named),
                                             **depth_pairs(work, named or [])}.items():
            if args.window:
                target, guide = centre_window(target, guide, args.window, 16, work, name)
            guide = misregister(args, guide, target, work / f"{name}_guide_moved.tif")
            for s in (int(x) for x in args.scales.split(",")):
                lr = work / f"{name}_lr_x{s}.tif"
                pool_reference(target, lr, s)
                row: dict = {"pair": name, "scale": s}
                for k in ("lanczos", "cubic", "bicubic"):
                    out = work / f"{name}_{k}_x{s}.tif"
                    geosr("sr", "--method", k, "--lr", str(lr), "--guide", str(guide), "--scale",
                          str(s), "-o", str(out), "--overwrite", *extra)
                    row[k] = score(out, target)
                out = work / f"{name}_default_x{s}.tif"
                summary, wall = geosr(args.command, "--lr", str(lr), "--guide", str(guide),
                                      "--scale", str(s), "-o", str(out), "--overwrite", *extra,
                                      *opts)
                row["default"] = score(out, target)
                row["wall_seconds"] = round(wall, 1)
                row["stage_seconds"] = summary.get("seconds")
                row["auto"] = summary.get("auto")
                row["self_check"] = summary.get("self_check")
                row["guard"] = summary.get("guard")
                row["output_megapixels"] = summary.get("output_megapixels")
                lz = row["lanczos"]["rmse"]
                row["ratio_to_lanczos"] = row["default"]["rmse"] / lz
                row["slope_ratio_to_lanczos"] = (row["default"]["slope_rmse_deg"]
                                                 / row["lanczos"]["slope_rmse_deg"])
                guard = row["guard"] or {}
                fired = bool(guard.get("fired"))
                method_rmse = row["default"]["rmse"]
                if "blend_weight" in guard:  # the method's own output, for the self-check's table
                    row["unguarded"] = score(unblend(
                        out, work / f"{name}_lanczos_x{s}.tif", guard["blend_weight"],
                        work / f"{name}_unguarded_x{s}.tif"), target)
                    method_rmse = row["unguarded"]["rmse"]
                elif fired:  # what the method itself gives, for the self-check's table
                    out2 = work / f"{name}_unguarded_x{s}.tif"
                    geosr(args.command, "--lr", str(lr), "--guide", str(guide), "--scale", str(s),
                          "-o", str(out2), "--overwrite", "--guard", "off", *extra, *opts)
                    row["unguarded"] = score(out2, target)
                    method_rmse = row["unguarded"]["rmse"]
                row["method_ratio_to_lanczos"] = method_rmse / lz
                sc = row["self_check"]
                if sc:
                    row["predicted_ratio"] = sc["ratio_to_lanczos"]
                    row["predicted_blend_ratio"] = sc.get("blend_ratio_to_lanczos")
                    row["blend_weight"] = sc.get("blend_weight")
                    row["prediction_agrees"] = (sc["ratio_to_lanczos"] < 1) == (method_rmse < lz)
                print(json.dumps({k: row[k] for k in ("pair", "scale", "ratio_to_lanczos",
                                                      "wall_seconds")}
                                 | {"predicted": row.get("predicted_ratio"),
                                    "method": row["method_ratio_to_lanczos"],
                                    "guard": guard.get("wrote")}),
                      file=sys.stderr, flush=True)
                same = [i for i, r in enumerate(result["rows"])
                        if (r["pair"], r["scale"]) == (name, s)]
                if same:
                    result["rows"][same[0]] = row
                else:
                    result["rows"].append(row)
                if args.json:
                    args.json.write_text(json.dumps(result, indent=1) + "\n")
    rows = result["rows"]
    for s in sorted({r["scale"] for r in rows}):
        rs = [r for r in rows if r["scale"] == s]
        result.setdefault("mean", {})[f"x{s}"] = {
            "pairs": len(rs),
            "ratio_to_lanczos": float(np.mean([r["ratio_to_lanczos"] for r in rs])),
            "worst_ratio_to_lanczos": float(max(r["ratio_to_lanczos"] for r in rs)),
            "slope_rmse_deg": float(np.mean([r["default"]["slope_rmse_deg"] for r in rs])),
            "lanczos_slope_rmse_deg": float(np.mean([r["lanczos"]["slope_rmse_deg"] for r in rs])),
            "wall_seconds": float(np.mean([r["wall_seconds"] for r in rs])),
        }
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result.get("mean"), indent=1))


if __name__ == "__main__":
    main()
