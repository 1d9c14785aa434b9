"""The output lock: one writer per output, a refusal naming the holder, no stale blocks."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from geosr.errors import OutputBusyError
from geosr.raster.lock import lock_path, output_lock


def test_output_lock__second_holder_refused_with_pid_and_host(tmp_path: Path) -> None:
    out = tmp_path / "out.tif"
    with output_lock(out) as path:
        assert path == lock_path(out) == tmp_path / "out.tif.lock"
        with pytest.raises(OutputBusyError) as info, output_lock(out):
            pass
        assert path.exists()  # the refused run leaves the holder's lock alone
    msg = str(info.value)
    assert f"another geosr run is writing {out}" in msg
    assert f"pid {os.getpid()} on host {socket.gethostname()}, since " in msg
    assert "choose another -o" in msg
    assert not lock_path(out).exists()  # removed by its holder


def test_output_lock__held_by_another_process(tmp_path: Path) -> None:
    out = tmp_path / "out.tif"
    code = ("import sys, time; from geosr.raster.lock import output_lock\n"
            "with output_lock(sys.argv[1]):\n"
            "    print('locked', flush=True); sys.stdin.readline()\n")
    child = subprocess.Popen([sys.executable, "-c", code, str(out)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2])
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "locked"
        with pytest.raises(OutputBusyError, match=f"pid {child.pid} on host"), \
                output_lock(out):
            pass
    finally:
        child.communicate("\n", timeout=30)
    with output_lock(out):  # free again once the holder is gone
        pass


def test_output_lock__stale_file_of_a_dead_run_does_not_block(tmp_path: Path) -> None:
    out = tmp_path / "out.tif"
    stale = {"pid": 999999, "host": "elsewhere", "since": "2020-01-01T00:00:00+00:00"}
    lock_path(out).write_text(json.dumps(stale))  # a killed run's file: no process holds it
    with output_lock(out) as path:
        mine = json.loads(path.read_text())
        assert mine["pid"] == os.getpid() and mine["host"] == socket.gethostname()
    assert not lock_path(out).exists()


def test_output_lock__released_when_the_block_raises(tmp_path: Path) -> None:
    out = tmp_path / "out.tif"
    with pytest.raises(RuntimeError), output_lock(out):
        raise RuntimeError("boom")
    assert not lock_path(out).exists()
    with output_lock(out):
        pass
