"""Helpers for transport tests on real loopback sockets.

Tests never sleep for a fixed time: they wait for a condition with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

from accord.raft.types import Message, MessageType, NodeId
from accord.transport.codec import Hello, HelloReply, decode_hello_reply, encode_hello
from accord.transport.framing import FrameDecoder, encode_frame
from accord.transport.peer import PeerTransport

LOCALHOST = "127.0.0.1"
CLUSTER = "test-cluster"
DEADLINE_S = 5.0


async def wait_for(predicate: Callable[[], bool], timeout_s: float = DEADLINE_S) -> None:
    """Poll `predicate` until it holds; fail the test if `timeout_s` passes first."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() >= deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(0.002)


def heartbeat(src: NodeId, dst: NodeId, commit: int = 0, group: int = 0) -> Message:
    return Message(MessageType.HEARTBEAT, group, src, dst, term=1, commit=commit)


class Node:
    """A transport plus the messages it has received."""

    def __init__(self, node_id: NodeId, port: int = 0, **options: Any) -> None:
        self.node_id = node_id
        self.received: list[Message] = []
        options.setdefault("backoff_s_max", 0.05)
        options.setdefault("rng", random.Random(node_id))
        self.transport = PeerTransport(
            node_id, CLUSTER, (LOCALHOST, port), {}, self.received.append, **options
        )

    @property
    def address(self) -> tuple[str, int]:
        return self.transport.listen_address

    def commits_from(self, src: NodeId) -> list[int]:
        return [m.commit for m in self.received if m.src == src]


@contextlib.asynccontextmanager
async def cluster(size: int, **options: Any) -> AsyncIterator[list[Node]]:
    """`size` started nodes that know each other's ephemeral ports; all stopped on exit,
    after which no task but the test's own may be left."""
    nodes = [Node(i + 1, **options) for i in range(size)]
    try:
        for node in nodes:
            await node.transport.start()
        connect(nodes)
        yield nodes
    finally:
        for node in nodes:
            await node.transport.stop()
    assert_no_tasks_left()


def connect(nodes: list[Node]) -> None:
    addresses = {node.node_id: node.address for node in nodes}
    for node in nodes:
        node.transport.update_peers(addresses)


def assert_no_tasks_left() -> None:
    current = asyncio.current_task()
    left = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    assert not left, f"tasks left running: {left}"


class RawPeer:
    """A hand-driven client connection to a transport's listener."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, address: tuple[str, int]) -> RawPeer:
        reader, writer = await asyncio.open_connection(*address)
        return cls(reader, writer)

    async def hello(self, hello: Hello) -> HelloReply | None:
        """Send `hello`; return the reply, or None if the connection closed instead."""
        self.send_frame(encode_hello(hello))
        decoder = FrameDecoder(1024)
        async with asyncio.timeout(DEADLINE_S):
            while True:
                data = await self.reader.read(1024)
                if not data:
                    return None
                frames = decoder.feed(data)
                if frames:
                    return decode_hello_reply(frames[0])

    def send_frame(self, payload: bytes) -> None:
        self.writer.write(encode_frame(payload))

    async def closed_by_peer(self) -> bool:
        """True once the other side has closed (EOF or reset) within the deadline."""
        async with asyncio.timeout(DEADLINE_S):
            try:
                while await self.reader.read(4096):
                    pass
            except ConnectionError:
                pass
        return True

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()
