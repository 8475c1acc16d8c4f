"""Log replication (Raft paper 5.3), the commit rule (5.4.2, Figure 8) and the
durability contract of `Ready`."""

from __future__ import annotations

from dataclasses import replace

import pytest

from accord.errors import NotLeader, ProposalDropped
from accord.raft import ConfState, DebugFlags, Entry, MessageType, RaftCore, Ready, Role, Snapshot
from accord.raft.log import entry_size
from accord.testing.raftnet import RaftNetwork

from .helpers import (
    all_messages,
    drain,
    log_terms,
    make_leader,
    msg,
    net_with_logs,
    new_core,
    of_type,
    recovered,
    settle_dropping,
)

APPEND, APPEND_RESP = MessageType.APPEND, MessageType.APPEND_RESP


def applied_everywhere(net: RaftNetwork) -> dict[int, list[bytes]]:
    return {node: mem.applied_data() for node, mem in net.nodes.items()}


# ------------------------------------------------------------------ replication
def test_proposals_are_committed_and_applied_in_order_everywhere() -> None:
    net = RaftNetwork([1, 2, 3])
    net.elect(1)
    for data in (b"a", b"b", b"c"):
        net.propose(1, data)
    net.tick_all(1)  # a heartbeat carries the final commit index to the followers
    assert applied_everywhere(net) == {n: [b"a", b"b", b"c"] for n in (1, 2, 3)}
    for node in (1, 2, 3):
        applied = [e.index for e in net.nodes[node].applied]
        assert applied == list(range(1, len(applied) + 1)), "applied out of order"


def test_proposal_commits_on_a_majority_without_the_others() -> None:
    net = RaftNetwork([1, 2, 3, 4, 5])
    net.elect(1)
    net.isolate(4)
    net.isolate(5)
    _, index = net.propose(1, b"x")
    assert net.core(1).status().commit == index
    assert net.nodes[1].applied_data() == [b"x"]
    assert net.core(4).status().last_index < index

    net.isolate(3)  # now only 2 of 5 are connected: nothing more may commit
    _, blocked = net.propose(1, b"y")
    assert net.core(1).status().commit == index < blocked

    net.heal()
    net.tick_all(2)
    assert applied_everywhere(net) == {n: [b"x", b"y"] for n in (1, 2, 3, 4, 5)}


def catch_up_batches(**limits: int) -> list[tuple[bytes, ...]]:
    """The entries of each AppendEntries a leader sends to a follower that missed ten
    100-byte proposals, with the given limits."""
    net = RaftNetwork([1, 2, 3], configure=lambda c: replace(c, **limits))
    net.elect(1)
    net.isolate(3)
    proposed = [bytes([65 + i]) * 100 for i in range(10)]
    for data in proposed:
        net.propose(1, data)
    net.heal()
    mark = len(net.sent)
    net.tick_all(2)
    assert net.nodes[3].applied_data() == proposed
    appends = of_type(net.sent[mark:], APPEND, dst=3)
    return [tuple(e.data for e in m.entries) for m in appends if m.entries]


def test_batching_respects_append_entries_max() -> None:
    batches = catch_up_batches(append_entries_max=3)
    assert max(len(b) for b in batches) == 3
    assert sum(len(b) for b in batches) == 10


def test_batching_respects_append_bytes_max() -> None:
    two_entries = 2 * (100 + entry_size(Entry(0, 0)))  # room for 2 entries of 100 bytes
    batches = catch_up_batches(append_bytes_max=two_entries)
    assert max(len(b) for b in batches) == 2
    for batch in batches:
        assert sum(entry_size(Entry(0, 0, data=d)) for d in batch) <= two_entries
    # Without the byte limit the same catch-up needs far fewer messages.
    assert len(catch_up_batches()) < len(batches)


def test_append_larger_than_append_bytes_max_still_sends_one_entry() -> None:
    batches = catch_up_batches(append_bytes_max=1)
    assert all(len(b) == 1 for b in batches)
    assert len(batches) == 10


