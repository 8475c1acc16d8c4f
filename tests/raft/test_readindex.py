"""Linearizable reads by ReadIndex (Raft thesis 6.4): a read is confirmed by a quorum
heartbeat round and answered with the leader's commit index."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from accord.raft import Message, MessageType, ReadState, Role
from accord.testing.raftnet import RaftNetwork

from .helpers import drain, make_leader, msg, new_core, of_type

ELECTION_TICKS = 10
HEARTBEAT, HEARTBEAT_RESP = MessageType.HEARTBEAT, MessageType.HEARTBEAT_RESP


def read_rounds(messages: Iterable[Message]) -> list[Message]:
    """Heartbeats that carry a ReadIndex round id."""
    return [m for m in of_type(messages, HEARTBEAT) if m.context]


def test_leader_read_is_answered_with_its_commit_index_after_a_quorum_round() -> None:
    net = RaftNetwork([1, 2, 3])
    net.elect(1)
    net.propose(1, b"w")
    commit = net.core(1).status().commit
    net.cut.update({(2, 1), (3, 1)})  # heartbeat answers are lost
    net.core(1).read_index(b"r1")
    net.settle()
    assert net.nodes[1].read_states == [], "answered without hearing from a quorum"
    assert len(read_rounds(net.sent)) == 2

    net.cut.discard((2, 1))  # one follower's answer plus the leader is a quorum of 3
    net.tick(1)
    assert net.nodes[1].read_states == [ReadState(b"r1", commit)]


def test_reads_issued_before_one_ready_share_one_heartbeat_round() -> None:
    net = RaftNetwork([1, 2, 3])
    net.elect(1)
    mark = len(net.sent)
    for context in (b"a", b"b", b"c"):
        net.core(1).read_index(context)
    net.settle()
    rounds = read_rounds(net.sent[mark:])
    assert sorted(m.dst for m in rounds) == [2, 3], "one heartbeat per follower in all"
    assert len({m.context for m in rounds}) == 1
    commit = net.core(1).status().commit
    assert net.nodes[1].read_states == [ReadState(c, commit) for c in (b"a", b"b", b"c")]


def test_read_issued_during_a_round_waits_for_the_next_round() -> None:
    core = new_core(1)
    drain(core)
    make_leader(core)
    for follower in (2, 3):
        core.step(msg(MessageType.APPEND_RESP, follower, 1, term=2, index=2))
    drain(core)
    core.read_index(b"first")
    first_round = read_rounds(drain(core).messages)[0].context
    core.read_index(b"second")  # arrives after the first round's heartbeats left
    core.step(msg(HEARTBEAT_RESP, 2, 1, term=2, context=first_round))
    rd = drain(core)
    assert [r.context for r in rd.read_states] == [b"first"]
    second_round = read_rounds(rd.messages)[0].context
    assert second_round != first_round
    core.step(msg(HEARTBEAT_RESP, 3, 1, term=2, context=second_round))
    assert [r.context for r in drain(core).read_states] == [b"second"]


def test_read_on_a_new_leader_waits_for_an_entry_of_its_term_to_commit() -> None:
    core = new_core(1)
    drain(core)
    make_leader(core)  # its empty entry (index 2) is not acknowledged by anyone yet
    core.read_index(b"r")
    rd = drain(core)
    assert not rd.read_states
    assert not read_rounds(rd.messages), "no round before an entry of its term commits"

    core.step(msg(MessageType.APPEND_RESP, 2, 1, term=2, index=2))
    assert core.status().commit == 2
    rd = drain(core)
    rounds = read_rounds(rd.messages)
    assert rounds and not rd.read_states
    core.step(msg(HEARTBEAT_RESP, 2, 1, term=2, context=rounds[0].context))
    assert drain(core).read_states == (ReadState(b"r", 2),)


def test_follower_read_is_forwarded_to_the_leader_and_answered() -> None:
    net = RaftNetwork([1, 2, 3])
    net.elect(1)
    net.propose(1, b"w")
    mark = len(net.sent)
    net.core(2).read_index(b"f")
    net.settle()
    commit = net.core(1).status().commit
    assert of_type(net.sent[mark:], MessageType.READ_INDEX, src=2, dst=1, context=b"f")
    assert of_type(net.sent[mark:], MessageType.READ_INDEX_RESP, src=1, dst=2, context=b"f")
    assert net.nodes[2].read_states == [ReadState(b"f", commit)]


def test_read_on_a_leader_that_loses_leadership_is_rejected() -> None:
    net = RaftNetwork([1, 2, 3])
    net.elect(1)
    net.isolate(1)
    net.core(1).read_index(b"r")
    net.settle()
    assert net.nodes[1].read_states == []
    for _ in range(40):
        if net.core(1).role != Role.LEADER:
            break
        net.tick(1)
    assert net.core(1).role == Role.FOLLOWER
    assert net.nodes[1].read_states == [ReadState(b"r", 0, rejected=True)]


def test_read_waiting_for_a_new_leaders_first_commit_is_rejected_when_it_steps_down() -> None:
    core = new_core(1)
    drain(core)
    make_leader(core)
    core.read_index(b"r")
    drain(core)
    core.step(msg(MessageType.HEARTBEAT, 3, 1, term=3, commit=1))
    assert core.role == Role.FOLLOWER
    assert drain(core).read_states == (ReadState(b"r", 0, rejected=True),)


def test_read_on_a_node_with_no_known_leader_is_rejected() -> None:
    core = new_core(1)
    drain(core)
    assert core.leader == 0
    core.read_index(b"r")
    assert core.has_ready()
    assert drain(core).read_states == (ReadState(b"r", 0, rejected=True),)


def test_single_node_read_needs_no_round_trip() -> None:
    net = RaftNetwork([1])
    net.elect(1)
    net.propose(1, b"w")
    net.core(1).read_index(b"r")
    net.settle()
    assert net.nodes[1].read_states == [ReadState(b"r", net.core(1).status().commit)]


def test_stale_leader_cannot_confirm_a_read() -> None:
    net = RaftNetwork([1, 2, 3], configure=lambda c: replace(c, check_quorum=False))
    net.elect(1)
    net.isolate(1)
    net.elect(2)
    net.propose(2, b"newer")  # a read served by node 1 now would miss this write
    net.heal()
    assert net.core(1).role == Role.LEADER and net.core(1).term < net.core(2).term
    net.core(1).read_index(b"stale")
    net.settle()
    assert net.nodes[1].read_states == [ReadState(b"stale", 0, rejected=True)]
    assert net.core(1).role == Role.FOLLOWER


def test_forwarded_read_is_rejected_when_the_leader_loses_leadership() -> None:
    net = RaftNetwork([1, 2, 3])
    net.elect(1)
    # Node 2's forwarded read reaches node 1, but node 1's heartbeats reach nobody.
    net.cut.update({(1, 2), (1, 3), (3, 1)})
    net.core(2).read_index(b"f")
    net.settle()
    assert of_type(net.sent, MessageType.READ_INDEX, src=2, dst=1)
    assert net.nodes[2].read_states == []
    for _ in range(4 * ELECTION_TICKS):
        net.core(1).tick()
        if net.core(1).role != Role.LEADER:
            break
        net.settle()
    assert net.core(1).role == Role.FOLLOWER
    net.heal()  # the answer to node 2 may leave now
    net.settle()
    assert net.nodes[2].read_states == [ReadState(b"f", 0, rejected=True)]
