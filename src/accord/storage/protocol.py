"""The `Storage` protocol: how the node runtime makes Raft state durable.

Theory of operation
-------------------
Raft needs three things to survive a crash: the hard state (term, vote, commit), the
log, and the latest snapshot. The Raft core never touches files; it hands the driver a
`Ready`, and the driver calls `save()` once per Ready, before sending anything that
promises durability (vote grants, append acknowledgements). `save()` returns only once
everything it was given is on stable storage.

The state a `Storage` holds is always: a snapshot (or none), the entries after it
(contiguous), and a hard state. `save()` changes it in the order a Ready prescribes:

1. `snapshot` (if given) is installed: the log becomes empty after it;
2. `entries` are appended; an entry at an index already in the log replaces that entry
   and everything after it (a follower's conflicting suffix);
3. `hard_state` (if given) replaces the hard state.

All of it becomes durable together with one fsync of the log (installing a snapshot
also pays for the snapshot file's own fsyncs, which must come first). If the process
dies inside `save()`, recovery yields the state before the call, the state after it,
or (only where an implementation documents it) the state after a prefix of the
appended entries; never anything else.

Locally taken snapshots go through `save_snapshot()` (the log is unchanged; the
snapshot must cover committed entries) and `compact(index)` then allows entries up to
`index` to be dropped. Compaction is invisible to `load()`, which only returns entries
after the snapshot; it exists to reclaim space.

Misuse (a gap in the log, replacing a committed entry, a decreasing term, voting twice
in a term, compacting past the snapshot) raises `InvariantError`: the core has a bug.
Operating conditions raise `StorageError` subclasses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from accord.raft.types import Entry, HardState, RecoveredState, Snapshot

__all__ = ["Cipher", "RecoveredState", "Storage"]


class Cipher(Protocol):
    """Authenticated encryption applied to record payloads (encryption at rest).

    `associated` is data bound to the ciphertext but not stored in it (the record's
    position); `open()` must fail with any exception when the ciphertext or the
    associated data were altered, or the key is wrong. A cipher may add at most
    `CIPHER_OVERHEAD_BYTES_MAX` bytes.
    """

    def seal(self, plaintext: bytes, associated: bytes) -> bytes: ...

    def open(self, ciphertext: bytes, associated: bytes) -> bytes: ...


class Storage(Protocol):
    """Durable Raft state; see the module docstring for the full contract.

    Lifecycle: `load()` exactly once, then any number of `save()`, `save_snapshot()`
    and `compact()` calls, then `close()`. Calls are not thread-safe; the runtime makes
    them from one task.
    """

    def load(self) -> RecoveredState:
        """Recover the durable state. Raises `CorruptionError` when the data cannot be
        trusted (damage before the tail; no snapshot that connects to the log)."""
        ...

    def save(
        self,
        hard_state: HardState | None,
        entries: Sequence[Entry],
        snapshot: Snapshot | None = None,
        *,
        sync: bool = True,
    ) -> None:
        """Install `snapshot`, append `entries`, set `hard_state`, in that order, with
        one fsync of the log; return once durable. `None` / empty means "unchanged".
        `sync=False` (only a new commit index, which Raft can recover) writes without
        the fsync: a crash may lose that write, and the next synced save makes it
        durable with itself. Raises `LimitExceeded` (nothing written) for a batch over
        `BATCH_BYTES_MAX`."""
        ...

    def save_snapshot(self, snapshot: Snapshot) -> None:
        """Durably store a locally taken snapshot of committed state; the log is kept."""
        ...

    def compact(self, index: int) -> None:
        """Allow entries up to `index` (at most the snapshot's index) to be dropped."""
        ...

    def close(self) -> None:
        """Release files and locks. Idempotent. Everything saved stays durable."""
        ...
