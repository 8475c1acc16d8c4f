"""`FileStorage`: the `Storage` protocol on a local directory.

Theory of operation
-------------------
Layout::

    DIR/LOCK          flock held while open (a second opener gets StorageLocked)
    DIR/wal/*.wal     write-ahead log segments (accord.storage.wal)
    DIR/snap/*.snap   the newest K snapshots (accord.storage.snapshots)

`save()` follows the Ready order. A snapshot install is written first, as a complete
snapshot file (its own fsyncs), and only then logged: a WAL record that says "the log
restarts after snapshot S" must never be durable while S is not. Then the entries and
hard state go into one WAL record and one fdatasync. If the process dies between the
two, recovery finds a snapshot newer than the log, resolves it as the install would
have (`model.recover_state`), and writes the missing install record before returning,
so that entries appended later are never replayed onto the stale log.

Compaction keeps every entry after the oldest retained snapshot, not just after the
newest: that is what lets `load()` fall back to an older snapshot when the newest
file is corrupt. `compact(index)` therefore removes segments up to
min(index, oldest retained snapshot index).

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
from enum import Enum
from pathlib import Path

from accord.invariant import invariant
from accord.raft.types import Entry, HardState, Snapshot
from accord.storage._fsutil import DirectoryLock, make_dirs
from accord.storage.errors import CorruptionError, LimitExceeded, StorageFailed
from accord.storage.limits import (
    SEGMENT_BYTES_MAX,
    SEGMENT_BYTES_MIN,
    SNAPSHOT_DATA_BYTES_MAX,
    SNAPSHOTS_KEPT_DEFAULT,
    SNAPSHOTS_KEPT_MAX,
)
from accord.storage.model import Batch, LogShape, prepare_save, recover_state
from accord.storage.protocol import Cipher, RecoveredState
from accord.storage.snapshots import SnapshotStore
from accord.storage.wal import SyncObserver, Wal

WAL_DIRECTORY = "wal"
SNAPSHOT_DIRECTORY = "snap"


class _Phase(Enum):
    OPENED = "opened"
    LOADED = "loaded"
    FAILED = "failed"
    CLOSED = "closed"


class FileStorage:
    """Durable Raft state in `directory` (created if missing). See `Storage`.

    `segment_bytes_max` bounds a WAL segment; `snapshots_kept` is how many snapshot
    files survive (and how far back `load()` can fall back); `cipher` seals record
    payloads (encryption at rest); `on_sync(seconds, bytes)` observes each WAL sync.
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
        make_dirs(self._dir / WAL_DIRECTORY)
        make_dirs(self._dir / SNAPSHOT_DIRECTORY)
        self._lock = DirectoryLock(self._dir)
        self._wal = Wal(
            self._dir / WAL_DIRECTORY,
            cipher=cipher,
            segment_bytes_max=segment_bytes_max,
            on_sync=on_sync,
        )
        self._snapshots = SnapshotStore(
            self._dir / SNAPSHOT_DIRECTORY, cipher=cipher, kept=snapshots_kept
        )
        self._shape = LogShape()
        self._phase = _Phase.OPENED
        self._failure: BaseException | None = None

    def __enter__(self) -> FileStorage:
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

    def load(self) -> RecoveredState:
        invariant(self._phase is _Phase.OPENED, f"load() in phase {self._phase.value}")
        with self._failing_on_error():
            temporaries = self._snapshots.remove_temporaries()
            recovery = self._wal.recover()
            # What was read back may have come from the page cache of a process that
            # died before its fsync; make it durable before anyone acts on it.
            self._snapshots.sync()
            corrupt: list[Path] = []
            state = recover_state(
                recovery.hard_state,
                recovery.model,
                _noting_corrupt(self._snapshots.candidates(), corrupt),
                log_name=str(self._dir / WAL_DIRECTORY),
                notes=[f"removed unfinished snapshot {name}" for name in temporaries]
                + recovery.notes,
            )
            # Skipped for an older one: move them out of the way (kept as evidence), or
            # retention would count them among the K snapshots it keeps.
            set_aside = self._snapshots.set_aside(corrupt)
            state = _with_notes(state, [f"set aside corrupt snapshot as {n}" for n in set_aside])
            snapshot = state.snapshot
            if snapshot is not None and (
                recovery.model.entries_after(snapshot.index, snapshot.term, strict=True) is None
            ):
                # The snapshot is ahead of the log or conflicts with it: its install was
                # interrupted before the WAL recorded it. Record it now, or a later
                # replay would set entries appended after it on the stale log.
                reset = (snapshot.index, snapshot.term)
                self._wal.append(Batch(state.hard_state, reset), state.hard_state)
                state = _with_notes(state, [f"completed the install of snapshot {reset}"])
        self._shape = LogShape.of(state)
        self._phase = _Phase.LOADED
        return state

    def save(
        self,
        hard_state: HardState | None,
        entries: Sequence[Entry],
        snapshot: Snapshot | None = None,
        *,
        sync: bool = True,
    ) -> None:
        self._check_writable()
        batch = prepare_save(self._shape, hard_state, entries, snapshot)
        if batch is None:
            return
        hard_state = batch.hard_state
        try:  # not _failing_on_error(): a generator context manager costs on every save
            if snapshot is not None:
                self._snapshots.save(snapshot)
            self._wal.append(batch, hard_state or self._shape.hard_state, sync=sync)
            if snapshot is not None:
                self._snapshots.prune()
        except OSError as exc:
            raise self._poison(exc) from exc
        except BaseException as exc:
            self._poison(exc)
            raise
        self._shape.apply_save(hard_state, entries, snapshot)

    def save_snapshot(self, snapshot: Snapshot) -> None:
        self._check_writable()
        self._shape.check_snapshot(snapshot)
        if len(snapshot.data) > SNAPSHOT_DATA_BYTES_MAX:
            raise LimitExceeded("snapshot data", len(snapshot.data), SNAPSHOT_DATA_BYTES_MAX)
        with self._failing_on_error():
            self._snapshots.save(snapshot)
            self._snapshots.prune()
        self._shape.snapshot_index = snapshot.index

    def compact(self, index: int) -> None:
        self._check_writable()
        self._shape.check_compact(index)
        with self._failing_on_error():
            oldest = self._snapshots.oldest_index()
            self._wal.compact(min(index, oldest if oldest is not None else 0))

    def close(self) -> None:
        if self._phase is _Phase.CLOSED:
            return
        self._phase = _Phase.CLOSED
        self._wal.close()
        self._lock.release()

    def _check_writable(self) -> None:
        if self._phase is _Phase.FAILED:
            raise StorageFailed(f"storage in {self._dir} failed earlier: {self._failure!r}")
        invariant(self._phase is _Phase.LOADED, f"write in phase {self._phase.value}")

    @contextlib.contextmanager
    def _failing_on_error(self) -> Iterator[None]:
        """Poison the storage if anything escapes the block (see theory of operation)."""
        try:
            yield
        except OSError as exc:
            raise self._poison(exc) from exc
        except BaseException as exc:
            self._poison(exc)
            raise

    def _poison(self, exc: BaseException) -> StorageFailed:
        """Refuse all further writes; return the error that reports `exc`."""
        self._phase = _Phase.FAILED
        self._failure = exc
        return StorageFailed(f"I/O in {self._dir} failed: {exc}")


def _noting_corrupt(
    candidates: Iterator[Snapshot | CorruptionError], corrupt: list[Path]
) -> Iterator[Snapshot | CorruptionError]:
    for candidate in candidates:
        if isinstance(candidate, CorruptionError):
            corrupt.append(Path(candidate.path))
        yield candidate


def _with_notes(state: RecoveredState, notes: list[str]) -> RecoveredState:
    return dataclasses.replace(state, notes=(*state.notes, *notes)) if notes else state
