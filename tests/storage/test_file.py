"""FileStorage and the WAL on a real directory: syncs, segments, recovery, failure."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from accord.raft.types import HardState
from accord.storage import (
    CorruptionError,
    FileStorage,
    StorageFailed,
    StorageLocked,
)
from accord.storage.limits import RECORD_HEADER_BYTES
from accord.storage.record import scan
from accord.storage.snapshots import snapshot_name
from accord.storage.wal import read_segment, segment_name

from .helpers import entries, snapshot

SEGMENT_BYTES = 4096


def open_storage(directory: Path, **options: int) -> FileStorage:
    storage = FileStorage(directory, segment_bytes_max=options.pop("segment", SEGMENT_BYTES))
    storage.load()
    return storage


def reopen(storage: FileStorage) -> tuple[FileStorage, list[str]]:
    storage.close()
    again = FileStorage(storage.directory, segment_bytes_max=SEGMENT_BYTES)
    state = again.load()
    return again, list(state.notes)


def record_offsets(path: Path) -> list[int]:
    records, _ = scan(path.read_bytes(), tail=False, payload_bytes_max=1 << 30)
    return [r.offset for r in records]


class SyncCounter:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.data = 0
        self.full = 0
        real_fdatasync, real_fsync = os.fdatasync, os.fsync

        def fdatasync(fd: int) -> None:
            self.data += 1
            real_fdatasync(fd)

        def fsync(fd: int) -> None:
            self.full += 1
            real_fsync(fd)

        monkeypatch.setattr(os, "fdatasync", fdatasync)
        monkeypatch.setattr(os, "fsync", fsync)


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[FileStorage]:
    opened = open_storage(tmp_path / "node")
    yield opened
    opened.close()


def test_one_data_sync_per_save_however_many_entries(
    storage: FileStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage.save(HardState(1, 1, 0), entries(1, 1))  # creates the first segment
    counter = SyncCounter(monkeypatch)
    storage.save(HardState(1, 1, 1), entries(2, 2))
    assert (counter.data, counter.full) == (1, 0)
    storage.save(None, entries(3, 30, size=10))
    assert (counter.data, counter.full) == (2, 0)


def test_new_segment_costs_one_directory_sync(
    storage: FileStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage.save(HardState(1, 1, 0), entries(1, 30, size=100))
    counter = SyncCounter(monkeypatch)
    storage.save(None, entries(31, 60, size=100))  # does not fit: rolls over
    assert len(storage.segment_paths) == 2
    assert (counter.data, counter.full) == (1, 1)


def test_a_commit_only_save_may_skip_the_sync_and_survives_a_clean_close(
    storage: FileStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage.save(HardState(1, 1, 0), entries(1, 5))
    counter = SyncCounter(monkeypatch)
    storage.save(HardState(1, 1, 3), (), sync=False)
    assert (counter.data, counter.full) == (0, 0)
    storage.save(HardState(1, 1, 4), (), sync=False)
    storage.close()  # syncs what was left unsynced
    assert counter.data == 1
    again = FileStorage(storage.directory, segment_bytes_max=SEGMENT_BYTES)
    state = again.load()
    assert state.hard_state == HardState(1, 1, 4) and len(state.entries) == 5
    again.close()


def test_rolling_a_segment_first_syncs_an_unsynced_tail(
    storage: FileStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage.save(HardState(1, 1, 0), entries(1, 30, size=100))
    storage.save(HardState(1, 1, 20), (), sync=False)
    counter = SyncCounter(monkeypatch)
    storage.save(None, entries(31, 60, size=100))  # does not fit: rolls over
    assert len(storage.segment_paths) == 2
    # The old segment's unsynced tail, then the new segment's record; plus the
    # directory: a later segment is never durable before an earlier one.
    assert (counter.data, counter.full) == (2, 1)


def test_segments_respect_the_size_bound(storage: FileStorage) -> None:
    for first in range(1, 400, 10):
        storage.save(HardState(1, 1, first - 1), entries(first, first + 9, size=50))
    paths = storage.segment_paths
    assert len(paths) > 3
    assert [p.name for p in paths] == [segment_name(i) for i in range(1, len(paths) + 1)]
    assert all(p.stat().st_size <= SEGMENT_BYTES for p in paths)


def test_first_batch_of_each_segment_carries_the_hard_state(storage: FileStorage) -> None:
    storage.save(HardState(4, 2, 40), entries(1, 40, size=100))
    storage.save(None, entries(41, 80, size=100))  # a new segment; no hard state given
    storage.save_snapshot(snapshot(40))
    storage.compact(40)
    # The first segment held the only explicit hard state; it could go only because the
    # second segment's first batch repeated it.
    assert len(storage.segment_paths) == 1
    storage, _ = reopen(storage)
    storage.close()
    again = FileStorage(storage.directory)
    state = again.load()
    assert state.hard_state == HardState(4, 2, 40)
    assert state.entries == entries(41, 80, size=100)
    again.close()


def test_compaction_removes_only_segments_wholly_covered(storage: FileStorage) -> None:
    for first in range(1, 300, 30):
        storage.save(HardState(1, 1, first + 29), entries(first, first + 29, size=100))
    before = storage.segment_paths
    storage.save_snapshot(snapshot(150))
    storage.compact(150)
    after = storage.segment_paths
    # One batch of 30 entries per segment: the five holding entries 1-150 go.
    assert after == before[5:]
    assert not any(p.exists() for p in before[:5])
    kept = read_segment(after[0], 6, tail=False, cipher=None)
    assert kept.batches[0][1].entries[0].index == 151
    storage, _ = reopen(storage)
    storage.close()


def test_compaction_keeps_the_log_after_the_oldest_retained_snapshot(
    storage: FileStorage,
) -> None:
    for first in range(1, 300, 30):
        storage.save(HardState(1, 1, first + 29), entries(first, first + 29, size=100))
    storage.save_snapshot(snapshot(60))
    storage.save_snapshot(snapshot(240))
    storage.compact(240)
    # The snapshot at 60 is still kept (K=2), so entries after 60 must remain.
    storage, _ = reopen(storage)
    snap_dir = storage.directory / "snap"
    newest = sorted(snap_dir.iterdir())[-1]
    newest.write_bytes(newest.read_bytes()[:-1])
    storage.close()
    again = FileStorage(storage.directory, segment_bytes_max=SEGMENT_BYTES)
    state = again.load()
    assert state.snapshot == snapshot(60)
    assert state.entries == entries(61, 300, size=100)
    # The corrupt file is set aside (kept), so retention does not count it.
    assert newest.with_name(newest.name + ".corrupt").exists() and not newest.exists()
    again.save_snapshot(snapshot(280))
    snaps = sorted(p.name for p in snap_dir.iterdir() if p.name.endswith(".snap"))
    assert snaps == [snapshot_name(60, 1), snapshot_name(280, 1)]
    again.close()


def test_torn_tail_is_truncated_and_the_node_starts(storage: FileStorage) -> None:
    storage.save(HardState(1, 1, 0), entries(1, 3))
    storage.save(HardState(1, 1, 3), entries(4, 6))
    path = storage.segment_paths[-1]
    last = record_offsets(path)[-1]
    storage.close()
    with path.open("r+b") as f:
        f.truncate(last + RECORD_HEADER_BYTES + 3)
    storage, notes = reopen(storage)
    assert any("truncated torn tail" in note for note in notes)
    assert path.stat().st_size == last
    storage.save(None, entries(4, 5, term=1))
    storage, _ = reopen(storage)
    storage.close()
    again = FileStorage(storage.directory)
    state = again.load()
    assert state.entries == entries(1, 5)
    assert state.hard_state == HardState(1, 1, 0)
    again.close()


def test_zero_filled_tail_is_torn(storage: FileStorage) -> None:
    storage.save(HardState(1, 1, 0), entries(1, 3))
    path = storage.segment_paths[-1]
    size = path.stat().st_size
    storage.close()
    with path.open("ab") as f:
        f.write(bytes(5000))
    storage, notes = reopen(storage)
    assert notes and path.stat().st_size == size
    storage.close()


def test_corrupt_record_before_the_tail_names_file_and_offset(storage: FileStorage) -> None:
    for first in range(1, 10, 3):
        storage.save(HardState(1, 1, 0), entries(first, first + 2))
    path = storage.segment_paths[-1]
    offsets = record_offsets(path)
    storage.close()
    data = bytearray(path.read_bytes())
    data[offsets[2] + RECORD_HEADER_BYTES + 1] ^= 0xFF
    path.write_bytes(bytes(data))
    with FileStorage(storage.directory) as broken, pytest.raises(CorruptionError) as caught:
        broken.load()
    assert caught.value.path == str(path)
    assert caught.value.offset == offsets[2]
    assert f"{path} at byte {offsets[2]}" in str(caught.value)


def test_damage_at_the_end_of_an_older_segment_is_corruption(storage: FileStorage) -> None:
    storage.save(HardState(1, 1, 0), entries(1, 40, size=100))
    storage.save(None, entries(41, 80, size=100))
    first = storage.segment_paths[0]
    storage.close()
    with first.open("r+b") as f:
        f.truncate(first.stat().st_size - 1)
    with FileStorage(storage.directory) as broken, pytest.raises(CorruptionError) as caught:
        broken.load()
    assert caught.value.path == str(first)


def test_segment_without_a_valid_header_at_the_end_is_removed(storage: FileStorage) -> None:
    storage.save(HardState(1, 1, 0), entries(1, 3))
    storage.close()
    orphan = storage.directory / "wal" / segment_name(2)
    orphan.write_bytes(b"\xacWA")
    storage, notes = reopen(storage)
    assert not orphan.exists()
    assert any("removed torn segment" in note for note in notes)
    storage.save(None, entries(4, 4))
    assert storage.segment_paths[-1].name == segment_name(1)
    storage.close()


def test_unrelated_files_are_ignored(storage: FileStorage) -> None:
    storage.save(HardState(1, 1, 0), entries(1, 3))
    (storage.directory / "wal" / "notes.txt").write_text("hello")
    (storage.directory / "README").write_text("hello")
    storage, _ = reopen(storage)
    storage.close()


def test_second_open_of_a_directory_is_refused(storage: FileStorage) -> None:
    with pytest.raises(StorageLocked):
        FileStorage(storage.directory)


def test_io_error_poisons_the_storage(
    storage: FileStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage.save(HardState(1, 1, 0), entries(1, 3))

    def failing(fd: int) -> None:
        raise OSError(errno.EIO, "simulated I/O error")

    monkeypatch.setattr(os, "fdatasync", failing)
    with pytest.raises(StorageFailed):
        storage.save(None, entries(4, 5))
    monkeypatch.undo()
    with pytest.raises(StorageFailed, match="failed earlier"):
        storage.save(None, entries(4, 5))
    storage.close()
    again = FileStorage(storage.directory)
    assert again.load().last_index in (3, 5)
    again.close()


def test_crash_between_snapshot_file_and_wal_record_resolves_like_the_install(
    storage: FileStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage.save(HardState(1, 1, 2), entries(1, 8, term=1))
    from accord.storage.wal import Wal

    def dies(self: Wal, *args: object, **kwargs: object) -> None:
        raise OSError(errno.EIO, "power cut")

    monkeypatch.setattr(Wal, "append", dies)
    with pytest.raises(StorageFailed):
        storage.save(HardState(2, 0, 6), [], snapshot(6, term=2))  # conflicts at 6
    monkeypatch.undo()
    storage.close()
    again = FileStorage(storage.directory)
    state = again.load()
    assert state.snapshot == snapshot(6, term=2)
    assert state.entries == []
    assert state.hard_state == HardState(1, 1, 6)
    assert any("completed the install" in note for note in state.notes)
    # Entries appended now must not be set on the stale log at the next replay.
    again.save(HardState(2, 0, 6), entries(7, 9, term=2))
    again.close()
    with FileStorage(storage.directory) as third:
        state = third.load()
    assert state.snapshot == snapshot(6, term=2)
    assert state.entries == entries(7, 9, term=2)


def test_load_of_corrupt_storage_leaves_it_unusable(storage: FileStorage) -> None:
    storage.save(HardState(1, 1, 0), entries(1, 3))
    storage.save(HardState(1, 1, 0), entries(4, 6))
    path = storage.segment_paths[0]
    storage.close()
    data = bytearray(path.read_bytes())
    data[record_offsets(path)[1] + 3] ^= 1
    path.write_bytes(bytes(data))
    broken = FileStorage(storage.directory)
    with pytest.raises(CorruptionError):
        broken.load()
    with pytest.raises(StorageFailed):
        broken.save(None, entries(7, 7))
    broken.close()


def test_options_are_validated(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        FileStorage(tmp_path, segment_bytes_max=10)
    with pytest.raises(ValueError):
        FileStorage(tmp_path, snapshots_kept=0)
