"""`FileHostStorage`: every Raft group of a node on one local directory; `FileStorage`:
the single-group `Storage` protocol on it (group 0).

Theory of operation
-------------------
Layout::

    DIR/LOCK            flock held while open (a second opener gets StorageLocked)
    DIR/wal/*.wal       write-ahead log segments of all groups (accord.storage.wal)
    DIR/snap/*.snap     group 0's newest K snapshots (accord.storage.snapshots)
    DIR/snap/G/*.snap   group G's (G > 0, in decimal)

A directory written by a single-group version of Accord (version-1 segments, no
group ids) is this layout with group 0 alone: it opens as group 0 with all its data.
Opening it adds a version-2 segment whose first record names group 0 and its hard
state; from then on older versions cannot read the directory.

Recovery reads the whole log once, at the first `groups()` or `load()`, into a log
model and a hard state per group (`model.HostReplay`). Snapshot directories of groups
that do not exist (a crash inside `destroy_group()` or `create_group()`) are removed
then. `load(group)` pairs that group's log with its snapshots (`model.recover_state`),
as a single-group storage always did. Notes about the log as a whole (a torn tail
truncated) go with the first group loaded.

`save(writes)` follows each write's Ready order. Snapshot installs are written
first, as complete snapshot files (their own fsyncs), and only then logged: a WAL
record that says "the log restarts after snapshot S" must never be durable while S is
not. Then every write's entries and hard state, of every group, go into one WAL
record and one fdatasync. If the process dies between the two, recovery finds a
snapshot newer than its group's log, resolves it as the install would have
(`model.recover_state`), and `load()` writes the missing install record before
returning, so that entries appended later are never replayed onto the stale log.

Crash semantics across groups: the record is the unit. A save that did not return
is recovered whole or not at all (a torn record is truncated, a complete one kept),
so every group recovers its state before the save or after it; unsynced saves
(`sync=False`) are recovered as a prefix of whole saves. That is stronger than the
`HostStorage` contract, which callers must not exceed (`protocol`).

`create_group()` and `destroy_group()` are one record and one fdatasync each. A
destroyed group's snapshot files are deleted after its record is durable; its
records stay in older segments until compaction removes them, and replay ignores
them (the destroy record, or any later segment's checkpoint, says it is gone).

Compaction is per group and keeps every entry after the group's oldest retained
snapshot, not just after the newest: that is what lets `load()` fall back to an older
snapshot when the newest file is corrupt. `compact(group, index)` therefore allows
that group's entries up to min(index, its oldest retained snapshot index) to go, and
the WAL removes the segments no group needs (`wal`). After a restart, each group
loaded allows the entries its oldest snapshot covers (they can never be read back).

A group that `load()` cannot recover (`CorruptionError`: no snapshot connects to its
log) stays unloaded and cannot be written; the other groups go on. Damage in the log
itself refuses the whole directory, at the first `groups()` or `load()`.

Failure: any error during a write leaves the files in an unknown state (after a
failed fsync the kernel may have dropped the dirty pages), so the storage is poisoned
and every later call raises `StorageFailed`; restarting re-reads the files, which is
the only reliable way back.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

from accord.invariant import InvariantError, invariant
from accord.raft.types import Entry, HardState, Snapshot
from accord.storage._fsutil import DirectoryLock, make_dirs
from accord.storage.errors import CorruptionError, LimitExceeded, StorageFailed
from accord.storage.limits import (
    GROUPS_MAX,
    SEGMENT_BYTES_MAX,
    SEGMENT_BYTES_MIN,
    SNAPSHOT_DATA_BYTES_MAX,
    SNAPSHOTS_KEPT_DEFAULT,
    SNAPSHOTS_KEPT_MAX,
)
from accord.storage.model import (
    LEGACY_GROUP,
    Batch,
    Checkpoint,
    GroupBatch,
    GroupCreated,
    GroupDestroyed,
    GroupReplay,
    LogShape,
    apply_writes,
    check_group_id,
    prepare_writes,
    recover_state,
)
from accord.storage.protocol import Cipher, GroupWrite, HostStorage, RecoveredState, Storage
from accord.storage.snapshots import (
    SnapshotStore,
    group_snapshot_dir,
    groups_with_snapshots,
    list_group_dirs,
    remove_group_snapshots,
)
from accord.storage.view import GroupView
from accord.storage.wal import SyncObserver, Wal

WAL_DIRECTORY = "wal"
SNAPSHOT_DIRECTORY = "snap"


class _Phase(Enum):
    OPENED = "opened"
    RECOVERED = "recovered"
    FAILED = "failed"
    CLOSED = "closed"


@dataclass(slots=True)
class _Group:
    snapshots: SnapshotStore
    replay: GroupReplay | None
    """What the log held at recovery; dropped once loaded."""
    shape: LogShape | None = None
    """Set by `load()`: the group may be written from then on."""
    allowed: int = 0
    """The index up to which this group's entries may be compacted away."""

    @property
    def hard_state(self) -> HardState:
        if self.shape is not None:
            return self.shape.hard_state
        return self.replay.hard_state if self.replay is not None else HardState()


