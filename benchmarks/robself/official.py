"""RobSelf side by side with the authors' code, on the same misaligned inputs.

The official implementation (GitHub palmdong/RobSelf, MIT) is not part of geosr: point
``--official`` at a checkout of it (the folder holding ``model/network.py``). Without one
this script prints why and exits 0. Its modules are imported from that folder and run
unmodified; this script only drives them, the way its script ``model/main.py`` does:
the guide z-scored per channel and the LR as a whole, ``RobSelfNetwork(scale=...)``,
Adam over all parameters at ``lr`` 1e-3 without weight decay, the rate ×0.9998 every
5 steps, L1 of the average-pooled ``I_trans`` and ``I_sr`` against the LR (weights 1:1),
the last step's ``I_sr`` in eval mode, de-standardised. ``official-re`` builds the same
network with the resampling aligner the official network file leaves commented out
(``AlignExtractorEfficient``) in place of the deformable one and re-runs the network's
own ``_initialize_weights``; ``official-de`` is the network as published.
``--check-driver`` first runs their ``model.main.RobSelf`` and this driver for a few
steps from the same seed and stops unless the outputs agree to float32 rounding.

If ``torchvision.ops`` cannot run here (a CPU-only torch with no matching torchvision
build), a pure-torch ``DeformConv2d`` with torchvision's semantics and initialisation
stands in (:mod:`benchmarks.robself.deform_conv`); the JSON says which ran.

Every crop gets a guide misaligned by a seeded shift (``shift=2:4``: magnitude uniform in
2-4 HR px, random direction) and rotation (``rotation=1``: ±1° about the crop's centre;
``rotation=0:1``: uniform up to 1°); the LR is the ``scale`` average pooling of the aligned
HR crop. geosr's methods get the same LR and guide through ``geosr.super_resolve``.

    OMP_NUM_THREADS=1 python benchmarks/robself/official.py --official /tmp/robself-official \\
        --data ../shared/data/middlebury2005_fullsize_msgnet --crops-per-pair 7 \\
        --misalign shift=2:4,rotation=0:1 --run official-re --run official-de \\
        --run robself-re --run robself-de --run mmsr \\
        --json benchmarks/robself/results/official/middlebury2005_x4_21crops.json

``--run NAME[:key=value,...]``: ``official-re``/``official-de`` (key ``lr``) or a geosr
method with options. An existing ``--json`` is resumed: finished (crop, run) entries are
kept and not run again.

The paper's full-size protocol on a GPU (``benchmarks/robself/device_fullsize.sh`` runs it
as one call): ``--size full`` (each pair whole), ``--misalign eval`` (the whole guide under
``geosr eval --misalign default``'s homography), ``--device cuda``, ``--part K/N`` in N
processes sharing the card, then ``--merge part*.json --json OUT``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import geosr
from geosr.evaluation.evaluate import degrade, load_pairs, metrics
from geosr.evaluation.misalign import Misalignment, misalign, warp_image
from geosr.models import get_method
from geosr.models.api import run_band
from geosr.normalize import BandStats, prepare_guide

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.robself.robself_shift import parse_run  # noqa: E402

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def load_official(path: Path) -> tuple[dict, str] | None:
    """Import the official network modules from a checkout; None if there is none."""
    if not (path / "model" / "network.py").is_file():
        return None
    from benchmarks.robself.deform_conv import install

    deform = install()
    sys.path.insert(0, str(path))
    with contextlib.redirect_stdout(io.StringIO()):
        import model.align_extractor_efficient as efficient
        import model.network as network
    return {"network": network, "efficient": efficient}, deform


def zscore(lr: np.ndarray, guide: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
    """The official script's standardisation (guide per channel, source as a whole)."""
    g = (guide - guide.mean(axis=(1, 2), keepdims=True)) / guide.std(axis=(1, 2), keepdims=True)
    mean, std = float(np.mean(lr)), float(np.std(lr))
    return g, (lr - mean) / std, mean, std


def build_official(mods: dict, variant: str, scale: int, seed: int):
    torch.manual_seed(seed)
    with contextlib.redirect_stdout(io.StringIO()):
        net = mods["network"].RobSelfNetwork(scale=scale)
        if variant == "re":
            net.align_extractor = mods["efficient"].AlignExtractorEfficient(scale, n_channels=64)
            net._initialize_weights()
    return net.train()


