"""The QGIS Processing script: argv builder and progress parser (plain Python), and a slow
test that runs the algorithm inside a real headless QGIS (python3-qgis) when available."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "workflows" / "qgis" / "geosr_processing.py"
SYSTEM_PYTHON = "/usr/bin/python3"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("geosr_processing", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_build_argv__dem_and_thermal() -> None:
    m = load_script()
    argv = m.build_argv("/opt/geosr", kind="dem-sr", lr="/d/dsm.tif", guide="/d/rgb.tif",
                        output="/d/out.tif", scale=4, method="guided-filter")
    assert argv[:2] == ["/opt/geosr", "dem-sr"]
    assert argv[argv.index("--scale") + 1] == "4" and argv[argv.index("-o") + 1] == "/d/out.tif"
    assert ["--progress", "json"] == argv[argv.index("--progress"):argv.index("--progress") + 2]
    argv = m.build_argv("geosr", kind="thermal-sr", lr="l.tif", guide="g.tif", output="o.tif",
                        scale=2, method="mmsr", lr_band=10, guide_bands=[3, 2, 1],
                        iterations=200, device="cpu", seed=1, method_options={"width": 8})
    for pair in (["--lr-band", "10"], ["--guide-bands", "3,2,1"], ["--iterations", "200"],
                 ["--device", "cpu"], ["--seed", "1"], ["-O", "width=8"]):
        i = argv.index(pair[0])
        assert argv[i:i + 2] == pair
    with pytest.raises(ValueError, match="method"):
        m.build_argv("geosr", kind="dem-sr", lr="a", guide="b", output="c", scale=4,
                     method="magic")
    assert "--mode" not in argv and "--network" not in argv  # tile mode: nothing added
    with pytest.raises(ValueError, match="mode"):
        m.build_argv("geosr", kind="dem-sr", lr="a", guide="b", output="c", scale=4,
                     mode="tiles")


def test_build_argv__network_files_run_through_the_cli(tmp_path: Path) -> None:
    """The QGIS algorithm's mode and network-file parameters make a command line that
    `geosr dem-sr` runs: one scene saves its network, a second run starts from it."""
    from click.testing import CliRunner

    from geosr.cli.main import cli
    from geosr.raster.example import write_example

    m = load_script()
    p = write_example(tmp_path, size=16, scale=4)
    net = str(tmp_path / "net.pt")
    common = {"kind": "dem-sr", "lr": p["lr"], "guide": p["guide"], "scale": 4,
              "method": "mmsr", "iterations": 2, "method_options": {"width": 8}}
    argv = m.build_argv("geosr", output=str(tmp_path / "a.tif"), mode="scene",
                        save_network=net, **common)
    assert argv[argv.index("--mode") + 1] == "scene"
    assert argv[argv.index("--save-network") + 1] == net
    r = CliRunner().invoke(cli, argv[1:])
    assert r.exit_code == 0, r.output
    argv = m.build_argv("geosr", output=str(tmp_path / "b.tif"), mode="hybrid",
                        network=net, **common)
    r = CliRunner().invoke(cli, argv[1:])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "b.tif").is_file()


def test_progress_parser__chunks_logs_and_errors() -> None:
    m = load_script()
    p = m.ProgressParser()
    stream = (
        'WARNING rasterio: something\n{"event": "stage", "stage": "stats", "percent": 2.0}\n'
        '{"event": "tiles", "done": 1, "total": 2, "percent": 47.5}\n{"event": "tiles", "do'
    )
    events = []
    for i in range(0, len(stream), 7):  # arbitrary chunk boundaries
        events += p.feed(stream[i:i + 7].encode())
    assert [e["event"] for e in events] == ["stage", "tiles"] and p.percent == 47.5
    events = p.feed('ne": 2, "total": 2, "percent": 90.0}\n{"event": "done", "percent": 100}\n')
    assert p.percent == 100 and p.done and len(events) == 2
    assert p.log == ["WARNING rasterio: something"]
    p = m.ProgressParser()
    p.feed(b'{"event": "error", "message": "the LR file \'x\' does not exist; check the path", '
           b'"exit_code": 2, "percent": 0.0}\nUsage: geosr dem-sr [OPTIONS]\n')
    assert p.failure_message(2) == "the LR file 'x' does not exist; check the path"
    p = m.ProgressParser()
    p.feed("Traceback (most recent call last):\nSegmentation fault")
    assert p.failure_message(139).startswith("geosr exited with status 139: Traceback")


def test_progress_parser__reads_real_cli_events(tmp_path: Path) -> None:
    """The parser understands what `geosr dem-sr --progress json` actually writes."""
    from click.testing import CliRunner

    from geosr.cli.main import cli
    from geosr.raster.example import write_example

    m = load_script()
    p = write_example(tmp_path, size=16, scale=4)
    argv = m.build_argv("geosr", kind="dem-sr", lr=p["lr"], guide=p["guide"],
                        output=str(tmp_path / "o.tif"), scale=4, method="bicubic")
    r = CliRunner().invoke(cli, argv[1:])
    assert r.exit_code == 0, r.output
    parser = m.ProgressParser()
    parser.feed(r.stderr)
    assert parser.done and parser.percent == 100 and parser.error is None


def _has_qgis() -> bool:
    if not Path(SYSTEM_PYTHON).exists():
        return False
    r = subprocess.run([SYSTEM_PYTHON, "-c", "import qgis.core"], capture_output=True,
                       env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    return r.returncode == 0


RUNNER = textwrap.dedent("""
    import json, sys
    from qgis.core import QgsApplication, QgsProcessingFeedback, QgsProcessingException
    app = QgsApplication([], False)
    app.initQgis()
    sys.path.append("/usr/share/qgis/python/plugins")
    from processing.core.Processing import Processing
    Processing.initialize()
    import processing
    from processing.script import ScriptUtils
    alg = ScriptUtils.loadAlgorithm("geosr_processing", sys.argv[1])
    alg.initAlgorithm()
    params = json.loads(sys.argv[2])

    cancel_at = params.pop("CANCEL_AT", None)
    seen = []

    class Feedback(QgsProcessingFeedback):
        # the script calls setProgress from Python (from QgsBlockingProcess's reader thread)
        def setProgress(self, p):
            seen.append(p)
            super().setProgress(p)
            if cancel_at is not None and p >= cancel_at:
                self.cancel()

    fb = Feedback()
    out = {"name": alg.name()}
    try:
        res = processing.run(alg, params, feedback=fb)
        out["result"] = res
    except QgsProcessingException as exc:
        out["error"] = str(exc)
    out["progress"] = seen
    out["canceled"] = fb.isCanceled()
    print("RESULT " + json.dumps(out))
