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

Many groups, one log
--------------------
A node process hosts many Raft groups (a `RaftCore` each, told apart by their group
id). `HostStorage` is the same contract per group, for all of them on one write-ahead
log: `save(writes)` takes a `GroupWrite` (one Ready's persistent part) per group and
makes all of them durable with one WAL record and one fsync, however many groups
they touch. Each write is applied in the order given, with exactly the semantics and
the checks of `Storage.save()` for its group (a group may appear more than once; each
write then sees the state the previous ones left). Any misuse or limit in any write
raises before anything is written.

What a crash inside `save(writes)` (or before the sync of `sync=False` saves) may
leave, per the contract: the writes of the unsynced saves, in order, up to some point
and none after it; each single write is kept whole or lost whole. Each group
therefore recovers the state before or after each of its own writes, which is all a
Raft group needs (nothing was acknowledged before the fsync returned). No group may
rely on another group's write surviving with its own: `FileHostStorage` happens to
keep every save whole or lose it whole (one record), while `MemoryHostStorage`
tears between the writes of one save too, so the simulator exercises the weaker
contract.

Groups: `create_group(g)` and `destroy_group(g)` are durable when they return (each
is one WAL record and one fsync, which also makes every earlier unsynced save
durable). Creating a group that exists, or destroying or writing one that does not,
is `InvariantError`. A group id may be created again after its group was destroyed:
the new group starts empty (nothing of the old one is ever recovered into it); when an
id may safely be reused is for the host to decide. Lifecycle: after opening (and
after each restart), `groups()` names the groups recovered; `load(g)` is called
exactly once for each group before it is written, a freshly created one included (it
returns the empty state).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from accord.raft.types import Entry, HardState, RecoveredState, Snapshot

__all__ = ["Cipher", "GroupWrite", "HostStorage", "RecoveredState", "Storage"]


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


@dataclass(frozen=True, slots=True)
class GroupWrite:
    """One group's part of a `HostStorage.save()`: what `Storage.save()` takes, for
    `group`. `None` / empty means "unchanged"."""

    group: int
    hard_state: HardState | None = None
    entries: tuple[Entry, ...] = ()
    snapshot: Snapshot | None = None


class HostStorage(Protocol):
    """Durable Raft state of every group a node hosts, on one log; see the module
    docstring ("Many groups, one log"). Not thread-safe: one caller at a time."""

    def groups(self) -> frozenset[int]:
        """The groups with durable state: created and not destroyed. The first call
        after opening recovers the log (`CorruptionError` when it cannot be trusted)."""
        ...

    def create_group(self, group: int) -> None:
        """Durably create an empty group; `InvariantError` if it exists. Raises
        `LimitExceeded` when `GROUPS_MAX` groups exist already."""
        ...

    def destroy_group(self, group: int) -> None:
        """Durably destroy a group: nothing of it is recovered again, its snapshots
        are deleted, and the log segments only it needed can be reclaimed."""
        ...

    def load(self, group: int) -> RecoveredState:
        """Recover one group's state, as `Storage.load()`: once per group per open."""
        ...

    def save(self, writes: Sequence[GroupWrite], *, sync: bool = True) -> None:
        """Apply every write in order with one WAL record and (if `sync`) one fsync;
        return once durable. A write's snapshot is installed as `Storage.save()`
        installs one (its file is durable before the record). Raises `LimitExceeded`
        (nothing written) when the writes together exceed `HOST_BATCH_BYTES_MAX`."""
        ...

    def save_snapshot(self, group: int, snapshot: Snapshot) -> None:
        """As `Storage.save_snapshot()`, for `group`."""
        ...

    def compact(self, group: int, index: int) -> None:
        """As `Storage.compact()`, for `group`: a log segment is reclaimed only when no
        group needs anything in it."""
        ...

    def close(self) -> None:
        """Release files and locks. Idempotent. Everything saved stays durable."""
        ...
