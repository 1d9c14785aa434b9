"""The package's shape: no import cycles, modules of readable size, a repository that speaks
of the product only. (The layering itself is the import-linter contract in
``pyproject.toml``, checked by ``lint-imports``.)"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 600


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.find_modules_directly_imported_by(v):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for m in sorted(graph.modules):
        if m not in index:
            visit(m)
    return out


def test_no_import_cycle_even_counting_imports_inside_functions() -> None:
    # grimp reads every import statement, those inside functions included
    graph = grimp.build_graph("geosr")
    assert "geosr.pipeline.runner" in graph.modules
    assert graph.find_modules_directly_imported_by("geosr.models.learned")  # graph is real
    assert _cycles(graph) == []


def test_cycle_finder_finds_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for m in ("a", "a.x", "a.y", "a.z"):
        graph.add_module(m)
    graph.add_import(importer="a.x", imported="a.y")
    graph.add_import(importer="a.y", imported="a.x")
    graph.add_import(importer="a.z", imported="a.x")
    assert _cycles(graph) == [["a.x", "a.y"]]


def test_no_module_is_too_long() -> None:
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / "geosr").rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def _tracked_text_files() -> list[Path]:
    try:
        names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                               check=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    out = []
    for name in names:
        p = ROOT / name
        if p.suffix.lower() in {".png", ".jpg", ".tif", ".npz", ".npy"} or not p.is_file():
            continue
        out.append(p)
    return out


#: words of a development diary; built from pieces so that this file does not match itself
DIARY = re.compile("|".join([
    r"\bsess" + r"ions?\b",
    r"\biss" + r"ues? ?#?\d+",
    r"\b(?:fix(?:es|ed)?|closes?|see|in|pr) #\d+",
    r"\bs1\d(?=[_/ .]|$)",
]), re.IGNORECASE)


def test_repository_speaks_of_the_product_only() -> None:
    hits = []
    for p in _tracked_text_files():
        rel = str(p.relative_to(ROOT))
        if DIARY.search(rel):
            hits.append(rel)
        try:
            text = p.read_text()
        except UnicodeDecodeError:
            continue
        for i, line in enumerate(text.splitlines(), 1):
            if DIARY.search(line):
                hits.append(f"{rel}:{i}: {line.strip()[:100]}")
    assert hits == []


def test_diary_pattern_matches_what_it_should() -> None:
    for bad in ["measured in sess" + "ion 5", "see iss" + "ue 4", "fixes #" + "12",
                "gpu/s" + "12/run.json"]:
        assert DIARY.search(bad), bad
    for ok in ["a dask Client", "colour #ff0000", "EPSG:32640", "x12 steps", "sha256"]:
        assert not DIARY.search(ok), ok
