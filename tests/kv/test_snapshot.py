"""Snapshots: the whole state round-trips, and a restored replica behaves identically."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accord.kv import (
    BadSnapshot,
    Command,
    Compact,
    DeleteRange,
    KVStateMachine,
    LeaseGrant,
    Put,
    run_job,
)
from accord.kv.machine import SNAPSHOT_FORMAT

from .helpers import Driver, state
from .strategies import commands

# A request: the command, the client (0: none) and how far the leader's clock moves.
requests = st.tuples(commands, st.integers(0, 3), st.integers(0, 40))
CLIENTS_SEQ = st.integers(1, 4)


def play(d: Driver, steps: list[tuple[Command, int, int]], seqs: list[int]) -> list[object]:
    """Apply the requests; client c uses seq `seqs[i]` (sometimes repeating, to retry)."""
    outcomes: list[object] = []
    for i, (command, client, advance) in enumerate(steps):
        seq = seqs[i % len(seqs)] + i // 2 if client else 0
        outcomes.append(d.send(command, client=client, seq=seq, now_ms=d.now_ms + advance))
    return outcomes


def populated() -> Driver:
    d = Driver()
    d(LeaseGrant(1, 100), now_ms=10)
    d(Put(b"a", b"1", lease=1), client=5, seq=1)
    d(Put(b"b", b"1"))
    d(DeleteRange(b"b"))
    d(Put(b"a", b"2", lease=1))
    return d


def test_restore_reproduces_the_whole_state() -> None:
    d = populated()
    data = d.machine.snapshot()
    copy = KVStateMachine()
    copy.restore(data)
    assert copy.snapshot() == data
    m = d.machine
    assert (copy.applied_index, copy.revision, copy.compact_revision, copy.clock_ms) == (
        m.applied_index,
        m.revision,
        m.compact_revision,
        m.clock_ms,
    )
    assert copy.range(b"", b"\x00", revision=3) == m.range(b"", b"\x00", revision=3)
    assert copy.lease_ttl(1, keys=True) == m.lease_ttl(1, keys=True)
    assert copy.sessions_count == 1 and copy.size_bytes == m.size_bytes
    assert copy.history(b"", b"\x00", 2, 100) == m.history(b"", b"\x00", 2, 100)


def test_restore_replaces_everything_that_was_there() -> None:
    target = Driver()
    for i in range(10):
        target(Put(b"x%d" % i, b"v"), client=9, seq=i + 1)
    source = populated()
    target.machine.restore(source.machine.snapshot())
    assert target.machine.snapshot() == source.machine.snapshot()
    assert target.machine.get(b"x1").kv is None


@given(
    st.lists(requests, max_size=30),
    st.lists(requests, max_size=15),
    st.lists(CLIENTS_SEQ, min_size=1, max_size=4),
)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_restored_replica_continues_identically(
    before: list[tuple[Command, int, int]],
    after: list[tuple[Command, int, int]],
    seqs: list[int],
) -> None:
    original = Driver()
    play(original, before, seqs)
    data = original.machine.snapshot()
    copy = Driver(KVStateMachine())
    copy.machine.restore(data)
    copy.index, copy.now_ms = original.index, original.now_ms
    assert copy.machine.snapshot() == data
    assert state(copy.machine) == state(original.machine)
    assert play(copy, after, seqs) == play(original, after, seqs)
    assert copy.machine.snapshot() == original.machine.snapshot()


@given(
    st.lists(requests, max_size=30),
    st.lists(st.tuples(requests, st.integers(0, 2)), max_size=30),
    st.lists(CLIENTS_SEQ, min_size=1, max_size=4),
    st.integers(1, 3),
)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_snapshot_job_encodes_the_state_it_started_from(
    before: list[tuple[Command, int, int]],
    during: list[tuple[tuple[Command, int, int], int]],
    seqs: list[int],
    keys_per_step: int,
) -> None:
    """Puts, deletes, compactions and lease changes applied between the job's steps
    do not show in its result: it equals `snapshot()` at the moment it started."""
    d = Driver()
    play(d, before, seqs)
    expected = d.machine.snapshot()
    job = d.machine.snapshot_job(keys_per_step)
    finished = False
    for i, ((command, client, advance), steps) in enumerate(during):
        for _ in range(steps):
            if finished:
                break
            try:
                next(job)
            except StopIteration as done:
                finished, data = True, done.value
        seq = seqs[i % len(seqs)] + 100 + i if client else 0
        d.send(command, client=client, seq=seq, now_ms=d.now_ms + advance)
    if not finished:
        data = run_job(job)
    assert data == expected


def test_a_snapshot_job_survives_compaction_and_key_removal_under_it() -> None:
    d = Driver()
    for i in range(20):
        d(Put(b"k%02d" % i, b"v1"))
        d(Put(b"k%02d" % i, b"v2"))
    for i in range(0, 20, 2):
        d(DeleteRange(b"k%02d" % i))
    expected = d.machine.snapshot()
    job = d.machine.snapshot_job(keys_per_step=1)
    next(job)
    next(job)
    d(Put(b"k05", b"v3"))  # a key the job has not reached yet
    d(Compact(d.machine.revision))  # drops the deleted keys and every old version
    d(Put(b"k07", b"v3"))
    d(Put(b"k00", b"back"))  # a key removed by the compaction, created anew
    assert run_job(job) == expected
    assert d.machine.get(b"k00").kv is not None


def test_garbage_is_refused_and_changes_nothing() -> None:
    d = populated()
    before = d.machine.snapshot()
    good = msgpack.unpackb(before)
    bad_cases = [
        b"",
        b"\xc1",
        msgpack.packb([SNAPSHOT_FORMAT + 1, *good[1:]]),
        msgpack.packb(good[:-1]),
        msgpack.packb([*good[:5], list(reversed(good[5])), *good[6:]]),  # keys out of order
        msgpack.packb([*good[:6], [], good[7]]),  # a key attached to a missing lease
        msgpack.packb([*good[:7], [[0, 1, 0, [12]]]]),  # client id 0
        msgpack.packb([*good[:7], [[3, 1, 0, [99]]]]),  # unknown result
        msgpack.packb([*good[:2], 0, *good[3:]]),  # revision 0
    ]
    for data in bad_cases:
        with pytest.raises(BadSnapshot):
            d.machine.restore(data)
        assert d.machine.snapshot() == before


@given(st.data())
@settings(max_examples=300, deadline=None)
def test_fuzz_restore_raises_only_bad_snapshot(data: st.DataObject) -> None:
    encoded = bytearray(populated().machine.snapshot())
    for _ in range(data.draw(st.integers(1, 3))):
        position = data.draw(st.integers(0, len(encoded) - 1))
        encoded[position] = data.draw(st.integers(0, 255))
    machine = KVStateMachine()
    try:
        machine.restore(bytes(encoded))
    except BadSnapshot:
        return
    machine.snapshot()  # whatever was accepted is a state that can be used
    machine.range(b"", b"\x00")
