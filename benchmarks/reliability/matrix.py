"""The input matrix: one case per input class through ``geosr sr`` (bicubic and lanczos),
checked against the contract of ``benchmarks/reliability/cases.py``, written as JSON and as
the table of ``docs/inputs.md``.

    python benchmarks/reliability/matrix.py

writes ``benchmarks/reliability/results/matrix.json`` and ``docs/inputs.md`` (about 20 s on
a 2-core CPU) and exits 1 if any class breaks the contract. ``--only TEXT`` runs the classes
whose group or name contains TEXT; ``--render`` rewrites the page from the JSON without
running anything. The property-based tests in ``tests/reliability/`` draw many more cases
from the same fields with hypothesis.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # the repo root: `benchmarks.*` imports

from benchmarks.reliability.cases import (  # noqa: E402
    CRSS,
    DTYPES,
    InputCase,
    contract_violations,
    run_case,
)

JSON = ROOT / "benchmarks" / "reliability" / "results" / "matrix.json"
DOC = ROOT / "docs" / "inputs.md"
COMMAND = "python benchmarks/reliability/matrix.py"
METHODS = ("bicubic", "lanczos")
CRS_NAMES = {"utm": "UTM 33N", "wgs84": "EPSG:4326", "laea": "LAEA EPSG:3035"}


def classes() -> list[tuple[str, str, InputCase]]:
    """(group, input class, case): each class changes one thing of the default case (a
    north-up float32 LR of 7 x 9 pixels in UTM, an RGB uint8 guide in UTM, x2)."""
    c = InputCase
    out: list[tuple[str, str, InputCase]] = []
    for dt in DTYPES:
        out.append(("LR dtype", f"{dt}, no nodata", c(dtype=dt)))
    for dt, nd, holes, name in (
        ("float32", "nan", "patch", "float32, nodata NaN, a corner of NaN"),
        ("float32", "none", "patch", "float32, no nodata tag, a corner of NaN"),
        ("int16", "-32768", "patch", "int16, nodata -32768, a corner of it"),
        ("int32", "-9999", "patch", "int32, nodata -9999, a corner of it"),
        ("float32", "-9999", "patch", "float32, nodata -9999, a corner of it"),
        ("float32", "f32max", "patch", "float32, nodata 3.4e38 (max float32), a corner of it"),
        ("float64", "f32max", "patch", "float64, nodata 3.4e38 (max float32), a corner of it"),
        ("float64", "-9999", "stripes", "float64, nodata -9999 in every third column"),
        ("int16", "-32768", "island", "int16, nodata -32768 but for a 2 x 2 island"),
        ("float32", "nan", "all", "float32, every pixel NaN"),
        ("uint16", "none", "none", "uint16, no nodata (-9999, -32768, NaN do not fit)"),
    ):
        out.append(("LR nodata", name, c(dtype=dt, nodata=nd, holes=holes)))
    for w, h, scale, tiling in ((1, 1, 2, None), (9, 1, 2, None), (1, 9, 2, None),
                                (2, 2, 2, None), (2, 2, 4, None), (5, 3, 3, None),
                                (11, 13, 3, (4, 1)), (13, 11, 4, (6, 3))):
        name = f"{w} x {h} at x{scale}" + (f" in {tiling[0]}-pixel tiles" if tiling else "")
        out.append(("LR size (width x height), scale, tiles", name,
                    c(height=h, width=w, scale=scale, tiling=tiling)))
    for o in ("bottom-up", "rotated", "sheared"):
        out.append(("geotransform", f"LR {o}", c(lr_orientation=o)))
    for o in ("bottom-up", "rotated", "sheared"):
        out.append(("geotransform", f"guide {o}", c(guide_orientation=o)))
    out.append(("geotransform", "LR bottom-up, guide rotated, in 4-pixel tiles",
                c(lr_orientation="bottom-up", guide_orientation="rotated", height=11,
                  width=13, tiling=(4, 1))))
    for lr in CRSS:
        for g in CRSS:
            out.append(("CRS (LR / guide)", f"{CRS_NAMES[lr]} / {CRS_NAMES[g]}",
                        c(lr_crs=lr, guide_crs=g)))
    for n in range(1, 6):
        for alpha in (False, True):
            for select in (False, True) if n < 3 else (False,):
                name = f"{n} band{'s' if n > 1 else ''}" + (" + alpha" if alpha else "") + \
                    (f", --guide-bands {','.join(map(str, range(1, n + 1)))}" if select else "")
                out.append(("guide bands", name,
                            c(guide_bands=n, guide_alpha=alpha, select_bands=select)))
    for gd in ("uint16", "float32"):
        out.append(("guide dtype", gd, c(guide_dtype=gd)))
    return out


def _clean(message: str) -> str:
    """The error as a user reads it: no click usage lines, no temporary folders, short
    numbers."""
    m = message.split("Error: ", 1)[-1]
    m = re.sub(r"'[^']*/(in|out)/", "'", m)
    return re.sub(r"(\d+\.\d{3})\d+", r"\1", m)


def run_matrix(only: str | None = None) -> dict[str, Any]:
    import rasterio

    from geosr.version import __version__

    rows = []
    for group, name, case in classes():
        if only and only.lower() not in f"{group} {name}".lower():
            continue
        row: dict[str, Any] = {"group": group, "input": name,
                               "case": dataclasses.asdict(case)}
        for method in METHODS:
            mcase = dataclasses.replace(case, method=method)
            with tempfile.TemporaryDirectory(prefix="geosr-matrix-") as tmp:
                outcome = run_case(mcase, Path(tmp))
            row[method] = {
                "exit_code": outcome["exit_code"],
                "message": _clean(outcome["message"]) if outcome["exit_code"] else None,
                "api_error": outcome.get("api_error"),
                "violations": contract_violations(mcase, outcome),
            }
        rows.append(row)
        print(f"{group}: {name}: " + ", ".join(
            f"{m} {'ok' if not row[m]['violations'] else 'BROKEN'} (exit {row[m]['exit_code']})"
            for m in METHODS), file=sys.stderr)
    return {"command": COMMAND, "geosr": __version__, "gdal": rasterio.__gdal_version__,
            "rasterio": rasterio.__version__, "rows": rows}


def _cells(row: dict[str, Any]) -> list[str]:
    """The row's cells, one per method; "as bicubic" where a method's outcome is bicubic's."""
    cells = [_cell(row[METHODS[0]])]
    for m in METHODS[1:]:
        same = all(row[m][k] == row[METHODS[0]][k] for k in ("exit_code", "message"))
        cells.append(f"as {METHODS[0]}" if same and row[m]["exit_code"] else _cell(row[m]))
    return cells