def test_pipelining_respects_inflight_messages_max() -> None:
    net = RaftNetwork([1, 2, 3], configure=lambda c: replace(c, inflight_messages_max=2))
    net.elect(1)
    net.cut.add((2, 1))  # node 2 receives appends but its acknowledgements are lost
    mark = len(net.sent)
    for i in range(6):
        net.propose(1, b"p%d" % i)
    to_2 = of_type(net.sent[mark:], APPEND, src=1, dst=2)
    to_3 = of_type(net.sent[mark:], APPEND, src=1, dst=3)
    assert len([m for m in to_2 if m.entries]) == 2, "only two appends may be unacknowledged"
    assert len([m for m in to_3 if m.entries]) >= 6, "an acknowledging follower is not held"
    assert net.core(2).status().last_index == net.core(1).status().last_index - 4

    net.heal()
    net.tick_all(3)
    assert net.nodes[2].applied_data() == [b"p%d" % i for i in range(6)]


def test_diverging_suffix_of_an_older_term_is_replaced() -> None:
    # Node 3 holds four uncommitted entries of term 2; nodes 1 and 2 moved on in term 3.
    net = net_with_logs(
        {
            1: recovered([3, 3]),
            2: recovered([3, 3]),
            3: recovered([2, 2, 2, 2]),
        }
    )
    net.elect(1)
    net.propose(1, b"after")
    net.tick_all(1)
    expected = [1, 3, 3, 4, 4]
    for node in (1, 2, 3):
        assert log_terms(net.core(node)) == expected, node
        assert [e.term for e in net.nodes[node].log] == expected, "persisted log differs"
    assert all(e.term != 2 for e in net.nodes[3].applied)
    assert net.nodes[3].applied_data() == [b"t3i2", b"t3i3", b"after"]


def test_fast_backtracking_skips_a_whole_diverging_term_at_once() -> None:
    # Node 3 has 60 entries of term 2 where the leader has 50 entries of term 3.
    net = net_with_logs(
        {
            1: recovered([3] * 50),
            2: recovered([3] * 50),
            3: recovered([2] * 60),
        }
    )
    net.elect(1)
    rejections = of_type(net.sent, APPEND_RESP, src=3, reject=True)
    assert 1 <= len(rejections) <= 2, len(rejections)
    assert log_terms(net.core(3)) == log_terms(net.core(1))


def test_heartbeat_carries_min_of_match_and_commit() -> None:
    net = RaftNetwork([1, 2, 3])
    net.elect(1)
    behind = net.core(1).status().commit
    net.isolate(3)
    for data in (b"a", b"b", b"c"):
        net.propose(1, data)
    commit = net.core(1).status().commit
    assert commit == behind + 3
    mark = len(net.sent)
    net.tick(1)
    heartbeats = {m.dst: m.commit for m in of_type(net.sent[mark:], MessageType.HEARTBEAT)}
    assert net.core(1).status().progress[3].match == behind
    # A follower must never be told to commit past what it is known to hold.
    assert heartbeats == {2: commit, 3: behind}


def test_heartbeat_never_commits_a_followers_unverified_entries() -> None:
    # Node 3 holds uncommitted term-2 entries at indexes 2..5; the leader has committed
    # different entries at 2..4. Until an append proves where they agree, the leader
    # knows no match for 3, so its heartbeats must carry commit 0 to it.
    net = net_with_logs({1: recovered([3, 3]), 2: recovered([3, 3]), 3: recovered([2] * 4)})
    net.isolate(3)
    net.elect(1)
    net.heal()
    commit = net.core(1).status().commit
    assert commit == 4
    mark = len(net.sent)
    net.core(1).tick()
    settle_dropping(net, lambda m: m.type == APPEND and m.dst == 3)
    heartbeats = of_type(net.sent[mark:], MessageType.HEARTBEAT, dst=3)
    assert [m.commit for m in heartbeats] == [0]
    assert net.core(3).status().commit == 1
    assert net.nodes[3].applied_data() == []


# ------------------------------------------------------------------ commit rule
def figure8_leader(**overrides: object) -> RaftCore:
    """A leader of term 4 whose log holds an entry of term 2 at index 2 that only it
    has, then its own empty entry of term 4 at index 3 (acknowledged by itself)."""
    core = new_core(1, state=recovered([2], term=3), **overrides)
    drain(core)
    make_leader(core)
    assert core.term == 4
    assert log_terms(core) == [1, 2, 4]
    return core


