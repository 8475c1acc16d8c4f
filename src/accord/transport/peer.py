"""Raft messages between nodes over TCP (optionally TLS): `PeerTransport`.

Theory of operation
-------------------
Connections are one-way. To reach peer N this node dials N's listener, sends a
`Hello` (protocol version, cluster id, its own id, N's id) and waits for a
`HelloReply`; from then on it only writes message frames, and N only reads them. N
sends its messages to us over its own connection to our listener. Each side thus has
one writer per peer and any number of readers, and neither ever waits for the other
to answer a message: Raft matches responses to requests itself.

Outbound (`_Link`, one per peer). `send()` never blocks and never fails: it encodes
the message and appends the encoding to the peer's bounded queue, or drops it and
counts the drop when the queue is full (in messages or bytes), the message alone
would not fit a frame, or the destination is unknown. Raft treats a lost message
like any other network loss and retransmits, so a bounded queue costs nothing in
safety, while an unbounded one would let a dead peer exhaust memory. The link's task
is started by the first message to that peer; it dials, shakes hands, then loops:
take every queued message, pack them in order into as few frames as the frame's byte
and message bounds allow (`codec.pack_batches`; messages of every group share them),
write the frames, drain once. Everything queued while the task waited — all that a
Ready of every group sent to this peer in one event-loop turn — thus leaves in one
or a few frames, with one system call and one wait. When a connection fails, or will
not open, the task sleeps a backoff delay (full jitter, capped; `backoff.py`) and
dials again once there is something to send; messages queued meanwhile wait, up to
the bounds. A link's states and the events that move it are the table
`_LINK_TRANSITIONS`; any other move is a bug.

Inbound (`_Inbound`, an asyncio `Protocol` per accepted connection). Bytes go through
a `FrameDecoder`, synchronously inside `data_received`, so a connection buffers at
most one partial frame. Until the handshake succeeds the frame limit is the tiny
`HANDSHAKE_BYTES_MAX` and a deadline runs. A frame that does not decode (a malformed
batch, one with too many messages, or one bad message in it: the frame is refused
whole, none of it delivered), an oversized frame, a wrong handshake, or a missed
deadline closes that connection only, logged with the reason; a refused handshake
is answered first, with a generic refusal that names no cluster and no node. With
TLS, a connection whose certificate names no node is closed at once, a hello must
claim exactly the cluster id and node id the certificate names, and a dialler checks
the same of the listener it reached. Each decoded message goes to `on_message` if
addressed to this node and sent by the node that shook hands; others are dropped and
counted, one by one.

`stop()` closes the listener and every connection, cancels every task the transport
started and waits for them, so no task outlives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, cast

from accord.invariant import InvariantError, invariant
from accord.raft.types import Message, NodeId
from accord.transport import limits
from accord.transport.backoff import backoff_delay_s
from accord.transport.codec import (
    Hello,
    HelloReply,
    batch_header_bytes,
    decode_batch,
    decode_hello,
    decode_hello_reply,
    encode_hello,
    encode_hello_reply,
    encode_message,
    pack_batches,
)
from accord.transport.errors import HandshakeRejected, ProtocolError
from accord.transport.framing import FrameDecoder, encode_frame

logger = logging.getLogger("accord.transport")

Address = tuple[str, int]

REFUSAL_REASON = "handshake refused"
"""All a refused dialler is told (a peer of another protocol version excepted: it is
told which version this node speaks)."""
REFUSAL_NODE_ID = 0
"""The node id in a refusal: none (node ids are positive)."""


@dataclass(frozen=True, slots=True)
class PeerStats:
    """Counters of one outbound link. `queued*` are what waits now (`queued_bytes`:
    the messages' encodings); `sent` counts messages written and drained, in
    `frames_sent` frames; `dropped` counts messages refused by a full queue, over the
    frame limit, or lost with a failed write; `reconnects` counts connections
    established after the first; `connect_failures` counts dials or handshakes that
    failed."""

    node_id: NodeId
    address: Address
    connected: bool
    queued: int
    queued_bytes: int
    sent: int
    frames_sent: int
    dropped: int
    reconnects: int
    connect_failures: int


@dataclass(frozen=True, slots=True)
class TransportStats:
    """`peers` holds one `PeerStats` per configured peer. The rest is inbound:
    connections open now, messages handed to `on_message`, message frames accepted
    (a frame carries many messages), messages dropped because they were not
    addressed to this node (or not from the node that shook hands),
    connections closed for a protocol error, handshakes refused, connections refused
    over `connections_inbound_max`; and sends to a node that is not a configured peer."""

    peers: dict[NodeId, PeerStats]
    inbound_connections: int
    received: int
    frames_received: int
    misaddressed: int
    protocol_errors: int
    handshakes_refused: int
    inbound_refused: int
    unknown_destination: int


class _LinkState(Enum):
    IDLE = "idle"  # no connection yet and nothing sent
    CONNECTING = "connecting"  # dialling or shaking hands
    CONNECTED = "connected"
    BACKOFF = "backoff"  # the last connection failed or was lost
    CLOSED = "closed"  # removed or stopped; final


class _LinkEvent(Enum):
    DIAL = "dial"
    UP = "up"
    DOWN = "down"
    CLOSE = "close"


_S, _E = _LinkState, _LinkEvent
_LINK_TRANSITIONS: dict[tuple[_LinkState, _LinkEvent], _LinkState] = {
    (_S.IDLE, _E.DIAL): _S.CONNECTING,
    (_S.BACKOFF, _E.DIAL): _S.CONNECTING,
    (_S.CONNECTING, _E.UP): _S.CONNECTED,
    (_S.CONNECTING, _E.DOWN): _S.BACKOFF,
    (_S.CONNECTED, _E.DOWN): _S.BACKOFF,
    **{(state, _E.CLOSE): _S.CLOSED for state in _LinkState},
}


class _TransportState(Enum):
    NEW = "new"
    RUNNING = "running"
    STOPPED = "stopped"


class _Link:
    """The outbound side of one peer: its queue, its counters and its task."""

    def __init__(self, node_id: NodeId, address: Address) -> None:
        self.node_id = node_id
        self.address = address
        self.state = _LinkState.IDLE
        self.queue: deque[bytes] = deque()
        self.queued_bytes = 0
        self.wakeup = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.sent = 0
        self.frames_sent = 0
        self.dropped = 0
        self.connects = 0
        self.connect_failures = 0
        self.failures_in_row = 0
        self.overflowing = False

    def move(self, event: _LinkEvent) -> None:
        next_state = _LINK_TRANSITIONS.get((self.state, event))
        if next_state is None:
            raise InvariantError(f"link to {self.node_id}: no move on {event} in {self.state}")
        self.state = next_state

    def take_all(self) -> list[bytes]:
        encoded = list(self.queue)
        self.queue.clear()
        self.queued_bytes = 0
        return encoded

    def stats(self) -> PeerStats:
        return PeerStats(
            node_id=self.node_id,
            address=self.address,
            connected=self.state is _LinkState.CONNECTED,
            queued=len(self.queue),
            queued_bytes=self.queued_bytes,
            sent=self.sent,
            frames_sent=self.frames_sent,
            dropped=self.dropped,
            reconnects=max(0, self.connects - 1),
            connect_failures=self.connect_failures,
        )


class PeerTransport:
    """Sends Raft messages to peers and delivers the ones addressed to this node.

    `peers` maps node ids to listener addresses (an entry for `node_id` itself is
    ignored, so the whole membership may be passed). `on_message` is called on the
    event loop, synchronously, for each message received; it should hand the message
    on and return quickly. If it raises, the connection it came from is closed.
    """

    def __init__(
        self,
        node_id: NodeId,
        cluster_id: str,
        listen: Address,
        peers: Mapping[NodeId, Address],
        on_message: Callable[[Message], None],
        *,
        queue_messages_max: int = limits.QUEUE_MESSAGES_MAX,
        queue_bytes_max: int = limits.QUEUE_BYTES_MAX,
        frame_bytes_max: int = limits.FRAME_BYTES_MAX,
        frame_messages_max: int = limits.FRAME_MESSAGES_MAX,
        connections_inbound_max: int = limits.CONNECTIONS_INBOUND_MAX,
        connect_timeout_s: float = limits.CONNECT_TIMEOUT_S,
        handshake_timeout_s: float = limits.HANDSHAKE_TIMEOUT_S,
        backoff_s_min: float = limits.RECONNECT_BACKOFF_S_MIN,
        backoff_s_max: float = limits.RECONNECT_BACKOFF_S_MAX,
        ssl_server: ssl.SSLContext | None = None,
        ssl_client: ssl.SSLContext | None = None,
        certificate_identity: Callable[[Any], tuple[str, NodeId] | None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        _check_config(node_id, cluster_id, queue_messages_max, queue_bytes_max, frame_bytes_max)
        if not 1 <= frame_messages_max <= limits.FRAME_MESSAGES_MAX:
            raise ValueError(f"frame_messages_max must be in [1, {limits.FRAME_MESSAGES_MAX}]")
        if not 0 < backoff_s_min <= backoff_s_max:
            raise ValueError("need 0 < backoff_s_min <= backoff_s_max")
        if connect_timeout_s <= 0 or handshake_timeout_s <= 0 or connections_inbound_max < 1:
            raise ValueError("timeouts and connections_inbound_max must be positive")
        self.node_id = node_id
        self.cluster_id = cluster_id
        self._listen = listen
        self._on_message = on_message
        self._queue_messages_max = queue_messages_max
        self._queue_bytes_max = queue_bytes_max
        self._frame_bytes_max = frame_bytes_max
        self._frame_messages_max = frame_messages_max
        self._connections_inbound_max = connections_inbound_max
        self._connect_timeout_s = connect_timeout_s
        self._handshake_timeout_s = handshake_timeout_s
        self._backoff_s = (backoff_s_min, backoff_s_max)
        self._ssl_server = ssl_server
        self._ssl_client = ssl_client
        self._ssl_handshake_timeout_s = handshake_timeout_s if ssl_client is not None else None
        # The TLS handshake proves a certificate comes from the cluster CA; this says
        # which node (cluster id, node id) it names, if any: a client's certificate from
        # the same CA names none and may not speak Raft, and a node may only claim, in
        # its hello or as a listener, the id its certificate names.
        self._certificate_identity = certificate_identity
        self._rng = rng if rng is not None else random.Random()
        self._state = _TransportState.NEW
        self._server: asyncio.Server | None = None
        self._listen_address: Address | None = None
        self._links: dict[NodeId, _Link] = {}
        self._retiring: set[asyncio.Task[None]] = set()
        self._inbound: set[_Inbound] = set()
        self._counters = _InboundCounters()
        self.update_peers(peers)

    # --- lifecycle ----------------------------------------------------------------

    async def start(self) -> None:
        """Bind the listener; `listen_address` then holds the bound (host, port)."""
        invariant(self._state is _TransportState.NEW, "start() called twice")
        host, port = self._listen
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Inbound(self),
            host,
            port,
            ssl=self._ssl_server,
            ssl_handshake_timeout=self._handshake_timeout_s if self._ssl_server else None,
        )
        sockname = self._server.sockets[0].getsockname()
        self._listen_address = (str(sockname[0]), int(sockname[1]))
        self._state = _TransportState.RUNNING
        logger.info("node %d listening on %s:%d", self.node_id, *self._listen_address)

    @property
    def listen_address(self) -> Address:
        """The address the listener is bound to (the real port when 0 was asked)."""
        invariant(self._listen_address is not None, "listen_address before start()")
        return self._listen_address or ("", 0)

    async def stop(self) -> None:
        """Close the listener and every connection; wait for every task to end.
        Queued messages are discarded. Calling it again does nothing."""
        if self._state is _TransportState.STOPPED:
            return
        self._state = _TransportState.STOPPED
        if self._server is not None:
            self._server.close()
        for link in self._links.values():
            self._retire(link)
        inbound = list(self._inbound)
        for connection in inbound:
            connection.abort()
        tasks = list(self._retiring)
        await asyncio.gather(*tasks, return_exceptions=True)
        closed = [connection.closed for connection in inbound]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(limits.CLOSE_TIMEOUT_S):
                await asyncio.gather(*closed, return_exceptions=True)
                if self._server is not None:
                    await self._server.wait_closed()
        logger.info("node %d transport stopped", self.node_id)

    # --- sending ------------------------------------------------------------------

    def send(self, message: Message) -> bool:
        """Queue `message` for its `dst`; never blocks. Returns False when it was
        dropped instead: the peer's queue is full, the message alone is over the frame
        limit, the peer is unknown (each counted in `stats()`), or the transport has
        stopped."""
        if self._state is not _TransportState.RUNNING:
            invariant(self._state is _TransportState.STOPPED, "send() before start()")
            return False
        if message.src != self.node_id:
            raise InvariantError(f"node {self.node_id} asked to send a message from {message.src}")
        link = self._links.get(message.dst)
        if link is None:
            self._counters.unknown_destination += 1
            logger.debug("no peer %d; dropped a %s message", message.dst, message.type.name)
            return False
        encoded = encode_message(message)
        if not self._admit(link, encoded, message):
            return False
        link.queue.append(encoded)
        link.queued_bytes += len(encoded)
        link.wakeup.set()
        if link.task is None:
            link.task = asyncio.get_running_loop().create_task(
                self._run_link(link), name=f"accord-transport-{self.node_id}-to-{link.node_id}"
            )
            link.task.add_done_callback(_report_link_crash)
        return True

    def _admit(self, link: _Link, encoded: bytes, message: Message) -> bool:
        payload_bytes = batch_header_bytes(1) + len(encoded)  # a frame of its own
        if payload_bytes > self._frame_bytes_max:
            link.dropped += 1
            logger.error(
                "dropped a %s message to %d: %d bytes exceeds frame_bytes_max %d",
                message.type.name,
                link.node_id,
                payload_bytes,
                self._frame_bytes_max,
            )
            return False
        if (
            len(link.queue) < self._queue_messages_max
            and link.queued_bytes + len(encoded) <= self._queue_bytes_max
        ):
            return True
        link.dropped += 1
        if not link.overflowing:
            link.overflowing = True
            logger.warning(
                "queue to peer %d is full (%d messages, %d bytes); dropping messages",
                link.node_id,
                len(link.queue),
                link.queued_bytes,
            )
        return False

    # --- membership ---------------------------------------------------------------

    def update_peers(self, peers: Mapping[NodeId, Address]) -> None:
        """Make `peers` the set of peers. A removed peer's connection is closed and
        its queue discarded; a peer whose address changed starts over at the new one;
        a new peer is dialled when the first message to it is sent."""
        wanted = {_check_node(node): _check_address(address) for node, address in peers.items()}
        wanted.pop(self.node_id, None)
        for node, link in list(self._links.items()):
            if wanted.get(node) != link.address:
                del self._links[node]
                self._retire(link)
                logger.info("peer %d at %s:%d removed", node, *link.address)
        for node, address in wanted.items():
            if node not in self._links:
                self._links[node] = _Link(node, address)

    def _retire(self, link: _Link) -> None:
        link.move(_LinkEvent.CLOSE)
        link.take_all()
        task, link.task = link.task, None
        if task is not None and not task.done():
            task.cancel()
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)

    # --- observation --------------------------------------------------------------

    def stats(self) -> TransportStats:
        c = self._counters
        return TransportStats(
            peers={node: link.stats() for node, link in self._links.items()},
            inbound_connections=len(self._inbound),
            received=c.received,
            frames_received=c.frames_received,
            misaddressed=c.misaddressed,
            protocol_errors=c.protocol_errors,
            handshakes_refused=c.handshakes_refused,
            inbound_refused=c.inbound_refused,
            unknown_destination=c.unknown_destination,
        )

    # --- outbound links -----------------------------------------------------------

    async def _run_link(self, link: _Link) -> None:
        """Dial, pump, back off, repeat, until cancelled by `update_peers` or `stop`."""
        while True:
            while not link.queue:
                link.wakeup.clear()
                await link.wakeup.wait()
            link.move(_LinkEvent.DIAL)
            connection = await self._dial(link)
            if connection is not None:
                link.move(_LinkEvent.UP)
                link.connects += 1
                link.failures_in_row = 0
                await self._pump(link, *connection)
            else:
                link.connect_failures += 1
                link.failures_in_row += 1
            link.move(_LinkEvent.DOWN)
            delay_s = backoff_delay_s(link.failures_in_row, self._rng, *self._backoff_s)
            await asyncio.sleep(delay_s)

    async def _dial(self, link: _Link) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        host, port = link.address
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                reader, writer = await asyncio.open_connection(
                    host,
                    port,
                    ssl=self._ssl_client,
                    server_hostname=host if self._ssl_client is not None else None,
                    ssl_handshake_timeout=self._ssl_handshake_timeout_s,
                )
        except (OSError, TimeoutError) as exc:
            self._log_dial_failure(link, f"cannot connect: {exc!r}")
            return None
        try:
            async with asyncio.timeout(self._handshake_timeout_s):
                self._check_listener(link, writer)
                await self._shake_hands(link, reader, writer)
        except (OSError, TimeoutError, ProtocolError) as exc:
            await _abort(writer)
            self._log_dial_failure(link, f"handshake failed: {exc!r}")
            return None
        except asyncio.CancelledError:
            writer.transport.abort()
            raise
        logger.info("connected to peer %d at %s:%d", link.node_id, host, port)
        return reader, writer

    def _check_listener(self, link: _Link, writer: asyncio.StreamWriter) -> None:
        """With TLS, the listener we reached must hold the certificate of the node we
        meant to reach (an address can be reused by another member)."""
        identify = self._certificate_identity
        if identify is None:
            return
        named = identify(writer.get_extra_info("peercert"))
        if named != (self.cluster_id, link.node_id):
            raise HandshakeRejected(
                f"the listener's certificate names {named}, not node {link.node_id} "
                f"of cluster {self.cluster_id!r}"
            )

    async def _shake_hands(
        self, link: _Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        hello = Hello(self.cluster_id, src=self.node_id, dst=link.node_id)
        writer.write(encode_frame(encode_hello(hello)))
        await writer.drain()
        decoder = FrameDecoder(limits.HANDSHAKE_BYTES_MAX)
        frames: list[bytes] = []
        while not frames:
            data = await reader.read(limits.HANDSHAKE_BYTES_MAX)
            if not data:
                raise ProtocolError("connection closed during the handshake")
            frames = decoder.feed(data)
        if len(frames) > 1 or decoder.buffered_bytes:
            raise ProtocolError("peer sent data after its handshake reply")
        reply = decode_hello_reply(frames[0])
        if not reply.accepted:
            raise HandshakeRejected(f"peer refused the handshake: {reply.reason}")
        if reply.node_id != link.node_id:
            raise HandshakeRejected(f"reached node {reply.node_id}, expected {link.node_id}")

    def _log_dial_failure(self, link: _Link, reason: str) -> None:
        # The first failure in a row is worth a warning; repeats while a peer stays
        # down would flood the log at every backoff.
        level = logging.WARNING if link.failures_in_row == 0 else logging.DEBUG
        logger.log(level, "peer %d at %s:%d: %s", link.node_id, *link.address, reason)

    async def _pump(
        self, link: _Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Pack every queued message into frames, write them, drain once, repeat;
        return when the connection is lost. The listener never writes after its
        reply, so the watcher's read ends only at EOF, an error, or a protocol
        violation: all mean "reconnect"."""
        watcher = asyncio.get_running_loop().create_task(_watch_for_close(reader, link))
        batch: list[bytes] = []
        try:
            while not watcher.done():
                if not link.queue:
                    link.wakeup.clear()
                    await link.wakeup.wait()
                    continue
                batch = link.take_all()
                link.overflowing = False
                payloads = pack_batches(batch, self._frame_bytes_max, self._frame_messages_max)
                writer.writelines([encode_frame(payload) for payload in payloads])
                await writer.drain()
                link.sent += len(batch)
                link.frames_sent += len(payloads)
                batch = []
            reason = watcher.result()
        except OSError as exc:
            reason = repr(exc)
        finally:
            link.dropped += len(batch)
            watcher.cancel()
            await _abort(writer)
            await asyncio.wait([watcher])  # unlike `await watcher`, never raises
        logger.warning("lost connection to peer %d: %s", link.node_id, reason)


def _report_link_crash(task: asyncio.Task[None]) -> None:
    # `_run_link` only ends by cancellation; anything else is a bug worth shouting about.
    if not task.cancelled() and task.exception() is not None:
        logger.error("%s crashed", task.get_name(), exc_info=task.exception())


async def _watch_for_close(reader: asyncio.StreamReader, link: _Link) -> str:
    """Wait until the outbound connection cannot be used any more; say why."""
    try:
        data = await reader.read(1)
        reason = "peer sent data after the handshake" if data else "closed by peer"
    except OSError as exc:
        reason = repr(exc)
    link.wakeup.set()
    return reason


async def _abort(writer: asyncio.StreamWriter) -> None:
    """Close at once, discarding unsent data (Raft retransmits what matters)."""
    writer.transport.abort()
    with contextlib.suppress(OSError, TimeoutError):
        async with asyncio.timeout(limits.CLOSE_TIMEOUT_S):
            await writer.wait_closed()


class _InboundCounters:
    __slots__ = (
        "frames_received",
        "handshakes_refused",
        "inbound_refused",
        "misaddressed",
        "protocol_errors",
        "received",
        "unknown_destination",
    )

    def __init__(self) -> None:
        self.received = 0
        self.frames_received = 0
        self.misaddressed = 0
        self.protocol_errors = 0
        self.handshakes_refused = 0
        self.inbound_refused = 0
        self.unknown_destination = 0


class _Inbound(asyncio.Protocol):
    """One accepted connection: handshake, then frames → messages → `on_message`."""

    def __init__(self, owner: PeerTransport) -> None:
        self._owner = owner
        self._transport: asyncio.Transport | None = None
        self._peer_name = "?"
        self._peer_id: NodeId | None = None
        self._identity: tuple[str, NodeId] | None = None
        """(cluster id, node id) the peer's certificate names (TLS only)."""
        self._decoder = FrameDecoder(limits.HANDSHAKE_BYTES_MAX)
        self._timer: asyncio.TimerHandle | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self._peer_name = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        owner = self._owner
        if owner._state is _TransportState.STOPPED:
            self._transport.abort()
            return
        identify = owner._certificate_identity
        if identify is not None:
            self._identity = identify(transport.get_extra_info("peercert"))
            if self._identity is None:
                owner._counters.handshakes_refused += 1
                logger.warning(
                    "refused connection from %s: not a node certificate naming a node id "
                    "and cluster id",
                    self._peer_name,
                )
                self._transport.abort()
                return
        if len(owner._inbound) >= owner._connections_inbound_max:
            owner._counters.inbound_refused += 1
            logger.warning("refused connection from %s: too many connections", self._peer_name)
            self._transport.abort()
            return
        owner._inbound.add(self)
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(owner._handshake_timeout_s, self._handshake_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._owner._inbound.discard(self)
        if self._timer is not None:
            self._timer.cancel()
        if self._peer_id is not None:
            logger.info("connection from peer %d (%s) closed", self._peer_id, self._peer_name)
        if not self.closed.done():
            self.closed.set_result(None)

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        try:
            frames = self._decoder.feed(data)
            if self._peer_id is None and frames:
                self._on_hello(frames[0], extra=len(frames) > 1)
                frames = []
            for payload in frames:
                self._on_payload(payload)
        except ProtocolError as exc:
            self._owner._counters.protocol_errors += 1
            who = self._peer_name if self._peer_id is None else f"peer {self._peer_id}"
            logger.warning("closing connection from %s: %s", who, exc.reason)
            self.abort()
        except Exception:
            logger.exception("on_message raised; closing connection from %s", self._peer_name)
            self.abort()

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def _on_hello(self, payload: bytes, extra: bool) -> None:
        owner = self._owner
        try:
            hello = decode_hello(payload)
        except HandshakeRejected as exc:  # another protocol version: say which we speak
            self._refuse(exc.reason, exc.reason)
            return
        try:
            _check_hello(hello, owner.node_id, owner.cluster_id)
            if owner._certificate_identity is not None:
                _check_identity(hello, self._identity)
        except HandshakeRejected as exc:
            # The details stay in this node's log: the caller learns neither the
            # cluster id nor any node id from a refusal.
            self._refuse(exc.reason, REFUSAL_REASON)
            return
        if extra or self._decoder.buffered_bytes:
            raise ProtocolError("messages sent before the handshake was answered")
        if self._timer is not None:
            self._timer.cancel()
        self._peer_id = hello.src
        self._decoder = FrameDecoder(owner._frame_bytes_max)
        reply = HelloReply(owner.node_id)
        self._write(encode_frame(encode_hello_reply(reply)))
        logger.info("accepted connection from peer %d (%s)", hello.src, self._peer_name)

    def _refuse(self, reason: str, answer: str) -> None:
        owner = self._owner
        owner._counters.handshakes_refused += 1
        logger.warning("refused handshake from %s: %s", self._peer_name, reason)
        self._write(encode_frame(encode_hello_reply(HelloReply(REFUSAL_NODE_ID, answer))))
        if self._transport is not None:
            self._transport.close()  # close() sends the reply first; abort() would not

    def _on_payload(self, payload: bytes) -> None:
        owner = self._owner
        counters = owner._counters
        messages = decode_batch(payload, owner._frame_messages_max)
        counters.frames_received += 1
        for message in messages:
            if message.dst != owner.node_id or message.src != self._peer_id:
                counters.misaddressed += 1
                logger.debug(
                    "dropped a %s message %d -> %d on the connection from peer %s",
                    message.type.name,
                    message.src,
                    message.dst,
                    self._peer_id,
                )
                continue
            counters.received += 1
            owner._on_message(message)

    def _write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def _handshake_timed_out(self) -> None:
        self._owner._counters.protocol_errors += 1
        logger.warning("closing connection from %s: no handshake in time", self._peer_name)
        self.abort()


def _check_hello(hello: Hello, node_id: NodeId, cluster_id: str) -> None:
    if hello.cluster_id != cluster_id:
        raise HandshakeRejected(
            f"cluster id {hello.cluster_id!r} does not match this node's {cluster_id!r}"
        )
    if hello.dst != node_id:
        raise HandshakeRejected(f"this is node {node_id}, not node {hello.dst}")
    if hello.src == node_id:
        raise HandshakeRejected(f"the dialler claims this node's own id {node_id}")


def _check_identity(hello: Hello, identity: tuple[str, NodeId] | None) -> None:
    if identity != (hello.cluster_id, hello.src):
        raise HandshakeRejected(
            f"the hello claims node {hello.src} of cluster {hello.cluster_id!r}, "
            f"but the certificate names {identity}"
        )


def _check_config(
    node_id: NodeId,
    cluster_id: str,
    queue_messages_max: int,
    queue_bytes_max: int,
    frame_bytes_max: int,
) -> None:
    if node_id <= 0:
        raise ValueError("node_id must be positive")
    if not cluster_id or len(cluster_id.encode()) > limits.CLUSTER_ID_BYTES_MAX:
        raise ValueError(f"cluster_id must be 1..{limits.CLUSTER_ID_BYTES_MAX} bytes of UTF-8")
    if queue_messages_max < 1 or queue_bytes_max < 1:
        raise ValueError("queue_messages_max and queue_bytes_max must be positive")
    if not 1 <= frame_bytes_max <= limits.FRAME_BYTES_MAX:
        raise ValueError(f"frame_bytes_max must be in [1, {limits.FRAME_BYTES_MAX}]")


def _check_node(node_id: NodeId) -> NodeId:
    if type(node_id) is not int or node_id <= 0:
        raise ValueError(f"bad peer node id {node_id!r}")
    return node_id


def _check_address(address: Address) -> Address:
    host, port = address
    if not isinstance(host, str) or not host or not 0 < port < 65536:
        raise ValueError(f"bad peer address {address!r}")
    return (host, int(port))