def official_fit(mods: dict, variant: str, lr: np.ndarray, guide: np.ndarray, scale: int,
                 steps: int, seed: int, rate: float = 1e-3,
                 device: str = "cpu") -> tuple[np.ndarray, float]:
    """Fit the official network as its script does (in float32 on ``device``); returns
    (HR prediction, loop seconds)."""
    g, s, mean, std = zscore(lr.astype(np.float64), guide.astype(np.float64))
    x = torch.from_numpy(g).float()[None].to(device)
    y = torch.from_numpy(s).float()[None, None].to(device)
    net = build_official(mods, variant, scale, seed).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=rate)
    loss = torch.nn.L1Loss()
    t0 = time.perf_counter()
    for step in range(steps):
        if (step + 1) % 5 == 0:
            for group in opt.param_groups:
                group["lr"] *= 0.9998
        net.train()
        opt.zero_grad()
        _, _, _, fake, pred = net(x, y)
        total = loss(F.avg_pool2d(fake, scale), y) + loss(F.avg_pool2d(pred, scale), y)
        total.backward()
        opt.step()
    synchronize(device)
    seconds = time.perf_counter() - t0
    net.eval()
    with torch.no_grad():
        pred = net(x, y)[4]
    return (mean + std * pred[0, 0].cpu().numpy().astype(np.float64)).astype(np.float32), seconds


def synchronize(device: str) -> None:
    """Wait for the GPU's queued work, so that a wall time covers it."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def check_driver(path: Path, mods: dict, lr: np.ndarray, guide: np.ndarray, scale: int,
                 steps: int = 3) -> float:
    """Largest difference between the official ``model.main.RobSelf`` and this driver."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        import model.main as official_main

        torch.manual_seed(0)
        params = {"scale": scale, "regress_loss": "l1", "regress_fake": 1, "regress_pred": 1,
                  "lr": 1e-3, "batch_size": 1, "epoch": steps}
        _, theirs = official_main.RobSelf(guide.astype(np.float64), lr.astype(np.float64),
                                          params=params)
        ours, _ = official_fit(mods, "de", lr, guide, scale, steps, 0)
    return float(np.max(np.abs(theirs - ours)))


#: ``--misalign eval``: the whole guide under ``geosr eval --misalign default``'s seeded
#: homography (RobSelf's protocol; the seed from the pair's name, as eval draws it)
EVAL = "eval"


def parse_misalign(text: str) -> dict[str, tuple[float, float]]:
    """``shift=2:4,rotation=1`` -> {"shift": (2, 4), "rotation": (1, 1)} (exact if no range)."""
    spec = {"shift": (0.0, 0.0), "rotation": (0.0, 0.0)}
    if text == EVAL:  # warps the whole image: needs no room at the crop's border
        return spec
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        if key not in spec:
            raise SystemExit(f"bad --misalign item {item!r}: use shift=A[:B],rotation=A[:B]")
        lo, _, hi = value.partition(":")
        spec[key] = (float(lo), float(hi or lo))
    return spec


def draw_misalignment(spec: dict, rng: np.random.Generator) -> tuple[list[float], float]:
    mag = rng.uniform(*spec["shift"])
    ang = rng.uniform(0, 2 * np.pi)
    lo, hi = spec["rotation"]
    rot = rng.uniform(lo, hi) * rng.choice([-1.0, 1.0])
    return [float(mag * np.sin(ang)), float(mag * np.cos(ang))], float(rot)


def misaligned_guide(guide: np.ndarray, y0: int, x0: int, size: int | tuple[int, int],
                     shift: list[float], rotation: float, margin: int) -> np.ndarray:
    """The guide crop at (y0, x0) whose pixel p shows the scene at ``R (p - c) + c + shift``
    (``size``: a square's side or (height, width))."""
    sh, sw = (size, size) if isinstance(size, int) else size
    win = guide[:, y0 - margin:y0 + sh + margin, x0 - margin:x0 + sw + margin]
    cy, cx = margin + (sh - 1) / 2, margin + (sw - 1) / 2
    a = np.deg2rad(rotation)
    cos, sin = np.cos(a), np.sin(a)
    dy, dx = shift
    hmat = np.array([[cos, -sin, cx - cos * cx + sin * cy + dx],
                     [sin, cos, cy - sin * cx - cos * cy + dy],
                     [0.0, 0.0, 1.0]])
    return warp_image(win, hmat)[:, margin:margin + sh, margin:margin + sw]


