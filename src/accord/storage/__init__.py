"""Durable storage for Raft state: a segmented write-ahead log, snapshot files, and an
in-memory twin with an exact crash model for the simulator.

The public API is `Storage` (the protocol the node runtime uses for one Raft group),
its two implementations `FileStorage` and `MemoryStorage`; `HostStorage` (every
group of a node on one log: one record and one fsync per batch of groups' writes),
its two implementations `FileHostStorage` and `MemoryHostStorage`, `GroupWrite`, and
`GroupView` (one group of a host as a `Storage`); `RecoveredState`, `Cipher`, the
`DirectoryLock` an open storage holds on its directory (`accord storage` checks it)
and the typed errors. Everything else is internal.
"""

from accord.storage._fsutil import DirectoryLock
from accord.storage.errors import (
    CipherRequired,
    CorruptionError,
    LimitExceeded,
    StorageError,
    StorageFailed,
    StorageLocked,
)
from accord.storage.file import FileHostStorage, FileStorage
from accord.storage.memory import MemoryHostStorage, MemoryStorage
from accord.storage.protocol import Cipher, GroupWrite, HostStorage, RecoveredState, Storage
from accord.storage.view import GroupView

__all__ = [
    "Cipher",
    "CipherRequired",
    "CorruptionError",
    "DirectoryLock",
    "FileHostStorage",
    "FileStorage",
    "GroupView",
    "GroupWrite",
    "HostStorage",
    "LimitExceeded",
    "MemoryHostStorage",
    "MemoryStorage",
    "RecoveredState",
    "Storage",
    "StorageError",
    "StorageFailed",
    "StorageLocked",
]
