"""The contract check of ``benchmarks/reliability/cases.py`` catches what it is meant to:
each test breaks one part of a real run's outcome and expects the check to say so."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from affine import Affine

from benchmarks.reliability.cases import (
    GUIDE_TOLERANCE,
    InputCase,
    contract_violations,
    guide_error,
    run_case,
    write_case,
)

CASE = InputCase(dtype="int16", nodata="-9999", holes="patch", height=9, width=11,
                 method="lanczos", scale=2)


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    outcome = run_case(CASE, tmp_path_factory.mktemp("good"))
    assert outcome["exit_code"] == 0, outcome["message"]
    assert contract_violations(CASE, outcome) == []
    return outcome


def _broken(good: dict[str, Any], **changes: Any) -> list[str]:
    o = copy.deepcopy(good)
    o.update(changes)
    return contract_violations(CASE, o)


def test_flipped_output_is_caught(good: dict[str, Any]) -> None:
    w = dict(good["written"], data=good["written"]["data"][::-1].copy())
    assert any("nodata at" in b or "flipped" in b for b in _broken(good, written=w))
    w = dict(good["written"], data=np.roll(good["written"]["data"], 4, axis=1))
    assert any("flipped or shifted" in b or "nodata at" in b for b in _broken(good, written=w))


def test_wrong_grid_is_caught(good: dict[str, Any]) -> None:
    shifted = good["written"]["transform"] * Affine.translation(1, 0)
    assert any("transform" in b for b in _broken(good, written=dict(good["written"],
                                                                      transform=shifted)))
    w = dict(good["written"], crs=rasterio.crs.CRS.from_epsg(3035))
    assert any("CRS" in b for b in _broken(good, written=w))
    w = dict(good["written"], data=good["written"]["data"][:-2], shape=(16, 22))
    assert any("shape" in b for b in _broken(good, written=w))


def test_lost_nodata_and_lost_pixels_are_caught(good: dict[str, Any]) -> None:
    data = good["written"]["data"].copy()
    data[data == -9999] = 1000.0  # a hole filled in
    assert any("nodata at" in b for b in _broken(good, written=dict(good["written"],
                                                                     data=data)))
    data = good["written"]["data"].copy()
    data[-1, -1] = -9999  # a valid pixel lost
    assert any("nodata at" in b for b in _broken(good, written=dict(good["written"],
                                                                     data=data)))
    w = dict(good["written"], nodata=None)
    assert any("output nodata" in b for b in _broken(good, written=w))
    assert good["written"]["cog_errors"] == []
    w = dict(good["written"], cog_errors=["The file is greater than 512xH or Wx512, but is "
                                          "not tiled"])
    assert any("not a valid COG" in b for b in _broken(good, written=w))


def test_leftovers_and_bad_errors_are_caught(good: dict[str, Any]) -> None:
    assert any("holds" in b for b in _broken(good, left=[".hr.tif.x1.tif", "hr.tif"]))
    failed = {"exit_code": 1, "message": "Error: ValueError: boom (run with -v -v for details)",
              "left": ["hr.tif.lock"], "api_error": "not a GeosrError: ValueError: boom"}
    bad = _broken(good, **failed)
    assert any("unexpected exception" in b for b in bad)
    assert any("left in the output folder" in b for b in bad)
    assert any("Python API" in b for b in bad)
    assert any("failed" in b for b in bad)  # a usable input must not fail
    assert any("traceback" in b for b in _broken(good, traceback=True))


def test_refusal_without_a_fix_is_caught(tmp_path: Path) -> None:
    case = InputCase(height=1, width=1)
    outcome = run_case(case, tmp_path)
    assert outcome["exit_code"] == 2 and contract_violations(case, outcome) == []
    o = dict(outcome, message="Error: the LR raster is only 1 x 1 pixels; at least 2 x 2 lr "
             "pixels are needed")
    assert any("names no fix" in b for b in contract_violations(case, o))
    o = dict(outcome, exit_code=0)
    assert any("should fail" in b for b in contract_violations(case, o))


def test_misplaced_guide_is_caught(tmp_path: Path) -> None:
    """The guide read onto the output grid is compared with the guide at that place: a
    guide moved by half an output pixel is off by more than the tolerance."""
    case = InputCase(scale=4, guide_dtype="uint16")
    paths = write_case(case, tmp_path)
    assert guide_error(case, paths) < GUIDE_TOLERANCE
    with rasterio.open(paths["guide"], "r+") as dst:
        dst.transform = dst.transform * Affine.translation(0.5, 0.0)  # half a guide pixel
    assert guide_error(case, paths) > GUIDE_TOLERANCE
