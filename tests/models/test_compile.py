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
    # CPU, float32 (bf16 autocast, the default on CUDA and on CPUs with AVX512-BF16,
    # rounds differently by kernel). A tiny learning rate: Adam's first steps move every weight by about ``lr``
    # whatever the gradient's size, so a rounding-level gradient difference near zero can
    # flip a step and, at a normal rate, change the fit by more than any fixed tolerance
    # (seen with 16 threads). Forward and backward still run through the compiled graph.
    kw = {"iterations": 3, "preset": "dem", "width": 16, "device": "cpu", "bf16": "off",
          "lr": 1e-7}
    eager = geosr.get_method("mmsr", **kw)(lr, guide, 4)
    compiled = geosr.get_method("mmsr", compile=True, **kw)(lr, guide, 4)
    assert not np.array_equal(eager, geosr.super_resolve(lr, guide, 4, method="bicubic"))
    np.testing.assert_allclose(compiled, eager, atol=2e-3 * float(np.ptp(eager)))


def test_compile__without_a_compiler_names_the_fix(rng: np.random.Generator,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    lr, guide = _pair(rng)
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    with pytest.raises(OptionError, match="C\\+\\+ compiler.*compile off"):
        geosr.super_resolve(lr, guide, 4, method="mmsr", iterations=2, compile=True)


@needs_compiler
def test_compile__on_the_cpu_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    import torch

    from geosr.models import optimize
    from geosr.models.settings import OptimConfig

    optimize._warn_cpu_compile.cache_clear()
    model = torch.nn.Conv2d(1, 1, 1)
    with caplog.at_level("WARNING", logger="geosr.models.optimize"):
        optimize._runner(model, OptimConfig(compile=True))
        optimize._runner(model, OptimConfig(compile=True))
    assert [r.message for r in caplog.records].count(caplog.records[0].message) == 1
    assert "meant for CUDA" in caplog.records[0].message
