"""``trim_memory``: freed heap pages go back to the system each step, results unchanged."""

from __future__ import annotations

import platform

import numpy as np
import pytest

import geosr
from geosr import memory
from geosr.models import optimize


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_trim__glibc_malloc_trim_is_found() -> None:
    trim = memory.malloc_trim()
    assert trim is not None
    trim()  # callable, returns normally


@pytest.mark.parametrize("method", ["mmsr", "robself-re"])
def test_trim__same_result_and_called_twice_per_step(
    method: str, tiny_pair: tuple[np.ndarray, np.ndarray, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    lr, guide, scale = tiny_pair
    kw = {"iterations": 3, "preset": "dem", "width": 16, "device": "cpu"}  # the CPU heap
    calls: list[int] = []
    monkeypatch.setattr(memory, "malloc_trim", lambda: lambda: calls.append(1))
    trimmed = geosr.super_resolve(lr, guide, scale, method=method, **kw)
    assert len(calls) == 2 * kw["iterations"]  # after each forward pass and each update
    calls.clear()
    kept = geosr.super_resolve(lr, guide, scale, method=method, trim_memory=False, **kw)
    assert calls == []
    np.testing.assert_array_equal(trimmed, kept)


def test_trim__not_on_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """GPU memory is the caching allocator's: the loop does not trim the host heap there."""
    import torch

    calls: list[int] = []
    monkeypatch.setattr(memory, "malloc_trim", lambda: lambda: calls.append(1))
    optimize.tidier(optimize.OptimConfig(), torch.device("cuda"))()
    assert calls == []
    optimize.tidier(optimize.OptimConfig(), torch.device("cpu"))()
    assert calls == [1]
