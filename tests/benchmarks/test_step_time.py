"""``benchmarks/speed_and_memory/step_time.py``: the per-step timings in docs/benchmarks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "speed_and_memory" / "step_time.py"


def test_step_time__precision_flags_pair_each_variant_with_its_floor() -> None:
    cmd = [sys.executable, str(SCRIPT), "--size", "32", "--steps", "1", "--warmup", "0",
           "--bf16", "off", "--variants", "mmsr,mmsr:none,mmsr+bf16,mmsr:none+bf16"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert [x["bf16"] for x in res["results"]] == [False, False, True, True]
    assert set(res["ratio_to_floor"]) == {"mmsr", "mmsr+bf16"}
    by = {x["variant"]: x["seconds_per_step_median"] for x in res["results"]}
    for name in ("mmsr", "mmsr+bf16"):
        floor = by[name.replace("mmsr", "mmsr:none")]
        assert res["ratio_to_floor"][name] == round(by[name] / floor, 3)


def test_step_time__chunk_flags_set_the_limits_for_the_variant_only(monkeypatch) -> None:
    """``+cudachunks`` times the CPU with CUDA's chunk limits and ``+chunksN`` with N MB,
    then the CPU's limits are put back."""
    import importlib.util

    from geosr.models import layers

    spec = importlib.util.spec_from_file_location("step_time", SCRIPT)
    step_time = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(step_time)
    seen = []
    chunks = layers._FusedLocalAttention._chunks

    def spy(*args):
        seen.append((layers._CHUNK_BYTES, layers._CHUNK_BLOCKS))
        return chunks(*args)

    monkeypatch.setattr(layers._FusedLocalAttention, "_chunks", staticmethod(spy))
    before = (layers._CHUNK_BYTES, layers._CHUNK_BLOCKS)
    res = step_time.time_steps("mmsr+cudachunks", 32, 4, None, 1, 0, torch.device("cpu"), False)
    assert res["variant"] == "mmsr+cudachunks"
    assert seen and set(seen) == {(layers._CUDA_CHUNK_BYTES, layers._CUDA_CHUNK_BLOCKS)}
    assert (layers._CHUNK_BYTES, layers._CHUNK_BLOCKS) == before
    seen.clear()
    step_time.time_steps("mmsr+chunks0.5", 32, 4, None, 1, 0, torch.device("cpu"), False)
    assert set(seen) == {(2**19, 2**30)}  # N MB, blocks not capped
    assert (layers._CHUNK_BYTES, layers._CHUNK_BLOCKS) == before


def test_step_time__trim_flag_calls_malloc_trim_twice_a_step(monkeypatch) -> None:
    """``+trim`` releases heap pages after the forward pass and after the update, as the
    fit loop does; the plain variant never does."""
    import importlib.util

    from geosr import memory

    spec = importlib.util.spec_from_file_location("step_time", SCRIPT)
    step_time = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(step_time)
    calls = []
    monkeypatch.setattr(memory, "malloc_trim", lambda: lambda: calls.append(1))
    step_time.time_steps("mmsr", 32, 4, None, 2, 1, torch.device("cpu"), False)
    assert calls == []
    res = step_time.time_steps("mmsr+trim", 32, 4, None, 2, 1, torch.device("cpu"), False)
    assert len(calls) == 2 * 3 and res["variant"] == "mmsr+trim"