def _cell(r: dict[str, Any]) -> str:
    if r["violations"]:
        return "**broken:** " + "; ".join(r["violations"]).replace("|", "\\|")
    if r["exit_code"] == 0:
        return "output on the LR grid"
    return f"exit {r['exit_code']} ({r['api_error']}): {r['message']}".replace("|", "\\|")


#: what the table does not show
NOTES = [
    "## Notes",
    "",
    "- Nodata values a dtype cannot hold (−9999 in uint8 or uint16, NaN in an integer "
    "band) are not in the table: rasterio refuses to write them.",
    "- lanczos is GDAL's (`gdalwarp -r lanczos`); where GDAL leaves a valid LR pixel "
    "without output next to nodata (the 2 × 2 island, the stripes), geosr fills it with "
    "GDAL's cubic ([methods](methods.md)).",
    "- A guide with fewer than 3 image bands (an alpha band does not count) is refused "
    "unless `--guide-bands` says which bands to use; bicubic and lanczos do not use the "
    "guide's values, but the run reads them as a guided method would, and the matrix "
    "checks where they land.",
    "",
]


def render(data: dict[str, Any]) -> str:
    """The page ``docs/inputs.md`` for the matrix JSON."""
    lines = [
        "# Inputs: what `geosr sr` does with them",
        "",
        "<!-- generated by python benchmarks/reliability/matrix.py: do not edit -->",
        "",
        "Each row is one class of input, one case of it run through `geosr sr --method "
        "bicubic` and `--method lanczos` (tile mode), checked against the contract below.",
        f"Generated by `{data['command']}` (geosr {data['geosr']}, GDAL {data['gdal']}, "
        f"rasterio {data['rasterio']}), which writes this page and "
        "[its JSON](../benchmarks/reliability/results/matrix.json).",
        "",
        "**The contract.** Either the output is a valid COG on the expected grid — the LR's CRS, the LR's "
        "transform scaled by 1/scale, scale × the LR's shape — with nodata exactly where "
        "the LR is nodata (the LR's nodata value, NaN without one), values within the LR's "
        "range widened by that range on each side, the output pooled back to the LR close to the LR, "
        "and the guide read onto the output grid where it belongs; or the command exits "
        "2 (bad input) or 1 (failure while running) with a message that names the fix, "
        "the Python API raises a `GeosrError`, and the output folder is left as it was. "
        "Never a traceback.",
        "",
        "The default case: a north-up float32 LR of 7 × 9 pixels (width × height) at 4 m in "
        "UTM 33N, an RGB uint8 "
        "guide at 2 m in UTM 33N covering it with a margin, ×2; each row changes what it "
        "names. An error's class is the Python API's (`geosr.errors`). "
        "`python -m pytest tests/reliability` draws many more combinations of the same "
        "fields with hypothesis (`-m slow`: 400 per test).",
        "",
    ]
    group = None
    for row in data["rows"]:
        if row["group"] != group:
            group = row["group"]
            lines += ["", f"## {group}", "", "| input | bicubic | lanczos |", "|---|---|---|"]
        lines.append(f"| {row['input']} | " + " | ".join(_cells(row)) + " |")
    broken = sum(bool(r[m]["violations"]) for r in data["rows"] for m in METHODS)
    lines += ["", f"{len(data['rows'])} input classes, {broken} broken.", "", *NOTES]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", type=Path, default=JSON, help=f"default {JSON.relative_to(ROOT)}")
    ap.add_argument("--doc", type=Path, default=DOC, help=f"default {DOC.relative_to(ROOT)}")
    ap.add_argument("--only", help="run the classes whose group or name contains this")
    ap.add_argument("--render", action="store_true",
                    help="rewrite the page from the JSON, running nothing")
    args = ap.parse_args(argv)
    if args.render:
        data = json.loads(args.json.read_text())
    else:
        data = run_matrix(args.only)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(data, indent=1) + "\n")
    args.doc.write_text(render(data))
    broken = [(r["input"], m) for r in data["rows"] for m in METHODS if r[m]["violations"]]
    for name, m in broken:
        print(f"broken: {name} ({m})", file=sys.stderr)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
