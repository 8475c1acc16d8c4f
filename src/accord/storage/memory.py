"""`MemoryHostStorage` and `MemoryStorage`: the in-memory twins of `FileHostStorage`
and `FileStorage`, for the deterministic simulator.

Theory of operation
-------------------
`MemoryHostStorage` holds what a disk would, per group: the durable state (hard
state, snapshot, log), plus the writes that reached the page cache but were not
synced yet. `write(writes)` queues one batch (the file WAL writes one record per
save, whatever groups it touches); `sync()` makes the whole queue durable (one
simulated fsync, counted in `sync_count`); `save()` is `write()` then `sync()`.
Creating or destroying a group is durable at once and costs one sync, which also
makes the queue durable, as the WAL's record and fsync for it would. A locally taken
snapshot is durable at once (the file version fsyncs the snapshot file). Pure: no
clock, no I/O, no global randomness; the simulator passes its seeded RNG to
`crash()`.

Three ways a node stops, as the simulator needs them:

- `close()`: the process stops cleanly. Unsynced writes stay in the page cache.
- `crash(rng)`: power is cut. The durable state survives. The queued batches are
  laid end to end as one sequence of group writes, in order, across all groups; a
  random prefix of it reached the disk (their snapshot installs and entries survive)
  and the write after that prefix was torn, so it and everything after it is lost,
  in every group. The cut may fall inside a batch, so one batch may survive for some
  groups and not others: harsher than the file WAL (which keeps or loses a batch
  whole), and exactly the `HostStorage` contract. A hard state survives only if it
  was synced: the surviving writes keep their entries but not their hard states,
  which is the harshest outcome Raft must tolerate (a vote or term is only promised
  once synced).
- after either, the next `groups()` or `load()` is a restart: what is read back is
  made durable first, as `FileHostStorage` does (it syncs what it recovered, because
  a killed process may have left it in the page cache only), and every group must be
  loaded again.

Every state this produces is one the file WAL could produce under a more
fine-grained record layout, and all are safe for Raft.

`MemoryStorage` is group 0 of a `MemoryHostStorage` that has it from the start, with
the single-group calls (`write`, `sync`, `crash`, `durable`, ...) of the simulator.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from accord.invariant import InvariantError, invariant
from accord.raft.types import Entry, HardState, Snapshot
from accord.storage.errors import LimitExceeded
from accord.storage.limits import GROUPS_MAX, SNAPSHOT_DATA_BYTES_MAX
from accord.storage.model import (
    LEGACY_GROUP,
    Batch,
    LogModel,
    LogShape,
    apply_writes,
    check_group_id,
    prepare_writes,
    recover_state,
)
from accord.storage.protocol import GroupWrite, HostStorage, RecoveredState, Storage


@dataclass(frozen=True, slots=True)
class _Write:
    group: int
    batch: Batch
    snapshot: Snapshot | None


@dataclass(slots=True)
class _Disk:
    """One group's durable state, and its shape once loaded."""

    hard_state: HardState = field(default_factory=HardState)
    snapshot: Snapshot | None = None
    log: LogModel = field(default_factory=LogModel)
    shape: LogShape | None = None

    def apply(self, write: _Write, *, keep_hard_state: bool) -> None:
        snapshot = write.snapshot
        if snapshot is not None and (
            self.snapshot is None or snapshot.index >= self.snapshot.index
        ):
            self.snapshot = snapshot
        self.log.apply(write.batch)
        if keep_hard_state and write.batch.hard_state is not None:
            self.hard_state = write.batch.hard_state


