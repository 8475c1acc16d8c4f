"""Many Raft groups in one node process: groups created and destroyed while the nodes
run, each with its own state machine, and the writes of every group in a batch saved
with one call (one WAL record, one fsync)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from accord.errors import DeadlineExceeded
from accord.invariant import InvariantError
from accord.kv import Envelope, KVStateMachine, Put, encode_command
from accord.node.runtime import Node
from accord.raft import RaftConfig
from accord.storage import FileHostStorage, GroupWrite, MemoryHostStorage

from .memnet import DEADLINE_S, Network, make_node, node_state, until

pytestmark = pytest.mark.asyncio
VOTERS = frozenset({1, 2, 3})


class CountingDisk(MemoryHostStorage):
    """Remembers which groups each synced save carried."""

    def __init__(self) -> None:
        super().__init__()
        self.synced: list[frozenset[int]] = []

    def save(self, writes: Sequence[GroupWrite], *, sync: bool = True) -> None:
        if sync:
            self.synced.append(frozenset(w.group for w in writes))
        super().save(writes, sync=sync)


def put(key: bytes, value: bytes = b"v") -> bytes:
    return encode_command(Envelope(0, 0, Put(key, value, 0), 0))


def group_config(node_id: int, group: int, voters: frozenset[int] = VOTERS) -> RaftConfig:
    return RaftConfig(id=node_id, group=group, bootstrap_voters=voters, election_ticks=10)


async def create_everywhere(nodes: dict[int, Node], group: int) -> dict[int, KVStateMachine]:
    machines = {}
    for node_id, node in nodes.items():
        machines[node_id] = KVStateMachine()
        state = node_state(VOTERS, machines[node_id])
        await node.create_group(group_config(node_id, group), state, snapshot_entries=10**9)
    return machines


async def leader_of(nodes: dict[int, Node], group: int) -> Node:
    def leaders() -> list[Node]:
        return [n for n in nodes.values() if n.group(group).is_leader]

    await until(lambda: bool(leaders()), f"a leader of group {group}")
    return leaders()[0]


async def test_groups_created_at_run_time_replicate_apart_and_share_fsyncs() -> None:
    network = Network()
    disks = {i: CountingDisk() for i in VOTERS}
    nodes = {i: make_node(network, i, VOTERS, disks[i]) for i in VOTERS}
    for node in nodes.values():
        await node.start()
    try:
        machines = {g: await create_everywhere(nodes, g) for g in (7, 8)}
        leaders = {g: await leader_of(nodes, g) for g in (7, 8)}
        writes = [
            leaders[g].group(g).propose(put(b"k%d" % i, b"g%d" % g), timeout_s=DEADLINE_S)
            for i in range(50)
            for g in (7, 8)
        ]
        await asyncio.gather(*writes)
        for g in (7, 8):
            for node_id in VOTERS:
                await until(
                    lambda g=g, n=node_id: machines[g][n].get(b"k49").kv is not None,  # type: ignore[misc]
                    f"group {g} applied on node {node_id}",
                )
                kv = machines[g][node_id].get(b"k0").kv
                assert kv is not None and kv.value == b"g%d" % g  # its own group's value
        primary = nodes[1].replica.state_machine
        assert primary.kv.get(b"k0").kv is None  # type: ignore[attr-defined]
        # 100 writes in two groups: some fsyncs carried both groups' writes at once.
        assert any({7, 8} <= groups for disk in disks.values() for groups in disk.synced)
    finally:
        for node in nodes.values():
            await node.stop(transfer_leadership=False)


async def test_a_destroyed_group_fails_its_waits_drops_its_messages_and_its_storage() -> None:
    network = Network()
    disks = {i: MemoryHostStorage() for i in VOTERS}
    nodes = {i: make_node(network, i, VOTERS, disks[i]) for i in VOTERS}
    for node in nodes.values():
        await node.start()
    try:
        await create_everywhere(nodes, 5)
        leader = await leader_of(nodes, 5)
        await leader.group(5).propose(put(b"a"), timeout_s=DEADLINE_S)
        followers = [n for n in nodes.values() if n is not leader]
        for node in followers:  # the leader alone cannot commit any more
            await node.destroy_group(5)
        waiting = asyncio.create_task(leader.group(5).propose(put(b"b"), timeout_s=DEADLINE_S))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        await leader.destroy_group(5)
        with pytest.raises(DeadlineExceeded, match="destroyed"):
            await waiting
        for node_id, node in nodes.items():
            assert 5 not in node.replicas
            assert 5 not in disks[node_id].groups()
            assert 0 in disks[node_id].groups()  # the primary group is untouched
        primary_leader = await leader_of(nodes, 0)
        await primary_leader.propose(put(b"still"), timeout_s=DEADLINE_S)
        with pytest.raises(InvariantError):
            await nodes[1].destroy_group(0)
        # The same id can be created again, empty.
        machines = await create_everywhere(nodes, 5)
        leader = await leader_of(nodes, 5)
        await leader.group(5).propose(put(b"c"), timeout_s=DEADLINE_S)
        assert machines[leader.core.id].get(b"a").kv is None
        assert machines[leader.core.id].get(b"c").kv is not None
    finally:
        for node in nodes.values():
            await node.stop(transfer_leadership=False)


async def test_a_restarted_node_recovers_every_group_from_one_log(tmp_path: Path) -> None:
    network = Network()
    alone = frozenset({1})

    async def run(check: bool) -> None:
        node = make_node(network, 1, alone, FileHostStorage(tmp_path / "raft"))
        await node.start()
        try:
            machine = KVStateMachine()
            state = node_state(alone, machine)
            config = group_config(1, 9, alone)
            await node.create_group(config, state, snapshot_entries=10**9)
            await until(lambda: node.is_leader and node.group(9).is_leader, "leaders")
            if check:
                await until(lambda: machine.get(b"g9").kv is not None, "group 9 recovered")
                assert node.state_machine.kv.get(b"g0").kv is not None  # type: ignore[attr-defined]
                return
            await node.propose(put(b"g0"), timeout_s=DEADLINE_S)
            await node.group(9).propose(put(b"g9"), timeout_s=DEADLINE_S)
        finally:
            await node.stop(transfer_leadership=False)

    await run(check=False)
    await run(check=True)


async def test_groups_can_be_created_before_the_node_starts() -> None:
    network = Network()
    alone = frozenset({1})
    node = make_node(network, 1, alone)
    machine = KVStateMachine()
    await node.create_group(
        group_config(1, 4, alone), node_state(alone, machine), snapshot_entries=10**9
    )
    assert sorted(node.replicas) == [0, 4]
    await node.start()
    try:
        await until(lambda: node.group(4).is_leader, "group 4 to elect its single voter")
        await node.group(4).propose(put(b"early"), timeout_s=DEADLINE_S)
        assert machine.get(b"early").kv is not None
    finally:
        await node.stop(transfer_leadership=False)
