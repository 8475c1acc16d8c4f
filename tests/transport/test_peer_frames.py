"""Messages of many groups to one peer share frames, on real loopback sockets; and a
peer's bad batch closes its connection. On asyncio and uvloop.

Each scenario waits for conditions with deadlines; none sleeps for a fixed time.
"""

from __future__ import annotations

import asyncio
import logging
import math

import msgpack
import pytest

from accord.raft.types import Message
from accord.transport.codec import (
    PROTOCOL_VERSION,
    Hello,
    HelloReply,
    encode_batch,
    encode_hello_reply,
    encode_message,
    pack_batches,
)
from accord.transport.framing import FrameDecoder, encode_frame
from accord.transport.limits import FRAME_MESSAGES_MAX
from accord.transport.peer import PeerTransport

from .helpers import CLUSTER, LOCALHOST, Node, RawPeer, cluster, heartbeat, wait_for

pytestmark = pytest.mark.asyncio

GROUPS = 1000


def round_of_heartbeats(count: int, src: int = 1, dst: int = 2) -> list[Message]:
    """`count` heartbeats to one peer, group after group, each with its own commit."""
    return [heartbeat(src, dst, commit=i, group=i % GROUPS) for i in range(count)]


def arrived(node: Node) -> list[tuple[int, int]]:
    return [(m.group, m.commit) for m in node.received]


# --- many messages, few frames ------------------------------------------------------


@pytest.mark.parametrize("connected", [True, False], ids=["connected", "while-dialling"])
async def test_messages_of_many_groups_sent_in_one_turn_share_frames(connected: bool) -> None:
    async with cluster(2) as (a, b):
        if connected:
            assert a.transport.send(heartbeat(1, 2, group=7))
            await wait_for(lambda: len(b.received) == 1)
            b.received.clear()
        before = a.transport.stats().peers[2]
        frames_before = b.transport.stats().frames_received
        burst = round_of_heartbeats(3 * GROUPS)
        for message in burst:  # one event-loop turn: the link task runs after it
            assert a.transport.send(message)

        await wait_for(lambda: len(b.received) == len(burst))
        assert arrived(b) == [(m.group, m.commit) for m in burst]
        after = a.transport.stats().peers[2]
        frames = math.ceil(len(burst) / FRAME_MESSAGES_MAX)  # 3000 messages: 3 frames
        assert after.sent - before.sent == len(burst)
        assert after.frames_sent - before.frames_sent == frames
        assert b.transport.stats().frames_received - frames_before == frames
        assert after.dropped == 0


async def test_a_burst_over_the_byte_bound_is_split_in_order() -> None:
    frame_bytes_max = 1000
    async with cluster(2, frame_bytes_max=frame_bytes_max) as (a, b):
        burst = round_of_heartbeats(500)
        for message in burst:
            assert a.transport.send(message)
        await wait_for(lambda: len(b.received) == len(burst))
        assert arrived(b) == [(m.group, m.commit) for m in burst]
        encoded = [encode_message(m) for m in burst]
        expected = pack_batches(encoded, frame_bytes_max, FRAME_MESSAGES_MAX)
        assert all(len(payload) <= frame_bytes_max for payload in expected)
        peer = a.transport.stats().peers[2]
        assert peer.frames_sent == len(expected)
        assert math.ceil(sum(map(len, encoded)) / frame_bytes_max) <= peer.frames_sent < 20


async def test_one_message_per_frame_when_the_bound_is_one() -> None:
    async with cluster(2, frame_messages_max=1) as (a, b):
        burst = round_of_heartbeats(300)
        for message in burst:
            assert a.transport.send(message)
        await wait_for(lambda: len(b.received) == len(burst))
        assert arrived(b) == [(m.group, m.commit) for m in burst]
        peer = a.transport.stats().peers[2]
        assert peer.sent == peer.frames_sent == len(burst)


@pytest.mark.parametrize("value", [0, FRAME_MESSAGES_MAX + 1])
async def test_frame_messages_max_is_checked(value: int) -> None:
    with pytest.raises(ValueError, match="frame_messages_max"):
        PeerTransport(1, CLUSTER, (LOCALHOST, 0), {}, print, frame_messages_max=value)


# --- a peer's batches ---------------------------------------------------------------


async def shaken(node: Node, src: int = 9) -> RawPeer:
    raw = await RawPeer.connect(node.address)
    reply = await raw.hello(Hello(CLUSTER, src=src, dst=node.node_id))
    assert reply is not None and reply.accepted
    return raw


