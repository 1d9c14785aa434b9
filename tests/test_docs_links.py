"""Every relative link in the README, the changelog and docs/ leads to a file that exists,
and every ``#anchor`` to a heading of that file (GitHub's heading slugs)."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FILES = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: markup dropped, lower case, letters, digits, ``-`` and
    ``_`` kept, spaces made ``-``, everything else dropped."""
    text = re.sub(r"`([^`]*)`", r"\1", heading)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    keep = (c if unicodedata.category(c)[0] in "LNM" or c in "-_" else "-" if c == " " else ""
            for c in text.lower())
    return "".join(keep)


def _lines(path: Path):
    """``(line number, line)`` outside fenced code blocks."""
    fenced = False
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced:
            yield i, line


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for _, line in _lines(path):
        m = re.match(r"^#{1,6}\s+(.*?)\s*$", line)
        if m:
            s = slug(m.group(1))
            n = seen.get(s, 0)
            seen[s] = n + 1
            out.add(s if n == 0 else f"{s}-{n}")
    return out


def test_slug_follows_githubs_rules() -> None:
    assert slug("Options for a smooth DSM") == "options-for-a-smooth-dsm"
    assert slug("×2 and ×8") == "2-and-8"
    assert slug("Side by side with the authors' code") == "side-by-side-with-the-authors-code"
    assert slug("`--mode auto`, the default") == "--mode-auto-the-default"


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path: Path) -> None:
    broken = []
    for i, line in _lines(path):
        for target in LINK.findall(line):
            if re.match(r"^[a-z][a-z+.-]*:", target):  # https:, mailto:, ...
                continue
            file, _, anchor = target.partition("#")
            dest = (path.parent / file).resolve() if file else path
            if not dest.exists():
                broken.append(f"line {i}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                broken.append(f"line {i}: {target} (no such heading)")
    assert not broken, "\n".join(broken)
