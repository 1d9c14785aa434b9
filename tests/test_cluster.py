"""Tile tasks on dask.distributed: a real LocalCluster, GPU resources, option checks."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from geosr import pipeline
from geosr.cli.main import cli
from geosr.errors import OptionError
from geosr.pipeline.config import OutputConfig, RunConfig, TilingConfig

MMSR = {"width": 8, "iterations": 5, "seed": 3, "device": "cpu"}


def test_local_cluster__two_processes_byte_identical_to_threads(scene: dict[str, Any]) -> None:
    import dask

    from geosr.cluster import dask_client

    kw: dict[str, Any] = {"scale": 4, "method": "mmsr", "method_options": MMSR,
                          "tiling": TilingConfig(tile_size=24), "output": OutputConfig()}
    threaded = scene["dir"] / "threads.tif"
    s1 = pipeline.run(scene["lr"], scene["guide"], threaded, RunConfig(**kw))
    out = scene["dir"] / "cluster.tif"
    with dask_client(cluster_workers=2) as client:
        assert dask.config.get("distributed.worker.multiprocessing-method") == "spawn"
        info = client.scheduler_info()["workers"]
        assert len(info) == 2 and all(w["nthreads"] == 1 for w in info.values())
        s2 = pipeline.run(scene["lr"], scene["guide"], out, RunConfig(**kw), client=client)
        pids = set(client.run(lambda: __import__("os").getpid()).values())
    assert len(pids) == 2 and __import__("os").getpid() not in pids
    assert s2["tiles"] == s1["tiles"] and s1["tiles"]["done"] > 2
    assert out.read_bytes() == threaded.read_bytes()


class _FakeClient:
    def __init__(self, *resources: dict[str, float]) -> None:
        self.workers = {f"tcp://w{i}": {"resources": r} for i, r in enumerate(resources)}

    def scheduler_info(self) -> dict[str, Any]:
        return {"workers": self.workers}


def test_tile_resources__gpu_for_learned_methods(scene: dict[str, Any]) -> None:
    def plan(method: str, **opts: Any) -> Any:
        return pipeline.make_plan(scene["lr"], scene["guide"], RunConfig(scale=4, method=method, method_options=opts))

    gpu, cpu = _FakeClient({"GPU": 1}, {}), _FakeClient({}, {})
    assert pipeline.tiles.tile_resources(plan("mmsr"), gpu) == {"GPU": 1}
    assert pipeline.tiles.tile_resources(plan("mmsr", device="cpu"), gpu) is None
    assert pipeline.tiles.tile_resources(plan("guided-filter"), gpu) is None
    assert pipeline.tiles.tile_resources(plan("mmsr"), cpu) is None
    with pytest.raises(OptionError, match="--resources GPU=1"):
        pipeline.tiles.tile_resources(plan("mmsr", device="cuda"), cpu)


def test_sr__scheduler_and_cluster_workers_exclusive(scene: dict[str, Any]) -> None:
    r = CliRunner().invoke(cli, ["sr", "--lr", scene["lr"], "--guide", scene["guide"],
                                 "--scale", "4", "-o", str(scene["dir"] / "o.tif"),
                                 "--scheduler", "tcp://127.0.0.1:1", "--cluster-workers", "2"])
    assert r.exit_code == 2 and "exclude each other" in r.output


def test_sr__scheduler_address_of_a_running_cluster(scene: dict[str, Any]) -> None:
    """`--scheduler ADDRESS` against a separately started scheduler + worker process."""
    from distributed import LocalCluster

    base = ["sr", "--method", "guided-filter", "--lr", scene["lr"], "--guide", scene["guide"],
            "--scale", "4", "--tile-size", "24", "-q"]
    local = scene["dir"] / "local.tif"
    assert CliRunner().invoke(cli, [*base, "-o", str(local)]).exit_code == 0
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        remote = scene["dir"] / "remote.tif"
        r = CliRunner().invoke(cli, [*base, "-o", str(remote), "--scheduler",
                                     cluster.scheduler_address])
        assert r.exit_code == 0, r.output
    assert remote.read_bytes() == local.read_bytes()
