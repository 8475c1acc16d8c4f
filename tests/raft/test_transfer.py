"""Leadership transfer (Raft thesis 3.10): TimeoutNow to an up-to-date follower."""

from __future__ import annotations

import pytest

from accord.errors import NotLeader, ProposalDropped
from accord.raft import ConfChange, ConfChangeError, ConfChangeOp, MessageType, Role
from accord.testing.raftnet import RaftNetwork

from .helpers import of_type

ELECTION_TICKS = 10
TIMEOUT_NOW = MessageType.TIMEOUT_NOW


def test_transfer_to_an_up_to_date_follower_makes_it_leader_at_a_higher_term() -> None:
    net = RaftNetwork([1, 2, 3])
    net.elect(1)
    net.propose(1, b"x")
    term = net.core(1).term
    mark = len(net.sent)
    net.core(1).transfer_leadership(2)
    net.settle()  # no ticks: the transfer does not wait for an election timeout
    assert of_type(net.sent[mark:], TIMEOUT_NOW, src=1, dst=2)
    assert net.leader() == 2
    assert net.core(2).term == term + 1
    assert net.core(1).role == Role.FOLLOWER and net.core(1).leader == 2
    net.propose(2, b"y")
    net.tick_all(1)
    assert all(net.nodes[n].applied_data() == [b"x", b"y"] for n in (1, 2, 3))


def test_transfer_to_a_lagging_follower_first_catches_it_up() -> None:
    net = RaftNetwork([1, 2, 3])
    net.elect(1)
    net.isolate(3)
    for data in (b"a", b"b", b"c"):
        net.propose(1, data)
    last = net.core(1).status().last_index
    net.heal()
    mark = len(net.sent)
    net.core(1).transfer_leadership(3)
    net.settle()
    sent = net.sent[mark:]
    assert (sent[0].type, sent[0].dst) == (MessageType.APPEND, 3), "3 is behind: catch it up"
    timeout_at = next(i for i, m in enumerate(sent) if m.type == TIMEOUT_NOW)
    acks = [m.index for m in of_type(sent[:timeout_at], MessageType.APPEND_RESP, src=3)]
    assert acks and max(acks) == last, "TimeoutNow only once the target holds the whole log"
    assert net.leader() == 3
    assert net.core(3).status().last_index == last + 1  # its own empty entry after them


def test_proposal_during_a_transfer_is_dropped() -> None:
    net = RaftNetwork([1, 2, 3])
    net.elect(1)
    net.isolate(3)
    net.propose(1, b"a")
    net.core(1).transfer_leadership(3)  # cannot finish: 3 is cut off
    assert net.core(1).status().transferring_to == 3
    with pytest.raises(ProposalDropped):
        net.core(1).propose(b"b")
    with pytest.raises(ProposalDropped):
        net.core(1).propose_conf_change(ConfChange(((ConfChangeOp.ADD_LEARNER, 4),)))


def test_transfer_that_cannot_finish_is_abandoned_after_an_election_timeout() -> None:
    net = RaftNetwork([1, 2, 3])
    net.elect(1)
    net.isolate(3)
    net.core(1).transfer_leadership(3)
    net.tick_all(ELECTION_TICKS - 1)
    assert net.core(1).status().transferring_to == 3
    net.tick_all(1)
    assert net.core(1).status().transferring_to == 0
    assert net.leader() == 1
    net.propose(1, b"accepted again")
    net.tick_all(1)
    assert net.nodes[2].applied_data() == [b"accepted again"]


def test_transfer_needs_a_leader_and_a_voter() -> None:
    net = RaftNetwork([1, 2, 3])
    net.elect(1)
    with pytest.raises(NotLeader) as raised:
        net.core(2).transfer_leadership(3)
    assert raised.value.leader_hint == 1
    with pytest.raises(ConfChangeError):
        net.core(1).transfer_leadership(9)