class FileHostStorage:
    """Durable Raft state of many groups in `directory` (created if missing). See
    `HostStorage` and the module docstring.

    `segment_bytes_max` bounds a WAL segment; `snapshots_kept` is how many snapshot
    files each group keeps (and how far back `load()` can fall back); `cipher` seals
    record payloads and snapshot bodies (encryption at rest); `on_sync(seconds,
    bytes)` observes each WAL sync.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        cipher: Cipher | None = None,
        segment_bytes_max: int = SEGMENT_BYTES_MAX,
        snapshots_kept: int = SNAPSHOTS_KEPT_DEFAULT,
        on_sync: SyncObserver | None = None,
    ) -> None:
        if not SEGMENT_BYTES_MIN <= segment_bytes_max <= SEGMENT_BYTES_MAX:
            raise ValueError(
                f"segment_bytes_max must be within [{SEGMENT_BYTES_MIN}, {SEGMENT_BYTES_MAX}]"
            )
        if not 1 <= snapshots_kept <= SNAPSHOTS_KEPT_MAX:
            raise ValueError(f"snapshots_kept must be within [1, {SNAPSHOTS_KEPT_MAX}]")
        self._dir = Path(directory)
        self._snap_root = self._dir / SNAPSHOT_DIRECTORY
        make_dirs(self._dir / WAL_DIRECTORY)
        make_dirs(self._snap_root)
        self._lock = DirectoryLock(self._dir)
        self._cipher = cipher
        self._kept = snapshots_kept
        self._wal = Wal(
            self._dir / WAL_DIRECTORY,
            cipher=cipher,
            segment_bytes_max=segment_bytes_max,
            on_sync=on_sync,
        )
        self._groups: dict[int, _Group] = {}
        self._notes: list[str] = []
        """Recovery notes about the whole log, for the first `load()`."""
        self._phase = _Phase.OPENED
        self._failure: BaseException | None = None

    def __enter__(self) -> FileHostStorage:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def directory(self) -> Path:
        return self._dir

    @property
    def segment_paths(self) -> tuple[Path, ...]:
        """The WAL segments, oldest first (for tests and tools)."""
        return tuple(segment.path for segment in self._wal.segments)

    def snapshot_directory(self, group: int) -> Path:
        """Where `group` keeps its snapshot files (for tests and tools)."""
        return group_snapshot_dir(self._snap_root, group)

    # --- groups ------------------------------------------------------------------------

    def groups(self) -> frozenset[int]:
        self._recover_once()
        return frozenset(self._groups)

    def create_group(self, group: int) -> None:
        check_group_id(group)
        self._recover_once()
        self._check_writable()
        invariant(group not in self._groups, f"create_group({group}): the group exists")
        if len(self._groups) >= GROUPS_MAX:
            raise LimitExceeded("groups", len(self._groups) + 1, GROUPS_MAX, unit="groups")
        with self._failing_on_error():
            directory = group_snapshot_dir(self._snap_root, group)
            make_dirs(directory)
            self._wal.append((GroupCreated(group),), self._checkpoint)
        self._groups[group] = _Group(self._store(group), GroupReplay())

    def destroy_group(self, group: int) -> None:
        self._recover_once()
        self._check_writable()
        invariant(group in self._groups, f"destroy_group({group}): no such group")
        with self._failing_on_error():
            self._wal.append((GroupDestroyed(group),), self._checkpoint)
            del self._groups[group]
            remove_group_snapshots(self._snap_root, group)
            self._wal.compact(self._allowed())

    def blocking_groups(self) -> frozenset[int]:
        """The groups whose uncompacted entries keep the oldest WAL segment: a group
        that never compacts (no snapshot) keeps the whole log from there on, so the
        host should snapshot these."""
        self._check_writable()
        return self._wal.blocking_groups(self._allowed())

    # --- one group's state -------------------------------------------------------------

    def load(self, group: int) -> RecoveredState:
        self._recover_once()
        invariant(group in self._groups, f"load({group}): no such group")
        state = self._groups[group]
        invariant(state.shape is None, f"load({group}) called twice")
        # A group that cannot be recovered stays unloaded (it cannot be written); the
        # others go on, since nothing was written. Any other failure poisons.
        with self._failing_on_error(spare_corruption=True):
            recovered = self._load(group, state)
            oldest = state.snapshots.oldest_index()
        state.shape = LogShape.of(recovered)
        state.replay = None
        state.allowed = max(state.allowed, oldest or 0)
        return recovered

    def save(self, writes: Sequence[GroupWrite], *, sync: bool = True) -> None:
        if self._phase is not _Phase.RECOVERED:
            self._check_writable()
        prepared = prepare_writes(writes, self._shape_of)
        if not prepared:
            return
        groups = self._groups
        try:  # not _failing_on_error(): a generator context manager costs on every save
            for write in prepared:
                if write.snapshot is not None:
                    groups[write.group].snapshots.save(write.snapshot)
            self._wal.append(
                [GroupBatch(write.group, write.batch) for write in prepared],
                self._checkpoint,
                sync=sync,
            )
            for write in prepared:
                if write.snapshot is not None:
                    groups[write.group].snapshots.prune()
        except OSError as exc:
            raise self._poison(exc) from exc
        except BaseException as exc:
            self._poison(exc)
            raise
        apply_writes(prepared, self._shape_of)

    def save_snapshot(self, group: int, snapshot: Snapshot) -> None:
        self._check_writable()
        shape = self._shape_of(group)
        shape.check_snapshot(snapshot)
        if len(snapshot.data) > SNAPSHOT_DATA_BYTES_MAX:
            raise LimitExceeded("snapshot data", len(snapshot.data), SNAPSHOT_DATA_BYTES_MAX)
        store = self._groups[group].snapshots
        with self._failing_on_error():
            store.save(snapshot)
            store.prune()
        shape.snapshot_index = snapshot.index

    def compact(self, group: int, index: int) -> None:
        self._check_writable()
        self._shape_of(group).check_compact(index)
        state = self._groups[group]
        with self._failing_on_error():
            oldest = state.snapshots.oldest_index()
            state.allowed = max(state.allowed, min(index, oldest if oldest is not None else 0))
            self._wal.compact(self._allowed())

    def close(self) -> None:
        if self._phase is _Phase.CLOSED:
            return
        self._phase = _Phase.CLOSED
        self._wal.close()
        self._lock.release()

    # --- internals ---------------------------------------------------------------------

    def _store(self, group: int) -> SnapshotStore:
        return SnapshotStore(
            group_snapshot_dir(self._snap_root, group),
            cipher=self._cipher,
            kept=self._kept,
            group=group,
        )

    def _recover_once(self) -> None:
        if self._phase is _Phase.RECOVERED:
            return
        if self._phase is _Phase.FAILED:
            raise StorageFailed(f"storage in {self._dir} failed earlier: {self._failure!r}")
        invariant(self._phase is _Phase.OPENED, f"use in phase {self._phase.value}")
        with self._failing_on_error():
            self._recover()
        self._phase = _Phase.RECOVERED

    def _recover(self) -> None:
        recovery = self._wal.recover()
        notes = list(recovery.notes)
        existing = recovery.replay.groups
        if recovery.records == 0:
            # A log without a single record cannot say which groups exist: a group
            # whose first snapshot install became durable before the log's first record
            # did, or a log that `accord storage repair` cut back to nothing. Every group
            # with a snapshot file exists.
            for group in groups_with_snapshots(self._snap_root):
                existing.setdefault(group, GroupReplay())
        for group in list_group_dirs(self._snap_root):
            if group not in existing and (
                remove_group_snapshots(self._snap_root, group) or group != LEGACY_GROUP
            ):
                notes.append(f"removed the snapshots of group {group}, which does not exist")
        for group, replay in existing.items():
            make_dirs(group_snapshot_dir(self._snap_root, group))
            self._groups[group] = _Group(self._store(group), replay)
        if self._wal.needs_upgrade:
            self._wal.append((), self._checkpoint)
            notes.append("began a version-2 WAL segment (older versions cannot read it)")
        self._notes = notes

    def _load(self, group: int, state: _Group) -> RecoveredState:
        replay = state.replay
        if replay is None:
            raise InvariantError("a group keeps its replay until it is loaded")
        store = state.snapshots
        temporaries = store.remove_temporaries()
        # What was read back may have come from the page cache of a process that died
        # before its fsync; make it durable before anyone acts on it.
        store.sync()
        corrupt: list[Path] = []
        notes = self._notes + [f"removed unfinished snapshot {name}" for name in temporaries]
        self._notes = []
        try:
            recovered = recover_state(
                replay.hard_state,
                replay.model,
                _noting_corrupt(store.candidates(), corrupt),
                log_name=str(self._dir / WAL_DIRECTORY),
                notes=notes,
            )
        except CorruptionError as exc:
            if group == LEGACY_GROUP:
                raise
            raise CorruptionError(exc.path, exc.offset, f"group {group}: {exc.reason}") from exc
        # Skipped for an older one: move them out of the way (kept as evidence), or
        # retention would count them among the K snapshots it keeps.
        set_aside = store.set_aside(corrupt)
        recovered = _with_notes(
            recovered, [f"set aside corrupt snapshot as {n}" for n in set_aside]
        )
        snapshot = recovered.snapshot
        if snapshot is not None and (
            replay.model.entries_after(snapshot.index, snapshot.term, strict=True) is None
        ):
            # The snapshot is ahead of the log or conflicts with it: its install was
            # interrupted before the WAL recorded it. Record it now, or a later
            # replay would set entries appended after it on the stale log.
            reset = (snapshot.index, snapshot.term)
            batch = Batch(recovered.hard_state, reset)
            self._wal.append((GroupBatch(group, batch),), self._checkpoint)
            recovered = _with_notes(recovered, [f"completed the install of snapshot {reset}"])
        return recovered

    def _checkpoint(self) -> Checkpoint:
        return tuple((group, state.hard_state) for group, state in sorted(self._groups.items()))

    def _allowed(self) -> dict[int, int]:
        return {group: state.allowed for group, state in self._groups.items()}

    def _shape_of(self, group: int) -> LogShape:
        state = self._groups.get(group)
        if state is None:
            raise InvariantError(f"group {group} does not exist")
        if state.shape is None:
            raise InvariantError(f"group {group} written before load()")
        return state.shape

    def _check_writable(self) -> None:
        if self._phase is _Phase.FAILED:
            raise StorageFailed(f"storage in {self._dir} failed earlier: {self._failure!r}")
        invariant(self._phase is _Phase.RECOVERED, f"write in phase {self._phase.value}")

    @contextlib.contextmanager
    def _failing_on_error(self, *, spare_corruption: bool = False) -> Iterator[None]:
        """Poison the storage if anything escapes the block (see theory of operation)."""
        try:
            yield
        except OSError as exc:
            raise self._poison(exc) from exc
        except CorruptionError as exc:
            if not spare_corruption:
                self._poison(exc)
            raise
        except BaseException as exc:
            self._poison(exc)
            raise

    def _poison(self, exc: BaseException) -> StorageFailed:
        """Refuse all further writes; return the error that reports `exc`."""
        self._phase = _Phase.FAILED
        self._failure = exc
        return StorageFailed(f"I/O in {self._dir} failed: {exc}")


class FileStorage:
    """Durable Raft state of one group in `directory` (created if missing). See
    `Storage`. It is group 0 of a `FileHostStorage` (created on the first `load()` if
    the directory does not hold it); the options are the host's.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        cipher: Cipher | None = None,
        segment_bytes_max: int = SEGMENT_BYTES_MAX,
        snapshots_kept: int = SNAPSHOTS_KEPT_DEFAULT,
        on_sync: SyncObserver | None = None,
    ) -> None:
        self._host = FileHostStorage(
            directory,
            cipher=cipher,
            segment_bytes_max=segment_bytes_max,
            snapshots_kept=snapshots_kept,
            on_sync=on_sync,
        )
        self._view = GroupView(self._host, LEGACY_GROUP)

    def __enter__(self) -> FileStorage:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def directory(self) -> Path:
        return self._host.directory

    @property
    def host(self) -> FileHostStorage:
        return self._host

    @property
    def segment_paths(self) -> tuple[Path, ...]:
        """The WAL segments, oldest first (for tests and tools)."""
        return self._host.segment_paths

    def load(self) -> RecoveredState:
        if LEGACY_GROUP not in self._host.groups():
            self._host.create_group(LEGACY_GROUP)
        return self._view.load()

    def save(
        self,
        hard_state: HardState | None,
        entries: Sequence[Entry],
        snapshot: Snapshot | None = None,
        *,
        sync: bool = True,
    ) -> None:
        self._view.save(hard_state, entries, snapshot, sync=sync)

    def save_snapshot(self, snapshot: Snapshot) -> None:
        self._view.save_snapshot(snapshot)

    def compact(self, index: int) -> None:
        self._view.compact(index)

    def close(self) -> None:
        self._view.close()
        self._host.close()


def _noting_corrupt(
    candidates: Iterator[Snapshot | CorruptionError], corrupt: list[Path]
) -> Iterator[Snapshot | CorruptionError]:
    for candidate in candidates:
        if isinstance(candidate, CorruptionError):
            corrupt.append(Path(candidate.path))
        yield candidate


def _with_notes(state: RecoveredState, notes: list[str]) -> RecoveredState:
    return dataclasses.replace(state, notes=(*state.notes, *notes)) if notes else state


if TYPE_CHECKING:  # the classes implement the protocols (checked by mypy, not at run time)

    def _host(storage: FileHostStorage) -> HostStorage:
        return storage

    def _single(storage: FileStorage) -> Storage:
        return storage
