"""Start a scene from a network fitted on another scene (``--network``): cost and RMSE.

The HR DSM is split into a *source* part (west) and a *target* part (east). Each part is
average-pooled ``--scale``x into its own georeferenced LR GeoTIFF; the guide is the one
image given, and the pipeline cuts it to each part as ``geosr dem-sr`` would. Then:

1. the source is run in ``scene`` mode with ``save_network`` (the network a batch job
   would fit once, on its first scene);
2. the target is run with bicubic, in ``tile`` mode (a fresh network per tile, the papers'
   protocol), in ``scene`` and ``hybrid`` mode fitted on the target itself, and from the
   source's network: applied as is (``scene``), fine-tuned per tile (``hybrid``) and
   fitted further on the target (``scene`` with ``--scene-iterations``).

Every run goes through ``geosr.pipeline.run`` and is scored against the target's HR DSM.
Prints JSON (and writes it with ``--json``, updated after each run)::

    OMP_NUM_THREADS=1 python benchmarks/modes/network_reuse.py \\
        --dem ../shared/data/lidar_dsm_rgb/ign_lidarhd_870000_6618000_dsm_0p5m.tif \\
        --guide ../shared/data/lidar_dsm_rgb/ign_lidarhd_870000_6618000_rgb_0p5m.tif \\
        --json benchmarks/modes/results/network_reuse_ign_warmup0.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.windows import Window

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root: `benchmarks.*` imports
from benchmarks.modes.modes import compare_to_tile, run_scored, save, write  # noqa: E402


def split(dem: Path, scale: int, west: float, work: Path) -> dict[str, dict[str, Any]]:
    """Reference and LR GeoTIFFs of the west (source) and east (target) parts."""
    parts: dict[str, dict[str, Any]] = {}
    with rasterio.open(dem) as src:
        h = (src.height // scale) * scale
        cut = int(round(src.width * west / scale)) * scale
        right = (src.width // scale) * scale
        for name, (c0, c1) in {"source": (0, cut), "target": (cut, right)}.items():
            win = Window(c0, 0, c1 - c0, h)
            hr = src.read(1, window=win, masked=True).astype(np.float64).filled(np.nan)
            t = src.window_transform(win)
            lr = hr.reshape(h // scale, scale, -1, scale).mean(axis=(1, 3)).astype(np.float32)
            lr_path = work / f"{name}_lr.tif"
            write(lr_path, lr, t @ Affine.scale(scale), src.crs, nodata=float("nan"))
            parts[name] = {"reference": hr, "lr": str(lr_path), "transform": t,
                           "lr_shape": list(lr.shape), "hr_cols": [c0, c1]}
    return parts


def main() -> None:
    from geosr.pipeline import OutputConfig, SceneConfig, TilingConfig

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dem", type=Path, required=True, help="HR DSM GeoTIFF (the reference)")
    ap.add_argument("--guide", type=Path, required=True, help="guide image covering it")
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--west", type=float, default=0.5, help="fraction of columns in the source")
    ap.add_argument("--method", default="mmsr")
    ap.add_argument("--preset", default="dem")
    ap.add_argument("--tile-size", type=int, default=None)
    ap.add_argument("--iterations", type=int, default=1000,
                    help="steps of tile mode and of every scene fit")
    ap.add_argument("--scene-crop", type=int, default=48)
    ap.add_argument("--hybrid-iterations", default="100",
                    help="per-tile steps of hybrid mode; a comma-separated list runs the "
                    "hybrid from the source network once for each (the own-fit hybrid uses "
                    "the first)")
    ap.add_argument("--further-iterations", type=int, default=200,
                    help="steps of the target's fit from the source network")
    ap.add_argument("--hybrid-set", action="append", default=[], metavar="KEY=VALUE",
                    help="method option for the hybrid runs from the source network only, "
                    "e.g. warmup=5 (repeatable)")
    ap.add_argument("--runs", default=None,
                    help="semicolon-separated labels of the target runs to make (default all; "
                    "the source fit always runs); the others come from an earlier JSON")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="geosr-netreuse-"))
    work.mkdir(parents=True, exist_ok=True)
    parts = split(args.dem, args.scale, args.west, work)
    net = work / "source-network.pt"
    result: dict[str, Any] = {
        "benchmark": "network_reuse", "dem": str(args.dem), "guide": str(args.guide),
        "scale": args.scale, "python": sys.version.split()[0],
        "parts": {k: {"hr_cols": v["hr_cols"], "lr_shape": v["lr_shape"]}
                  for k, v in parts.items()},
        "settings": {k: str(v) for k, v in vars(args).items() if k not in ("json", "workdir")},
        "runs": [],
    }
    learned = {"preset": args.preset, "seed": args.seed, "iterations": args.iterations}
    hybrid = [int(x) for x in str(args.hybrid_iterations).split(",")]
    from geosr.cli.options import parse_option_value

    tuned = {**learned, **{k: parse_option_value(v) for k, _, v in
                           (kv.partition("=") for kv in args.hybrid_set)}}
    result["settings"]["hybrid_set"] = args.hybrid_set
    runs: list[tuple[str, str, str, dict[str, Any], dict[str, Any]]] = [
        # (label, part, method options (None: bicubic), scene settings, run keywords)
        ("source scene fit, saved", "source", learned, {"mode": "scene"},
         {"save_network": net}),
        ("bicubic", "target", None, {"mode": "tile"}, {}),
        ("tile", "target", learned, {"mode": "tile"}, {}),
        ("scene (own fit)", "target", learned, {"mode": "scene"}, {}),
        ("hybrid (own scene fit)", "target", learned,
         {"mode": "hybrid", "hybrid_iterations": hybrid[0]}, {}),
        ("scene from source network", "target", learned,
         {"mode": "scene", "network": str(net)}, {}),
        *[(f"hybrid from source network, {h} steps" if len(hybrid) > 1
           else "hybrid from source network", "target", tuned,
           {"mode": "hybrid", "network": str(net), "hybrid_iterations": h}, {})
          for h in hybrid],
        ("scene from source network, fitted further", "target", learned,
         {"mode": "scene", "network": str(net), "iterations": args.further_iterations}, {}),
    ]
    wanted = None if args.runs is None else set(args.runs.split(";"))
    for label, part, options, scene_kw, kw in runs:
        if wanted is not None and part == "target" and label not in wanted:
            continue
        method = args.method if options is not None else "bicubic"
        data = parts[part]
        scene = SceneConfig(crop=args.scene_crop, **scene_kw)
        scored, _ = run_scored(
            data["lr"], str(args.guide), work / f"{len(result['runs'])}.tif",
            data["reference"], data["transform"], scale=args.scale, method=method,
            method_options=options or {}, tiling=TilingConfig(tile_size=args.tile_size),
            scene=scene, output=OutputConfig(overwrite=True), **kw)
        rec = {"run": label, "part": part, "method": method, "mode": scene.mode, **scored}
        result["runs"].append(rec)
        print(json.dumps(rec, default=str), file=sys.stderr, flush=True)
        save(result, args.json)
    tile = next((r for r in result["runs"] if r["run"] == "tile"), None)
    compare_to_tile(result["runs"], tile,
                    lambda r: r["part"] == "target" and r["method"] != "bicubic")
    save(result, args.json)
    print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
