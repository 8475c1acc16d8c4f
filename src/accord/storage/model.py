"""What both storage implementations share: batches, the log they describe, the checks
every `save()` passes, and the choice of the state to recover.

Theory of operation
-------------------
A `Batch` is one `save()`: an optional snapshot install (`reset`: the log restarts
after that index), entries, and an optional hard state. The file WAL writes each batch
as one record; `MemoryStorage` keeps them in a list. Replaying batches in order through
`LogModel.apply()` yields the log: an entry at an index already present replaces it
and everything after it, so a truncation needs no record of its own.

A replay may begin in the middle of history (older segments were compacted away), so
the model only knows the log from `first` on. Whether that is enough is decided by
`recover_state()`, which pairs the model with a snapshot: the log must continue the
snapshot without a gap. Snapshots are tried newest first. The newest may be ahead of
the log when the process died after the snapshot file became durable but before the
WAL record that installs it did; the log after it is then kept only if the log holds
the snapshot's own entry with the same term (otherwise it is dropped, exactly as the
install would have done). An older snapshot must connect exactly, or it is not used:
falling back must never lose entries the log promised.

`LogShape` is the handful of numbers needed to reject misuse (`InvariantError`) before
anything is written: gaps, replacing committed entries, a decreasing term, two votes
in one term, a commit index beyond the log.

Many groups: a WAL record (`WalRecord`) is a list of operations, each naming its
group: `GroupBatch` (one group's batch, as above), `GroupCreated`, `GroupDestroyed`.
The first record of every segment also carries a checkpoint: every group that exists
at that point with its hard state. `HostReplay` replays records into one log model
and hard state per group: a checkpoint sets the set of groups (a replay that begins
after older segments were removed learns the groups, and their hard states, from it),
creating a group starts it empty, destroying it forgets everything replayed for it.
`prepare_writes()` checks a host save's writes, in order, exactly as `prepare_save()`
checks one `save()`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from accord.invariant import invariant
from accord.raft.limits import RAFT_INDEX_MAX, RAFT_NODE_ID_MAX, RAFT_TERM_MAX
from accord.raft.types import NO_NODE, Entry, HardState, Snapshot
from accord.storage.errors import CorruptionError, LimitExceeded
from accord.storage.limits import (
    BATCH_BYTES_MAX,
    HOST_BATCH_BYTES_MAX,
    SNAPSHOT_DATA_BYTES_MAX,
    batch_bytes,
    host_batch_bytes,
)
from accord.storage.protocol import GroupWrite, RecoveredState


@dataclass(frozen=True, slots=True)
class Batch:
    """One `save()` as it is logged: install `reset`, append `entries`, set `hard_state`."""

    hard_state: HardState | None = None
    reset: tuple[int, int] | None = None
    """(index, term) of an installed snapshot: the log is empty after it."""
    entries: tuple[Entry, ...] = ()


class LogModel:
    """The log a sequence of batches describes: `entries[i]` has index `first + i`.

    `first` is None until a batch says anything about the log.
    """

    __slots__ = ("entries", "first")

    def __init__(self) -> None:
        self.first: int | None = None
        self.entries: list[Entry] = []

    @property
    def last(self) -> int | None:
        return None if self.first is None else self.first + len(self.entries) - 1

    def apply(self, batch: Batch) -> None:
        if batch.reset is not None:
            self.first = batch.reset[0] + 1
            self.entries = []
        if not batch.entries:
            return
        start = batch.entries[0].index
        if self.first is None or not self.first <= start <= self.first + len(self.entries):
            # Nothing known before this batch, or a jump: the replay began after older
            # segments were removed. recover_state() checks a snapshot covers the rest.
            self.first = start
            self.entries = list(batch.entries)
            return
        del self.entries[start - self.first :]
        self.entries.extend(batch.entries)

    def compact(self, index: int) -> None:
        """Forget entries up to `index`."""
        if self.first is None or index < self.first:
            return
        del self.entries[: index - self.first + 1]
        self.first = index + 1

    def entries_after(self, index: int, term: int, *, strict: bool) -> list[Entry] | None:
        """The entries after a snapshot at (`index`, `term`), or None when the log does
        not continue that snapshot. Not `strict`: the snapshot may be ahead of the log
        or conflict with it, and then the log after it is empty (see module doc)."""
        if self.first is None:
            return []
        if self.first - 1 > index:
            return None
        if self.first - 1 == index:
            return list(self.entries)
        offset = index - self.first
        if offset >= len(self.entries) or self.entries[offset].term != term:
            return None if strict else []
        return self.entries[offset + 1 :]


@dataclass(slots=True)
class LogShape:
    """The numbers `save()` needs to refuse misuse. Tracks what has been written."""

    hard_state: HardState = dataclasses.field(default_factory=HardState)
    snapshot_index: int = 0
    last_index: int = 0
    last_term: int = 0

    @classmethod
    def of(cls, state: RecoveredState) -> LogShape:
        snapshot = state.snapshot
        last_term = snapshot.term if snapshot is not None else 0
        if state.entries:
            last_term = state.entries[-1].term
        return cls(
            hard_state=state.hard_state,
            snapshot_index=snapshot.index if snapshot is not None else 0,
            last_index=state.last_index,
            last_term=last_term,
        )

    def check_save(
        self, hard_state: HardState | None, entries: Sequence[Entry], snapshot: Snapshot | None
    ) -> None:
        """Raise `InvariantError` if this save would break the log's invariants."""
        last_index, last_term, commit = self.last_index, self.last_term, self.hard_state.commit
        snapshot_index = self.snapshot_index
        if snapshot is not None:
            invariant(
                snapshot.index >= max(snapshot_index, commit, 1),
                f"installed snapshot at {snapshot.index} is behind the snapshot at "
                f"{snapshot_index} or the commit index {commit}",
            )
            snapshot_index = last_index = commit = snapshot.index
            last_term = snapshot.term
        if entries:
            _check_entries(entries, snapshot_index, last_index, last_term, commit)
            last_index = entries[-1].index
        if hard_state is not None:
            _check_hard_state(self.hard_state, hard_state, last_index)

    def apply_save(
        self, hard_state: HardState | None, entries: Sequence[Entry], snapshot: Snapshot | None
    ) -> None:
        if snapshot is not None:
            self.snapshot_index = self.last_index = snapshot.index
            self.last_term = snapshot.term
        if entries:
            self.last_index = entries[-1].index
            self.last_term = entries[-1].term
        if hard_state is not None:
            self.hard_state = hard_state

    def check_snapshot(self, snapshot: Snapshot) -> None:
        invariant(
            self.snapshot_index <= snapshot.index <= min(self.hard_state.commit, self.last_index),
            f"local snapshot at {snapshot.index} must lie between the current snapshot "
            f"({self.snapshot_index}) and the commit index ({self.hard_state.commit})",
        )

    def check_compact(self, index: int) -> None:
        invariant(
            0 <= index <= self.snapshot_index,
            f"compact({index}) past the snapshot at {self.snapshot_index}",
        )


