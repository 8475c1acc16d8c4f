"""A simulated disk for one node: what was synced survives a crash, nothing else.

Writes land in a volatile buffer; `sync()` makes them durable. `crash()` throws the
buffer away, except that (as a real disk may) a random prefix of the unsynced log
appends survives, its last record possibly torn and dropped. Unsynced hard state
never survives.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from accord.raft import Entry, HardState, RecoveredState, Snapshot


@dataclass(slots=True)
class _Durable:
    hard_state: HardState = field(default_factory=HardState)
    snapshot: Snapshot | None = None
    entries: list[Entry] = field(default_factory=list)

    def append(self, entries: list[Entry]) -> None:
        for entry in entries:
            first = self.snapshot.index + 1 if self.snapshot else 1
            invariant_ok = first <= entry.index <= first + len(self.entries)
            if not invariant_ok:
                raise AssertionError(f"disk append leaves a gap at {entry.index}")
            del self.entries[entry.index - first :]
            self.entries.append(entry)


class SimDisk:
    def __init__(self) -> None:
        self._durable = _Durable()
        self._pending: list[tuple[HardState | None, Snapshot | None, list[Entry]]] = []
        self.syncs = 0

    def write(
        self, hard_state: HardState | None, snapshot: Snapshot | None, entries: list[Entry]
    ) -> None:
        self._pending.append((hard_state, snapshot, entries))

    def sync(self) -> None:
        for hard_state, snapshot, entries in self._pending:
            self._apply(hard_state, snapshot, entries)
        self._pending = []
        self.syncs += 1

    def _apply(
        self, hard_state: HardState | None, snapshot: Snapshot | None, entries: list[Entry]
    ) -> None:
        if snapshot is not None:
            self._durable.snapshot = snapshot
            self._durable.entries = []
        self._durable.append(entries)
        if hard_state is not None:
            self._durable.hard_state = hard_state

    def save_snapshot(self, snapshot: Snapshot) -> None:
        """A locally taken snapshot: written, synced and renamed atomically."""
        durable = self._durable
        if durable.snapshot is not None and snapshot.index <= durable.snapshot.index:
            return
        first = durable.snapshot.index + 1 if durable.snapshot else 1
        durable.entries = durable.entries[snapshot.index - first + 1 :]
        durable.snapshot = snapshot

    def crash(self, rng: random.Random) -> None:
        survivors = [e for _, snap, es in self._pending if snap is None for e in es]
        if survivors and not any(snap for _, snap, _ in self._pending) and rng.random() < 0.5:
            # The OS wrote part of the buffer before power went: a prefix survives,
            # and the last record of that prefix is torn.
            keep = rng.randrange(len(survivors))
            self._durable.append(survivors[:keep])
        self._pending = []

    def recover(self) -> RecoveredState:
        d = self._durable
        return RecoveredState(d.hard_state, d.snapshot, tuple(d.entries))