async def test_misaddressed_messages_in_a_batch_are_dropped_one_by_one() -> None:
    async with cluster(1) as (a,):
        raw = await shaken(a)
        raw.send_frame(
            encode_batch(
                [
                    heartbeat(9, 1, commit=1),
                    heartbeat(9, 2, commit=2),  # for another node
                    heartbeat(8, 1, commit=3),  # not from the node that shook hands
                    heartbeat(9, 1, commit=4, group=5),
                ]
            )
        )
        raw.send_frame(encode_batch([heartbeat(9, 1, commit=5)]))  # the connection lives on
        await wait_for(lambda: len(a.received) == 3)
        assert [m.commit for m in a.received] == [1, 4, 5]
        stats = a.transport.stats()
        assert stats.misaddressed == 2 and stats.frames_received == 2
        assert stats.protocol_errors == 0
        await raw.close()


BAD_TERM = (1 << 64) - 1


def with_bad_term_at(batch: list[Message], position: int) -> bytes:
    items = [msgpack.unpackb(encode_message(m)) for m in batch]
    items[position][4] = BAD_TERM
    packed: bytes = msgpack.packb(items, use_bin_type=True)
    return packed


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (with_bad_term_at(round_of_heartbeats(3, 9, 1), 1), "message 1 of 3: term"),
        (encode_batch(round_of_heartbeats(5, 9, 1)), "batch of 5 messages; 1 to 4"),
        # A version-1 frame, one bare message: read as a batch, it announces 14 items.
        (encode_message(heartbeat(9, 1)), "batch of 14 messages"),
        (b"\x90", "batch of 0 messages"),
        (encode_batch(round_of_heartbeats(2, 9, 1)) + b"\x01", "undecodable"),
    ],
    ids=["bad-message", "too-many", "bare-message", "empty", "trailing-bytes"],
)
async def test_a_bad_batch_closes_the_connection_and_delivers_none_of_it(
    payload: bytes, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="accord.transport")
    async with cluster(1, frame_messages_max=4) as (a,):
        raw = await shaken(a)
        raw.send_frame(encode_batch([heartbeat(9, 1, commit=100)]))
        await wait_for(lambda: len(a.received) == 1)
        raw.send_frame(payload)
        assert await raw.closed_by_peer()
        await raw.close()
        assert [m.commit for m in a.received] == [100]
        stats = a.transport.stats()
        assert stats.protocol_errors == 1 and stats.frames_received == 1
        closing = [r.getMessage() for r in caplog.records if "closing connection" in r.getMessage()]
        assert len(closing) == 1 and "peer 9" in closing[0] and reason in closing[0], closing


async def test_a_version_1_dialler_is_told_which_version_this_node_speaks() -> None:
    async with cluster(1) as (a,):
        raw = await RawPeer.connect(a.address)
        reply = await raw.hello(Hello(CLUSTER, src=9, dst=1, version=1))
        assert reply is not None and not reply.accepted
        assert reply.reason == (
            f"protocol version 1 is not supported (this node speaks {PROTOCOL_VERSION})"
        )
        assert await raw.closed_by_peer()
        await raw.close()
        assert a.transport.stats().handshakes_refused == 1


async def test_a_version_1_listener_refuses_this_node_with_a_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A listener of protocol version 1, played by hand: it answers every hello with
    the refusal such a node sends, and this node never gets a message through."""
    caplog.set_level(logging.WARNING, logger="accord.transport")
    hellos: list[bytes] = []

    async def old_node(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = FrameDecoder(1024)
        while not (frames := decoder.feed(await reader.read(1024))):
            pass
        hellos.append(frames[0])
        reason = f"protocol version {PROTOCOL_VERSION} is not supported (this node speaks 1)"
        writer.write(encode_frame(encode_hello_reply(HelloReply(0, reason, version=1))))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(old_node, LOCALHOST, 0)
    node = Node(1)
    await node.transport.start()
    try:
        node.transport.update_peers({2: server.sockets[0].getsockname()[:2]})
        assert node.transport.send(heartbeat(1, 2))
        await wait_for(lambda: node.transport.stats().peers[2].connect_failures >= 1)
        peer = node.transport.stats().peers[2]
        assert not peer.connected and peer.sent == 0 and peer.frames_sent == 0
        assert msgpack.unpackb(hellos[0])[:2] == ["accord", PROTOCOL_VERSION]
        assert any("this node speaks 1" in r.getMessage() for r in caplog.records)
    finally:
        await node.transport.stop()
        server.close()
        await server.wait_closed()
