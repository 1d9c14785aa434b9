"""``benchmarks/reliability/matrix.py``: one case per input class, the JSON and the page
``docs/inputs.md`` made from it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from benchmarks.reliability import matrix
from benchmarks.reliability.cases import CRSS, DTYPES, ORIENTATIONS

SCRIPT = Path(matrix.__file__)


def test_matrix__runs_the_classes_and_writes_json_and_page(tmp_path: Path) -> None:
    out, doc = tmp_path / "m.json", tmp_path / "inputs.md"
    r = subprocess.run([sys.executable, str(SCRIPT), "--only", "LR size", "--json", str(out),
                        "--doc", str(doc)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    data = json.loads(out.read_text())
    rows = {row["input"]: row for row in data["rows"]}
    assert set(rows) == {n for g, n, _ in matrix.classes() if g.startswith("LR size")}
    assert rows["2 x 2 at x4"]["lanczos"] == {"exit_code": 0, "message": None,
                                             "api_error": None, "violations": []}
    tiny = rows["1 x 1 at x2"]["bicubic"]
    assert tiny["exit_code"] == 2 and tiny["api_error"] == "GridError"
    assert "pass a larger LR raster" in tiny["message"] and "/tmp" not in tiny["message"]
    page = doc.read_text()
    assert "`python benchmarks/reliability/matrix.py`" in page
    assert "| 2 x 2 at x4 | output on the LR grid | output on the LR grid |" in page
    assert "| 1 x 1 at x2 | exit 2 (GridError): the LR raster is only 1 x 1" in page
    assert page.count("| input | bicubic | lanczos |") == 1


def test_matrix__a_broken_class_is_shown_and_fails_the_command(tmp_path: Path) -> None:
    data = json.loads(matrix.JSON.read_text())
    data["rows"] = data["rows"][:2]
    data["rows"][1]["lanczos"]["violations"] = ["transform (1, 0, 0, 0, 1, 0) is not ..."]
    src, doc = tmp_path / "m.json", tmp_path / "inputs.md"
    src.write_text(json.dumps(data))
    assert matrix.main(["--render", "--json", str(src), "--doc", str(doc)]) == 1
    page = doc.read_text()
    assert "**broken:** transform (1, 0, 0, 0, 1, 0) is not" in page
    assert "2 input classes, 1 broken." in page


def test_committed_page_is_the_committed_json_rendered() -> None:
    assert matrix.DOC.read_text() == matrix.render(json.loads(matrix.JSON.read_text()))
    rows = json.loads(matrix.JSON.read_text())["rows"]
    assert not [r["input"] for r in rows for m in matrix.METHODS if r[m]["violations"]]


def test_matrix__covers_every_field_value() -> None:
    cases = [c for _, _, c in matrix.classes()]
    assert {c.dtype for c in cases} == set(DTYPES)
    assert {(c.lr_crs, c.guide_crs) for c in cases} >= {(a, b) for a in CRSS for b in CRSS}
    assert {c.lr_orientation for c in cases} == {c.guide_orientation for c in cases} == \
        set(ORIENTATIONS)
    assert {(c.guide_bands, c.guide_alpha) for c in cases} == \
        {(n, a) for n in range(1, 6) for a in (False, True)}
    assert {c.nodata for c in cases} == {"none", "nan", "-32768", "-9999", "f32max"}
    assert {c.holes for c in cases} == {"none", "patch", "stripes", "island", "all"}
    assert min(c.height * c.width for c in cases) == 1
