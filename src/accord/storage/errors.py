"""Typed errors for operating conditions met by storage.

A caller that misuses the API (appending with a gap, compacting past the snapshot)
gets `InvariantError` from `accord.invariant` instead: that is a bug, not a condition.
"""

from __future__ import annotations

from accord.errors import AccordError


class StorageError(AccordError):
    """Base class of storage failures."""

    code = "storage_error"


class CorruptionError(StorageError):
    """Data on disk is damaged in a way recovery must not paper over.

    `path` names the file (or directory) and `offset` the byte where the damage starts,
    when there is one; `reason` says what was wrong.
    """

    code = "storage_corrupt"

    def __init__(self, path: str, offset: int | None, reason: str) -> None:
        self.path = path
        self.offset = offset
        self.reason = reason
        where = path if offset is None else f"{path} at byte {offset}"
        super().__init__(f"corrupt storage: {where}: {reason}")


class LimitExceeded(StorageError):
    """A write was refused because it exceeds a bound from `accord.storage.limits`."""

    code = "storage_limit_exceeded"

    def __init__(
        self, what: str, size_bytes: int, limit_bytes: int, *, unit: str = "bytes"
    ) -> None:
        self.what = what
        self.size_bytes = size_bytes
        """The size refused, in `unit` (bytes unless said otherwise, e.g. groups)."""
        self.limit_bytes = limit_bytes
        self.unit = unit
        super().__init__(f"{what} is {size_bytes} {unit}; the limit is {limit_bytes} {unit}")


class StorageLocked(StorageError):
    """Another process (or another open storage in this one) holds the directory."""

    code = "storage_locked"

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"storage directory {path} is in use by another process")


class StorageFailed(StorageError):
    """An earlier I/O error left the on-disk state unknown; the storage refuses further
    writes. After a failed write or fsync the kernel may already have dropped the dirty
    pages, so retrying could report success for data that never reached the disk. The
    node must restart, which re-reads the files and repairs the tail."""

    code = "storage_failed"


class CipherRequired(StorageError):
    """The files are encrypted and no cipher was configured to read them."""

    code = "storage_cipher_required"

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"{path} is encrypted; configure the cipher to open it")
