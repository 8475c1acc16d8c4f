"""`MemoryStorage`: the in-memory twin of `FileStorage`, for the deterministic simulator.

Theory of operation
-------------------
It holds what a disk would: the durable state (hard state, snapshot, log), plus the
writes that reached the page cache but were not synced yet. `write()` queues one
batch (the file WAL writes one record per save); `sync()` makes the queue durable
(one fsync); `save()` is `write()` then `sync()`. Pure: no clock, no I/O, no global
randomness; the simulator passes its seeded RNG to `crash()`.

Three ways a node stops, as the simulator needs them:

- `close()`: the process stops cleanly. Unsynced writes stay in the page cache.
- `crash(rng)`: power is cut. The durable state survives. Of the unsynced writes a
  random prefix reached the disk (their snapshot installs and entries survive, in
  order) and the write after that prefix was torn, so it and everything after it is
  lost. A hard state survives only if it was synced: the surviving writes keep their
  entries but not their hard states, which is the harshest outcome Raft must
  tolerate (a vote or term is only promised once synced).
- `load()` after either: what is read back is made durable first, as `FileStorage`
  does (it syncs what it recovered, because a killed process may have left it in the
  page cache only).

Compared with `FileStorage`, which keeps or loses each unsynced batch whole, this is
slightly harsher about hard state; every state it produces is one the file WAL could
produce under a more fine-grained record layout, and all are safe for Raft.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from accord.invariant import invariant
from accord.raft.types import Entry, HardState, Snapshot
from accord.storage.errors import LimitExceeded
from accord.storage.limits import SNAPSHOT_DATA_BYTES_MAX
from accord.storage.model import Batch, LogModel, LogShape, prepare_save, recover_state
from accord.storage.protocol import RecoveredState


@dataclass(frozen=True, slots=True)
class _Write:
    batch: Batch
    snapshot: Snapshot | None


class MemoryStorage:
    """`Storage` in memory with an exact crash model. See the module docstring."""

    def __init__(self) -> None:
        self._hard_state = HardState()
        self._snapshot: Snapshot | None = None
        self._log = LogModel()
        self._pending: list[_Write] = []
        self._shape = LogShape()
        self._loaded = False
        self._sync_count = 0

    @property
    def unsynced_writes(self) -> int:
        """Writes a power cut could lose right now."""
        return len(self._pending)

    def durable(self, index: int, term: int) -> bool:
        """Whether the entry (`index`, `term`) would survive a power cut right now:
        synced in the log, or covered by the durable snapshot."""
        if self._snapshot is not None and index <= self._snapshot.index:
            return True
        first = self._log.first
        if first is None or not first <= index < first + len(self._log.entries):
            return False
        return self._log.entries[index - first].term == term

    @property
    def sync_count(self) -> int:
        """How many syncs made something durable (the simulated disk's fsyncs)."""
        return self._sync_count

    def load(self) -> RecoveredState:
        invariant(not self._loaded, "load() called twice without close() or crash()")
        self._flush()
        snapshots = [self._snapshot] if self._snapshot is not None else []
        state = recover_state(self._hard_state, self._log, snapshots, log_name="memory")
        # Keep exactly what was recovered: a snapshot that was ahead of the log (its
        # entries were lost unsynced) must not let later appends land on the stale log.
        self._hard_state = state.hard_state
        self._log = LogModel()
        if state.snapshot is not None:
            self._log.apply(Batch(reset=(state.snapshot.index, state.snapshot.term)))
        self._log.apply(Batch(entries=tuple(state.entries)))
        self._shape = LogShape.of(state)
        self._loaded = True
        return state

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
        invariant(self._loaded, "write before load()")
        batch = prepare_save(self._shape, hard_state, entries, snapshot)
        if batch is None:
            return
        self._pending.append(_Write(batch, snapshot))
        self._shape.apply_save(batch.hard_state, entries, snapshot)

    def sync(self) -> None:
        """Make every write so far durable (one simulated fsync, if any were pending)."""
        invariant(self._loaded, "sync before load()")
        self._flush()

    def save_snapshot(self, snapshot: Snapshot) -> None:
        invariant(self._loaded, "save_snapshot before load()")
        self._shape.check_snapshot(snapshot)
        if len(snapshot.data) > SNAPSHOT_DATA_BYTES_MAX:
            raise LimitExceeded("snapshot data", len(snapshot.data), SNAPSHOT_DATA_BYTES_MAX)
        # Durable at once, like the file version (which fsyncs the snapshot file).
        if self._snapshot is None or snapshot.index >= self._snapshot.index:
            self._snapshot = snapshot
        self._shape.snapshot_index = snapshot.index

    def compact(self, index: int) -> None:
        invariant(self._loaded, "compact before load()")
        self._shape.check_compact(index)
        durable_snapshot_index = self._snapshot.index if self._snapshot is not None else 0
        self._log.compact(min(index, durable_snapshot_index))

    def close(self) -> None:
        """Stop cleanly: unsynced writes stay in the simulated page cache."""
        self._loaded = False

    def crash(self, rng: random.Random) -> None:
        """Cut the power (see the module docstring); then `load()` to restart."""
        if self._pending:
            reached_disk = rng.randrange(len(self._pending) + 1)
            for write in self._pending[:reached_disk]:
                self._apply(write, keep_hard_state=False)
            self._pending.clear()
        self._loaded = False

    def _flush(self) -> None:
        if not self._pending:
            return
        for write in self._pending:
            self._apply(write, keep_hard_state=True)
        self._pending.clear()
        self._sync_count += 1

    def _apply(self, write: _Write, *, keep_hard_state: bool) -> None:
        snapshot = write.snapshot
        if snapshot is not None and (
            self._snapshot is None or snapshot.index >= self._snapshot.index
        ):
            self._snapshot = snapshot
        self._log.apply(write.batch)
        if keep_hard_state and write.batch.hard_state is not None:
            self._hard_state = write.batch.hard_state
