"""Method options are parsed by their declared type, whoever passes them."""

from __future__ import annotations

import pytest

from geosr.errors import OptionError
from geosr.models import get_method
from geosr.models.base import coerce_option
from geosr.pipeline import RunConfig


@pytest.mark.parametrize("text, expected", [
    ("true", True), ("YES", True), ("on", True), ("1", True), (1, True), (True, True),
    ("false", False), ("No", False), ("off", False), ("0", False), (0, False),
])
def test_booleans_take_the_usual_spellings(text, expected) -> None:
    assert coerce_option("compile", text, bool) is expected


@pytest.mark.parametrize("bad", ["maybe", "2", 2, 0.5, None, ""])
def test_booleans_refuse_anything_else(bad) -> None:
    with pytest.raises(OptionError, match=r"'compile' takes a boolean \(true/false"):
        coerce_option("compile", bad, bool)


def test_integers_refuse_fractions_and_words() -> None:
    assert coerce_option("iterations", "300", int) == 300
    assert coerce_option("iterations", 300.0, int) == 300
    for bad in ("abc", 2.7, "2.7", True):
        with pytest.raises(OptionError, match="'iterations' takes an integer"):
            coerce_option("iterations", bad, int)


def test_optional_integers_take_none() -> None:
    assert coerce_option("seed", "none", int | None) is None
    assert coerce_option("seed", None, int | None) is None
    assert coerce_option("seed", "7", int | None) == 7
    with pytest.raises(OptionError, match="'seed' takes an integer or none, got 1.5"):
        coerce_option("seed", 1.5, int | None)


def test_numbers_are_finite() -> None:
    assert coerce_option("lr", "1e-3", float) == pytest.approx(1e-3)
    assert coerce_option("lr", 2, float) == 2.0
    for bad in ("nan", "inf", "fast", False):
        with pytest.raises(OptionError, match="'lr' takes a number"):
            coerce_option("lr", bad, float)


def test_methods_store_the_declared_types() -> None:
    o = get_method("mmsr", trim_memory="off", compile="no", seed="none", iterations="12",
                   lr="0.001", bf16="false").options
    assert (o.trim_memory, o.compile, o.seed, o.iterations, o.lr, o.bf16) == (
        False, False, None, 12, 0.001, "off")
    assert get_method("guided-filter", radius="3", eps="0.01").options.radius == 3


def test_run_config_holds_typed_options() -> None:
    cfg = RunConfig(scale=4, method="mmsr", method_options={"iterations": "30", "compile": "off"})
    assert cfg.options == {"iterations": 30, "compile": False}
    with pytest.raises(OptionError, match="'width' takes an integer, got 3.5"):
        RunConfig(scale=4, method="mmsr", method_options={"width": 3.5})
