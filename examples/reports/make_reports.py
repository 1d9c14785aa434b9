"""Regenerate the example reports of this folder and their screenshots.

* ``mmsr_samples.png`` / ``.json``: ``geosr eval ../shared/data/mmsr_samples --report``
  (bicubic, guided-filter, mmsr; first 2 of the 13 pairs, centre crop 128x128, mmsr with
  100 iterations, x4);
* ``mashhad_dsm.png`` / ``.json``: the same on the real DSM pair
  (``geo_mashhad_elevation1_pleiades``: 1 m DSM, 0.5 m orthophoto averaged onto its grid;
  centre crop 160x160, mmsr preset dem, 100 iterations);
* ``quicklook_example.png`` (only with ``--only quicklook``): ``geosr dem-sr --example
  --quicklook`` (the quick start's 200 iterations; the committed picture's are not
  recorded).

Each report's ``index.html`` is screenshotted with headless Chromium (``--window-size``
1100 px wide, cropped below the page's last row of content, saved as a 256-colour PNG); the
JSON is the report's ``result.json``. Learned methods run on one CPU thread
(``OMP_NUM_THREADS=1``), a few minutes per report at the default 100 iterations::

    python examples/reports/make_reports.py                        # both reports, in place
    python examples/reports/make_reports.py --iterations 20 --out /tmp/reports
    python examples/reports/make_reports.py --only quicklook

Needs ``../shared/data`` (or ``--data``) and Chromium (``apt-get install -y chromium``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
REPORTS = ("mmsr_samples", "mashhad_dsm")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                  "--force-device-scale-factor=1"]


def find_data(explicit: Path | None) -> Path:
    cands = [explicit] if explicit else [REPO.parent / "shared" / "data", Path("/work/shared/data")]
    for c in cands:
        if c is not None and (c / "mmsr_samples").is_dir():
            return c.resolve()
    raise SystemExit("shared/data (with mmsr_samples/) not found; pass --data")


def geosr_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("geosr")
    if exe.is_file():
        return [str(exe)]
    found = shutil.which("geosr")
    if found:
        return [found]
    return [sys.executable, "-c", "from geosr.cli.main import cli; cli(prog_name='geosr')"]


def eval_args(name: str, data: Path, iterations: int) -> list[str]:
    """``geosr eval`` arguments of one report (the settings of the committed ones)."""
    if name == "mmsr_samples":
        note = (f"Reduced settings for a CPU-only example: first 2 of 13 pairs, centre crop "
                f"128x128, mmsr with {iterations} iterations (the papers use 1000) on 1 CPU "
                "thread. Not the benchmark numbers.")
        return [str(data / "mmsr_samples"), "-m", "bicubic,guided-filter,mmsr", "--scale", "4",
                "--iterations", str(iterations), "--limit", "2", "--crop", "128",
                "--report-note", note]
    m = data / "geo_mashhad_elevation1_pleiades"
    note = (f"Reduced settings for a CPU-only example: centre crop 160x160 m of the 1 m DSM "
            "(the 0.5 m ortho resampled to the DSM grid by averaging), mmsr with "
            f"{iterations} iterations (preset dem; the papers use 1000) on 1 CPU thread. The "
            "DSM is effectively ~10 m resolution, so this is a weak test of edge recovery.")
    return [str(m / "dsm_west_1m.tif"), "--guide", str(m / "ortho_rgb_west_0p5m.tif"),
            "-m", "bicubic,guided-filter,mmsr", "--scale", "4", "--preset", "dem",
            "--iterations", str(iterations), "--crop", "160", "--report-note", note]


def chromium() -> str:
    exe = next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)
    if exe is None:
        raise SystemExit("Chromium is not installed (apt-get install -y chromium)")
    return exe


def _palette(png: Path) -> None:
    """Rewrite ``png`` with an adaptive 256-colour palette (about 3x smaller)."""
    from PIL import Image

    with Image.open(png) as im:
        small = im.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT)
    small.save(png, format="PNG", optimize=True)


def screenshot(page: Path, png: Path, *, width: int = 1100, height: int = 4000) -> Path:
    """Screenshot ``page`` in headless Chromium, cropped to its content, as a palette PNG."""
    import numpy as np
    from PIL import Image

    exe = chromium()
    with tempfile.TemporaryDirectory(prefix="geosr-chromium-") as profile:
        shot = Path(profile) / "shot.png"
        while True:
            subprocess.run(
                [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                 f"--window-size={width},{height}", f"--screenshot={shot}", page.as_uri()],
                check=True, capture_output=True, timeout=180, env={**os.environ, "HOME": profile})
            with Image.open(shot) as im:
                rgb = im.convert("RGB")
            grey = np.asarray(rgb.convert("L"))
            rows = np.nonzero((grey < 250).any(axis=1))[0]
            if rows.size == 0:
                raise SystemExit(f"the screenshot of {page} is blank")
            if rows[-1] < height - 40:  # the whole page fits: crop below its last content
                break
            height *= 2
    bottom = min(height, int(rows[-1]) + 24)
    rgb.crop((0, 0, width, bottom)).save(png, format="PNG")
    _palette(png)
    return png


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None, help="the shared/data folder")
    ap.add_argument("--out", type=Path, default=HERE, help="where the PNG and JSON go")
    ap.add_argument("--only", default=",".join(REPORTS),
                    help=f"comma-separated: {', '.join(REPORTS)}, quicklook")
    ap.add_argument("--iterations", type=int, default=100, help="mmsr steps of the reports")
    ap.add_argument("--quicklook-iterations", type=int, default=200)
    ap.add_argument("--workdir", type=Path, default=None,
                    help="keep the HTML reports here (default: a temporary folder)")
    args = ap.parse_args()
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(only) - {*REPORTS, "quicklook"}
    if unknown:
        raise SystemExit(f"unknown report(s) {sorted(unknown)}; choose from "
                         f"{', '.join(REPORTS)}, quicklook")
    args.out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory(prefix="geosr-reports-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for name in only:
            if name == "quicklook":
                png = args.out / "quicklook_example.png"
                cmd = [*geosr_cmd(), "dem-sr", "--example", "--iterations",
                       str(args.quicklook_iterations), "-o", str(work / "example_dsm_0p5m.tif"),
                       "--quicklook", str(png), "--overwrite", "-q"]
                print("+", " ".join(cmd), file=sys.stderr)
                subprocess.run(cmd, check=True, env=env)
                _palette(png)
                print(f"wrote {png}", file=sys.stderr)
                continue
            data = find_data(args.data)
            rep = work / name
            cmd = [*geosr_cmd(), "eval", *eval_args(name, data, args.iterations),
                   "--report", str(rep), "-q"]
            print("+", " ".join(cmd), file=sys.stderr)
            subprocess.run(cmd, check=True, env=env)
            shutil.copyfile(rep / "result.json", args.out / f"{name}.json")
            png = screenshot(rep / "index.html", args.out / f"{name}.png")
            print(f"wrote {png} and {args.out / f'{name}.json'}", file=sys.stderr)


if __name__ == "__main__":
    main()
