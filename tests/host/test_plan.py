"""The executor's plan: which messages leave before the fsync, what is applied while
it runs, and that a batch of many groups costs one write and one fsync."""

from __future__ import annotations

import random

from accord.host import AWAIT_DURABLE, Advance, Apply, Host, Persist, Send, plan
from accord.raft import (
    ConfState,
    Entry,
    HardState,
    Message,
    MessageType,
    RaftConfig,
    RaftCore,
    ReadState,
    Ready,
    RecoveredState,
    Role,
    Snapshot,
)


def _msg(kind: MessageType, group: int, dst: int = 2) -> Message:
    return Message(type=kind, group=group, src=1, dst=dst, term=3)


def test_acks_leave_only_after_the_fsync_of_every_group() -> None:
    append = _msg(MessageType.APPEND, 1)
    ack = _msg(MessageType.APPEND_RESP, 2)
    leader = Ready(entries=(Entry(3, 5),), messages=(append,), hard_state=HardState(3, 1, 4))
    follower = Ready(entries=(Entry(3, 9),), messages_after_persist=(ack,))
    steps = plan([(1, leader), (2, follower)])
    sends = [s for s in steps if isinstance(s, Send)]
    assert sends[0].messages == (append,) and sends[1].messages == (ack,)
    persists = [s for s in steps if isinstance(s, Persist)]
    assert len(persists) == 1 and persists[0].sync  # one write, one fsync, both groups
    assert [w.group for w in persists[0].writes] == [1, 2]
    assert steps.index(sends[0]) < steps.index(persists[0]) < steps.index(AWAIT_DURABLE)
    assert steps.index(AWAIT_DURABLE) < steps.index(sends[1])
    advances = [i for i, s in enumerate(steps) if isinstance(s, Advance)]
    assert len(advances) == 2 and min(advances) > steps.index(sends[1])


def test_entries_earlier_readies_persisted_are_applied_during_the_fsync() -> None:
    committed = (Entry(3, 4), Entry(3, 5), Entry(3, 6))
    rd = Ready(entries=(Entry(3, 6), Entry(3, 7)), committed_entries=committed)
    steps = plan([(7, rd)])
    applies = [s for s in steps if isinstance(s, Apply)]
    wait = steps.index(AWAIT_DURABLE)
    early = [a for a in applies if steps.index(a) < wait]
    late = [a for a in applies if steps.index(a) > wait]
    assert [(a.start, a.stop, a.finish) for a in early] == [(0, 2, False)]  # 4 and 5
    assert [(a.start, a.stop, a.finish) for a in late] == [(2, 3, True)]  # 6 is new


def test_without_an_fsync_the_commits_are_applied_before_the_messages_leave() -> None:
    heartbeat = _msg(MessageType.APPEND, 0)
    rd = Ready(
        hard_state=HardState(3, 1, 6),
        committed_entries=(Entry(3, 6),),
        messages=(heartbeat,),
        must_sync=False,
    )
    steps = plan([(0, rd)])
    assert AWAIT_DURABLE not in steps
    persist = next(s for s in steps if isinstance(s, Persist))
    assert not persist.sync
    apply = next(s for s in steps if isinstance(s, Apply))
    send = next(s for s in steps if isinstance(s, Send))
    assert steps.index(persist) < steps.index(apply) < steps.index(send)


def test_one_group_needing_an_fsync_makes_the_batch_wait_for_it() -> None:
    quiet = Ready(hard_state=HardState(2, 1, 3), must_sync=False, committed_entries=(Entry(2, 3),))
    busy = Ready(entries=(Entry(4, 10),), messages_after_persist=(_msg(MessageType.VOTE_RESP, 5),))
    steps = plan([(4, quiet), (5, busy)])
    persist = next(s for s in steps if isinstance(s, Persist))
    assert persist.sync and {w.group for w in persist.writes} == {4, 5}
    # The quiet group's commit was durable already: applied while the fsync runs.
    first_apply = next(s for s in steps if isinstance(s, Apply))
    assert first_apply.group == 4 and steps.index(first_apply) < steps.index(AWAIT_DURABLE)


def test_a_snapshot_is_restored_after_the_fsync_and_nothing_is_applied_early() -> None:
    snap = Snapshot(index=20, term=3, conf=ConfState(voters=frozenset({1})), data=b"x")
    rd = Ready(snapshot=snap, committed_entries=(), read_states=(ReadState(b"r", 20),))
    steps = plan([(0, rd)])
    applies = [s for s in steps if isinstance(s, Apply)]
    assert len(applies) == 1 and applies[0].finish
    assert steps.index(applies[0]) > steps.index(AWAIT_DURABLE)


