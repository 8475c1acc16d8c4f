"""PeerTransport on real loopback sockets (ephemeral ports), on asyncio and uvloop.

Each scenario waits for conditions with deadlines; none sleeps for a fixed time.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import ssl

import pytest

from accord.raft.types import Entry, Message, MessageType
from accord.transport.codec import (
    PROTOCOL_VERSION,
    Hello,
    HelloReply,
    encode_batch,
    encode_message,
)
from accord.transport.peer import REFUSAL_NODE_ID, REFUSAL_REASON, PeerStats, PeerTransport

from .helpers import (
    CLUSTER,
    LOCALHOST,
    Node,
    RawPeer,
    assert_no_tasks_left,
    cluster,
    heartbeat,
    wait_for,
)

pytestmark = pytest.mark.asyncio


def unused_port() -> int:
    """A port nobody listens on (bound, read, released): connections are refused."""
    with socket.socket() as sock:
        sock.bind((LOCALHOST, 0))
        port: int = sock.getsockname()[1]
    return port


# --- delivery ---------------------------------------------------------------------


async def test_two_nodes_exchange_messages_both_ways() -> None:
    async with cluster(2) as (a, b):
        for i in range(5):
            assert a.transport.send(heartbeat(1, 2, commit=i))
            assert b.transport.send(heartbeat(2, 1, commit=100 + i))
        await wait_for(lambda: len(a.received) == 5 and len(b.received) == 5)
        assert b.commits_from(1) == [0, 1, 2, 3, 4]
        assert a.commits_from(2) == [100, 101, 102, 103, 104]
        stats = a.transport.stats()
        assert stats.peers[2].connected and stats.peers[2].sent == 5
        assert stats.received == 5 and stats.inbound_connections == 1


async def test_three_nodes_all_to_all_with_every_field() -> None:
    async with cluster(3) as nodes:
        for src in nodes:
            for dst in nodes:
                if src is not dst:
                    append = Message(
                        MessageType.APPEND,
                        group=src.node_id,
                        src=src.node_id,
                        dst=dst.node_id,
                        term=3,
                        log_term=2,
                        index=7,
                        entries=(Entry(3, 8, data=b"cmd"),),
                        commit=6,
                        context=b"ctx",
                    )
                    assert src.transport.send(append)
        await wait_for(lambda: all(len(n.received) == 2 for n in nodes))
        for node in nodes:
            assert {m.src for m in node.received} == {1, 2, 3} - {node.node_id}
            assert all(m.dst == node.node_id and m.entries[0].data == b"cmd" for m in node.received)


async def test_throughput_smoke_20k_messages() -> None:
    total = 20_000
    async with cluster(2) as (a, b):

        def link() -> PeerStats:
            return a.transport.stats().peers[2]

        for i in range(total):
            assert a.transport.send(heartbeat(1, 2, commit=i))
            if link().queued >= 2048:
                await wait_for(lambda: link().queued < 512)
        await wait_for(lambda: len(b.received) == total, timeout_s=15)
        assert b.commits_from(1) == list(range(total))
        assert link().sent == total and link().dropped == 0


# --- bounded queues, unknown peers, oversized messages ----------------------------


async def test_a_down_peer_gets_a_bounded_queue_and_drops_the_rest() -> None:
    peers = {2: (LOCALHOST, unused_port())}
    node = Node(1, queue_messages_max=10)
    await node.transport.start()
    node.transport.update_peers(peers)
    try:
        results = [node.transport.send(heartbeat(1, 2, commit=i)) for i in range(100)]
        assert results == [True] * 10 + [False] * 90
        await wait_for(lambda: node.transport.stats().peers[2].connect_failures >= 3)
        for i in range(50):
            node.transport.send(heartbeat(1, 2, commit=i))
        peer = node.transport.stats().peers[2]
        assert not peer.connected
        assert peer.queued == 10 and peer.dropped == 140 and peer.sent == 0
    finally:
        await node.transport.stop()
    assert_no_tasks_left()


async def test_queue_is_bounded_in_bytes_too() -> None:
    big = Message(MessageType.APPEND, 0, 1, 2, 1, entries=(Entry(1, 1, data=b"x" * 1000),))
    message_bytes = len(encode_message(big))  # a queue holds encodings, not frames
    node = Node(1, queue_bytes_max=3 * message_bytes)
    await node.transport.start()
    node.transport.update_peers({2: (LOCALHOST, unused_port())})
    try:
        assert [node.transport.send(big) for _ in range(5)] == [True] * 3 + [False] * 2
        peer = node.transport.stats().peers[2]
        assert peer.queued_bytes == 3 * message_bytes and peer.dropped == 2
    finally:
        await node.transport.stop()


async def test_unknown_destination_and_oversized_messages_are_dropped() -> None:
    async with cluster(2, frame_bytes_max=200) as (a, b):
        assert not a.transport.send(heartbeat(1, 9))
        big = Message(MessageType.APPEND, 0, 1, 2, 1, entries=(Entry(1, 1, data=b"x" * 300),))
        assert not a.transport.send(big)
        assert a.transport.send(heartbeat(1, 2))
        await wait_for(lambda: len(b.received) == 1)
        stats = a.transport.stats()
        assert stats.unknown_destination == 1 and stats.peers[2].dropped == 1


# --- reconnection -----------------------------------------------------------------


async def test_a_restarted_peer_is_reconnected() -> None:
    async with cluster(2) as (a, b):
        a.transport.send(heartbeat(1, 2, commit=1))
        await wait_for(lambda: len(b.received) == 1)
        port = b.address[1]
        await b.transport.stop()
        await wait_for(lambda: not a.transport.stats().peers[2].connected)

        reborn = Node(2, port=port)
        await reborn.transport.start()
        try:
            commit = 100

            def sent_and_arrived() -> bool:
                nonlocal commit
                commit += 1
                a.transport.send(heartbeat(1, 2, commit=commit))
                return bool(reborn.received)

            await wait_for(sent_and_arrived)
            await wait_for(lambda: a.transport.stats().peers[2].connected)
            assert a.transport.stats().peers[2].reconnects >= 1
            assert all(m.commit > 100 for m in reborn.received)
        finally:
            await reborn.transport.stop()


async def test_backoff_delays_come_from_the_injected_rng() -> None:
    ceilings: list[float] = []

    class Recording(random.Random):
        def uniform(self, a: float, b: float) -> float:
            ceilings.append(b)
            return 0.0

    node = Node(1, rng=Recording(), backoff_s_min=0.01, backoff_s_max=0.04)
    await node.transport.start()
    node.transport.update_peers({2: (LOCALHOST, unused_port())})
    try:
        node.transport.send(heartbeat(1, 2))
        await wait_for(lambda: len(ceilings) >= 4)
        assert ceilings[:4] == pytest.approx([0.02, 0.04, 0.04, 0.04])
    finally:
        await node.transport.stop()


# --- membership -------------------------------------------------------------------


async def test_update_peers_adds_removes_and_moves_peers() -> None:
    async with cluster(3) as (a, b, c):
        a.transport.update_peers({2: b.address})
        assert not a.transport.send(heartbeat(1, 3))
        assert set(a.transport.stats().peers) == {2}

        a.transport.update_peers({2: b.address, 3: c.address})
        assert a.transport.send(heartbeat(1, 3, commit=1))
        await wait_for(lambda: c.commits_from(1) == [1])

        a.transport.update_peers({3: c.address})
        assert not a.transport.send(heartbeat(1, 2))
        assert set(a.transport.stats().peers) == {3}

        moved = Node(3)  # node 3 comes back at another port
        await moved.transport.start()
        try:
            a.transport.update_peers({1: a.address, 3: moved.address})
            assert a.transport.send(heartbeat(1, 3, commit=2))
            await wait_for(lambda: moved.commits_from(1) == [2])
        finally:
            await moved.transport.stop()


# --- hostile or broken input ------------------------------------------------------


async def test_garbage_closes_only_that_connection() -> None:
    async with cluster(2) as (a, b):
        b.transport.send(heartbeat(2, 1, commit=1))
        await wait_for(lambda: len(a.received) == 1)

        http = await RawPeer.connect(a.address)
        http.writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # a 1.2 GB "frame"
        junk = await RawPeer.connect(a.address)
        junk.send_frame(b"\xc1\xc1\xc1")  # a small frame that is not msgpack
        assert await http.closed_by_peer() and await junk.closed_by_peer()
        await http.close()
        await junk.close()

        b.transport.send(heartbeat(2, 1, commit=2))
        await wait_for(lambda: a.commits_from(2) == [1, 2])
        assert a.transport.stats().protocol_errors == 2
        assert b.transport.stats().peers[1].reconnects == 0


async def test_bad_frames_after_the_handshake_close_that_connection() -> None:
    async with cluster(1, frame_bytes_max=1024) as (a,):
        for bad in (b"\x00\x00\x04\x01", b"\x00\x00\x00\x02\x91\x01"):  # too big; bad message
            raw = await RawPeer.connect(a.address)
            reply = await raw.hello(Hello(CLUSTER, src=9, dst=1))
            assert reply is not None and reply.accepted and reply.node_id == 1
            raw.send_frame(encode_batch([heartbeat(9, 1, commit=5)]))
            await wait_for(lambda: len(a.received) == 1)
            raw.writer.write(bad)
            assert await raw.closed_by_peer()
            await raw.close()
            a.received.clear()
        assert a.transport.stats().protocol_errors == 2


@pytest.mark.parametrize(
    ("hello", "reason"),
    [
        (Hello("other-cluster", src=9, dst=1), "cluster id 'other-cluster'"),
        (Hello(CLUSTER, src=9, dst=4), "this is node 1, not node 4"),
        (Hello(CLUSTER, src=1, dst=1), "own id"),
        (Hello(CLUSTER, src=9, dst=1, version=PROTOCOL_VERSION + 1), "protocol version"),
    ],
)
async def test_bad_handshakes_are_refused_with_a_logged_reason(
    hello: Hello, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="accord.transport")
    async with cluster(1) as (a,):
        raw = await RawPeer.connect(a.address)
        reply = await raw.hello(hello)
        assert reply is not None and not reply.accepted
        if hello.version == PROTOCOL_VERSION:
            # Generic: the reply names neither this cluster nor this node.
            assert reply == HelloReply(REFUSAL_NODE_ID, REFUSAL_REASON)
            assert CLUSTER not in reply.reason
        else:
            assert reason in reply.reason
        assert await raw.closed_by_peer()
        await raw.close()
        assert a.transport.stats().handshakes_refused == 1
        assert any(reason in r.getMessage() for r in caplog.records)


async def test_a_silent_connection_is_closed_at_the_handshake_deadline() -> None:
    async with cluster(1, handshake_timeout_s=0.1) as (a,):
        raw = await RawPeer.connect(a.address)
        assert await raw.closed_by_peer()
        await raw.close()
        assert a.transport.stats().protocol_errors == 1


async def test_misaddressed_messages_are_dropped_and_counted() -> None:
    async with cluster(1) as (a,):
        raw = await RawPeer.connect(a.address)
        assert await raw.hello(Hello(CLUSTER, src=9, dst=1))
        raw.send_frame(encode_batch([heartbeat(9, 2)]))  # for another node
        raw.send_frame(encode_batch([heartbeat(8, 1)]))  # not from the node that shook hands
        raw.send_frame(encode_batch([heartbeat(9, 1, commit=3)]))
        await wait_for(lambda: len(a.received) == 1)
        assert a.received[0].commit == 3
        assert a.transport.stats().misaddressed == 2
        await raw.close()


async def test_a_dialler_from_another_cluster_never_connects() -> None:
    async with cluster(1) as (a,):
        stranger = PeerTransport(2, "elsewhere", (LOCALHOST, 0), {1: a.address}, print)
        await stranger.start()
        try:
            stranger.send(heartbeat(2, 1))
            await wait_for(lambda: stranger.stats().peers[1].connect_failures >= 2)
            assert a.transport.stats().handshakes_refused >= 2
            peer = stranger.stats().peers[1]
            assert not peer.connected and peer.sent == 0
            assert not a.received
        finally:
            await stranger.stop()


async def test_connections_over_the_limit_are_refused() -> None:
    async with cluster(1, connections_inbound_max=1) as (a,):
        first = await RawPeer.connect(a.address)
        await wait_for(lambda: a.transport.stats().inbound_connections == 1)
        second = await RawPeer.connect(a.address)
        assert await second.closed_by_peer()
        assert a.transport.stats().inbound_refused == 1
        assert await first.hello(Hello(CLUSTER, src=9, dst=1))
        await first.close()
        await second.close()


async def test_a_failing_callback_closes_the_connection_and_the_sender_reconnects(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with cluster(2) as (a, b):
        delivered: list[int] = []

        def flaky(message: Message) -> None:
            if message.commit == 1:
                raise RuntimeError("bug in the receiver")
            delivered.append(message.commit)

        b.transport._on_message = flaky
        a.transport.send(heartbeat(1, 2, commit=0))
        await wait_for(lambda: delivered == [0])
        a.transport.send(heartbeat(1, 2, commit=1))
        await wait_for(lambda: not a.transport.stats().peers[2].connected)
        a.transport.send(heartbeat(1, 2, commit=2))
        await wait_for(lambda: delivered == [0, 2])
        assert a.transport.stats().peers[2].reconnects == 1
        assert any("on_message raised" in r.getMessage() for r in caplog.records)


# --- lifecycle --------------------------------------------------------------------


async def test_stop_closes_every_connection_and_task() -> None:
    a, b = Node(1), Node(2)
    await a.transport.start()
    await b.transport.start()
    a.transport.update_peers({2: b.address})
    b.transport.update_peers({1: a.address})
    a.transport.send(heartbeat(1, 2))
    b.transport.send(heartbeat(2, 1))
    await wait_for(lambda: len(a.received) == 1 and len(b.received) == 1)
    shaken = await RawPeer.connect(a.address)
    assert await shaken.hello(Hello(CLUSTER, src=9, dst=1))
    silent = await RawPeer.connect(a.address)
    await wait_for(lambda: a.transport.stats().inbound_connections == 3)
    address = a.address

    await a.transport.stop()
    assert await shaken.closed_by_peer() and await silent.closed_by_peer()
    assert a.transport.stats().inbound_connections == 0
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection(*address)
    assert not a.transport.send(heartbeat(1, 2))
    await a.transport.stop()  # twice is harmless
    await b.transport.stop()
    await shaken.close()
    await silent.close()
    assert_no_tasks_left()


async def test_tls_round_trip(tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server, client = tls_contexts
    async with cluster(2, ssl_server=server, ssl_client=client) as (a, b):
        a.transport.send(heartbeat(1, 2, commit=7))
        b.transport.send(heartbeat(2, 1, commit=8))
        await wait_for(lambda: b.commits_from(1) == [7] and a.commits_from(2) == [8])
        plain = await RawPeer.connect(a.address)  # no TLS: never gets a handshake through
        plain.send_frame(b"\x95\xa6accord\x01\xa1x\x01\x01")
        assert await plain.closed_by_peer()
        await plain.close()
