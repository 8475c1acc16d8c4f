"""MemoryStorage's crash model: what survives a power cut, a clean stop, a restart."""

from __future__ import annotations

import ast
import inspect
import random

from accord.raft.types import HardState
from accord.storage import MemoryStorage, memory

from .helpers import entries, snapshot


def loaded() -> MemoryStorage:
    storage = MemoryStorage()
    storage.load()
    return storage


def test_unsynced_writes_are_lost_or_survive_as_a_prefix() -> None:
    outcomes = set()
    for seed in range(60):
        storage = loaded()
        storage.save(HardState(1, 1, 0), entries(1, 2))
        storage.write(HardState(1, 1, 2), entries(3, 4))
        storage.write(HardState(2, 0, 2), entries(5, 5, term=2))
        storage.write(None, entries(6, 7, term=2))
        storage.crash(random.Random(seed))
        state = storage.load()
        last = state.last_index
        assert last in (2, 4, 5, 7)
        assert state.entries == (entries(1, 4) + entries(5, 7, term=2))[:last]
        # An unsynced hard state never survives, whatever else did.
        assert state.hard_state == HardState(1, 1, 0)
        outcomes.add(last)
    assert outcomes == {2, 4, 5, 7}


def test_crash_is_deterministic_for_a_seed() -> None:
    def run(seed: int) -> int:
        storage = loaded()
        for first in range(1, 40, 4):
            storage.write(None, entries(first, first + 3))
        storage.crash(random.Random(seed))
        return storage.load().last_index

    assert [run(s) for s in range(20)] == [run(s) for s in range(20)]


def test_synced_state_always_survives() -> None:
    storage = loaded()
    storage.write(HardState(1, 1, 0), entries(1, 3))
    storage.sync()
    storage.crash(random.Random(1))
    state = storage.load()
    assert (state.hard_state, state.entries) == (HardState(1, 1, 0), entries(1, 3))


def test_clean_stop_keeps_the_page_cache_and_load_makes_it_durable() -> None:
    storage = loaded()
    storage.write(HardState(1, 1, 0), entries(1, 3))
    storage.close()
    state = storage.load()
    assert state.entries == entries(1, 3)
    storage.crash(random.Random(0))
    assert storage.load().entries == entries(1, 3)


def test_unsynced_install_survives_whole_or_not_at_all() -> None:
    seen = set()
    for seed in range(30):
        storage = loaded()
        storage.save(HardState(1, 1, 3), entries(1, 5))
        storage.write(None, entries(11, 12, term=2), snapshot(10, term=2))
        storage.crash(random.Random(seed))
        state = storage.load()
        if state.snapshot is None:
            assert state.entries == entries(1, 5)
        else:
            assert state.snapshot == snapshot(10, term=2)
            assert state.entries == entries(11, 12, term=2)
            assert state.hard_state == HardState(1, 1, 10)
        seen.add(state.snapshot is None)
    assert seen == {True, False}


def test_sync_count_counts_syncs_that_flushed_something() -> None:
    storage = loaded()
    storage.sync()
    storage.save(HardState(1, 1, 0), entries(1, 1))
    storage.write(None, entries(2, 2))
    storage.write(None, entries(3, 3))
    assert storage.unsynced_writes == 2
    storage.sync()
    assert (storage.sync_count, storage.unsynced_writes) == (2, 0)


def test_memory_storage_reads_no_clock_and_no_global_random() -> None:
    tree = ast.parse(inspect.getsource(memory))
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert not imported & {"time", "datetime", "os", "secrets"}
    random_uses = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "random"
    }
    assert random_uses <= {"Random"}


class _NothingReachesDisk(random.Random):
    def randrange(self, *args: object, **kwargs: object) -> int:
        return 0


def test_snapshot_ahead_of_the_durable_log_is_kept_consistent() -> None:
    storage = loaded()
    storage.save(HardState(1, 1, 3), entries(1, 10, term=1))
    storage.write(HardState(2, 0, 10), entries(8, 10, term=2))  # lost below
    storage.save_snapshot(snapshot(10, term=2))  # durable at once
    storage.crash(_NothingReachesDisk())
    state = storage.load()
    assert (state.snapshot, state.entries) == (snapshot(10, term=2), [])
    storage.save(HardState(2, 0, 10), entries(11, 12, term=2))
    storage.crash(random.Random(0))
    assert storage.load().entries == entries(11, 12, term=2)
