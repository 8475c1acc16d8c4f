"""The `HostStorage` contract, run against both implementations: many groups on one
log, each with exactly the single-group semantics, created and destroyed durably."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest

from accord.invariant import InvariantError
from accord.raft.types import Entry, HardState
from accord.storage import (
    FileHostStorage,
    GroupView,
    GroupWrite,
    HostStorage,
    LimitExceeded,
    MemoryHostStorage,
)
from accord.storage.limits import BATCH_BYTES_MAX, GROUPS_MAX

from .helpers import Reference, entries, snapshot, view_of


class HostHarness(Protocol):
    def open(self) -> HostStorage: ...

    def restart(self, host: HostStorage) -> HostStorage:
        """Stop the process cleanly and start again on the same storage."""
        ...

    def crash(self, host: HostStorage) -> HostStorage:
        """Kill the process (nothing unsynced pending) and start again."""
        ...


class FileHostHarness:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def open(self) -> HostStorage:
        return FileHostStorage(self.directory, segment_bytes_max=4096)

    def restart(self, host: HostStorage) -> HostStorage:
        host.close()
        return self.open()

    def crash(self, host: HostStorage) -> HostStorage:
        # close() syncs nothing that was synced already: what the kernel does on a kill.
        return self.restart(host)


class MemoryHostHarness:
    def __init__(self) -> None:
        self.host = MemoryHostStorage()

    def open(self) -> HostStorage:
        return self.host

    def restart(self, host: HostStorage) -> HostStorage:
        host.close()
        return host

    def crash(self, host: HostStorage) -> HostStorage:
        self.host.crash(random.Random(7))
        return host


@pytest.fixture(params=["file", "memory"])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HostHarness]:
    if request.param == "file":
        yield FileHostHarness(tmp_path / "node")
    else:
        yield MemoryHostHarness()


@pytest.fixture
def host(harness: HostHarness) -> Iterator[HostStorage]:
    opened = harness.open()
    yield opened
    opened.close()


def created(host: HostStorage, *groups: int) -> None:
    for group in groups:
        host.create_group(group)
        assert host.load(group).last_index == 0


def load_all(host: HostStorage) -> dict[int, Reference]:
    return {group: Reference.of(host.load(group)) for group in sorted(host.groups())}


def test_a_fresh_host_has_no_groups(host: HostStorage) -> None:
    assert host.groups() == frozenset()


def test_groups_are_durable_and_independent(harness: HostHarness, host: HostStorage) -> None:
    created(host, 0, 5, 9)
    host.save(
        [
            GroupWrite(0, HardState(1, 1, 0), tuple(entries(1, 3))),
            GroupWrite(5, HardState(4, 2, 2), tuple(entries(1, 2, term=4))),
            GroupWrite(9, HardState(1, 0, 0)),
        ]
    )
    for again in (harness.restart, harness.crash):
        host = again(host)
        assert host.groups() == {0, 5, 9}
        state = {group: host.load(group) for group in (0, 5, 9)}
        assert (state[0].hard_state, state[0].entries) == (HardState(1, 1, 0), entries(1, 3))
        assert (state[5].hard_state, state[5].entries) == (HardState(4, 2, 2), entries(1, 2, 4))
        assert (state[9].hard_state, state[9].entries) == (HardState(1, 0, 0), [])
    host.close()


def test_each_write_has_the_single_group_semantics(harness: HostHarness, host: HostStorage) -> None:
    created(host, 1, 2)
    host.save(
        [
            GroupWrite(1, HardState(1, 1, 3), tuple(entries(1, 10))),
            GroupWrite(2, HardState(1, 1, 2), tuple(entries(1, 10))),
        ]
    )
    snap = snapshot(20, term=2)
    host.save(
        [
            GroupWrite(1, HardState(2, 0, 3), tuple(entries(6, 8, term=2))),  # a conflict
            GroupWrite(2, HardState(2, 0, 20), tuple(entries(21, 22, term=2)), snap),  # install
        ]
    )
    host = harness.restart(host)
    one, two = host.load(1), host.load(2)
    assert one.entries == entries(1, 5) + entries(6, 8, term=2)
    assert (two.snapshot, two.entries) == (snap, entries(21, 22, term=2))
    host.close()


def test_one_group_twice_in_a_save_sees_its_first_write(
    harness: HostHarness, host: HostStorage
) -> None:
    created(host, 3)
    host.save(
        [
            GroupWrite(3, HardState(1, 1, 0), tuple(entries(1, 4))),
            GroupWrite(3, HardState(1, 1, 4), tuple(entries(5, 6))),
        ]
    )
    host = harness.restart(host)
    state = host.load(3)
    assert (state.hard_state, state.entries) == (HardState(1, 1, 4), entries(1, 6))
    host.close()


def test_a_bad_write_anywhere_refuses_the_whole_save(
    harness: HostHarness, host: HostStorage
) -> None:
    created(host, 1, 2)
    host.save([GroupWrite(2, HardState(2, 1, 3), tuple(entries(1, 3, term=2)))])
    with pytest.raises(InvariantError, match="gap"):
        host.save(
            [
                GroupWrite(1, HardState(1, 1, 0), tuple(entries(1, 2))),
                GroupWrite(2, None, tuple(entries(9, 9, term=2))),
            ]
        )
    host.save([GroupWrite(1, None, tuple(entries(1, 1)))])  # 1 is unchanged: index 1 fits
    host = harness.restart(host)
    assert host.load(1).entries == entries(1, 1)
    assert host.load(2).entries == entries(1, 3, term=2)
    host.close()


def test_the_writes_of_a_save_share_one_batch_budget(
    harness: HostHarness, host: HostStorage
) -> None:
    created(host, 1, 2)
    half = [Entry(1, 1, data=b"x" * (BATCH_BYTES_MAX // 2 + 1))]
    with pytest.raises(LimitExceeded, match="host batch"):
        host.save([GroupWrite(1, None, tuple(half)), GroupWrite(2, None, tuple(half))])
    host.save([GroupWrite(1, None, tuple(half))])
    host = harness.restart(host)
    assert host.load(1).last_index == 1 and host.load(2).last_index == 0
    host.close()


@pytest.mark.parametrize(
    "misuse",
    [
        pytest.param(lambda h: h.create_group(1), id="create-existing"),
        pytest.param(lambda h: h.destroy_group(4), id="destroy-unknown"),
        pytest.param(lambda h: h.load(4), id="load-unknown"),
        pytest.param(lambda h: h.load(1), id="load-twice"),
        pytest.param(lambda h: h.save([GroupWrite(4, HardState(1, 0, 0))]), id="write-unknown"),
        pytest.param(lambda h: h.save([GroupWrite(2, HardState(1, 0, 0))]), id="write-unloaded"),
        pytest.param(lambda h: h.compact(4, 0), id="compact-unknown"),
        pytest.param(lambda h: h.save_snapshot(4, snapshot(1)), id="snapshot-unknown"),
        pytest.param(lambda h: h.create_group(-1), id="negative-id"),
        pytest.param(lambda h: h.create_group(1 << 63), id="id-beyond-bound"),
    ],
)
def test_misuse_of_groups_is_an_invariant_error(harness: HostHarness, misuse: object) -> None:
    host = harness.open()
    created(host, 1)
    host.create_group(2)  # exists, not loaded
    with pytest.raises(InvariantError):
        misuse(host)  # type: ignore[operator]
    host.close()


def test_a_destroyed_group_stays_destroyed_and_its_id_starts_empty(
    harness: HostHarness, host: HostStorage
) -> None:
    created(host, 1, 2)
    host.save(
        [
            GroupWrite(1, HardState(3, 1, 5), tuple(entries(1, 5, term=3))),
            GroupWrite(2, HardState(1, 1, 0), tuple(entries(1, 2))),
        ]
    )
    host.save_snapshot(1, snapshot(5, term=3))
    host.destroy_group(1)
    assert host.groups() == {2}
    host = harness.crash(host)
    assert host.groups() == {2}
    created(host, 1)  # the id again: nothing of the old group comes back
    host.save([GroupWrite(1, HardState(1, 0, 0), tuple(entries(1, 1)))])
    host = harness.restart(host)
    state = host.load(1)
    assert (state.hard_state, state.snapshot, state.entries) == (
        HardState(1, 0, 0),
        None,
        entries(1, 1),
    )
    assert host.load(2).entries == entries(1, 2)
    host.close()


def test_compaction_of_one_group_keeps_the_others(harness: HostHarness, host: HostStorage) -> None:
    created(host, 1, 2, 3)
    refs = {group: Reference() for group in (1, 2, 3)}
    for first in range(1, 200, 10):
        writes = [
            GroupWrite(g, HardState(1, 1, first + 9), tuple(entries(first, first + 9, size=60)))
            for g in (1, 2, 3)
        ]
        host.save(writes)
        for write in writes:
            refs[write.group].save(write.hard_state, list(write.entries), None)
    host.save_snapshot(2, snapshot(150))
    host.compact(2, 150)
    refs[2].local_snapshot(150, 1)
    host = harness.restart(host)
    for group, ref in refs.items():
        assert view_of(host.load(group)) == ref.view()
    host.close()


def test_a_view_is_one_group_and_closing_it_leaves_the_host_open(
    harness: HostHarness, host: HostStorage
) -> None:
    created(host, 1)
    host.create_group(2)
    view = GroupView(host, 2)
    assert view.load().last_index == 0
    view.save(HardState(1, 1, 0), entries(1, 3))
    view.save(HardState(1, 1, 3), [], snapshot(3), sync=False)
    view.compact(3)
    view.close()
    view.close()
    with pytest.raises(InvariantError):
        view.save(None, entries(4, 4))
    host.save([GroupWrite(1, HardState(1, 0, 0))])  # the host goes on
    host = harness.restart(host)
    state = host.load(2)
    assert (state.snapshot, state.hard_state) == (snapshot(3), HardState(1, 1, 3))
    host.close()


def test_groups_are_bounded() -> None:
    host = MemoryHostStorage(groups=range(GROUPS_MAX))
    with pytest.raises(LimitExceeded, match="groups"):
        host.create_group(GROUPS_MAX)
    host.destroy_group(0)
    host.create_group(GROUPS_MAX)