def test_entry_of_an_earlier_term_on_a_majority_is_not_committed_alone() -> None:
    core = figure8_leader()
    # Node 2 now holds index 2 (term 2) but not yet index 3 (term 4): index 2 is on a
    # majority (1 and 2), yet counting replicas must not commit an earlier term's entry.
    core.step(msg(APPEND_RESP, 2, 1, term=4, index=2))
    assert core.status().progress[2].match == 2
    assert core.status().commit == 1
    assert not drain(core).committed_entries

    core.step(msg(APPEND_RESP, 2, 1, term=4, index=3))
    assert core.status().commit == 3
    committed = drain(core).committed_entries
    assert [(e.term, e.index) for e in committed] == [(2, 2), (4, 3)]


def test_figure8_scenario_does_commit_with_the_commit_previous_term_bug() -> None:
    # Shows the scenario above reaches the dangerous state: the deliberate bug commits.
    core = figure8_leader(debug=DebugFlags(commit_previous_term=True))
    core.step(msg(APPEND_RESP, 2, 1, term=4, index=2))
    assert core.status().commit == 2


# ------------------------------------------------------------------ durability
def test_single_node_becomes_leader_only_after_its_vote_is_persisted() -> None:
    core = new_core(1, voters=(1,))
    drain(core)
    core.campaign()
    assert core.role == Role.CANDIDATE, "its own vote is not durable yet"
    rd = core.ready()
    assert rd.hard_state is not None and (rd.hard_state.term, rd.hard_state.vote) == (2, 1)
    assert core.role == Role.CANDIDATE
    core.advance(rd)
    assert core.role == Role.LEADER


def test_single_node_commits_only_after_its_entry_is_persisted() -> None:
    core = new_core(1, voters=(1,))
    drain(core)
    core.campaign()
    drain(core)
    assert core.role == Role.LEADER
    _, index = core.propose(b"x")
    assert core.status().commit < index
    rd = core.ready()
    assert [e.data for e in rd.entries][-1] == b"x"
    assert all(e.index < index for e in rd.committed_entries)
    assert core.status().commit < index, "committed before the driver persisted the entry"
    core.advance(rd)
    assert core.status().commit == index
    assert drain(core).committed_entries[-1].data == b"x"


def test_vote_response_is_sent_only_after_persist() -> None:
    core = new_core(1)
    drain(core)
    core.step(msg(MessageType.VOTE, 2, 1, term=2, index=1, log_term=1))
    rd = core.ready()
    assert not of_type(rd.messages, MessageType.VOTE_RESP)
    assert [m.dst for m in of_type(rd.messages_after_persist, MessageType.VOTE_RESP)] == [2]
    assert rd.hard_state is not None and rd.hard_state.vote == 2


def test_append_response_is_sent_only_after_persist() -> None:
    core = new_core(2)
    drain(core)
    entry = Entry(2, 2, data=b"x")
    core.step(msg(APPEND, 1, 2, term=2, index=1, log_term=1, entries=(entry,), commit=1))
    rd = core.ready()
    assert not of_type(rd.messages, APPEND_RESP)
    acks = of_type(rd.messages_after_persist, APPEND_RESP)
    assert [(m.dst, m.index) for m in acks] == [(1, 2)]
    assert rd.entries == (entry,)


def test_leader_appends_leave_before_persist_and_own_ack_is_internal() -> None:
    core = new_core(1)
    drain(core)
    make_leader(core)
    for follower in (2, 3):  # both acknowledge the empty entry: replicate state
        core.step(msg(APPEND_RESP, follower, 1, term=2, index=2))
    drain(core)
    core.propose(b"x")
    rd = core.ready()
    appends = of_type(rd.messages, APPEND)
    assert sorted(m.dst for m in appends) == [2, 3]
    assert not of_type(rd.messages_after_persist, APPEND)
    assert all(m.dst != 1 for m in all_messages(rd)), "its own ack is not for the driver"
    assert [m.type for m in rd.self_messages] == [APPEND_RESP]


