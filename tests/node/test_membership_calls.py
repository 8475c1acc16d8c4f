"""Membership calls on real `Node`s, joined by an in-memory network: a change of the
voters returns only once the joint configuration is left, so the next change can be
made at once — the way an operator scripts `member promote 4 && member remove 1`."""

from __future__ import annotations

import pytest

from accord.errors import DeadlineExceeded
from accord.node.members import promote_member, remove_member
from accord.node.runtime import Node
from accord.raft import ConfChange, ConfChangeOp

from .memnet import DEADLINE_S, Network, make_node, until

pytestmark = pytest.mark.asyncio


async def _leader(nodes: dict[int, Node]) -> Node:
    await until(lambda: any(n.is_leader for n in nodes.values()), "a leader")
    return next(n for n in nodes.values() if n.is_leader)


async def test_a_promotion_then_a_removal_need_no_pause_between_them() -> None:
    network = Network()
    voters = frozenset({1, 2, 3})
    nodes = {i: make_node(network, i, voters) for i in voters}
    nodes[4] = make_node(network, 4, voters)  # joins as a learner below
    for node in nodes.values():
        await node.start()
    try:
        leader = await _leader({i: nodes[i] for i in voters})
        await leader.propose_conf_change(
            ConfChange(((ConfChangeOp.ADD_LEARNER, 4),)), timeout_s=DEADLINE_S
        )
        await promote_member(leader, 4)
        assert not leader.core.conf.joint  # the promotion is whole when the call returns
        assert 4 in leader.core.conf.voters
        removed = next(i for i in (1, 2, 3) if nodes[i] is not leader)
        await remove_member(leader, removed)  # no "a membership change is in progress"
        assert not leader.core.conf.joint
        assert leader.core.conf.voters == (voters | {4}) - {removed}
    finally:
        for node in nodes.values():
            await node.stop(transfer_leadership=False)


async def test_a_voter_change_that_cannot_leave_the_joint_configuration_times_out() -> None:
    # Voter 1 alone, learner 2, which is then cut off.
    network = Network()
    voters = frozenset({1})
    nodes = {1: make_node(network, 1, voters), 2: make_node(network, 2, voters)}
    for node in nodes.values():
        await node.start()
    try:
        leader = await _leader({1: nodes[1]})
        await leader.propose_conf_change(
            ConfChange(((ConfChangeOp.ADD_LEARNER, 2),)), timeout_s=DEADLINE_S
        )
        network.cut.add(2)
        # {1} alone commits the change, but leaving the joint configuration needs a
        # majority of {1, 2}: the call must not claim the change is in effect.
        with pytest.raises(DeadlineExceeded, match="joint"):
            await leader.propose_conf_change(
                ConfChange(((ConfChangeOp.ADD_VOTER, 2),)), timeout_s=1.0
            )
        assert leader.core.conf.joint
        network.cut.clear()
        await until(lambda: not leader.core.conf.joint, "the joint configuration to be left")
    finally:
        for node in nodes.values():
            await node.stop(transfer_leadership=False)
