"""Learners and membership changes by joint consensus (Raft thesis 4.3)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from accord.errors import ProposalDropped
from accord.raft import (
    ConfChange,
    ConfChangeError,
    ConfChangeOp,
    EntryType,
    MessageType,
    RaftCore,
    Role,
)
from accord.testing.raftnet import RaftNetwork

from .helpers import pump_until

ELECTION_TICKS = 10
ADD_VOTER, ADD_LEARNER, REMOVE = (
    ConfChangeOp.ADD_VOTER,
    ConfChangeOp.ADD_LEARNER,
    ConfChangeOp.REMOVE,
)


def change(*ops: tuple[ConfChangeOp, int]) -> ConfChange:
    return ConfChange(tuple(ops))


def voters(core: RaftCore) -> frozenset[int]:
    return core.status().conf.voters


def cluster_with_learner() -> RaftNetwork:
    net = RaftNetwork([1, 2, 3])
    net.elect(1)
    net.propose(1, b"before")
    net.core(1).propose_conf_change(change((ADD_LEARNER, 4)))
    net.add_node(4)  # joins with an empty log and no configuration
    net.settle()
    assert net.core(1).status().conf.learners == {4}
    return net


def conf_changes_applied(net: RaftNetwork, node: int) -> list[ConfChange]:
    return [
        ConfChange.decode(e.data)
        for e in net.nodes[node].applied
        if e.type == EntryType.CONF_CHANGE
    ]


# ------------------------------------------------------------------ learners
def test_learner_receives_the_log() -> None:
    net = cluster_with_learner()
    net.propose(1, b"after")
    net.tick_all(1)
    assert net.nodes[4].applied_data() == [b"before", b"after"]
    assert net.core(4).status().conf.learners == {4}


def test_learner_never_campaigns() -> None:
    net = cluster_with_learner()
    net.isolate(4)
    net.tick_all(10 * ELECTION_TICKS)
    assert net.core(4).role == Role.FOLLOWER
    net.core(4).campaign()
    net.settle()
    assert net.core(4).role == Role.FOLLOWER
    assert not [
        m for m in net.sent if m.src == 4 and m.type in (MessageType.VOTE, MessageType.PRE_VOTE)
    ]


def test_learner_acks_do_not_count_towards_commit() -> None:
    net = cluster_with_learner()
    net.core(1).propose_conf_change(change((ADD_LEARNER, 5)))
    net.add_node(5)
    net.settle()
    assert net.core(1).status().conf.learners == {4, 5}
    # Leader + two learners would be 3 of 5 members, but only 1 of the 3 voters.
    net.isolate(2)
    net.isolate(3)
    net.cut -= {(1, 4), (4, 1), (1, 5), (5, 1)}
    commit = net.core(1).status().commit
    _, index = net.propose(1, b"x")
    for learner in (4, 5):
        assert net.core(learner).status().last_index == index
        assert net.core(1).status().progress[learner].match == index
    assert net.core(1).status().commit == commit


def test_promoting_a_learner_makes_it_a_voter() -> None:
    net = cluster_with_learner()
    net.propose(1, b"x")
    net.core(1).propose_conf_change(change((ADD_VOTER, 4)))
    net.settle()
    for node in (1, 2, 3, 4):
        conf = net.core(node).status().conf
        assert (conf.voters, conf.learners, conf.joint) == ({1, 2, 3, 4}, frozenset(), False)
    net.core(1).transfer_leadership(4)
    net.settle()
    assert net.leader() == 4
    net.propose(4, b"from 4")
    net.tick_all(1)
    assert net.nodes[2].applied_data() == [b"before", b"x", b"from 4"]


# ------------------------------------------------------------------ joint consensus
def test_adding_a_voter_goes_through_a_joint_configuration_and_leaves_it() -> None:
    net = RaftNetwork([1, 2, 3])
    net.elect(1)
    net.add_node(4)
    net.core(1).propose_conf_change(change((ADD_VOTER, 4)))
    pump_until(net, lambda: net.core(1).status().conf.joint)
    joint = net.core(1).status().conf
    assert (joint.voters, joint.voters_outgoing) == ({1, 2, 3, 4}, {1, 2, 3})
    net.settle()
    net.tick_all(1)
    for node in (1, 2, 3, 4):
        conf = net.core(node).status().conf
        assert (conf.voters, conf.voters_outgoing) == ({1, 2, 3, 4}, frozenset()), node
    # The log holds the change and then the automatic, empty "leave joint" change.
    assert conf_changes_applied(net, 2)[1:] == [change((ADD_VOTER, 4)), ConfChange()]


def test_joint_configuration_needs_both_majorities() -> None:
    net = RaftNetwork([1, 2, 3])
    net.elect(1)
    net.add_node(4)
    net.add_node(5)
    net.core(1).propose_conf_change(change((ADD_VOTER, 4), (ADD_VOTER, 5)))
    pump_until(net, lambda: net.core(1).status().conf.joint)
    # In joint {1..5} + {1,2,3}: nodes 1, 4, 5 are a majority of the new voters but
    # not of the old ones, so nothing commits with them alone.
    net.isolate(2)
    net.isolate(3)
    net.cut -= {(a, b) for a in (1, 4, 5) for b in (1, 4, 5)}
    net.settle()
    assert net.core(1).status().conf.joint, "leaving joint must not commit without 2 or 3"
    commit = net.core(1).status().commit
    net.propose(1, b"x")
    assert net.core(1).status().commit == commit
    net.heal()
    net.tick_all(1)
    assert not net.core(1).status().conf.joint
    assert net.nodes[1].applied_data() == [b"x"]


def test_removing_a_follower() -> None:
    net = RaftNetwork([1, 2, 3])
    net.elect(1)
    net.core(1).propose_conf_change(change((REMOVE, 3)))
    net.settle()
    net.tick_all(1)
    assert voters(net.core(1)) == voters(net.core(2)) == {1, 2}
    assert 3 not in net.core(1).status().progress
    mark = len(net.sent)
    net.propose(1, b"x")
    net.tick_all(3 * ELECTION_TICKS)
    assert not [m for m in net.sent[mark:] if m.dst == 3 and m.src == 1]
    assert net.leader() == 1, "the removed node does not disrupt the cluster"
    assert net.nodes[2].applied_data() == [b"x"]


def test_a_removed_node_that_never_learned_it_cannot_depose_the_leader() -> None:
    # Neither PreVote nor CheckQuorum: only the leader lease on votes from outside the
    # configuration stops the removed node from forcing elections forever.
    net = RaftNetwork([1, 2, 3], configure=lambda c: replace(c, pre_vote=False, check_quorum=False))
    net.elect(1)
    net.isolate(3)  # 3 misses its own removal: it still counts itself a voter
    net.core(1).propose_conf_change(change((REMOVE, 3)))
    net.settle()
    net.tick_all(1)
    assert voters(net.core(1)) == voters(net.core(2)) == {1, 2}
    assert 3 in voters(net.core(3))
    net.heal()
    term = net.core(1).term
    for _ in range(5):
        net.core(3).campaign()  # each campaign asks 1 and 2 for votes at a new term
        net.settle()
        net.tick_all(1)
    assert net.core(3).term > term
    assert net.leader() == 1 and net.core(1).term == net.core(2).term == term
    net.propose(1, b"still committing")
    assert net.nodes[2].applied_data() == [b"still committing"]
    # Once the leader is gone for an election timeout, the lease lapses: 2 may vote
    # again (here, for a candidate of its own configuration: itself).
    net.isolate(1)
    net.tick(2, 3 * ELECTION_TICKS)
    assert net.core(2).role == Role.CANDIDATE or net.core(2).term > term


def test_removing_the_leader_hands_over_and_the_cluster_keeps_committing() -> None:
    net = RaftNetwork([1, 2, 3])
    net.elect(1)
    net.core(1).propose_conf_change(change((REMOVE, 1)))
    net.settle()
    assert net.core(1).role == Role.FOLLOWER
    new_leader = net.leader()
    assert new_leader in (2, 3)
    assert voters(net.core(new_leader)) == {2, 3}
    net.propose(new_leader, b"after removal")
    net.tick_all(3 * ELECTION_TICKS)
    assert net.leader() == new_leader
    assert net.core(1).role == Role.FOLLOWER, "a removed node never campaigns"
    for node in (2, 3):
        assert net.nodes[node].applied_data() == [b"after removal"]


def test_second_change_while_one_is_pending_is_dropped() -> None:
    net = RaftNetwork([1, 2, 3])
    net.elect(1)
    leader = net.core(1)
    leader.propose_conf_change(change((ADD_LEARNER, 4)))
    with pytest.raises(ProposalDropped):
        leader.propose_conf_change(change((ADD_LEARNER, 5)))
    net.settle()
    leader.propose_conf_change(change((ADD_VOTER, 5)))
    pump_until(net, lambda: leader.status().conf.joint)
    with pytest.raises(ProposalDropped):  # still leaving the joint configuration
        leader.propose_conf_change(change((ADD_LEARNER, 6)))
    net.settle()
    leader.propose_conf_change(change((ADD_LEARNER, 6)))


@pytest.mark.parametrize(
    "bad",
    [
        change((REMOVE, 1), (REMOVE, 2), (REMOVE, 3)),  # no voter left
        change((ADD_LEARNER, 2)),  # demoting a voter
        change((ADD_VOTER, 0)),  # node 0 means "nobody"
        ConfChange(),  # "leave joint" outside a joint configuration
    ],
    ids=["no-voters", "demote-voter", "node-zero", "leave-without-joint"],
)
def test_invalid_change_raises_conf_change_error(bad: ConfChange) -> None:
    net = RaftNetwork([1, 2, 3])
    net.elect(1)
    last = net.core(1).status().last_index
    with pytest.raises(ConfChangeError):
        net.core(1).propose_conf_change(bad)
    assert net.core(1).status().last_index == last
    net.core(1).propose_conf_change(change((ADD_LEARNER, 4)))  # nothing left pending


def test_leader_elected_in_a_joint_configuration_leaves_it() -> None:
    net = RaftNetwork([1, 2, 3], seed=5)
    net.elect(1)
    net.add_node(4)
    net.core(1).propose_conf_change(change((ADD_VOTER, 4)))
    pump_until(net, lambda: net.core(1).status().conf.joint)
    net.isolate(1)  # its "leave joint" entry never leaves it
    net.cut.update({(4, 1), (1, 4)})
    net.tick_all(5 * ELECTION_TICKS)
    assert net.leader() in (2, 3)
    assert net.core(1).role != Role.LEADER
    for node in (2, 3, 4):
        conf = net.core(node).status().conf
        assert (conf.voters, conf.voters_outgoing) == ({1, 2, 3, 4}, frozenset()), node
