"""The `Storage` contract, run against both implementations."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest

from accord.invariant import InvariantError
from accord.raft.types import Entry, HardState
from accord.storage import FileStorage, LimitExceeded, MemoryStorage, Storage
from accord.storage.limits import BATCH_BYTES_MAX

from .helpers import CONF, entries, snapshot


class Harness(Protocol):
    def open(self) -> Storage: ...

    def restart(self, storage: Storage) -> Storage:
        """Stop the process cleanly and start again on the same storage."""
        ...

    def crash(self, storage: Storage) -> Storage:
        """Kill the process (nothing unsynced pending) and start again."""
        ...


class FileHarness:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def open(self) -> Storage:
        return FileStorage(self.directory, segment_bytes_max=4096)

    def restart(self, storage: Storage) -> Storage:
        storage.close()
        return self.open()

    def crash(self, storage: Storage) -> Storage:
        # close() syncs nothing: it is what the kernel does to a killed process's files.
        return self.restart(storage)


class MemoryHarness:
    def __init__(self) -> None:
        self.storage = MemoryStorage()

    def open(self) -> Storage:
        return self.storage

    def restart(self, storage: Storage) -> Storage:
        storage.close()
        return storage

    def crash(self, storage: Storage) -> Storage:
        self.storage.crash(random.Random(7))
        return storage


@pytest.fixture(params=["file", "memory"])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    if request.param == "file":
        yield FileHarness(tmp_path / "node")
    else:
        yield MemoryHarness()


@pytest.fixture
def storage(harness: Harness) -> Iterator[Storage]:
    opened = harness.open()
    opened.load()
    yield opened
    opened.close()


def test_fresh_storage_is_empty(harness: Harness) -> None:
    state = harness.open().load()
    assert state.hard_state == HardState()
    assert state.snapshot is None
    assert state.entries == []
    assert (state.first_index, state.last_index) == (1, 0)


def test_saved_state_survives_restart_and_crash(harness: Harness, storage: Storage) -> None:
    storage.save(HardState(1, 2, 0), entries(1, 5))
    storage.save(HardState(1, 2, 4), entries(6, 9))
    for again in (harness.restart, harness.crash):
        storage = again(storage)
        state = storage.load()
        assert state.hard_state == HardState(1, 2, 4)
        assert state.entries == entries(1, 9)
    storage.close()


def test_entry_at_existing_index_replaces_the_suffix(harness: Harness, storage: Storage) -> None:
    storage.save(HardState(1, 1, 3), entries(1, 10, term=1))
    storage.save(HardState(2, 0, 3), entries(6, 8, term=2))
    storage = harness.restart(storage)
    state = storage.load()
    assert state.entries == entries(1, 5, term=1) + entries(6, 8, term=2)
    assert state.hard_state == HardState(2, 0, 3)
    storage.close()


def test_snapshot_install_replaces_the_log(harness: Harness, storage: Storage) -> None:
    storage.save(HardState(1, 1, 2), entries(1, 10))
    snap = snapshot(20, term=2)
    storage.save(HardState(2, 0, 20), entries(21, 23, term=2), snap)
    storage = harness.restart(storage)
    state = storage.load()
    assert state.snapshot == snap
    assert state.entries == entries(21, 23, term=2)
    assert state.hard_state == HardState(2, 0, 20)
    storage.save(None, entries(24, 25, term=2))
    storage = harness.crash(storage)
    assert storage.load().entries == entries(21, 25, term=2)
    storage.close()


def test_snapshot_install_without_hard_state_normalizes_commit(
    harness: Harness, storage: Storage
) -> None:
    storage.save(HardState(1, 1, 2), entries(1, 3))
    storage.save(None, [], snapshot(8))
    storage = harness.restart(storage)
    state = storage.load()
    assert state.hard_state == HardState(1, 1, 8)
    assert state.entries == []
    assert state.last_index == 8
    storage.close()


def test_local_snapshot_and_compaction_keep_later_entries(
    harness: Harness, storage: Storage
) -> None:
    for first in range(1, 200, 20):
        storage.save(HardState(1, 1, first + 19), entries(first, first + 19, size=100))
    snap = snapshot(150)
    storage.save_snapshot(snap)
    storage.compact(150)
    storage.save(None, entries(201, 210, size=100))
    storage = harness.restart(storage)
    state = storage.load()
    assert state.snapshot == snap
    assert state.entries == entries(151, 200, size=100) + entries(201, 210, size=100)
    assert state.hard_state.commit == 200
    storage.close()


def test_unchanged_hard_state_and_no_entries_is_a_no_op(storage: Storage) -> None:
    storage.save(HardState(1, 1, 0), entries(1, 1))
    storage.save(HardState(1, 1, 0), [])
    storage.save(None, [])


def test_recovered_state_can_be_continued(harness: Harness, storage: Storage) -> None:
    storage.save(HardState(3, 1, 0), entries(1, 4, term=3))
    storage = harness.crash(storage)
    state = storage.load()
    storage.save(HardState(3, 1, state.last_index), entries(5, 6, term=3))
    storage = harness.restart(storage)
    assert storage.load().entries == entries(1, 6, term=3)
    storage.close()


def test_oversized_batch_is_refused_and_nothing_written(harness: Harness, storage: Storage) -> None:
    storage.save(HardState(1, 1, 0), entries(1, 2))
    big = [Entry(1, 3, data=b"x" * (BATCH_BYTES_MAX + 1))]
    with pytest.raises(LimitExceeded):
        storage.save(HardState(1, 1, 3), big)
    storage.save(None, entries(3, 3))
    storage = harness.restart(storage)
    assert storage.load().entries == entries(1, 3)
    storage.close()


@pytest.mark.parametrize(
    "misuse",
    [
        pytest.param(lambda s: s.save(None, entries(5, 6)), id="gap"),
        pytest.param(lambda s: s.save(None, entries(2, 3, term=2)), id="replace-committed"),
        pytest.param(lambda s: s.save(HardState(1, 1, 3), []), id="term-backwards"),
        pytest.param(lambda s: s.save(HardState(2, 3, 3), []), id="second-vote"),
        pytest.param(lambda s: s.save(HardState(2, 1, 2), []), id="commit-backwards"),
        pytest.param(lambda s: s.save(HardState(2, 1, 9), []), id="commit-beyond-log"),
        pytest.param(lambda s: s.save(None, [Entry(1, 4), Entry(1, 6)]), id="not-contiguous"),
        pytest.param(lambda s: s.save(None, [Entry(1, 4)]), id="term-below-previous"),
        pytest.param(lambda s: s.save(None, [], snapshot(2)), id="install-behind-commit"),
        pytest.param(lambda s: s.save_snapshot(snapshot(4, term=2)), id="snapshot-uncommitted"),
        pytest.param(lambda s: s.compact(1), id="compact-past-snapshot"),
    ],
)
def test_misuse_is_an_invariant_error(storage: Storage, misuse: object) -> None:
    storage.save(HardState(2, 1, 3), entries(1, 3, term=2))
    with pytest.raises(InvariantError):
        misuse(storage)  # type: ignore[operator]


def test_load_twice_is_an_invariant_error(storage: Storage) -> None:
    with pytest.raises(InvariantError):
        storage.load()


def test_save_before_load_is_an_invariant_error(harness: Harness) -> None:
    fresh = harness.open()
    with pytest.raises(InvariantError):
        fresh.save(HardState(1, 1, 0), [])
    fresh.close()


def test_entries_are_a_list_of_contiguous_entries_after_the_snapshot(
    harness: Harness, storage: Storage
) -> None:
    storage.save(HardState(1, 1, 5), entries(1, 8))
    storage.save_snapshot(snapshot(5))
    storage = harness.restart(storage)
    state = storage.load()
    assert isinstance(state.entries, list)
    assert [e.index for e in state.entries] == [6, 7, 8]
    assert state.snapshot is not None and state.snapshot.conf == CONF
    storage.close()


def test_close_is_idempotent(harness: Harness) -> None:
    storage = harness.open()
    storage.load()
    storage.close()
    storage.close()
