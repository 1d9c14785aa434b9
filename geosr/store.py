"""On-disk tile store: ``<output>.tiles/``, one ``.npy`` per finished tile.

Tiles are written to a temporary name and renamed into place, so a tile file exists only
once it is complete. A ``manifest.json`` records a fingerprint of the plan; a store whose
fingerprint matches is reused (its finished tiles are not recomputed), a store of another
plan is cleared. A non-empty folder without a manifest is never touched.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .errors import RasterIOError

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"


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
                    n = len(list(self.path.glob("*.npy")))
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

    # -- tiles -------------------------------------------------------------------------
    def _tile_path(self, key: str) -> Path:
        return self.path / f"{key}.npy"

    def has(self, key: str) -> bool:
        return self._tile_path(key).exists()

    def put(self, key: str, array: np.ndarray) -> None:
        """Write one tile atomically (temp file in the store, then ``os.replace``)."""
        fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".npy.tmp", dir=self.path)
        try:
            with os.fdopen(fd, "wb") as f:
                np.save(f, np.ascontiguousarray(array), allow_pickle=False)
            os.replace(tmp, self._tile_path(key))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, key: str) -> np.ndarray | None:
        """The tile as a read-only memory map, or None when it is absent (skipped tile)."""
        p = self._tile_path(key)
        if not p.exists():
            return None
        return np.load(p, mmap_mode="r", allow_pickle=False)

    def _write_atomic(self, target: Path, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def put_json(self, name: str, obj: Any) -> None:
        self._write_atomic(self.path / name, json.dumps(obj).encode())
