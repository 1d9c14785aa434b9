"""Packaging: the ``rio geosr`` plugin, the optional extras and their messages, and what a
classical run imports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import tomllib
from click.testing import CliRunner

from geosr.cli.main import cli
from geosr.cluster import dask_client
from geosr.errors import MissingExtraError
from tests.cli.test_sr import base_args

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def _env(**extra: str) -> dict[str, str]:
    paths = [*extra.pop("PYTHONPATH", "").split(os.pathsep), str(REPO)]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p), **extra}


# -- rio plugin --------------------------------------------------------------------------
def test_rio_plugin__entry_point_is_the_geosr_group():
    eps = PYPROJECT["project"]["entry-points"]["rasterio.rio_plugins"]
    assert eps == {"geosr": "geosr.cli.main:cli"}
    assert cli.name == "geosr"  # the name rio lists it under


def test_rio_plugin__rio_lists_and_runs_it(tmp_path, scene):
    """The entry point of pyproject.toml in a throwaway distribution on the path (the
    shared environment is left alone), as ``pip install`` would register it."""
    dist = tmp_path / "site" / "geosr_rio_probe-0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: geosr-rio-probe\nVersion: 0\n")
    eps = PYPROJECT["project"]["entry-points"]["rasterio.rio_plugins"]
    (dist / "entry_points.txt").write_text(
        "[rasterio.rio_plugins]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()))
    rio = [sys.executable, "-c", "from rasterio.rio.main import main_group; main_group()"]
    env = _env(PYTHONPATH=str(tmp_path / "site"))
    listed = subprocess.run([*rio, "--help"], env=env, capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    assert any(line.split()[:1] == ["geosr"] for line in listed.stdout.splitlines())
    out = tmp_path / "out.tif"
    res = subprocess.run([*rio, "geosr", "sr", *map(str, base_args(scene, out))], env=env,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert out.is_file()


# -- extras ------------------------------------------------------------------------------
def _requirements(extra: str) -> list[str]:
    return PYPROJECT["project"]["optional-dependencies"][extra]


def test_extras__test_pulls_in_every_extra_and_core_lacks_them():
    extras = {"cluster": "distributed", "report": "matplotlib", "stac": "pystac"}
    for extra, package in extras.items():
        assert any(r.startswith(package) for r in _requirements(extra))
        assert not any(r.startswith(package) for r in PYPROJECT["project"]["dependencies"])
    (self_ref,) = [r for r in _requirements("test") if r.startswith("geosr[")]
    assert set(self_ref[len("geosr["):-1].split(",")) == set(extras)


def _missing(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    for name in modules:  # `import name` now raises ImportError, as when not installed
        monkeypatch.setitem(sys.modules, name, None)


def test_extras__cluster_without_distributed_names_the_extra(monkeypatch):
    _missing(monkeypatch, "distributed")
    with pytest.raises(MissingExtraError, match=r'pip install "geosr\[cluster\]"'):
        with dask_client(cluster_workers=1):
            pass
    with dask_client() as client:  # no cluster asked for: nothing needed
        assert client is None


def _sr(scene: dict[str, Any], *extra: str) -> Any:
    out = scene["dir"] / "out.tif"
    return out, CliRunner().invoke(cli, ["sr", *map(str, base_args(scene, out)), *extra])


@pytest.mark.parametrize(("module", "extra", "flags"), [
    ("distributed", "cluster", ["--cluster-workers", "1"]),
    ("pystac", "stac", ["--stac"]),
    ("matplotlib", "report", ["--quicklook", "ql.png"]),
])
def test_extras__sr_without_the_extra_exits_1_before_any_work(monkeypatch, scene, module,
                                                               extra, flags):
    _missing(monkeypatch, module)
    monkeypatch.chdir(scene["dir"])
    before = set(os.listdir(scene["dir"]))
    out, res = _sr(scene, *flags)
    assert res.exit_code == 1, res.output
    assert f'pip install "geosr[{extra}]"' in " ".join(res.output.split())
    assert set(os.listdir(scene["dir"])) == before  # nothing written


def test_extras__batch_without_pystac_says_no_stac(monkeypatch, tmp_path, scene):
    _missing(monkeypatch, "pystac")
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"lr,guide,output\n{scene['lr']},{scene['guide']},{tmp_path}/o.tif\n")
    args = ["batch", str(manifest), "--scale", "4", "--method", "bicubic", "-q"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 1 and 'pip install "geosr[stac]"' in res.output
    assert "--no-stac" in res.output and not (tmp_path / "o.tif").exists()
    res = CliRunner().invoke(cli, [*args, "--no-stac"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "o.tif").is_file()


def test_extras__batch_cluster_without_distributed_names_the_extra(monkeypatch, tmp_path,
                                                                   scene):
    _missing(monkeypatch, "distributed")
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"lr,guide,output\n{scene['lr']},{scene['guide']},{tmp_path}/o.tif\n")
    res = CliRunner().invoke(cli, ["batch", str(manifest), "--scale", "4", "--no-stac",
                                   "--cluster-workers", "1"])
    assert res.exit_code == 1 and 'pip install "geosr[cluster]"' in res.output
    assert not (tmp_path / "o.tif").exists()


def test_extras__eval_report_without_matplotlib_fails_first(monkeypatch, tmp_path):
    _missing(monkeypatch, "matplotlib")
    res = CliRunner().invoke(cli, ["eval", str(tmp_path / "nowhere"), "--report",
                                   str(tmp_path / "rep")])
    assert res.exit_code == 1 and 'pip install "geosr[report]"' in res.output
    assert not (tmp_path / "rep").exists()


# -- what a classical run imports --------------------------------------------------------
_PROBE = """
import atexit, sys
def report():
    heavy = ("torch", "distributed", "dask.distributed", "matplotlib", "pystac")
    print("LOADED", sorted(m for m in heavy if m in sys.modules), file=sys.stderr)
atexit.register(report)
from geosr.cli.main import cli
cli(sys.argv[1:], prog_name="geosr")
"""


@pytest.mark.parametrize("method", ["lanczos", "bicubic", "guided-filter"])
def test_classical_run__imports_neither_torch_nor_distributed(scene, method):
    out = scene["dir"] / f"{method}.tif"
    args = [str(a) for a in base_args(scene, out, **{"--method": method})]
    res = subprocess.run([sys.executable, "-c", _PROBE, "sr", *args, "--guard", "off"],
                         env=_env(), capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert out.is_file()
    assert "LOADED []" in res.stderr, res.stderr