class MemoryHostStorage:
    """`HostStorage` in memory with an exact crash model (module docstring).

    `groups` exist from the start, as on a disk formatted with them.
    """

    def __init__(self, groups: Iterable[int] = ()) -> None:
        self._disks: dict[int, _Disk] = {}
        for group in groups:
            check_group_id(group)
            self._disks[group] = _Disk()
        self._pending: list[list[_Write]] = []
        self._open = False
        """Recovered since the last stop (close or crash)."""
        self._sync_count = 0

    @property
    def unsynced_writes(self) -> int:
        """Queued batches (`write()` calls that changed something) a power cut could
        lose right now."""
        return len(self._pending)

    @property
    def sync_count(self) -> int:
        """How many syncs made something durable (the simulated disk's fsyncs)."""
        return self._sync_count

    def durable(self, group: int, index: int, term: int) -> bool:
        """Whether the entry (`index`, `term`) of `group` would survive a power cut
        right now: synced in the log, or covered by the durable snapshot."""
        disk = self._disks.get(group)
        if disk is None:
            return False
        if disk.snapshot is not None and index <= disk.snapshot.index:
            return True
        first = disk.log.first
        if first is None or not first <= index < first + len(disk.log.entries):
            return False
        return disk.log.entries[index - first].term == term

    # --- groups ------------------------------------------------------------------------

    def groups(self) -> frozenset[int]:
        self._restart_once()
        return frozenset(self._disks)

    def create_group(self, group: int) -> None:
        check_group_id(group)
        self._restart_once()
        invariant(group not in self._disks, f"create_group({group}): the group exists")
        if len(self._disks) >= GROUPS_MAX:
            raise LimitExceeded("groups", len(self._disks) + 1, GROUPS_MAX, unit="groups")
        self._flush()
        self._disks[group] = _Disk()
        self._sync_count += 1

    def destroy_group(self, group: int) -> None:
        self._restart_once()
        invariant(group in self._disks, f"destroy_group({group}): no such group")
        self._flush()
        del self._disks[group]
        self._sync_count += 1

    # --- one group's state -------------------------------------------------------------

    def load(self, group: int) -> RecoveredState:
        self._restart_once()
        disk = self._disks.get(group)
        if disk is None:
            raise InvariantError(f"load({group}): no such group")
        invariant(disk.shape is None, "load() called twice without close() or crash()")
        snapshots = [disk.snapshot] if disk.snapshot is not None else []
        state = recover_state(disk.hard_state, disk.log, snapshots, log_name="memory")
        # Keep exactly what was recovered: a snapshot that was ahead of the log (its
        # entries were lost unsynced) must not let later appends land on the stale log.
        disk.hard_state = state.hard_state
        disk.log = LogModel()
        if state.snapshot is not None:
            disk.log.apply(Batch(reset=(state.snapshot.index, state.snapshot.term)))
        disk.log.apply(Batch(entries=tuple(state.entries)))
        disk.shape = LogShape.of(state)
        return state

    def save(self, writes: Sequence[GroupWrite], *, sync: bool = True) -> None:
        self.write(writes)
        if sync:
            self.sync()

    def write(self, writes: Sequence[GroupWrite]) -> None:
        """Like `save()`, but nothing is durable until `sync()`."""
        invariant(self._open, "write before load()")
        prepared = prepare_writes(writes, self._shape_of)
        if not prepared:
            return
        self._pending.append([_Write(w.group, w.batch, w.snapshot) for w in prepared])
        apply_writes(prepared, self._shape_of)

    def sync(self) -> None:
        """Make every write so far durable (one simulated fsync, if any were pending)."""
        invariant(self._open, "sync before load()")
        if self._pending:
            self._flush()
            self._sync_count += 1

    def save_snapshot(self, group: int, snapshot: Snapshot) -> None:
        shape = self._shape_of(group)
        shape.check_snapshot(snapshot)
        if len(snapshot.data) > SNAPSHOT_DATA_BYTES_MAX:
            raise LimitExceeded("snapshot data", len(snapshot.data), SNAPSHOT_DATA_BYTES_MAX)
        disk = self._disks[group]
        # Durable at once, like the file version (which fsyncs the snapshot file).
        if disk.snapshot is None or snapshot.index >= disk.snapshot.index:
            disk.snapshot = snapshot
        shape.snapshot_index = snapshot.index

    def compact(self, group: int, index: int) -> None:
        self._shape_of(group).check_compact(index)
        disk = self._disks[group]
        durable_snapshot_index = disk.snapshot.index if disk.snapshot is not None else 0
        disk.log.compact(min(index, durable_snapshot_index))

    def close(self) -> None:
        """Stop cleanly: unsynced writes stay in the simulated page cache."""
        self._open = False

    def crash(self, rng: random.Random) -> None:
        """Cut the power (see the module docstring); the next call restarts."""
        if self._pending:
            queued = [write for batch in self._pending for write in batch]
            reached_disk = rng.randrange(len(queued) + 1)
            for write in queued[:reached_disk]:
                self._disks[write.group].apply(write, keep_hard_state=False)
            self._pending.clear()
        self._open = False

    # --- internals ---------------------------------------------------------------------

    def _restart_once(self) -> None:
        if self._open:
            return
        if self._pending:  # a clean stop: the page cache is read back and synced
            self._flush()
            self._sync_count += 1
        for disk in self._disks.values():
            disk.shape = None
        self._open = True

    def _flush(self) -> None:
        for batch in self._pending:
            for write in batch:
                self._disks[write.group].apply(write, keep_hard_state=True)
        self._pending.clear()

    def _shape_of(self, group: int) -> LogShape:
        invariant(self._open, "write before load()")
        disk = self._disks.get(group)
        if disk is None:
            raise InvariantError(f"group {group} does not exist")
        if disk.shape is None:
            raise InvariantError(f"group {group} written before load()")
        return disk.shape