def _check_entries(
    entries: Sequence[Entry], snapshot_index: int, last_index: int, last_term: int, commit: int
) -> None:
    # This runs on every save: one boolean over whole-batch comparisons first, and the
    # messages (formatting them costs more than the checks) only on failure.
    first = entries[0].index
    indexes = [entry.index for entry in entries]
    terms = [entry.term for entry in entries]
    if (
        snapshot_index < first <= last_index + 1
        and (first > last_index or first > commit)
        and (first <= last_index or terms[0] >= last_term)
        and indexes == list(range(first, first + len(indexes)))
        and terms[0] >= 0
        and terms == sorted(terms)
    ):
        return
    invariant(first > snapshot_index, f"entry {first} lies inside the snapshot ({snapshot_index})")
    invariant(first <= last_index + 1, f"gap: entry {first} after last index {last_index}")
    invariant(
        first > last_index or first > commit,
        f"entry {first} would replace committed entries (commit {commit})",
    )
    invariant(
        first <= last_index or terms[0] >= last_term,
        f"entry {first} has term {terms[0]} below the previous entry's {last_term}",
    )
    invariant(False, f"entries not contiguous with non-decreasing terms: {indexes} {terms}")


def _check_hard_state(old: HardState, new: HardState, last_index: int) -> None:
    if (
        new.term > old.term or (new.term == old.term and old.vote in (NO_NODE, new.vote))
    ) and old.commit <= new.commit <= last_index:
        return
    invariant(new.term >= old.term, f"term went back from {old.term} to {new.term}")
    invariant(
        new.term > old.term or old.vote == NO_NODE or new.vote == old.vote,
        f"vote changed from {old.vote} to {new.vote} within term {new.term}",
    )
    invariant(new.commit >= old.commit, f"commit went back from {old.commit} to {new.commit}")
    invariant(False, f"commit {new.commit} beyond last index {last_index}")


