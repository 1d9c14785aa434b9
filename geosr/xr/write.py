"""Writing a lazy result block by block in bounded memory."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from geosr.models import get_method_class
from geosr.pipeline.config import TilingConfig
from geosr.raster.io import gdal_env
from geosr.raster.lock import output_lock
from geosr.xr.schedule import compute_by_rows


# -- writing -------------------------------------------------------------------------------
def _block_side(chunks: Sequence[int]) -> int:
    """Largest GeoTIFF block side (16..512) that divides every chunk but the last."""
    inner = [int(c) for c in chunks[:-1]] or [int(chunks[0])]
    for side in (512, 256, 128, 64, 32, 16):
        if all(c % side == 0 for c in inner):
            return side
    return 256


def _default_workers(hr: Any) -> int | None:
    """The pipeline's default number of tiles at once for the method of ``hr``, if known."""

    method = hr.attrs.get("GEOSR_METHOD")
    try:
        deterministic = bool(get_method_class(method).deterministic)
    except Exception:  # not a geosr result, or an unknown method
        return None
    return TilingConfig().resolve(deterministic=deterministic, halo=0)[2]


@contextlib.contextmanager
def _locked(path: Any) -> Iterator[None]:
    """The output's lock (:mod:`geosr.raster.lock`) while a file on a local filesystem is
    written; nothing for GDAL virtual paths (``/vsimem/``, ``/vsis3/``), URLs and open
    files."""
    local = isinstance(path, (str, os.PathLike)) and not str(path).startswith("/vsi") \
        and "://" not in str(path) and Path(path).parent.is_dir()
    if not local:
        yield
        return
    with output_lock(path):
        yield


def to_raster(
    hr: Any,
    path: Any,
    *,
    lock: Any = None,
    num_workers: int | None = None,
    **kwargs: Any,
) -> None:
    """Write ``hr`` (a :func:`super_resolve_xr` result) to a tiled GeoTIFF, block by block.

    A dask-backed ``hr`` is computed a few output blocks (chunks) at a time in row-major
    order with dask's threaded scheduler (:func:`compute_by_rows`), each block written as
    soon as it is ready under ``lock`` (default: a new ``threading.Lock``), so memory stays
    bounded whatever the raster's size (``benchmarks/pipeline/xr_memory.py``);
    ``hr.rio.to_raster(path)`` alone would compute the whole array first. ``num_workers``
    threads run the tiles (default: the CLI's ``--workers`` default for the method of
    ``hr``). ``kwargs`` go to ``hr.rio.to_raster`` (GDAL creation options such as
    ``compress="DEFLATE"``); the GeoTIFF's blocks default to the largest size that divides
    the chunks, so no block is written twice. A numpy-backed ``hr`` is written by windows.
    Like ``geosr sr``, it holds the lock ``<path>.lock`` while it writes: a second writer of
    the same path raises :class:`~geosr.errors.OutputBusyError`.
    """
    with _locked(path):
        _write(hr, path, lock=lock, num_workers=num_workers, **kwargs)


def _write(hr: Any, path: Any, *, lock: Any, num_workers: int | None, **kwargs: Any) -> None:
    import threading

    import dask


    lazy = dask.is_dask_collection(hr.data)
    kwargs.setdefault("tiled", True)
    if not lazy:
        kwargs.setdefault("windowed", True)
        with gdal_env():
            hr.rio.to_raster(path, **kwargs)
        return
    if kwargs.get("tiled"):
        chunks = dict(zip(hr.dims, hr.chunks, strict=True))
        kwargs.setdefault("blockysize", _block_side(chunks[hr.rio.y_dim]))
        kwargs.setdefault("blockxsize", _block_side(chunks[hr.rio.x_dim]))
    workers = num_workers if num_workers is not None else _default_workers(hr)
    with gdal_env():
        stored = hr.rio.to_raster(path, lock=lock or threading.Lock(), compute=False, **kwargs)
        # as many output blocks per call as tiles run at once: each call keeps only the
        # tiles later blocks need
        per_call = max(1, workers or os.cpu_count() or 1)
        compute_by_rows(stored, axis=hr.dims.index(hr.rio.y_dim), num_workers=workers,
                        per_call=per_call)
