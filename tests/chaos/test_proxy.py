"""The fault-injecting proxy between real `PeerTransport`s on loopback.

Each node dials the other through the proxy (as the chaos harness's `[dial]`
configs make real nodes do); the proxy then cuts, blackholes, slows or heals one
direction at a time. Tests wait for conditions with deadlines, never fixed sleeps.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from accord.chaos.proxy import NetProxy
from accord.raft.types import Message, MessageType
from accord.transport.peer import PeerTransport

pytestmark = pytest.mark.asyncio
DEADLINE_S = 5.0


async def wait_for(predicate: object, timeout_s: float = DEADLINE_S) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(0.005)


def heartbeat(src: int, dst: int, commit: int) -> Message:
    return Message(MessageType.HEARTBEAT, 0, src, dst, term=1, commit=commit)


class Pair:
    def __init__(self) -> None:
        self.received: dict[int, list[Message]] = {1: [], 2: []}
        self.proxy = NetProxy(random.Random(1))
        self.nodes = {
            i: PeerTransport(
                i, "c", ("127.0.0.1", 0), {}, self.received[i].append, backoff_s_max=0.05
            )
            for i in (1, 2)
        }
        self.commit = 0

    async def start(self) -> None:
        for node in self.nodes.values():
            await node.start()
        await self.proxy.start({i: n.listen_address for i, n in self.nodes.items()})
        self.nodes[1].update_peers({2: self.proxy.listen_address(1, 2)})
        self.nodes[2].update_peers({1: self.proxy.listen_address(2, 1)})

    async def stop(self) -> None:
        for node in self.nodes.values():
            await node.stop()
        await self.proxy.stop()

    def send(self, src: int, dst: int) -> int:
        self.commit += 1
        self.nodes[src].send(heartbeat(src, dst, self.commit))
        return self.commit

    def arrived(self, dst: int, commit: int) -> bool:
        return any(m.commit == commit for m in self.received[dst])

    async def delivers(self, src: int, dst: int) -> None:
        """Keep sending src→dst until one message arrives (reconnects take a while)."""
        sent: list[int] = []

        def one_arrived() -> bool:
            sent.append(self.send(src, dst))
            return any(self.arrived(dst, c) for c in sent)

        await wait_for(one_arrived)


@pytest_asyncio.fixture
async def pair() -> AsyncIterator[Pair]:
    p = Pair()
    await p.start()
    yield p
    await p.stop()


async def test_messages_flow_both_ways_through_the_proxy(pair: Pair) -> None:
    await pair.delivers(1, 2)
    await pair.delivers(2, 1)
    assert pair.proxy.links[(1, 2)].forwarded_bytes > 0
    assert pair.proxy.links[(2, 1)].forwarded_bytes > 0


async def test_blocking_one_direction_stops_only_that_direction(pair: Pair) -> None:
    await pair.delivers(1, 2)
    pair.proxy.block(1, 2)
    await pair.delivers(2, 1)  # the other direction keeps working
    lost = [pair.send(1, 2) for _ in range(50)]
    # While 1→2 is blocked, 2→1 traffic (already flowing) proves time passes; nothing
    # sent 1→2 may arrive.
    await pair.delivers(2, 1)
    await pair.delivers(2, 1)
    assert not any(pair.arrived(2, c) for c in lost)
    pair.proxy.unblock(1, 2)
    await pair.delivers(1, 2)


async def test_delay_holds_bytes_back_in_order(pair: Pair) -> None:
    await pair.delivers(1, 2)
    pair.proxy.slow(1, 2, delay_s=0.3, jitter_s=0.0, loss=0.0)
    started = time.monotonic()
    commits = [pair.send(1, 2) for _ in range(20)]
    await wait_for(lambda: all(pair.arrived(2, c) for c in commits))
    assert time.monotonic() - started >= 0.3
    got = [m.commit for m in pair.received[2] if m.commit in commits]
    assert got == commits
    pair.proxy.heal()
    await pair.delivers(1, 2)


async def test_loss_cuts_connections_and_the_sender_reconnects(pair: Pair) -> None:
    await pair.delivers(1, 2)
    pair.proxy.slow(1, 2, delay_s=0.0, jitter_s=0.0, loss=1.0)
    cuts = pair.proxy.links[(1, 2)].cuts
    pair.send(1, 2)
    await wait_for(lambda: pair.proxy.links[(1, 2)].cuts > cuts)
    pair.proxy.heal()
    await pair.delivers(1, 2)


async def test_placed_nodes_never_share_a_port_with_the_proxy() -> None:
    # The proxy's listeners take ephemeral ports; nodes get theirs below that range,
    # so a listener can never be handed a node's port between picking and binding.
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(20):
        proxy = NetProxy(random.Random(0))
        try:
            members = await proxy.place([1, 2, 3, 4, 5])
            node_ports = {a[1] for m in members.values() for a in (m.peer, m.client, m.native) if a}
            listeners = {proxy.dial(s, d)[1] for s in members for d in members if s != d}
            assert len(node_ports) == 15
            assert all(p < low for p in node_ports)
            assert not node_ports & listeners
        finally:
            await proxy.stop()