def recover_state(
    hard_state: HardState,
    model: LogModel,
    snapshots: Iterable[Snapshot | CorruptionError],
    *,
    log_name: str,
    notes: Sequence[str] = (),
) -> RecoveredState:
    """Pair the replayed log with the newest snapshot it connects to (module doc).

    `snapshots` yields newest first, `CorruptionError` for a file that failed
    validation. Raises `CorruptionError` when no snapshot (nor "no snapshot", if the
    log starts at index 1) connects to the log.
    """
    found = list(notes)
    first_error: CorruptionError | None = None
    newest = True
    for candidate in snapshots:
        if isinstance(candidate, CorruptionError):
            first_error = first_error or candidate
            found.append(f"skipped corrupt snapshot ({candidate})")
        else:
            entries = model.entries_after(candidate.index, candidate.term, strict=not newest)
            if entries is not None:
                return _finish(hard_state, candidate, entries, found, log_name)
            found.append(
                f"snapshot at index {candidate.index} does not connect to the log "
                f"(first index {model.first})"
            )
        newest = False
    entries = model.entries_after(0, 0, strict=True)
    if entries is not None:
        return _finish(hard_state, None, entries, found, log_name)
    if first_error is not None:
        raise CorruptionError(
            first_error.path,
            first_error.offset,
            f"{first_error.reason}; no older snapshot connects to the log",
        )
    raise CorruptionError(
        log_name, None, f"the log starts at index {model.first} and no snapshot covers the rest"
    )


def _finish(
    hard_state: HardState,
    snapshot: Snapshot | None,
    entries: list[Entry],
    notes: list[str],
    log_name: str,
) -> RecoveredState:
    _check_numbers(hard_state, snapshot, entries, log_name)
    base = snapshot.index if snapshot is not None else 0
    if hard_state.commit < base:
        # A snapshot holds only committed state; its install may have become durable
        # before the hard state that followed it did.
        hard_state = dataclasses.replace(hard_state, commit=base)
    if hard_state.commit > base + len(entries):
        raise CorruptionError(
            log_name,
            None,
            f"hard state commit {hard_state.commit} is beyond the last entry {base + len(entries)}",
        )
    return RecoveredState(hard_state, snapshot, entries, tuple(notes))


def _check_numbers(
    hard_state: HardState, snapshot: Snapshot | None, entries: list[Entry], log_name: str
) -> None:
    """Refuse a term or index beyond Raft's bounds: only a peer that broke the protocol
    (before peers' numbers were bounded) can have put one here, and a node that loaded
    it could crash on its next election (term + 1) or stall every peer."""
    terms = [("hard state term", hard_state.term)]
    indexes = [("hard state commit", hard_state.commit)]
    if snapshot is not None:
        terms.append(("snapshot term", snapshot.term))
        indexes.append(("snapshot index", snapshot.index))
    if entries:  # terms and indexes only grow along the log
        terms.append(("last entry term", entries[-1].term))
        indexes.append(("last entry index", entries[-1].index))
    for what, value, value_max in [
        *((w, v, RAFT_TERM_MAX) for w, v in terms),
        *((w, v, RAFT_INDEX_MAX) for w, v in indexes),
    ]:
        if value > value_max:
            raise CorruptionError(
                log_name,
                None,
                f"{what} {value} is beyond the bound {value_max} (accord.raft.limits); "
                "this node refuses to run on it: wipe its data and add it back as a new member",
            )


def prepare_save(
    shape: LogShape,
    hard_state: HardState | None,
    entries: Sequence[Entry],
    snapshot: Snapshot | None,
) -> Batch | None:
    """Check one `save()` against the log's shape and the limits; the batch to write,
    or None when it changes nothing. Shared by both implementations so they refuse
    exactly the same saves."""
    shape.check_save(hard_state, entries, snapshot)
    if hard_state == shape.hard_state:
        hard_state = None
    if not entries and hard_state is None and snapshot is None:
        return None
    size = batch_bytes(entries)
    if size > BATCH_BYTES_MAX:
        raise LimitExceeded("batch", size, BATCH_BYTES_MAX)
    if snapshot is not None and len(snapshot.data) > SNAPSHOT_DATA_BYTES_MAX:
        raise LimitExceeded("snapshot data", len(snapshot.data), SNAPSHOT_DATA_BYTES_MAX)
    reset = None if snapshot is None else (snapshot.index, snapshot.term)
    return Batch(hard_state, reset, tuple(entries))


# --- many groups -------------------------------------------------------------------

LEGACY_GROUP = 0
"""The group a single-group directory (version-1 segments, `FileStorage`) holds."""


