"""``compile=true``: the training steps through torch.compile give the eager result."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import geosr
from geosr.errors import OptionError

needs_compiler = pytest.mark.skipif(
    not any(shutil.which(c) for c in ("c++", "g++", "clang++")),
    reason="torch.compile on CPU needs a C++ compiler",
)


def _pair(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    guide = rng.random((3, 32, 32)).astype(np.float32)
    lr = guide.mean(0).reshape(8, 4, 8, 4).mean((1, 3))[None] * 10.0
    return lr, guide


@needs_compiler
def test_compile__same_prediction_as_eager(rng: np.random.Generator) -> None:
    lr, guide = _pair(rng)
    kw = {"iterations": 3, "preset": "dem", "width": 16}
    eager = geosr.super_resolve(lr, guide, 4, method="mmsr", **kw)
    compiled = geosr.super_resolve(lr, guide, 4, method="mmsr", compile=True, **kw)
    assert not np.array_equal(eager, geosr.super_resolve(lr, guide, 4, method="bicubic"))
    np.testing.assert_allclose(compiled, eager, atol=2e-3 * float(np.ptp(eager)))


def test_compile__without_a_compiler_names_the_fix(rng: np.random.Generator,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    lr, guide = _pair(rng)
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    with pytest.raises(OptionError, match="C\\+\\+ compiler.*compile off"):
        geosr.super_resolve(lr, guide, 4, method="mmsr", iterations=2, compile=True)
