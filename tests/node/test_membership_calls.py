"""Membership calls on real `Node`s, joined by an in-memory network: a change of the
voters returns only once the joint configuration is left, so the next change can be
made at once — the way an operator scripts `member promote 4 && member remove 1`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from accord.errors import DeadlineExceeded
from accord.kv import KVStateMachine
from accord.node.config import Member
from accord.node.members import NodeState, promote_member, remove_member
from accord.node.runtime import Node
from accord.raft import ConfChange, ConfChangeOp, Message, RaftConfig
from accord.storage import MemoryStorage

pytestmark = pytest.mark.asyncio
DEADLINE_S = 20.0


class Network:
    """Delivers each message on the next turn of the event loop; `cut` drops a node's."""

    def __init__(self) -> None:
        self.inboxes: dict[int, Callable[[Message], None]] = {}
        self.cut: set[int] = set()

    def transport(self, node_id: int) -> Callable[[Callable[[Message], None]], object]:
        network = self

        class Endpoint:
            def __init__(self, on_message: Callable[[Message], None]) -> None:
                network.inboxes[node_id] = on_message

            async def start(self) -> None:
                pass

            def send(self, message: Message) -> object:
                if message.dst in network.cut or message.src in network.cut:
                    return None
                inbox = network.inboxes.get(message.dst)
                if inbox is not None:
                    asyncio.get_running_loop().call_soon(inbox, message)
                return None

            async def stop(self) -> None:
                pass

        return Endpoint


def _member(node_id: int) -> Member:
    return Member(node_id, f"n{node_id}", ("127.0.0.1", 1), ("127.0.0.1", 2))


def _node(network: Network, node_id: int, voters: frozenset[int]) -> Node:
    state = NodeState(KVStateMachine(), {i: _member(i) for i in voters | {node_id}})
    config = RaftConfig(id=node_id, bootstrap_voters=voters, election_ticks=10)
    transport = network.transport(node_id)
    return Node(config, MemoryStorage(), transport, state, tick_ms=10, snapshot_entries=10**9)


async def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def _leader(nodes: dict[int, Node]) -> Node:
    await _until(lambda: any(n.is_leader for n in nodes.values()), "a leader")
    return next(n for n in nodes.values() if n.is_leader)


async def test_a_promotion_then_a_removal_need_no_pause_between_them() -> None:
    network = Network()
    voters = frozenset({1, 2, 3})
    nodes = {i: _node(network, i, voters) for i in voters}
    nodes[4] = _node(network, 4, voters)  # joins as a learner below
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
    nodes = {1: _node(network, 1, voters), 2: _node(network, 2, voters)}
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
        await _until(lambda: not leader.core.conf.joint, "the joint configuration to be left")
    finally:
        for node in nodes.values():
            await node.stop(transfer_leadership=False)
