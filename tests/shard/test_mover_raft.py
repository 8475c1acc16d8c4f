"""A replica move carried out on real Raft cores, while the shard takes writes.

Four pure hosts (no I/O; messages delivered at once, disks instant) run one shard's
group on nodes 1-3, and node 4 starts with no configuration. A `Mover` drives the
move through the real membership changes of the group's cores and the real metadata
state machine, while a write is proposed every tick. At the end the group's voters
are the moved set, node 4 holds every committed write in the same order as the
others, and the metadata records the new members with no move under way.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from accord.errors import NotLeader, ProposalDropped
from accord.host import AWAIT_DURABLE, Host, Persist, Send
from accord.raft import (
    Entry,
    EntryType,
    HardState,
    Message,
    RaftConfig,
    RaftCore,
    ReadState,
    Ready,
    RecoveredState,
    Role,
    Snapshot,
)
from accord.shard import ShardMap
from accord.shard.metadata import ShardMetadata, encode_metadata_command
from accord.shard.mover import (
    HandOver,
    Instruction,
    Membership,
    Mover,
    Progress,
    ProposeMetadata,
    Recorded,
    Tick,
    conf_change,
)
from accord.shard.placement import MoveReplica

SHARD = 7
VOTERS = frozenset({1, 2, 3})
TICKS_MAX = 2_000


class _Log:
    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def on_ready(self, ready: Ready) -> None:
        pass

    def restore(self, snapshot: Snapshot) -> None:
        raise AssertionError("the log is never compacted here")

    def apply(self, entries: Sequence[Entry]) -> None:
        self.writes.extend(e.data for e in entries if e.type == EntryType.NORMAL and e.data)

    def on_read_states(self, read_states: tuple[ReadState, ...]) -> None:
        pass

    def on_advanced(self, ready: Ready) -> None:
        pass


class ShardCluster:
    def __init__(self, seed: int) -> None:
        rng = random.Random(seed)
        self.hosts: dict[int, Host] = {}
        self.logs: dict[int, _Log] = {}
        for node in (1, 2, 3, 4):
            config = RaftConfig(
                id=node,
                group=SHARD,
                bootstrap_voters=VOTERS if node in VOTERS else frozenset(),
                election_ticks=10,
            )
            core = RaftCore(config, random.Random(rng.random()), RecoveredState(HardState()))
            self.hosts[node] = Host()
            self.logs[node] = _Log()
            self.hosts[node].add_group(core, self.logs[node])
        self.cut: set[int] = set()
        """Nodes whose messages are all lost."""

    def core(self, node: int) -> RaftCore:
        return self.hosts[node].core(SHARD)

    def leader(self) -> int:
        leaders = [n for n in self.hosts if self.core(n).role == Role.LEADER]
        return leaders[0] if len(leaders) == 1 else 0

    def tick(self) -> None:
        for host in self.hosts.values():
            host.tick()
        self.settle()

    def settle(self) -> None:
        moved = True
        while moved:
            moved = False
            for host in self.hosts.values():
                while (batch := host.ready()) is not None:
                    moved = True
                    for step in batch.steps:
                        if isinstance(step, Send):
                            self._deliver(step.messages)
                        elif not isinstance(step, Persist) and step is not AWAIT_DURABLE:
                            host.run(step)

    def _deliver(self, messages: Sequence[Message]) -> None:
        for m in messages:
            if m.dst not in self.cut and m.src not in self.cut:
                self.hosts[m.dst].step(m)


def carry_out(
    cluster: ShardCluster, meta: ShardMetadata, instructions: list[Instruction]
) -> list[Recorded]:
    """What the executor does: each instruction to the metadata or the shard leader."""
    answers = []
    for instruction in instructions:
        if isinstance(instruction, ProposeMetadata):
            args = instruction.args
            if instruction.op in ("move", "members"):
                args = (meta.version, *args)
            result = meta.apply(encode_metadata_command(instruction.op, *args))
            answers.append(Recorded(result.ok))
            continue
        leader = cluster.core(cluster.leader())
        if isinstance(instruction, HandOver):
            leader.transfer_leadership(instruction.to)
        else:
            leader.propose_conf_change(conf_change(instruction))
    return answers


def observe(cluster: ShardCluster, target: int) -> list[Membership | Progress]:
    node = cluster.leader()
    if not node:
        return [Progress(0, 0, 0)]
    status = cluster.core(node).status()
    conf = status.conf
    voters = conf.voters | conf.voters_outgoing
    match = status.progress[target].match if target in status.progress else 0
    return [
        Membership(frozenset(voters), frozenset(conf.learners), conf.joint),
        Progress(node, match, status.commit),
    ]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("source", [1, 2, 3])
def test_a_replica_moves_to_a_new_node_under_writes(seed: int, source: int) -> None:
    cluster = ShardCluster(seed)
    meta = ShardMetadata()
    assert meta.apply(encode_metadata_command("bootstrap", _map_doc())).ok
    for _ in range(100):
        cluster.tick()
        if cluster.leader():
            break
    mover = Mover(MoveReplica(SHARD, source, 4, "test"))
    pending = carry_out(cluster, meta, mover.start())
    proposed = 0
    for _ in range(TICKS_MAX):
        if mover.finished:
            break
        leader = cluster.leader()
        if leader:
            try:
                cluster.core(leader).propose(b"w%d" % proposed)
                proposed += 1
            except (NotLeader, ProposalDropped):
                pass  # during the hand-over: a client would retry
        cluster.tick()
        events = [*pending, *observe(cluster, 4), Tick()]
        pending = []
        for event in events:
            pending += carry_out(cluster, meta, mover.step(event))
    assert mover.finished and not mover.reason, mover.state
    during = proposed
    assert during >= 1
    for _ in range(30):  # the moved group goes on taking writes
        cluster.core(cluster.leader()).propose(b"w%d" % proposed)
        proposed += 1
        cluster.tick()
    for _ in range(5):
        cluster.tick()
    final = {1, 2, 3, 4} - {source}
    conf = cluster.core(cluster.leader()).conf
    assert conf.voters == final and not conf.joint and not conf.learners
    assert meta.map is not None and set(meta.map.shard(SHARD).replicas) == final
    assert meta.moves == {}
    reference = cluster.logs[cluster.leader()].writes
    assert len(reference) >= 30 + 1  # every write after the move, and some during it
    assert reference[-30:] == [b"w%d" % i for i in range(during, proposed)]
    for node in final:
        assert cluster.logs[node].writes == reference  # node 4 too: same writes, same order


def _map_doc() -> dict[str, object]:
    from accord.shard import Shard, SlotRange
    from accord.shard.limits import SLOT_COUNT

    return ShardMap(1, (Shard(SHARD, (SlotRange(0, SLOT_COUNT),), (1, 2, 3)),)).to_doc()


def test_a_move_to_a_node_that_never_answers_is_given_up_and_undone() -> None:
    cluster = ShardCluster(0)
    cluster.cut.add(4)
    meta = ShardMetadata()
    assert meta.apply(encode_metadata_command("bootstrap", _map_doc())).ok
    for _ in range(100):
        cluster.tick()
        if cluster.leader():
            break
    mover = Mover(MoveReplica(SHARD, 3, 4, "test"), catch_up_ticks=50)
    pending = carry_out(cluster, meta, mover.start())
    for _ in range(TICKS_MAX):
        if mover.finished:
            break
        cluster.tick()
        events = [*pending, *observe(cluster, 4), Tick()]
        pending = []
        for event in events:
            pending += carry_out(cluster, meta, mover.step(event))
    assert mover.finished and "did not catch up" in mover.reason
    conf = cluster.core(cluster.leader()).conf
    assert conf.voters == VOTERS and not conf.learners  # as before the move
    assert meta.map is not None and meta.map.shard(SHARD).replicas == (1, 2, 3)
    assert meta.moves == {}
