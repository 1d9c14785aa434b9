"""On-disk tile store: ``<output>.tiles/``, one ``.npy`` per finished tile.

Tiles are written to a temporary name, flushed to disk (``fsync``) and renamed into place,
so a tile file exists only once it is complete; a ``<key>.npy.sha256`` sidecar (digest and
size, written after the tile) marks it finished. A tile without its sidecar, or whose size
or SHA-256 does not match (a crash between the two writes, a truncated or corrupt file), is
not finished: ``has`` deletes it and the tile is recomputed. Stale temporary files of a
killed run are removed when the store is reopened.

A ``manifest.json`` records a fingerprint of the plan; a store whose fingerprint matches is
reused (its finished tiles are not recomputed), a store of another plan is cleared. A
non-empty folder without a manifest is never touched.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from geosr.errors import RasterIOError
from geosr.raster.atomic import atomic_write

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
#: suffix of the per-tile sidecar holding ``"<sha256 hex> <size>"``
CHECKSUM = ".sha256"


def store_path(output: str | os.PathLike[str]) -> Path:
    """The store folder that belongs to ``output``."""
    out = Path(output)
    return out.with_name(out.name + ".tiles")


class TileStore:
    """A folder of finished HR tiles keyed by ``Tile.key``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    # -- lifecycle ---------------------------------------------------------------------
    def open(self, fingerprint: str) -> int:
        """Create or reuse the store for a plan; return the number of reusable tiles."""
        manifest = self.path / MANIFEST
        if self.path.exists():
            if manifest.exists():
                try:
                    old = json.loads(manifest.read_text()).get("fingerprint")
                except (OSError, ValueError):
                    old = None
                if old == fingerprint:
                    for stale in self.path.glob(".*.tmp"):  # a killed run's partial writes
                        stale.unlink(missing_ok=True)
                    n = len(list(self.path.glob(f"*.npy{CHECKSUM}")))
                    logger.info("reusing tile store %s (%d finished tiles)", self.path, n)
                    return n
                logger.info("clearing tile store %s of another plan", self.path)
                shutil.rmtree(self.path)
            elif any(self.path.iterdir()):
                raise RasterIOError(
                    f"{self.path} exists and is not a geosr tile store; move or delete it, "
                    "or choose another output name"
                )
        try:
            self.path.mkdir(parents=False, exist_ok=True)
            self._write_atomic(manifest, json.dumps({"fingerprint": fingerprint}).encode())
        except OSError as exc:
            raise RasterIOError(
                f"cannot create the tile store {self.path}: {exc}; check that the output "
                "folder is writable"
            ) from exc
        return 0

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def remove_if_store(self) -> None:
        """Remove the folder only if it is a geosr tile store (has a manifest)."""
        if (self.path / MANIFEST).exists():
            self.remove()

    # -- tiles -------------------------------------------------------------------------
    def _tile_path(self, key: str) -> Path:
        return self.path / f"{key}.npy"

    def _sum_path(self, key: str) -> Path:
        return self.path / f"{key}.npy{CHECKSUM}"

    def has(self, key: str, *, verify: bool = True) -> bool:
        """True when tile ``key`` is finished and intact (size and, if ``verify``, SHA-256
        match its sidecar). A partial or corrupt tile is deleted (so it is recomputed)."""
        p, sp = self._tile_path(key), self._sum_path(key)
        if not p.exists():
            return False
        try:
            digest, size = sp.read_text().split()
            ok = p.stat().st_size == int(size)
            if ok and verify:
                ok = hashlib.sha256(p.read_bytes()).hexdigest() == digest
        except (OSError, ValueError):
            ok = False
        if not ok:
            logger.warning("tile %s in %s is incomplete or corrupt; recomputing it", key,
                           self.path)
            sp.unlink(missing_ok=True)
            p.unlink(missing_ok=True)
        return ok

    def put(self, key: str, array: np.ndarray) -> None:
        """Write one tile atomically: temp file, ``fsync``, ``os.replace``, then its sidecar."""
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
        data = buf.getvalue()
        self._sum_path(key).unlink(missing_ok=True)
        self._write_atomic(self._tile_path(key), data, sync=True)
        self._write_atomic(
            self._sum_path(key), f"{hashlib.sha256(data).hexdigest()} {len(data)}\n".encode()
        )

    def get(self, key: str) -> np.ndarray | None:
        """The tile as a read-only memory map, or None when it is absent (skipped tile)."""
        p = self._tile_path(key)
        if not p.exists() or not self._sum_path(key).exists():
            return None
        return np.load(p, mmap_mode="r", allow_pickle=False)

    def _write_atomic(self, target: Path, data: bytes, *, sync: bool = False) -> None:
        atomic_write(target, data, sync=sync)

    def put_json(self, name: str, obj: Any) -> None:
        self._write_atomic(self.path / name, json.dumps(obj).encode())