class MemoryStorage:
    """`Storage` in memory with an exact crash model: group 0 of a `MemoryHostStorage`
    (see the module docstring)."""

    def __init__(self) -> None:
        self._host = MemoryHostStorage(groups=(LEGACY_GROUP,))

    @property
    def host(self) -> MemoryHostStorage:
        return self._host

    @property
    def unsynced_writes(self) -> int:
        """Writes a power cut could lose right now."""
        return self._host.unsynced_writes

    def durable(self, index: int, term: int) -> bool:
        """Whether the entry (`index`, `term`) would survive a power cut right now:
        synced in the log, or covered by the durable snapshot."""
        return self._host.durable(LEGACY_GROUP, index, term)

    @property
    def sync_count(self) -> int:
        """How many syncs made something durable (the simulated disk's fsyncs)."""
        return self._host.sync_count

    def load(self) -> RecoveredState:
        return self._host.load(LEGACY_GROUP)

    def save(
        self,
        hard_state: HardState | None,
        entries: Sequence[Entry],
        snapshot: Snapshot | None = None,
        *,
        sync: bool = True,
    ) -> None:
        self.write(hard_state, entries, snapshot)
        if sync:
            self.sync()

    def write(
        self,
        hard_state: HardState | None,
        entries: Sequence[Entry],
        snapshot: Snapshot | None = None,
    ) -> None:
        """Like `save()`, but nothing is durable until `sync()`."""
        self._host.write((GroupWrite(LEGACY_GROUP, hard_state, tuple(entries), snapshot),))

    def sync(self) -> None:
        """Make every write so far durable (one simulated fsync, if any were pending)."""
        self._host.sync()

    def save_snapshot(self, snapshot: Snapshot) -> None:
        self._host.save_snapshot(LEGACY_GROUP, snapshot)

    def compact(self, index: int) -> None:
        self._host.compact(LEGACY_GROUP, index)

    def close(self) -> None:
        """Stop cleanly: unsynced writes stay in the simulated page cache."""
        self._host.close()

    def crash(self, rng: random.Random) -> None:
        """Cut the power (see the module docstring); then `load()` to restart."""
        self._host.crash(rng)


if TYPE_CHECKING:  # the classes implement the protocols (checked by mypy, not at run time)

    def _host(storage: MemoryHostStorage) -> HostStorage:
        return storage

    def _single(storage: MemoryStorage) -> Storage:
        return storage
