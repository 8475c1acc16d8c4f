"""A fault-injecting TCP proxy between every ordered pair of nodes.

Theory of operation
-------------------
Accord's peer connections are one-way: node A dials B's listener and sends A→B
Raft messages on that connection (B only answers the handshake on it). So the
harness gives node A, for each other member B, a dial address (config `[dial]`)
that is a listener of this proxy dedicated to the direction A→B; whatever the proxy
does to that listener's connections happens to A→B traffic only. A one-way
partition is therefore one blocked direction, a full partition both.

Each direction (`Link`) can be:

- blocked: its open connections are cut at once, and new ones are accepted but
  blackholed (bytes read and discarded, nothing forwarded), as a dead route looks to
  a sender; unblocking cuts the blackholed connections so both ends reconnect;
- slowed: every chunk is forwarded `delay_s` (+ up to `jitter_s`) after it arrived,
  keeping the byte order;
- lossy: with probability `loss` per forwarded chunk the connection is cut, which
  loses whatever was in flight on it (TCP never drops bytes in the middle of a
  stream, so a lost message is a lost connection).

The proxy lives on the harness's event loop and listens on 127.0.0.1 only. As the
chaos runs' `proxy` network (`network.ClusterNetwork`), it places every node on
127.0.0.1 on free ports and gives each the proxy's listeners as its dial addresses.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
from dataclasses import dataclass, field

from accord.chaos.network import Address, LinkFaults
from accord.node.address import Member
from accord.testing.ports import free_ports

CHUNK_BYTES = 65536


@dataclass(slots=True)
class Link(LinkFaults):
    """The state of one direction src→dst, and its connections."""

    connections: set[asyncio.Task[None]] = field(default_factory=set)
    forwarded_bytes: int = 0
    cuts: int = 0


class NetProxy:
    name = "proxy"

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.links: dict[tuple[int, int], Link] = {}
        self._servers: dict[tuple[int, int], asyncio.Server] = {}
        self._upstream: dict[int, Address] = {}

    async def start(self, peers: dict[int, Address]) -> None:
        """One listener per ordered pair of `peers` (node id -> real peer address)."""
        self._upstream = dict(peers)
        for src in peers:
            for dst in peers:
                if src == dst:
                    continue
                self.links[(src, dst)] = Link()
                self._servers[(src, dst)] = await asyncio.start_server(
                    functools.partial(self._accept, src, dst), "127.0.0.1", 0
                )

    def listen_address(self, src: int, dst: int) -> Address:
        """Where `src` must dial to reach `dst` through the proxy."""
        sockname = self._servers[(src, dst)].sockets[0].getsockname()
        return str(sockname[0]), int(sockname[1])

    # --- as a chaos run's network --------------------------------------------------------
    async def place(self, ids: list[int]) -> dict[int, Member]:
        """Every node on 127.0.0.1 on free ports, and a listener per direction."""
        ports = free_ports(3 * len(ids))
        members = {
            i: Member(
                i,
                f"n{i}",
                peer=("127.0.0.1", ports[3 * k + 1]),
                client=("127.0.0.1", ports[3 * k]),
                native=("127.0.0.1", ports[3 * k + 2]),
            )
            for k, i in enumerate(ids)
        }
        await self.start({i: m.peer for i, m in members.items()})
        return members

    def dial(self, src: int, dst: int) -> Address:
        return self.listen_address(src, dst)

    def command(self, node: int, argv: list[str]) -> list[str]:
        return argv

    async def stop(self) -> None:
        for server in self._servers.values():
            server.close()
        for link in self.links.values():
            self._cut(link)
        for server in self._servers.values():
            with contextlib.suppress(Exception):
                await server.wait_closed()
        self._servers.clear()

    # --- controls --------------------------------------------------------------------
    def block(self, src: int, dst: int) -> None:
        link = self.links[(src, dst)]
        if not link.blocked:
            link.blocked = True
            self._cut(link)

    def unblock(self, src: int, dst: int) -> None:
        link = self.links[(src, dst)]
        if link.blocked:
            link.blocked = False
            self._cut(link)  # the blackholed connections: let both ends start over

    def slow(self, src: int, dst: int, delay_s: float, jitter_s: float, loss: float) -> None:
        link = self.links[(src, dst)]
        link.delay_s, link.jitter_s, link.loss = delay_s, jitter_s, loss

    def heal(self) -> None:
        """Every direction open and fast again."""
        for src, dst in self.links:
            self.slow(src, dst, 0.0, 0.0, 0.0)
            self.unblock(src, dst)

    def _cut(self, link: Link) -> None:
        for task in list(link.connections):
            task.cancel()
        if link.connections:
            link.cuts += 1

    # --- connections -------------------------------------------------------------------
    async def _accept(
        self, src: int, dst: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        link = self.links[(src, dst)]
        task = asyncio.current_task()
        assert task is not None
        link.connections.add(task)
        upstream: asyncio.StreamWriter | None = None
        try:
            if link.blocked:
                while await reader.read(CHUNK_BYTES):
                    pass  # blackhole: the sender sees a connection that never answers
                return
            up_reader, upstream = await asyncio.open_connection(*self._upstream[dst])
            pumps = {
                asyncio.create_task(self._forward(link, reader, upstream)),
                asyncio.create_task(self._pipe(up_reader, writer)),
            }
            try:
                # Either side ending (or failing) ends the connection as a whole.
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pump in pumps:
                    pump.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
        except OSError:
            pass  # a broken connection is an ordinary event here
        except asyncio.CancelledError:
            pass  # cut by a fault; the handler ends and closes both sides
        finally:
            link.connections.discard(task)
            for w in (writer, upstream):
                if w is not None:
                    w.close()

    async def _forward(
        self, link: Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """src→dst bytes, delayed and possibly lost as the link says, in order."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def sender() -> None:
            while True:
                due, chunk = await queue.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(chunk)
                await writer.drain()
                link.forwarded_bytes += len(chunk)

        send_task = asyncio.create_task(sender())
        try:
            while chunk := await reader.read(CHUNK_BYTES):
                if link.loss and self.rng.random() < link.loss:
                    link.cuts += 1
                    return
                delay = link.delay_s + (self.rng.random() * link.jitter_s if link.jitter_s else 0)
                queue.put_nowait((loop.time() + delay, chunk))
            while not queue.empty() and not send_task.done():
                await asyncio.sleep(0.01)  # let the delayed tail out before closing
        finally:
            send_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await send_task

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """dst→src bytes (only handshake replies on a Raft connection), unchanged."""
        while chunk := await reader.read(CHUNK_BYTES):
            writer.write(chunk)
            await writer.drain()