# ------------------------------------------------------------------ follower side
def test_reordered_older_append_does_not_truncate_newer_entries() -> None:
    core = new_core(2)
    drain(core)
    e2, e3 = Entry(2, 2, data=b"a"), Entry(2, 3, data=b"b")
    core.step(msg(APPEND, 1, 2, term=2, index=1, log_term=1, entries=(e2, e3), commit=1))
    drain(core)
    core.step(msg(APPEND, 1, 2, term=2, index=1, log_term=1, entries=(e2,), commit=1))
    rd = drain(core)
    assert core.status().last_index == 3, "a delayed shorter append must not cut the log"
    assert rd.entries == ()
    assert [m.index for m in of_type(all_messages(rd), APPEND_RESP)] == [2]


def test_follower_commits_no_further_than_what_the_append_proved() -> None:
    core = new_core(2, state=recovered([1, 1, 1]))  # indexes 2..4 of term 1, unverified
    drain(core)
    e2 = Entry(1, 2, data=b"t1i2")
    core.step(msg(APPEND, 1, 2, term=2, index=1, log_term=1, entries=(e2,), commit=4))
    # Only index 2 is known to match the leader's log; 3 and 4 may still diverge.
    assert core.status().commit == 2


def test_committed_entries_are_handed_out_in_batches_of_apply_entries_max() -> None:
    core = new_core(2, apply_entries_max=2)
    drain(core)
    entries = tuple(Entry(2, i, data=b"%d" % i) for i in range(2, 7))
    core.step(msg(APPEND, 1, 2, term=2, index=1, log_term=1, entries=entries, commit=6))
    batches = []
    while core.has_ready():
        batches.append([e.index for e in drain(core).committed_entries])
    assert [b for b in batches if b] == [[2, 3], [4, 5], [6]]


# ------------------------------------------------------------------ proposal bounds
def test_proposal_on_a_follower_raises_not_leader_with_a_hint() -> None:
    net = RaftNetwork([1, 2, 3])
    net.elect(1)
    with pytest.raises(NotLeader) as raised:
        net.core(2).propose(b"x")
    assert raised.value.leader_hint == 1


def test_proposal_larger_than_entry_bytes_max_is_dropped() -> None:
    net = RaftNetwork([1, 2, 3], configure=lambda c: replace(c, entry_bytes_max=8))
    net.elect(1)
    net.propose(1, b"12345678")
    with pytest.raises(ProposalDropped):
        net.core(1).propose(b"123456789")


def test_proposals_beyond_uncommitted_entries_max_are_dropped() -> None:
    net = RaftNetwork([1, 2, 3], configure=lambda c: replace(c, uncommitted_entries_max=3))
    net.elect(1)
    net.isolate(2)
    net.isolate(3)  # nothing commits now
    for i in range(3):
        net.propose(1, b"%d" % i)
    with pytest.raises(ProposalDropped):
        net.core(1).propose(b"one too many")
    net.heal()
    net.tick_all(2)
    net.propose(1, b"accepted once committed")


def _entries(first: int, last: int, term: int = 1) -> tuple[Entry, ...]:
    return tuple(Entry(term, i, data=b"x") for i in range(first, last + 1))


@pytest.mark.parametrize(
    ("new", "committed", "durable"),
    [
        ((), _entries(3, 5), 3),  # nothing new: everything committed was persisted before
        (_entries(6, 8), _entries(3, 5), 3),  # a leader: new proposals after the committed
        (_entries(5, 8), _entries(3, 7), 2),  # a follower: commit reaches into the new ones
        (_entries(3, 4), _entries(3, 4), 0),  # all of it arrives with this Ready
        (_entries(6, 8), (), 0),
    ],
)
def test_durable_committed_is_the_prefix_below_the_first_new_entry(
    new: tuple[Entry, ...], committed: tuple[Entry, ...], durable: int
) -> None:
    rd = Ready(entries=new, committed_entries=committed)
    assert rd.durable_committed() == durable


def test_nothing_is_durable_while_a_snapshot_is_installed() -> None:
    snapshot = Snapshot(index=2, term=1, conf=ConfState(voters=frozenset({1})), data=b"")
    rd = Ready(snapshot=snapshot, committed_entries=_entries(3, 4))
    assert rd.durable_committed() == 0
