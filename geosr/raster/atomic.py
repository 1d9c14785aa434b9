"""Atomic file writes with the usual permissions.

``atomic_write(path, data)`` writes ``data`` to a fresh temporary file next to ``path`` and
renames it into place (``os.replace``), so a reader sees the old file or the new one, never
half of one. The temporary file is created with mode ``0o666`` filtered by the process's
umask (and a default ACL, where the folder has one), as ``open(path, "w")`` would: the
result is ``0644`` under the common umask ``022``, not the ``0600`` of
``tempfile.mkstemp``. No umask is read or changed (that would race with other threads).

Every small file geosr writes atomically goes through here: STAC items and collections,
batch status files and reports, the tile store's tiles and sidecars.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

#: permissions asked for; the umask takes bits away, as for any new file
MODE = 0o666


def _create(folder: Path, name: str) -> tuple[int, Path]:
    """A new, empty temporary file ``.<name>.<random>.tmp`` in ``folder``, opened for writing."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = folder / f".{name}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(tmp, flags, MODE), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary file name for {name!r} in {folder}")


def atomic_write(path: str | os.PathLike[str], data: bytes | str, *, sync: bool = False,
                 encoding: str = "utf-8") -> Path:
    """Write ``data`` (text is encoded with ``encoding``) to ``path`` atomically; ``sync``
    flushes it to the disk before the rename. Returns the path. On any error nothing is
    left behind and ``path`` is unchanged."""
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    blob = data.encode(encoding) if isinstance(data, str) else bytes(data)
    fd, tmp = _create(folder, target.name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
            if sync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target
