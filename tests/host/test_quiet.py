"""Quiet groups: an idle group stops its heartbeats and election timers, hosts send one
node heartbeat per peer instead, and a quiet group still elects a new leader when the
node of its leader dies — found by the hosts, not by the group's own timers."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence

import pytest

from accord.host import AWAIT_DURABLE, Host, Persist, Send
from accord.invariant import InvariantError
from accord.raft import (
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

NODES = (1, 2, 3)
GROUPS = (1, 2, 3, 4)
ELECTION_TICKS = 10
QUIESCE_TICKS = 3


class _Handler:
    def __init__(self) -> None:
        self.applied: list[Entry] = []

    def on_ready(self, ready: Ready) -> None:
        pass

    def restore(self, snapshot: Snapshot) -> None:
        pass

    def apply(self, entries: Sequence[Entry]) -> None:
        self.applied.extend(entries)

    def on_read_states(self, read_states: tuple[ReadState, ...]) -> None:
        pass

    def on_advanced(self, ready: Ready) -> None:
        pass


class Cluster:
    """Hosts of every node, each with every group; messages are delivered at once
    (in send order) and disks are instant. A `down` node neither ticks nor talks."""

    def __init__(self, seed: int, node_heartbeats: bool = True) -> None:
        self.hosts: dict[int, Host] = {}
        self.handlers: dict[tuple[int, int], _Handler] = {}
        self.down: set[int] = set()
        self.sent: Counter[MessageType] = Counter()
        rng = random.Random(seed)
        for node in NODES:
            host = Host(node_id=node if node_heartbeats else 0, liveness_ticks=ELECTION_TICKS)
            for group in GROUPS:
                config = RaftConfig(
                    id=node,
                    group=group,
                    bootstrap_voters=frozenset(NODES),
                    election_ticks=ELECTION_TICKS,
                    quiesce_ticks=QUIESCE_TICKS if node_heartbeats else 0,
                )
                core = RaftCore(config, random.Random(rng.random()), RecoveredState(HardState()))
                handler = self.handlers[node, group] = _Handler()
                host.add_group(core, handler)
            self.hosts[node] = host

    def core(self, node: int, group: int) -> RaftCore:
        return self.hosts[node].core(group)

    def tick(self, ticks: int = 1) -> None:
        for _ in range(ticks):
            for node, host in self.hosts.items():
                if node not in self.down:
                    host.tick()
            self.settle()

    def settle(self) -> None:
        moved = True
        while moved:
            moved = False
            for node, host in self.hosts.items():
                if node in self.down:
                    continue
                while (batch := host.ready()) is not None:
                    moved = True
                    for step in batch.steps:
                        if isinstance(step, Send):
                            self._deliver(step.messages)
                        elif not isinstance(step, Persist) and step is not AWAIT_DURABLE:
                            host.run(step)

    def _deliver(self, messages: Sequence[Message]) -> None:
        for m in messages:
            self.sent[m.type] += 1
            if m.dst not in self.down and m.src not in self.down:
                self.hosts[m.dst].step(m)

    def leader(self, group: int) -> int | None:
        leaders = [
            n for n in NODES if n not in self.down and self.core(n, group).role == Role.LEADER
        ]
        return leaders[0] if len(leaders) == 1 else None

    def elect_all(self) -> None:
        for _ in range(20 * ELECTION_TICKS):
            if all(self.leader(g) is not None for g in GROUPS):
                return
            self.tick()
        raise AssertionError("no leader in every group")


def quiet_cluster(seed: int) -> Cluster:
    """A cluster whose groups have leaders, then time enough to go quiet."""
    cluster = Cluster(seed)
    cluster.elect_all()
    cluster.tick(QUIESCE_TICKS + ELECTION_TICKS)
    return cluster


@pytest.mark.parametrize("seed", range(20))
def test_idle_groups_go_quiet_and_only_node_heartbeats_flow(seed: int) -> None:
    cluster = quiet_cluster(seed)
    assert all(cluster.core(n, g).quiescent for n in NODES for g in GROUPS)
    cluster.sent.clear()
    cluster.tick(100)
    group_messages = sum(n for t, n in cluster.sent.items() if t != MessageType.NODE_HEARTBEAT)
    assert group_messages == 0
    # One node heartbeat per peer every liveness_ticks // 4 ticks, for all groups.
    per_pair = cluster.sent[MessageType.NODE_HEARTBEAT] / (len(NODES) * (len(NODES) - 1))
    assert 100 // (ELECTION_TICKS // 4) - 1 <= per_pair <= 100 // (ELECTION_TICKS // 4) + 1


@pytest.mark.parametrize("seed", range(20))
def test_a_proposal_wakes_a_quiet_group_and_commits(seed: int) -> None:
    cluster = quiet_cluster(seed)
    leader = cluster.leader(2)
    assert leader is not None
    _, index = cluster.core(leader, 2).propose(b"x")
    cluster.settle()
    cluster.tick(2)
    for node in NODES:  # committed and applied everywhere, the other groups untouched
        assert any(e.index == index and e.data == b"x" for e in cluster.handlers[node, 2].applied)
        assert cluster.core(node, 1).quiescent
    cluster.tick(QUIESCE_TICKS + ELECTION_TICKS)
    assert all(cluster.core(n, 2).quiescent for n in NODES)  # and quiet again


@pytest.mark.parametrize("seed", range(20))
def test_the_hosts_find_a_dead_leader_and_its_quiet_groups_elect_anew(seed: int) -> None:
    cluster = quiet_cluster(seed)
    victim = cluster.leader(1)
    assert victim is not None
    led = [g for g in GROUPS if cluster.leader(g) == victim]
    cluster.down.add(victim)
    # Lost after liveness_ticks (= ELECTION_TICKS); woken as if their election timers
    # had run out, the followers campaign within one more election timeout (a split
    # vote costs another).
    for _ in range(4 * ELECTION_TICKS):
        cluster.tick()
        if all(cluster.leader(g) not in (None, victim) for g in led):
            break
    assert all(cluster.leader(g) not in (None, victim) for g in led)
    # The new leaders commit with the two nodes left.
    for group in led:
        leader = cluster.leader(group)
        assert leader is not None
        _, index = cluster.core(leader, group).propose(b"after")
        cluster.tick(2)
        survivors = [n for n in NODES if n != victim]
        for node in survivors:
            assert any(e.index == index for e in cluster.handlers[node, group].applied)


@pytest.mark.parametrize("leader_lost", [False, True])
def test_a_quiet_follower_keeps_its_leader_lease_unless_the_host_lost_the_leader(
    leader_lost: bool,
) -> None:
    cluster = quiet_cluster(seed=1)
    leader = cluster.leader(1)
    voter, candidate = (n for n in NODES if n != leader)
    core = cluster.core(voter, 1)
    core.wake(leader_lost=leader_lost)
    assert not core.quiescent
    last = core.log.last_index()
    pre_vote = Message(
        MessageType.PRE_VOTE, 1, candidate, voter, core.term + 1, log_term=core.term, index=last
    )
    core.step(pre_vote)
    answers = [m for m in core.ready().messages if m.type == MessageType.PRE_VOTE_RESP]
    # In lease: the candidate is ignored. Lost: it gets the vote.
    assert [not m.reject for m in answers] == ([True] if leader_lost else [])


def test_a_group_that_may_go_quiet_needs_a_host_that_sends_node_heartbeats() -> None:
    host = Host(node_id=0)
    config = RaftConfig(id=1, group=1, bootstrap_voters=frozenset({1}), quiesce_ticks=3)
    with pytest.raises(InvariantError, match="node heartbeats"):
        host.add_group(RaftCore(config, random.Random(1), RecoveredState(HardState())), _Handler())