""")


def run_in_qgis(params: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    exe = shutil.which("geosr") or str(Path(sys.executable).parent / "geosr")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "GEOSR_EXECUTABLE": exe,
           "OMP_NUM_THREADS": "1", "XDG_RUNTIME_DIR": str(tmp_path)}
    env.pop("PYTHONPATH", None)
    r = subprocess.run([SYSTEM_PYTHON, "-c", RUNNER, str(SCRIPT), json.dumps(params)],
                       capture_output=True, text=True, env=env, timeout=300)
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
    assert line, r.stdout + r.stderr
    return json.loads(line[-1][len("RESULT "):])


@pytest.mark.slow
@pytest.mark.skipif(not _has_qgis(), reason="QGIS (python3-qgis) is not installed")
def test_qgis__algorithm_runs_reports_progress_errors_and_cancels(tmp_path: Path) -> None:
    from geosr.raster.example import write_example

    p = write_example(tmp_path, size=32, scale=4)
    out = tmp_path / "out.tif"
    base = {"KIND": 0, "LR": p["lr"], "GUIDE": p["guide"], "SCALE": 4, "METHOD": 3,
            "OUTPUT": str(out)}
    res = run_in_qgis(base, tmp_path)
    assert res["name"] == "geosr_superresolution" and "error" not in res, res
    assert res["result"]["OUTPUT"] == str(out) and out.exists()
    assert res["progress"][-1] == 100 and any(0 < v < 100 for v in res["progress"])
    # a CLI error becomes a QgsProcessingException with geosr's message
    bad = run_in_qgis({**base, "GUIDE": p["lr"], "OUTPUT": str(tmp_path / "bad.tif")},
                      tmp_path)
    assert "image band" in bad.get("error", ""), bad
    # cancel: the process is killed, no output appears
    slow = {**base, "METHOD": 0, "ITERATIONS": 500, "OUTPUT": str(tmp_path / "c.tif"),
            "CANCEL_AT": 5}
    c = run_in_qgis(slow, tmp_path)
    assert c["canceled"] and not (tmp_path / "c.tif").exists(), c
    # scene mode saves its network; a hybrid run starts from it
    net = tmp_path / "net.pt"
    learned = {**base, "METHOD": 0, "ITERATIONS": 3}
    a = run_in_qgis({**learned, "MODE": 1, "SAVE_NETWORK": str(net),
                     "OUTPUT": str(tmp_path / "a.tif")}, tmp_path)
    assert "error" not in a and net.is_file(), a
    b = run_in_qgis({**learned, "MODE": 2, "NETWORK": str(net),
                     "OUTPUT": str(tmp_path / "b.tif")}, tmp_path)
    assert "error" not in b and (tmp_path / "b.tif").is_file(), b
