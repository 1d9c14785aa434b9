"""Property-based tests: GeoTIFF headers and shapes fed to ``geosr sr`` (bicubic, lanczos).

Every drawn pair of rasters must give either a correct output on the expected grid or a
clean error that names the fix (``benchmarks/reliability/cases.py`` states the contract and
which inputs must fail). The default suite draws 25 examples per property (the profile of
``conftest.py``); the ``slow`` tests (``pytest -m slow tests/reliability``) draw 400 with
every field drawn at once.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import event, example, given, settings

from benchmarks.reliability.cases import InputCase, contract_violations, run_case
from tests.reliability.strategies import cases

#: examples of the slow tests, which draw every field at once
MANY = 400


def keeps_contract(case: InputCase) -> None:
    with tempfile.TemporaryDirectory(prefix="geosr-prop-") as d:
        outcome = run_case(case, Path(d))
    event("written" if outcome["exit_code"] == 0 else f"exit {outcome['exit_code']}")
    bad = contract_violations(case, outcome)
    assert not bad, f"{case.label()}:\n  " + "\n  ".join(bad)


@given(cases(shape=False, geo=False, guide=False))
@example(InputCase(dtype="float64", nodata="f32max", holes="patch"))
@example(InputCase(dtype="int16", nodata="-32768", holes="patch", method="lanczos"))
@example(InputCase(dtype="float32", nodata="nan", holes="all"))
@example(InputCase(dtype="int16", nodata="-32768", holes="island", method="lanczos"))
def test_dtypes_and_nodata(case: InputCase) -> None:
    keeps_contract(case)


@given(cases(headers=False, geo=False, guide=False))
@example(InputCase(height=1, width=1))
@example(InputCase(height=1, width=9))
@example(InputCase(height=2, width=2, scale=4, method="lanczos"))
@example(InputCase(height=13, width=11, scale=3, tiling=(4, 1)))
def test_sizes_scales_and_tiles(case: InputCase) -> None:
    keeps_contract(case)


@given(cases(headers=False, shape=False, guide=False, run=False))
@example(InputCase(lr_orientation="bottom-up", lr_crs="laea", guide_crs="wgs84"))
@example(InputCase(lr_orientation="rotated"))
@example(InputCase(lr_orientation="sheared"))
@example(InputCase(guide_orientation="rotated", guide_crs="laea"))
@example(InputCase(lr_crs="wgs84", guide_orientation="bottom-up"))
def test_transforms_and_crs_pairs(case: InputCase) -> None:
    keeps_contract(case)


@given(cases(headers=False, shape=False, geo=False, run=False))
@example(InputCase(guide_bands=1, guide_alpha=True, select_bands=True))
@example(InputCase(guide_bands=3, guide_alpha=True))
@example(InputCase(guide_bands=2, guide_alpha=True))
def test_guide_bands_and_alpha(case: InputCase) -> None:
    keeps_contract(case)


@pytest.mark.slow
@settings(max_examples=MANY)
@given(cases())
def test_every_field_at_once(case: InputCase) -> None:
    keeps_contract(case)


@pytest.mark.slow
@settings(max_examples=MANY)
@given(cases(usable=True))
def test_every_field_at_once_usable_inputs(case: InputCase) -> None:
    keeps_contract(case)
