"""One writer per output: an exclusive OS lock on ``<output>.lock`` held for a whole run.

A run takes the lock before it touches the output, its temporary files or its tile store
``<output>.tiles/`` and keeps it until the output is renamed into place (or the run fails);
a second run on the same output is refused at once (it does not wait), naming the run that
holds it. The lock is the operating system's (``flock`` on POSIX, which NFS forwards to its
lock manager; ``msvcrt.locking`` on Windows), so it dies with its process: a lock file left
behind by a killed run never blocks. The file is removed when the run ends.

Where the filesystem offers no locks (an NFS mount without a lock manager, some FUSE
filesystems) the run goes on unlocked, with a warning.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from geosr.errors import OutputBusyError, RasterIOError

logger = logging.getLogger(__name__)

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

#: errors of a lock request that mean "someone else holds it"
_BUSY = {errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK, getattr(errno, "EDEADLOCK", -1)}
#: Windows locks a byte range; the holder's description is written before it
_WIN_LOCK_OFFSET = 1 << 20


def lock_path(output: str | os.PathLike[str]) -> Path:
    """The lock file of ``output``: ``<output>.lock`` next to it."""
    out = Path(output)
    return out.with_name(out.name + ".lock")


def _try_lock(fd: int) -> bool:
    """Take the exclusive lock without waiting; False when another process holds it."""
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:  # pragma: no cover - Windows
            import msvcrt

            os.lseek(fd, _WIN_LOCK_OFFSET, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError as exc:
        if exc.errno in _BUSY:
            return False
        raise
    return True


def _holder(fd: int) -> str:
    """The description the lock's holder wrote: ``pid N on host H, since T``."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        info = json.loads(os.read(fd, 4096).decode())
        return f"pid {info['pid']} on host {info['host']}, since {info['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "its process is starting"


def _describe(fd: int) -> None:
    info = {"pid": os.getpid(), "host": socket.gethostname(),
            "since": dt.datetime.now().astimezone().isoformat(timespec="seconds")}
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, json.dumps(info).encode())


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the file open as ``fd`` (the previous holder removes
    the lock file as it releases it; a lock on the removed file guards nothing)."""
    try:
        a, b = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _acquire(path: Path, output: Path) -> int | None:
    """The open, locked lock file; None where the filesystem has no locks."""
    for _ in range(20):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise RasterIOError(
                f"cannot create the lock file {path} ({exc.strerror}); check that the output "
                "folder is writable"
            ) from exc
        try:
            locked = _try_lock(fd)
        except OSError as exc:  # no locks on this filesystem
            os.close(fd)
            logger.warning("cannot lock %s (%s): nothing stops another geosr run from writing "
                           "%s at the same time", path, exc.strerror, output)
            with contextlib.suppress(OSError):
                path.unlink()
            return None
        if not locked:
            holder = _holder(fd)
            os.close(fd)
            raise OutputBusyError(
                f"another geosr run is writing {output} ({holder}); wait for it or choose "
                "another -o"
            )
        if _same_file(fd, path):
            _describe(fd)
            return fd
        os.close(fd)  # locked a file its holder had just removed: take the new one
    raise RasterIOError(f"cannot take the lock {path}: it keeps being replaced; retry")


@contextlib.contextmanager
def output_lock(output: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold ``<output>.lock`` exclusively for the ``with`` block, or raise
    :class:`~geosr.errors.OutputBusyError` at once when another run holds it.

    The output's folder must exist. The lock file is removed on the way out."""
    out = Path(output)
    path = lock_path(out)
    fd = _acquire(path, out)
    try:
        yield path
    finally:
        if fd is not None:
            _release(fd, path)


def _release(fd: int, path: Path) -> None:
    if fcntl is not None:  # remove it while holding the lock: no one locks a stale file
        if _same_file(fd, path):
            path.unlink(missing_ok=True)
        os.close(fd)
    else:  # pragma: no cover - Windows: an open file cannot be removed
        os.close(fd)
        with contextlib.suppress(OSError):
            path.unlink()