def check_group_id(group: int) -> None:
    invariant(
        type(group) is int and 0 <= group <= RAFT_NODE_ID_MAX,
        f"group id {group!r} outside [0, {RAFT_NODE_ID_MAX}]",
    )


@dataclass(frozen=True, slots=True)
class GroupBatch:
    """One group's `Batch` inside a WAL record."""

    group: int
    batch: Batch


@dataclass(frozen=True, slots=True)
class GroupCreated:
    group: int


@dataclass(frozen=True, slots=True)
class GroupDestroyed:
    group: int


Op = GroupBatch | GroupCreated | GroupDestroyed

Checkpoint = tuple[tuple[int, HardState], ...]
"""Every group that exists, with its hard state, ascending by group."""


@dataclass(frozen=True, slots=True)
class WalRecord:
    """One WAL record: the checkpoint (first record of a segment only), then `ops`."""

    checkpoint: Checkpoint | None = None
    ops: tuple[Op, ...] = ()


class ReplayError(ValueError):
    """A record that cannot follow the ones before it (a batch for a group that does
    not exist): the caller reports it as corruption at the record's position."""


@dataclass(slots=True)
class GroupReplay:
    """What replaying the WAL found for one group."""

    hard_state: HardState = field(default_factory=HardState)
    model: LogModel = field(default_factory=LogModel)


class HostReplay:
    """Replay of WAL records into one `GroupReplay` per existing group."""

    __slots__ = ("groups",)

    def __init__(self, groups: Iterable[int] = ()) -> None:
        self.groups: dict[int, GroupReplay] = {group: GroupReplay() for group in groups}

    def apply(self, record: WalRecord) -> None:
        if record.checkpoint is not None:
            known = self.groups
            self.groups = {}
            for group, hard_state in record.checkpoint:
                kept = known.get(group) or GroupReplay()
                kept.hard_state = hard_state
                self.groups[group] = kept
        for op in record.ops:
            if isinstance(op, GroupBatch):
                replay = self.groups.get(op.group)
                if replay is None:
                    raise ReplayError(f"a batch for group {op.group}, which does not exist")
                replay.model.apply(op.batch)
                if op.batch.hard_state is not None:
                    replay.hard_state = op.batch.hard_state
            elif isinstance(op, GroupCreated):
                if op.group in self.groups:
                    raise ReplayError(f"group {op.group} created twice")
                self.groups[op.group] = GroupReplay()
            else:
                if self.groups.pop(op.group, None) is None:
                    raise ReplayError(f"group {op.group} destroyed, but it does not exist")


@dataclass(frozen=True, slots=True)
class PreparedWrite:
    group: int
    batch: Batch
    snapshot: Snapshot | None


def prepare_writes(
    writes: Sequence[GroupWrite], shape_of: Callable[[int], LogShape]
) -> list[PreparedWrite]:
    """Check a host save's writes in order, each as `prepare_save()` checks one save
    against the shape the writes before it left; return the batches to log. Nothing
    is changed: once they are durable the caller applies them (`apply_writes`).
    `shape_of(group)` raises `InvariantError` for a group that does not exist or is
    not loaded."""
    # Only a group written twice needs a scratch copy of its shape for the check.
    scratch: dict[int, LogShape] | None = None
    if len(writes) > 1 and len({write.group for write in writes}) < len(writes):
        scratch = {}
    prepared: list[PreparedWrite] = []
    for write in writes:
        group = write.group
        if scratch is None:
            shape = shape_of(group)
        else:
            shape = scratch.get(group) or _copy_shape(shape_of(group))
            scratch[group] = shape
        batch = prepare_save(shape, write.hard_state, write.entries, write.snapshot)
        if batch is None:
            continue
        if scratch is not None:
            shape.apply_save(batch.hard_state, batch.entries, write.snapshot)
        prepared.append(PreparedWrite(group, batch, write.snapshot))
    if len(prepared) > 1:
        size = host_batch_bytes(writes)
        if size > HOST_BATCH_BYTES_MAX:
            raise LimitExceeded("host batch", size, HOST_BATCH_BYTES_MAX)
    return prepared


def apply_writes(prepared: Sequence[PreparedWrite], shape_of: Callable[[int], LogShape]) -> None:
    """Advance each group's shape past its prepared writes, in order."""
    for write in prepared:
        batch = write.batch
        shape_of(write.group).apply_save(batch.hard_state, batch.entries, write.snapshot)


def _copy_shape(shape: LogShape) -> LogShape:
    return LogShape(shape.hard_state, shape.snapshot_index, shape.last_index, shape.last_term)
