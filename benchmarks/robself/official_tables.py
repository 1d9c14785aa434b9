"""Print the markdown tables of docs/benchmarks/robself.md#side-by-side-with-the-authors-code
from the JSON that ``benchmarks/robself/official.py`` wrote.

    python benchmarks/robself/official_tables.py benchmarks/robself/results/official/*.json

For each file and misalignment: every run's mean RMSE, its ratio to the first run's (or
to ``--against``), the crops it wins against that run, and its mean seconds per step.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def table(summary: dict, against: str | None) -> list[str]:
    runs = [k for k in summary if isinstance(summary[k], dict)]
    ref = against if against in runs else runs[0]
    out = [f"| run | mean RMSE | vs {ref} | crops better than {ref} | s/step |",
           "|---|---|---|---|---|",
           f"| bicubic | {summary['bicubic']:.3f} | {summary['bicubic'] / summary[ref]['mean_rmse']:.3f}"
           " | – | – |"]
    for run in runs:
        s = summary[run]
        wins = "–" if run == ref else f"{s['wins'][ref]} / {summary['crops']}"
        out.append(f"| {run} | {s['mean_rmse']:.3f} | {s['mean_rmse'] / summary[ref]['mean_rmse']:.3f}"
                   f" | {wins} | {s['mean_seconds_per_step']:.3f} |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json", type=Path, nargs="+")
    ap.add_argument("--against", help="the run to compare with (default: the first)")
    a = ap.parse_args()
    for path in a.json:
        d = json.loads(path.read_text())
        for spec, summary in d["summary"].items():
            what = ("whole images" if d["size"] == "full"
                    else f"crops of {d['size']}²")
            print(f"\n{path.name}: {spec}, {summary['crops']} {what}, x{d['scale']}, "
                  f"{d['steps']} steps, {d.get('device', 'cpu')}")
            print("\n".join(table(summary, a.against)))


if __name__ == "__main__":
    main()