def make_crops(pairs, size: int | None, per_pair: int, seed: int, min_std: float, margin: int,
               unit: int = 1):
    """Seeded random crop origins per pair, away from the border, with some relief, as
    (pair, y0, x0, height, width). ``size`` None: each pair whole, less ``margin`` on every
    side (room for the misalignment), cut to a multiple of ``unit``."""
    if size is None:
        return [(pair, margin, margin,
                 (pair.target.shape[0] - 2 * margin) // unit * unit,
                 (pair.target.shape[1] - 2 * margin) // unit * unit) for pair in pairs]
    out = []
    for i, pair in enumerate(pairs):
        rng = np.random.default_rng([seed, i])
        h, w = pair.target.shape
        found = 0
        for _ in range(500):
            if found == per_pair:
                break
            y0 = int(rng.integers(margin, h - size - margin + 1))
            x0 = int(rng.integers(margin, w - size - margin + 1))
            hr = pair.target[y0:y0 + size, x0:x0 + size]
            if not np.isfinite(hr).all() or np.std(hr) < min_std:
                continue
            if any(p is pair and abs(y - y0) < size and abs(x - x0) < size
                   for p, y, x, _, _ in out):
                continue
            out.append((pair, y0, x0, size, size))
            found += 1
    return out


def run_one(label: str, mods, lr, guide, hr, scale, steps, seed, device: str = "cpu") -> dict:
    name, opts = parse_run(label)
    if name.startswith("official-"):
        if mods is None:
            raise SystemExit("official runs need --official")
        pred, seconds = official_fit(mods, name.split("-")[1], lr, guide, scale, steps, seed,
                                     float(opts.get("lr", 1e-3)), device)
    else:
        t0 = time.perf_counter()
        # as geosr.super_resolve does (whose own ``lr`` argument is the input, not the rate)
        method = get_method(name, **{"iterations": steps, "seed": seed, "device": device,
                                     **opts})
        g = prepare_guide(guide, BandStats.from_array(guide))
        pred = run_band(method, lr[None], g, scale, progress=None)[0]
        seconds = time.perf_counter() - t0
    m = metrics(pred, hr)
    return {"rmse": round(m["rmse"], 5), "mae": round(m["mae"], 5),
            "seconds": round(seconds, 2), "seconds_per_step": round(seconds / steps, 4)}


def warm_up(runs: list[str], mods, scale: int, device: str = "cpu") -> None:
    """A 2-step fit of each run on noise, so that one-time costs do not land in a timing."""
    rng = np.random.default_rng(0)
    hr = rng.normal(size=(32, 32)).astype(np.float32)
    guide = rng.normal(size=(3, 32, 32)).astype(np.float32)
    lr = degrade(hr, scale)[1]
    with contextlib.redirect_stdout(io.StringIO()):
        for label in runs:
            run_one(label, mods, lr, guide, hr, scale, 2, 0, device)


def summarise(rows: list[dict], labels: list[str]) -> dict:
    by_cond: dict[str, list[dict]] = {}
    for r in rows:
        by_cond.setdefault(r["misalign"]["spec"], []).append(r)
    out = {}
    for cond, rs in by_cond.items():
        done = [r for r in rs if all(lab in r["runs"] for lab in labels)]
        if not done:
            continue
        s = {"crops": len(done), "bicubic": round(float(np.mean([r["bicubic"] for r in done])), 5)}
        for lab in labels:
            v = np.array([r["runs"][lab]["rmse"] for r in done])
            s[lab] = {"mean_rmse": round(float(v.mean()), 5),
                      "mean_seconds_per_step": round(float(np.mean(
                          [r["runs"][lab]["seconds_per_step"] for r in done])), 4),
                      "wins": {o: int(sum(r["runs"][lab]["rmse"] < r["runs"][o]["rmse"]
                                          for r in done)) for o in labels if o != lab}}
        out[cond] = s
    return out


def parse_size(text: str) -> int | None:
    """``--size``: a crop's side in HR pixels, or ``full`` (None: each pair whole)."""
    if text == "full":
        return None
    size = int(text)
    if size < 8:
        raise argparse.ArgumentTypeError(f"--size must be >= 8 or 'full', got {text}")
    return size


def parse_part(text: str) -> tuple[int, int]:
    """``--part K/N`` -> (K, N): this process runs fits K-1, K-1+N, K-1+2N, ... of the
    (crop, misalignment, run) list."""
    k, _, n = text.partition("/")
    try:
        part = int(k), int(n)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--part takes K/N, e.g. 2/4, got {text!r}") from None
    if not 1 <= part[0] <= part[1]:
        raise argparse.ArgumentTypeError(f"--part K/N needs 1 <= K <= N, got {text!r}")
    return part


def merge(paths: list[Path]) -> dict:
    """One result from the JSONs of several ``--part`` runs (or resumed runs) of one setup."""
    docs = [json.loads(p.read_text()) for p in paths]
    keys = ("data", "scale", "size", "steps", "seed", "device")
    for p, d in zip(paths[1:], docs[1:], strict=True):
        differ = [k for k in keys if d.get(k) != docs[0].get(k)]
        if differ:
            raise SystemExit(f"{p} differs from {paths[0]} in {', '.join(differ)}: not one setup")
    rows: dict[tuple, dict] = {}
    for d in docs:
        for r in d["rows"]:
            old = rows.setdefault((r["name"], r["misalign"]["spec"]), r)
            old["runs"].update(r["runs"])
    out = dict(docs[0])
    out["commands"] = list(dict.fromkeys(c for d in docs for c in d.get("commands", [])))
    out["rows"] = sorted(rows.values(), key=lambda r: (r["pair"], r["misalign"]["spec"]))
    first = [lab for d in docs for r in d["rows"] for lab in r["runs"]]
    out["summary"] = summarise(out["rows"], list(dict.fromkeys(first)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--official", type=Path, help="checkout of palmdong/RobSelf")
    ap.add_argument("--data", type=Path, default=DATA / "middlebury2005_fullsize_msgnet")
    ap.add_argument("--guide", type=Path, help="guide raster when --data is one HR raster")
    ap.add_argument("--pairs", type=int, help="use the first N pairs")
    ap.add_argument("--crops-per-pair", type=int, default=7)
    ap.add_argument("--size", type=parse_size, default=96,
                    help="crop side in HR px, or 'full': each pair whole, less the room the "
                         "misalignment needs at the border")
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--min-std", type=float, default=4.0, help="skip flatter crops (HR units)")
    ap.add_argument("--misalign", action="append", help="shift=A[:B],rotation=A[:B] (repeatable)")
    ap.add_argument("--run", action="append", help="NAME[:key=value,...] (repeatable)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"],
                    help="where every fit runs (auto: cuda if PyTorch sees a GPU)")
    ap.add_argument("--part", type=parse_part, default=(1, 1), metavar="K/N",
                    help="run only every N-th fit from the K-th, fits ordered by crop, "
                         "misalignment and --run (several processes sharing one GPU, each "
                         "with its own --json; then --merge)")
    ap.add_argument("--merge", type=Path, nargs="+", metavar="JSON",
                    help="write the union of these result JSONs to --json and stop")
    ap.add_argument("--check-driver", action="store_true")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    if a.merge:
        if not a.json:
            raise SystemExit("--merge needs --json OUT")
        out = merge(a.merge)
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(out, indent=1))
        print(json.dumps(out["summary"], indent=1))
        return
    if a.device == "auto":
        a.device = "cuda" if torch.cuda.is_available() else "cpu"
    if a.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: PyTorch sees no CUDA GPU here; use --device cpu")
    runs = a.run or ["official-re", "official-de", "robself-re", "robself-de", "mmsr"]
    needs_official = any(r.startswith("official-") for r in runs)
    mods, deform = None, None
    if needs_official or a.check_driver:
        loaded = load_official(a.official) if a.official else None
        if loaded is None:
            print(f"no official RobSelf checkout at {a.official} (a folder with "
                  "model/network.py): nothing to compare, skipping")
            return
        mods, deform = loaded
    if not a.data.exists():
        print(f"{a.data} not found: this benchmark needs ../shared/data; skipping")
        return
    torch.set_num_threads(a.threads)
    pairs = load_pairs(a.data, a.guide) if a.guide else load_pairs(a.data)
    pairs = pairs[:a.pairs] if a.pairs else pairs
    specs = a.misalign or ["shift=2:4,rotation=0:1"]
    extent = a.size or max(max(p.target.shape) for p in pairs)
    worst = max(parse_misalign(s)["shift"][1] + extent * math.sin(math.radians(
        parse_misalign(s)["rotation"][1])) for s in specs)
    margin = int(math.ceil(worst)) + 2 if set(specs) != {EVAL} else 0
    # whole images are cut to a multiple of the official translator's 2**levels (levels: 3 at
    # x2, 4 at x4, 5 at x8: its U-Net concatenates encoder and decoder maps of equal size)
    unit = 2 ** {2: 3, 4: 4, 8: 5}.get(a.scale, 5)
    crops = make_crops(pairs, a.size, a.crops_per_pair, a.seed, a.min_std, margin, unit)
    if a.check_driver:
        pair, y0, x0, _, _ = crops[0]
        hr, lr = degrade(pair.target[y0:y0 + 32, x0:x0 + 32], a.scale)
        diff = check_driver(a.official, mods, lr, pair.guide[:, y0:y0 + 32, x0:x0 + 32], a.scale)
        print(f"driver check: max |model.main.RobSelf - driver| = {diff:.3g}")
        if diff > 1e-5 * (1 + float(np.abs(pair.target).max())):  # float32 rounding
            raise SystemExit("the driver does not reproduce the official script")
    warm_up(runs, mods, a.scale, a.device)
    old = json.loads(a.json.read_text()) if a.json and a.json.exists() else {}
    done = {(r["name"], r["misalign"]["spec"]): r for r in old.get("rows", [])}
    deform = deform or old.get("official_deform_conv")
    this = "python " + " ".join(sys.argv)
    a.commands = [c for c in old.get("commands", []) if c != this] + [this]
    rows = []
    # --part K/N: the K-th of every N (crop, misalignment, run) fits, in that order
    part, parts = a.part
    per_crop = len(specs) * len(runs)
    for ci, (pair, y0, x0, sh, sw) in enumerate(crops):
        mine = [j % parts == part - 1 for j in range(ci * per_crop, (ci + 1) * per_crop)]
        if not any(mine):
            continue
        hr, lr = degrade(pair.target[y0:y0 + sh, x0:x0 + sw], a.scale)
        for si, spec in enumerate(specs):
            labels = [lab for li, lab in enumerate(runs) if mine[si * len(runs) + li]]
            if not labels:
                continue
            if spec == EVAL:
                guide = misalign(pair.guide, Misalignment(), sum(map(ord, pair.name)))
                guide = guide[:, y0:y0 + sh, x0:x0 + sw]
                drawn = {"spec": spec, "shift": None, "rotation": None}
            else:
                rng = np.random.default_rng([a.seed, ci, si])
                shift, rot = draw_misalignment(parse_misalign(spec), rng)
                guide = misaligned_guide(pair.guide, y0, x0, (sh, sw), shift, rot, margin)
                drawn = {"spec": spec, "shift": [round(v, 3) for v in shift],
                         "rotation": round(rot, 3)}
            name = f"{pair.name}@{y0},{x0}"
            row = done.get((name, spec)) or {
                "name": name, "pair": pair.name, "at": [y0, x0], "shape": [sh, sw],
                "misalign": drawn,
                "bicubic": round(metrics(geosr.super_resolve(lr[None], guide, a.scale,
                                                             method="bicubic")[0], hr)["rmse"], 5),
                "runs": {}}
            rows.append(row)
            for label in labels:
                if label in row["runs"]:
                    continue
                row["runs"][label] = run_one(label, mods, lr, guide, hr, a.scale, a.steps, a.seed,
                                             a.device)
                print(f"{name} [{spec}] shift {row['misalign']['shift']} rot "
                      f"{row['misalign']['rotation']}: {label} {row['runs'][label]} "
                      f"(bicubic {row['bicubic']})", flush=True)
                if a.json:
                    write(a, rows + [r for k, r in done.items() if r not in rows], runs, deform)
    summary = write(a, rows, runs, deform) if a.json else summarise(rows, runs)
    print(json.dumps(summary, indent=1))


def write(a, rows: list[dict], runs: list[str], deform: str | None) -> dict:
    labels = sorted({lab for r in rows for lab in r["runs"]}, key=lambda s: (s not in runs, s))
    summary = summarise(rows, labels)
    out = {"commands": a.commands, "data": a.data.name, "scale": a.scale,
           "size": a.size or "full", "steps": a.steps, "seed": a.seed, "threads": a.threads,
           "device": (torch.cuda.get_device_name() if a.device == "cuda" else "cpu"),
           "torch": torch.__version__, "official_deform_conv": deform,
           "summary": summary, "rows": rows}
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(out, indent=1))
    return summary


if __name__ == "__main__":
    main()
