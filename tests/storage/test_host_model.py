"""A randomized model test of `HostStorage`: random create / save (several groups,
sometimes one twice) / snapshot / compact / destroy / reopen sequences, many seeds,
against one `Reference` per group; after every reopen `load()` equals the model for
every group. With small segments and interleaved groups it checks that compaction
never removes a segment a live group still needs, and that a destroyed group never
comes back.

MemoryHostStorage's crash model across groups is checked here too: what survives a
power cut is a prefix of the queued writes, laid end to end over all groups."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from accord.raft.types import HardState, Snapshot
from accord.storage import FileHostStorage, GroupWrite, HostStorage, MemoryHostStorage

from .helpers import CONF, Reference, entries, fast_directory, view_of

GROUP_IDS = range(6)
STEPS = 160
SEEDS = 40

Plan = tuple[HardState | None, list, Snapshot | None]  # type: ignore[type-arg]


def plan_write(ref: Reference, rng: random.Random) -> Plan | None:
    """A valid save for one group in state `ref`, or None."""
    hs = ref.hard_state
    op = rng.choice(["append", "append", "append", "truncate", "commit", "vote", "install"])
    if op == "append":
        term = max(hs.term, ref.last_term, 1)
        new_hs = None if term == hs.term else HardState(term, 0, hs.commit)
        count, size = rng.randint(1, 8), rng.choice([0, 10, 120])
        return new_hs, entries(ref.last_index + 1, ref.last_index + count, term, size), None
    if op == "truncate":
        low = max(hs.commit, ref.snapshot_index) + 1
        if low > ref.last_index:
            return None
        start = rng.randint(low, ref.last_index)
        term = max(hs.term, ref.last_term) + 1
        return HardState(term, 0, hs.commit), entries(start, start + rng.randint(0, 4), term), None
    if op == "commit":
        if hs.commit >= ref.last_index:
            return None
        return HardState(hs.term, hs.vote, rng.randint(hs.commit + 1, ref.last_index)), [], None
    if op == "vote":
        return HardState(hs.term + 1, rng.randint(1, 3), hs.commit), [], None
    index = max(ref.snapshot_index, hs.commit, 1) + rng.randint(0, 15)
    term = max(hs.term, ref.last_term, 1)
    snap = Snapshot(index, term, CONF, rng.randbytes(rng.randint(0, 40)))
    new_hs = (
        HardState(term, hs.vote if term == hs.term else 0, index) if rng.random() < 0.5 else None
    )
    after = entries(index + 1, index + rng.randint(0, 3), term) if rng.random() < 0.5 else []
    return new_hs, after, snap


class Run:
    def __init__(
        self, open_host: Callable[[], HostStorage], reopen: Callable[[HostStorage], HostStorage]
    ) -> None:
        self.open_host, self.reopen_host = open_host, reopen
        self.host = open_host()
        assert self.host.groups() == frozenset()
        self.model: dict[int, Reference] = {}

    def create(self, rng: random.Random) -> None:
        free = [g for g in GROUP_IDS if g not in self.model]
        if free:
            group = rng.choice(free)
            self.host.create_group(group)
            assert self.host.load(group).last_index == 0
            self.model[group] = Reference()

    def destroy(self, rng: random.Random) -> None:
        if self.model:
            group = rng.choice(sorted(self.model))
            self.host.destroy_group(group)
            del self.model[group]

    def save(self, rng: random.Random) -> None:
        if not self.model:
            return
        scratch = {group: ref.copy() for group, ref in self.model.items()}
        writes = []
        for _ in range(rng.randint(1, 2 * len(scratch))):
            group = rng.choice(sorted(scratch))
            plan = plan_write(scratch[group], rng)
            if plan is not None:
                writes.append(GroupWrite(group, plan[0], tuple(plan[1]), plan[2]))
                scratch[group].save(*plan)
        commit_only = all(w.entries == () and w.snapshot is None for w in writes)
        self.host.save(writes, sync=not (commit_only and rng.random() < 0.5))
        self.model = scratch

    def snapshot(self, rng: random.Random) -> None:
        ready = [g for g, ref in self.model.items() if ref.hard_state.commit > ref.snapshot_index]
        if not ready:
            return
        group = rng.choice(sorted(ready))
        ref = self.model[group]
        index = rng.randint(ref.snapshot_index + 1, ref.hard_state.commit)
        snap = Snapshot(index, ref.term_at(index), CONF, rng.randbytes(8))
        self.host.save_snapshot(group, snap)
        self.host.compact(group, max(0, index - rng.randint(0, 5)))
        ref.local_snapshot(index, snap.term)

    def compact(self, rng: random.Random) -> None:
        if self.model:
            group = rng.choice(sorted(self.model))
            self.host.compact(group, rng.randint(0, self.model[group].snapshot_index))

    def reopen(self, rng: random.Random) -> None:
        self.host = self.reopen_host(self.host)
        assert self.host.groups() == set(self.model)
        for group in sorted(self.model, key=lambda _: rng.random()):
            ref = self.model[group]
            state = self.host.load(group)
            assert view_of(state) == ref.view(), f"group {group}"
            assert state.hard_state == ref.normalized_hard_state(ref.snapshot_index), group
            self.model[group] = Reference.of(state)


def exercise(run: Run, seed: int) -> None:
    rng = random.Random(seed)
    ops = [run.create, run.destroy, run.save, run.snapshot, run.compact, run.reopen]
    weights = [3, 1, 12, 3, 1, 2]
    for _ in range(STEPS):
        rng.choices(ops, weights)[0](rng)
    run.reopen(rng)
    run.host.close()


@pytest.mark.parametrize("seed", range(SEEDS))
def test_file_host_storage_matches_the_model(seed: int) -> None:
    with fast_directory() as directory:

        def open_host() -> HostStorage:
            return FileHostStorage(directory, segment_bytes_max=4096)

        def reopen(host: HostStorage) -> HostStorage:
            host.close()
            return open_host()

        run = Run(open_host, reopen)
        exercise(run, seed)
        segments = list((directory / "wal").iterdir())
        assert len(segments) < 60, "compaction never reclaims anything"


@pytest.mark.parametrize("seed", range(SEEDS))
def test_memory_host_storage_matches_the_model(seed: int) -> None:
    memory = MemoryHostStorage()

    def reopen(host: HostStorage) -> HostStorage:
        host.close()
        return host

    exercise(Run(lambda: memory, reopen), seed)


def test_a_power_cut_keeps_a_prefix_of_the_queued_writes_across_groups() -> None:
    outcomes = set()
    for seed in range(200):
        host = MemoryHostStorage(groups=(1, 2, 3))
        for group in (1, 2, 3):
            host.load(group)
        host.save([GroupWrite(g, HardState(1, 1, 0), tuple(entries(1, 1))) for g in (1, 2, 3)])
        queued = [(1, 2), (2, 2), (3, 2), (1, 3), (3, 3)]  # (group, index), in order
        host.write([GroupWrite(g, HardState(1, 1, 1), tuple(entries(i, i))) for g, i in queued[:3]])
        host.write([GroupWrite(g, None, tuple(entries(i, i))) for g, i in queued[3:]])
        assert host.unsynced_writes == 2
        host.crash(random.Random(seed))
        lasts = {group: host.load(group).last_index for group in (1, 2, 3)}
        survived = [(g, i) for g, i in queued if lasts[g] >= i]
        assert survived == queued[: len(survived)], lasts
        outcomes.add(len(survived))
    assert outcomes == set(range(len(queued) + 1))


def test_unsynced_hard_states_never_survive_a_power_cut() -> None:
    for seed in range(30):
        host = MemoryHostStorage(groups=(1, 2))
        for group in (1, 2):
            host.load(group)
        host.save([GroupWrite(g, HardState(1, 1, 0), tuple(entries(1, 2))) for g in (1, 2)])
        host.write(
            [GroupWrite(g, HardState(2, 2, 2), tuple(entries(3, 3, term=2))) for g in (1, 2)]
        )
        host.crash(random.Random(seed))
        for group in (1, 2):
            assert host.load(group).hard_state == HardState(1, 1, 0)


def test_sync_count_is_one_per_synced_batch_and_one_per_group_change() -> None:
    host = MemoryHostStorage()
    host.create_group(1)
    host.create_group(2)
    assert host.sync_count == 2
    host.load(1)
    host.load(2)
    host.save([GroupWrite(g, HardState(1, 1, 0), tuple(entries(1, 3))) for g in (1, 2)])
    assert host.sync_count == 3
    host.write([GroupWrite(1, HardState(1, 1, 2))])
    host.write([GroupWrite(2, HardState(1, 1, 2))])
    host.sync()
    assert (host.sync_count, host.unsynced_writes) == (4, 0)
    host.write([GroupWrite(1, HardState(1, 1, 3))])
    host.destroy_group(2)  # its sync makes the queue durable too
    assert (host.sync_count, host.unsynced_writes) == (5, 0)
    host.crash(random.Random(0))
    assert host.load(1).hard_state == HardState(1, 1, 3)
    assert host.durable(1, 3, 1) and not host.durable(2, 3, 1)
