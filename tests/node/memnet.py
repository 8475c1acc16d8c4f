"""Real `Node`s joined by an in-memory network, for runtime tests that need several
nodes but not sockets: each message is delivered on the next turn of the event loop,
and `cut` drops every message to or from a node."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from accord.kv import KVStateMachine
from accord.node.address import Member
from accord.node.members import NodeState
from accord.node.runtime import Node
from accord.raft import Message, RaftConfig
from accord.storage import HostStorage, MemoryHostStorage

DEADLINE_S = 20.0


class Network:
    def __init__(self) -> None:
        self.inboxes: dict[int, Callable[[Message], None]] = {}
        self.cut: set[int] = set()
        self.delivered = 0

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
                    network.delivered += 1
                    asyncio.get_running_loop().call_soon(inbox, message)
                return None

            async def stop(self) -> None:
                pass

        return Endpoint


def member(node_id: int) -> Member:
    return Member(node_id, f"n{node_id}", ("127.0.0.1", 1), ("127.0.0.1", 2))


def node_state(node_ids: frozenset[int], machine: KVStateMachine | None = None) -> NodeState:
    return NodeState(machine or KVStateMachine(), {i: member(i) for i in node_ids})


def make_node(
    network: Network,
    node_id: int,
    voters: frozenset[int],
    storage: HostStorage | None = None,
    **options: object,
) -> Node:
    config = RaftConfig(id=node_id, bootstrap_voters=voters, election_ticks=10)
    return Node(
        config,
        storage if storage is not None else MemoryHostStorage(),
        network.transport(node_id),
        node_state(voters | {node_id}),
        tick_ms=10,
        snapshot_entries=10**9,
        **options,  # type: ignore[arg-type]
    )


async def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)