def test_the_deliberate_bug_sends_the_acks_before_the_fsync() -> None:
    ack = _msg(MessageType.APPEND_RESP, 0)
    rd = Ready(entries=(Entry(3, 9),), messages_after_persist=(ack,))
    steps = plan([(0, rd)], send_before_persist=True)
    send = next(s for s in steps if isinstance(s, Send))
    assert ack in send.messages and steps.index(send) < steps.index(AWAIT_DURABLE)
    assert not any(isinstance(s, Send) for s in steps[steps.index(AWAIT_DURABLE) :])


class _Recorder:
    def __init__(self, log: list[str], group: int) -> None:
        self.log = log
        self.group = group

    def on_ready(self, ready: Ready) -> None:
        self.log.append(f"{self.group}:ready")

    def restore(self, snapshot: Snapshot) -> None:
        self.log.append(f"{self.group}:restore")

    def apply(self, entries: object) -> None:
        self.log.append(f"{self.group}:apply{[e.index for e in entries]}")  # type: ignore[attr-defined]

    def on_read_states(self, read_states: tuple[ReadState, ...]) -> None:
        self.log.append(f"{self.group}:reads")

    def on_advanced(self, ready: Ready) -> None:
        self.log.append(f"{self.group}:advanced")


def _single_node_core(group: int) -> RaftCore:
    config = RaftConfig(id=1, group=group, bootstrap_voters=frozenset({1}))
    return RaftCore(config, random.Random(group), RecoveredState(HardState(), None, ()))


def _drain(host: Host, durable: list[tuple[int, int]]) -> None:
    while (batch := host.ready()) is not None:
        for step in batch.steps:
            if isinstance(step, Persist):
                durable.extend((w.group, e.index) for w in step.writes for e in w.entries)
            elif not isinstance(step, Send) and step is not AWAIT_DURABLE:
                host.run(step)


def test_a_host_of_real_cores_elects_and_commits_every_group_in_shared_batches() -> None:
    log: list[str] = []
    host = Host()
    for group in (3, 1, 2):
        host.add_group(_single_node_core(group), _Recorder(log, group))
    durable: list[tuple[int, int]] = []
    for _ in range(40):
        host.tick()
        _drain(host, durable)
    assert all(host.core(g).role == Role.LEADER for g in (1, 2, 3))
    for group in (2, 3, 1):
        host.core(group).propose(b"w%d" % group)
    batch = host.ready()
    assert batch is not None
    assert [g for g, _ in batch.readies] == [2, 3, 1]  # as given inputs: replays exactly
    persists = [s for s in batch.steps if isinstance(s, Persist)]
    assert len(persists) == 1 and {w.group for w in persists[0].writes} == {1, 2, 3}
    for step in batch.steps:
        if not isinstance(step, Send | Persist) and step is not AWAIT_DURABLE:
            host.run(step)
    _drain(host, durable)
    applied = [line for line in log if "apply" in line]
    assert any(line.startswith("1:apply") for line in applied)
    assert any(line.startswith("3:apply") for line in applied)


def test_a_removed_group_is_skipped_and_messages_for_it_are_refused() -> None:
    log: list[str] = []
    host = Host()
    host.add_group(_single_node_core(1), _Recorder(log, 1))
    host.add_group(_single_node_core(2), _Recorder(log, 2))
    batch = host.ready()
    assert batch is not None and [g for g, _ in batch.readies] == [1, 2]
    host.remove_group(2)
    for step in batch.steps:
        if isinstance(step, Apply | Advance):
            host.run(step)
    assert not any(line.startswith("2:") and "ready" not in line for line in log)
    assert 2 not in host and len(host) == 1
    assert not host.step(_msg(MessageType.HEARTBEAT, 2))


def test_a_batch_of_at_most_some_groups_leaves_the_others_for_the_next() -> None:
    log: list[str] = []
    host = Host()
    for group in (1, 2, 3):
        host.add_group(_single_node_core(group), _Recorder(log, group))
    durable: list[tuple[int, int]] = []
    for _ in range(40):
        host.tick()
        _drain(host, durable)
    for group in (3, 1, 2):
        host.core(group).propose(b"w")
    taken = []
    while (batch := host.ready(groups_max=1)) is not None:
        assert len(batch.readies) <= 1
        taken += [g for g, _ in batch.readies]
        for step in batch.steps:
            if not isinstance(step, Send | Persist) and step is not AWAIT_DURABLE:
                host.run(step)
    assert taken[:3] == [3, 1, 2]  # one group a batch, in the order of their inputs
