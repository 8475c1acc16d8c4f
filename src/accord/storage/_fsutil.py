"""Small file-system helpers: durable syncs, full writes, the directory lock.

Why `fdatasync` is enough for the WAL on Linux: it flushes the file's data and the
metadata needed to read that data back, which includes the file size when an append
grew it. It skips only timestamps. Appending to a growing file is therefore made
durable by `fdatasync` alone; what it does not cover is the directory entry of a new
file, hence `sync_dir()` after creating, renaming or removing files.

macOS's `fsync` does not reach the platter; `F_FULLFSYNC` does. Other systems without
`fdatasync` get `fsync`.
"""

from __future__ import annotations

import fcntl
import os
import sys
from pathlib import Path

from accord.storage.errors import StorageLocked

_OPEN_FLAGS_DIR = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)


_DARWIN = sys.platform == "darwin"
_HAS_FDATASYNC = hasattr(os, "fdatasync")


def sync_file(fd: int) -> None:
    """Make the data (and size) of an open file durable."""
    if _DARWIN:
        fcntl.fcntl(fd, getattr(fcntl, "F_FULLFSYNC", 51))
    elif _HAS_FDATASYNC:
        os.fdatasync(fd)
    else:
        os.fsync(fd)


def sync_dir(path: Path) -> None:
    """Make creations, renames and removals of entries in `path` durable."""
    fd = os.open(path, _OPEN_FLAGS_DIR)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """`os.write` until all of `data` is written (a regular file may take less)."""
    written = os.write(fd, data)
    if written == len(data):
        return
    view = memoryview(data)[written:]
    while view:
        written = os.write(fd, view)
        view = view[written:]


def make_dirs(path: Path) -> None:
    """Create `path` and its missing parents, syncing each new entry's parent."""
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        directory.mkdir(exist_ok=True)
        sync_dir(directory.parent)


class DirectoryLock:
    """An exclusive `flock` on `DIR/LOCK`, held while the storage is open.

    flock locks belong to the open file description: the kernel drops it when the
    process dies (even by SIGKILL), so a crash never leaves a stale lock behind.
    """

    def __init__(self, directory: Path) -> None:
        self._path = directory / "LOCK"
        self._fd: int | None = os.open(
            self._path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644
        )
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            self._fd = None
            raise StorageLocked(str(directory)) from None

    @staticmethod
    def held(directory: Path) -> bool:
        """Whether some process holds the lock on `directory` right now."""
        path = directory / "LOCK"
        if not path.exists():
            return False
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
