"""Durable storage for Raft state: a segmented write-ahead log, snapshot files, and an
in-memory twin with an exact crash model for the simulator.

The public API is `Storage` (the protocol the node runtime uses), its two
implementations `FileStorage` and `MemoryStorage`, `RecoveredState`, `Cipher` and the
typed errors. Everything else is internal.
"""

from accord.storage.errors import (
    CipherRequired,
    CorruptionError,
    LimitExceeded,
    StorageError,
    StorageFailed,
    StorageLocked,
)
from accord.storage.file import FileStorage
from accord.storage.memory import MemoryStorage
from accord.storage.protocol import Cipher, RecoveredState, Storage

__all__ = [
    "Cipher",
    "CipherRequired",
    "CorruptionError",
    "FileStorage",
    "LimitExceeded",
    "MemoryStorage",
    "RecoveredState",
    "Storage",
    "StorageError",
    "StorageFailed",
    "StorageLocked",
]
