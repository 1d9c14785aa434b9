"""``dask.distributed`` clients for the tile tasks: an existing scheduler or a LocalCluster.

::

    with dask_client(scheduler="tcp://10.0.0.5:8786") as client:   # dask scheduler + workers
        pipeline.run(..., client=client)
    with dask_client(cluster_workers=2) as client:                  # LocalCluster, 2 processes
        pipeline.run(..., client=client)

Worker processes are started with the ``spawn`` method (torch must not be forked once it has
started threads or CUDA), with one thread each by default: a learned method already keeps
a core busy per tile (and geosr runs one learned tile at a time per process anyway). When
``gpu`` is true and this machine has CUDA GPUs, each local worker offers
``resources={"GPU": 1}``, which the tile tasks of learned methods then ask for.

Remote workers must see the inputs and the output folder (the tile store) under the same
absolute paths (a shared filesystem), and run the same geosr version.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from geosr.errors import OptionError, import_extra

logger = logging.getLogger(__name__)


def _local_gpus() -> int:
    try:
        import torch

        return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
    except Exception:  # pragma: no cover - torch without CUDA support
        return 0


@contextlib.contextmanager
def dask_client(
    *,
    scheduler: str | None = None,
    cluster_workers: int | None = None,
    threads_per_worker: int = 1,
    gpu: bool = False,
) -> Iterator[Any]:
    """Yield a ``distributed.Client`` (or None when neither option is given)."""
    if scheduler and cluster_workers:
        raise OptionError(
            "--scheduler and --cluster-workers exclude each other: connect to an existing "
            "scheduler or start a local cluster, not both"
        )
    if not scheduler and not cluster_workers:
        yield None
        return
    import dask

    feature = "--scheduler" if scheduler else "--cluster-workers"
    distributed = import_extra("distributed", "cluster", f"{feature} (dask.distributed)")
    Client, LocalCluster = distributed.Client, distributed.LocalCluster

    # distributed logs every connection at INFO; keep that for -v -v (geosr at DEBUG)
    if not logging.getLogger("geosr").isEnabledFor(logging.DEBUG):
        logging.getLogger("distributed").setLevel(logging.WARNING)

    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except OSError as exc:
            raise OptionError(
                f"cannot reach the dask scheduler at {scheduler!r} ({exc}); start it with "
                "`dask scheduler` and pass its address, e.g. --scheduler tcp://host:8786"
            ) from exc
        with client:
            logger.info("connected to %s (%d workers)", scheduler,
                        len(client.scheduler_info().get("workers", {})))
            yield client
        return
    if cluster_workers is not None and cluster_workers < 1:
        raise OptionError(f"--cluster-workers must be >= 1, got {cluster_workers}")
    resources = {"GPU": 1} if gpu and _local_gpus() > 0 else None
    with dask.config.set({"distributed.worker.multiprocessing-method": "spawn"}):
        cluster = LocalCluster(
            n_workers=cluster_workers,
            threads_per_worker=threads_per_worker,
            processes=True,
            dashboard_address=":0",  # no fixed port 8787 to collide on
            resources=resources,
            silence_logs=logging.ERROR,
        )
        with cluster, Client(cluster) as client:
            logger.info("started a LocalCluster of %d worker processes", cluster_workers)
            yield client
