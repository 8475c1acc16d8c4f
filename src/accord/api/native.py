"""The native client protocol: msgpack frames over one TCP connection, pipelined.

Theory of operation
-------------------
Both directions are a sequence of frames: a 4-byte big-endian length and a msgpack
payload (`accord.transport.framing`): a request frame is at most
`NATIVE_REQUEST_FRAME_BYTES_MAX`, an answer frame at most `NATIVE_ANSWER_FRAME_BYTES_MAX`
(`accord.api.limits`; an answer that would be larger is sent as `response_too_large`
instead). The client opens with `["accord", 1]`; the node answers `["accord", 1, node_id]`, or an
error answer with request id 0 and closes the connection.

A request is `[id, op, args]`: a client-chosen integer id (unique among the
connection's requests in progress), an operation name and a map of arguments. The
answer is `[id, status, body]`, with the HTTP API's status codes and documents: 200
and the result, or an error status and `{"error": {"code", "message", ...}}` (a 429
also carries `retry_after_s`); the status is the code's in `accord.errorcodes`.
Requests are served concurrently and answered as they complete, so a client sends
many without waiting (pipelining); at most `NATIVE_INFLIGHT_MAX` are in progress per
connection, beyond that the node stops reading until one completes (backpressure).
Answers are written one at a time and only while the connection's unsent bytes are
below `NATIVE_WRITE_BUFFER_BYTES_HIGH`; above it the node also stops reading, so a
client that sends without reading holds a bounded amount of the node's memory.

Keys and values are msgpack binary both ways (`key`, `value`, ...). Writes carry the
client's session as `client_id` and `seq` in their arguments (exactly-once retries, as
the HTTP headers do). A write reaching a follower is not forwarded: the answer is 503
`not_leader` naming the leader's native URL, and the client goes there.

A watch (`op = "watch"`) answers with any number of `[id, 100, {"events": [...]}]`
frames, then one final frame: an error, or 200 when the node stops. `cancel` with
`{"id": watch_id}` ends it. At most `NATIVE_WATCHES_MAX` watches per connection.

| op              | args                                                        |
|-----------------|-------------------------------------------------------------|
| put             | key, value, lease?, client_id?, seq?                        |
| delete          | key, range_end?, client_id?, seq?                           |
| txn             | compare, success, failure (as `POST /v1/txn`), client_id?, seq? |
| get             | key, revision?, serializable?  → {revision, kv or nil}      |
| range           | key, range_end?, revision?, limit?, count_only?, serializable? |
| lease_grant     | ttl, client_id?, seq?                                       |
| lease_keepalive | id, client_id?, seq?                                        |
| lease_revoke    | id, client_id?, seq?                                        |
| lease_ttl       | id                                                          |
| status, health, ready | (none); ready answers 503 unless the node can serve     |
| watch           | key, range_end?, start_revision?                            |
| cancel          | id (of a watch on this connection)                          |
| login           | user, password, or token → {token, expires_at_ms} (with auth) |

With auth on (`accord.security`), every op but `health` and `login` needs a logged-in
connection (or a client certificate naming a user) and the permissions the HTTP API
asks for; a frame or hello that does not arrive within `read_timeout_s` closes the
connection, and so does `idle_timeout_s` after the hello with no request in flight
and no watch open. At `connections_max` open connections a new one closes the
longest-idle connection, or is closed itself if none is idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from ssl import SSLContext
from typing import Any, Protocol

import msgpack

from accord.api.limits import (
    LISTEN_BACKLOG_MAX,
    NATIVE_ANSWER_FRAME_BYTES_MAX,
    NATIVE_INFLIGHT_MAX,
    NATIVE_REQUEST_FRAME_BYTES_MAX,
    NATIVE_WATCHES_MAX,
    NATIVE_WRITE_BUFFER_BYTES_HIGH,
)
from accord.api.wire import (
    LEASE_TTL_S_MAX,
    BadRequest,
    bool_field,
    bytes_field,
    error_answer,
    error_doc,
    event_doc,
    int_field,
    lease_id_field,
    lease_ttl_doc,
    only_fields,
    parse_txn,
    result_doc,
    shards_doc,
    start_revisions_field,
    status_doc,
)
from accord.errors import AccordError, NotLeader
from accord.kv import DeleteRange, Put
from accord.kv.errors import LimitExceeded, ResponseTooLarge
from accord.node.members import NodeState
from accord.node.observe import readiness
from accord.node.router import ShardedKV
from accord.observability.metrics import NodeMetrics
from accord.transport.errors import TransportError
from accord.transport.framing import FrameDecoder, encode_frame

log = logging.getLogger("accord.api.native")

PROTOCOL = "accord"
VERSION = 1
READ_BYTES = 1 << 16
STREAMING = 100
"""The status of a watch's event frames (more follow)."""

Args = dict[str, Any]


class NotReady(AccordError):
    """The node cannot serve yet (no leader known, or catching up)."""

    def __init__(self, code: str, reason: str) -> None:
        self.code = code
        super().__init__(reason)


class GuardedSession(Protocol):
    """What a guard sees of a native connection: its stream (for the peer's address
    and certificate) and who is logged in on it, which the guard sets."""

    user: str | None
    token: str | None

    @property
    def writer(self) -> asyncio.StreamWriter: ...


class SessionGuard(Protocol):
    """What the native server asks its guard (see accord.security.native_guard)."""

    def connected(self, session: GuardedSession) -> None: ...

    async def login(self, session: GuardedSession, args: Args) -> dict[str, Any]: ...

    def check(self, session: GuardedSession, op: str, args: Args) -> None: ...


class _Session:
    """One client connection: its reader loop and the requests in progress."""

    def __init__(
        self,
        server: NativeServer,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.slots = asyncio.Semaphore(NATIVE_INFLIGHT_MAX)
        self.write_turn = asyncio.Lock()
        """Held while an answer waits for the write buffer to drain, then is written."""
        self.tasks: set[asyncio.Task[None]] = set()
        self.watches: dict[int, asyncio.Task[None]] = {}
        self.connecting: asyncio.Future[None] | None = None
        """The opening of a watch's parts on other nodes, which the next read waits for."""
        self.user: str | None = None
        """Who is logged in on this connection (set by the server's guard, if any)."""
        self.token: str | None = None
        self.handshaken = False
        self.idle_since = asyncio.get_running_loop().time()
        """When the last request in flight ended (or the connection opened)."""
        self._deadline: asyncio.Timeout | None = None
        """The timeout of the read in progress (moved when the connection goes idle)."""
        self.idle_wait = False
        """The read in progress is between frames (its timeout, if any, is the idle one)."""

    def send(self, request_id: int, status: int, body: Any) -> None:
        if self.writer.is_closing():
            return
        payload = msgpack.packb([request_id, status, body])
        if len(payload) > NATIVE_ANSWER_FRAME_BYTES_MAX:
            # Larger than any client accepts (e.g. the keys of a lease with very many).
            error = ResponseTooLarge(len(payload), NATIVE_ANSWER_FRAME_BYTES_MAX, 0, 0)
            status, error_body = self.error_body(error)
            payload = msgpack.packb([request_id, status, error_body])
        self.writer.write(encode_frame(payload))

    async def reply(self, request_id: int, status: int, body: Any) -> None:
        """Send an answer once the unsent bytes are below the high-water mark, one
        answer at a time (so waiting answers never pile up in the transport)."""
        async with self.write_turn:
            with contextlib.suppress(ConnectionError):  # the reader loop sees it too
                await self.writer.drain()
                self.send(request_id, status, body)

    def error_body(self, error: AccordError) -> tuple[int, dict[str, Any]]:
        status, body = error_answer(error)
        if isinstance(error, NotLeader):
            body["error"].update(self.server.leader_hint(error))
        retry_after_s = getattr(error, "retry_after_s", None)
        if retry_after_s is not None:  # a rate limit or login lockout: when to come back
            body["error"]["retry_after_s"] = round(retry_after_s, 3)
        return status, body

    def send_error(self, request_id: int, error: AccordError) -> int:
        status, body = self.error_body(error)
        self.send(request_id, status, body)
        return status

    @property
    def evictable(self) -> bool:
        """No request in flight, no watch open, nothing left to write: closing it
        loses no work the node has begun."""
        transport = self.writer.transport
        return not self.tasks and not self.watches and transport.get_write_buffer_size() == 0

    def close(self) -> None:
        """Close at once (the server makes room for a new connection)."""
        self.writer.transport.abort()

    async def run(self) -> None:
        decoder = FrameDecoder(NATIVE_REQUEST_FRAME_BYTES_MAX)
        if self.server.guard is not None:
            self.server.guard.connected(self)
        self.writer.transport.set_write_buffer_limits(high=NATIVE_WRITE_BUFFER_BYTES_HIGH)
        try:
            while data := await self._read(decoder):
                for frame in decoder.feed(data):
                    if not self.handshaken:
                        self._hello(frame)
                        self.handshaken = True
                        continue
                    await self.slots.acquire()  # backpressure: stop reading while full
                    await self.writer.drain()  # and while answers wait to be read
                    self._dispatch(frame)
                    if self.connecting is not None:
                        # A watch's parts on other nodes open before the next request
                        # is read: a write sent after the watch is one it sees.
                        await asyncio.wait([self.connecting])
                        self.connecting = None
                await self.writer.drain()
        except (BadRequest, TransportError) as e:  # the stream cannot go on
            self.send(0, *error_doc("bad_request", str(e)))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away
        except TimeoutError:
            if self.idle_wait:
                log.info("closing an idle native connection")
            else:  # a slow client: a frame (or the hello) took too long
                self.send(0, *error_doc("timeout", "frame read timed out"))
        finally:
            for task in [*self.tasks, *self.watches.values()]:
                task.cancel()
            with contextlib.suppress(ConnectionError):
                self.writer.close()
                await self.writer.wait_closed()

    async def _read(self, decoder: FrameDecoder) -> bytes:
        """The next bytes; within `read_timeout_s` while a frame (or the hello) is
        incomplete, so a slow client cannot hold a connection with a trickle; within
        `idle_timeout_s` of its last request while the connection is idle (no request
        in flight, no watch: watches are long and quiet). A read that began with
        requests in flight gets the idle deadline when the last one ends."""
        partial = not self.handshaken or decoder.buffered_bytes > 0
        self.idle_wait = not partial
        when = None
        if partial and self.server.read_timeout_s is not None:
            when = asyncio.get_running_loop().time() + self.server.read_timeout_s
        elif not partial and self._idle() and self.server.idle_timeout_s is not None:
            when = self.idle_since + self.server.idle_timeout_s
        async with asyncio.timeout_at(when) as deadline:
            self._deadline = deadline
            try:
                return await self.reader.read(READ_BYTES)
            finally:
                self._deadline = None

    def _idle(self) -> bool:
        return self.handshaken and not self.tasks and not self.watches

    def _went_idle(self) -> None:
        """The last request or watch ended: the read in progress gets the idle timeout."""
        if not self._idle():
            return
        loop = asyncio.get_running_loop()
        self.idle_since = loop.time()
        idle_timeout_s = self.server.idle_timeout_s
        if self._deadline is not None and self.idle_wait and idle_timeout_s is not None:
            self._deadline.reschedule(self.idle_since + idle_timeout_s)

    def _hello(self, frame: bytes) -> None:
        hello = _unpack(frame)
        if hello != [PROTOCOL, VERSION]:
            raise BadRequest(f"expected the hello [{PROTOCOL!r}, {VERSION}], got {hello!r}")
        self.writer.write(encode_frame(msgpack.packb([PROTOCOL, VERSION, self.server.node_id])))

    def _dispatch(self, frame: bytes) -> None:
        try:
            request = _unpack(frame)
            if not (
                isinstance(request, list)
                and len(request) == 3
                and isinstance(request[0], int)
                and not isinstance(request[0], bool)
                and isinstance(request[1], str)
                and isinstance(request[2], dict)
            ):
                raise BadRequest("a request is [id, op, args] with an integer id, a string op")
        except BadRequest as e:
            self.slots.release()
            self.send_error(0, e)
            return
        request_id, op, args = request
        if not all(isinstance(name, str) for name in args):  # msgpack allows binary keys
            self.slots.release()
            self.send_error(request_id, BadRequest("argument names must be strings"))
            return
        if op == "watch":
            self.slots.release()  # a watch lives long; it has its own limit
            self._open_watch(request_id, args)
            return
        task = asyncio.create_task(self._serve(request_id, op, args))
        self.tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self.slots.release()
        self._went_idle()

    async def _serve(self, request_id: int, op: str, args: Args) -> None:
        handler = self.server.handlers.get(op)
        started = time.perf_counter()
        status = 500
        try:
            guard = self.server.guard
            if op == "cancel":
                body = self._cancel(args)
            elif op == "login" and guard is not None:
                body = await guard.login(self, args)
            elif handler is None:
                raise BadRequest(f"unknown op {op!r}")
            else:
                if guard is not None:
                    guard.check(self, op, args)
                body = await handler(args)
        except AccordError as e:
            status, error_body = self.error_body(e)
            await self.reply(request_id, status, error_body)
        except Exception as e:  # a bug: answer in the protocol's format, and log it
            log.exception("unexpected error serving native op %r", op)
            message = f"internal error: {type(e).__name__}"
            await self.reply(request_id, *error_doc("internal", message))
        else:
            status = 200
            await self.reply(request_id, 200, body)
        finally:
            metrics = self.server.metrics
            if metrics is not None:
                operation = op if handler is not None or op == "cancel" else "unknown"
                metrics.observe_native(operation, status, time.perf_counter() - started)

    # --- watches ------------------------------------------------------------------------
    def _open_watch(self, request_id: int, args: Args) -> None:
        try:
            if request_id in self.watches:
                raise BadRequest(f"request id {request_id} is already a watch")
            if len(self.watches) >= NATIVE_WATCHES_MAX:
                count = len(self.watches) + 1
                raise LimitExceeded("watches on this connection", count, NATIVE_WATCHES_MAX)
            only_fields(args, {"key", "range_end", "start_revision", "start_revisions"}, "watch")
            if self.server.guard is not None:
                self.server.guard.check(self, "watch", args)
            service = self.server.service
            watch_id = service.open_watch(
                bytes_field(args, "key"),
                bytes_field(args, "range_end", required=False),
                int_field(args, "start_revision"),
                start_revisions_field(args),
            )
        except AccordError as e:
            self.send_error(request_id, e)
            return
        connected = asyncio.ensure_future(service.connect_watch(watch_id))
        self.connecting = connected
        task = asyncio.create_task(self._stream(request_id, watch_id, connected))
        self.watches[request_id] = task

        def forget(done: asyncio.Task[None]) -> None:
            if self.watches.get(request_id) is done:
                del self.watches[request_id]
                self._went_idle()

        task.add_done_callback(forget)

    async def _stream(
        self, request_id: int, watch_id: int, connected: asyncio.Future[None]
    ) -> None:
        service = self.server.service
        events = service.stream_shards(watch_id)
        try:
            await connected  # its parts on other nodes, if any
            async for batch in events:  # a slow reader falls behind, not our memory
                docs = [event_doc(e, True) for e in batch.events]
                if batch.shard:  # a sharded cluster: each event's revision is its shard's
                    for doc in docs:
                        doc["shard"] = batch.shard
                await self.reply(request_id, STREAMING, {"events": docs})
            await self.reply(request_id, 200, {})
        except AccordError as e:
            await self.reply(request_id, *self.error_body(e))
        except ConnectionError:
            pass
        finally:
            await events.aclose()
            service.close_watch(watch_id)

    def _cancel(self, args: Args) -> dict[str, Any]:
        only_fields(args, {"id"}, "cancel")
        watch = self.watches.pop(int_field(args, "id"), None)  # its slot is free at once
        if watch is not None:
            watch.cancel()
        return {"cancelled": watch is not None}


def _unpack(frame: bytes) -> Any:
    try:
        return msgpack.unpackb(frame, raw=False, strict_map_key=True)
    except (ValueError, TypeError, msgpack.ExtraData, RecursionError) as e:
        raise BadRequest(f"frame is not valid msgpack: {e}") from e


class NativeServer:
    """Serves the native protocol for one node (see the module docstring)."""

    def __init__(
        self, service: ShardedKV, state: NodeState, metrics: NodeMetrics | None = None
    ) -> None:
        self.service = service
        self.state = state
        self.metrics = metrics
        self._server: asyncio.Server | None = None
        self._sessions: dict[asyncio.Task[None], _Session] = {}
        self.guard: SessionGuard | None = None
        """Authentication and authorization (accord.security); None: every op allowed."""
        self.read_timeout_s: float | None = None
        """Most time a started frame (or the hello) may take to arrive (None: no limit)."""
        self.idle_timeout_s: float | None = None
        """Most time a connection may stay idle after the hello (None: no limit)."""
        self.connections_max: int | None = None
        """At this many open connections, a new one closes the longest-idle one, or is
        closed at once if every connection has work in flight (None: no limit)."""
        self.handlers: dict[str, Callable[[Args], Awaitable[Any]]] = {
            "put": self.put,
            "delete": self.delete,
            "txn": self.txn,
            "get": self.get,
            "range": self.range,
            "lease_grant": self.lease_grant,
            "lease_keepalive": self.lease_keepalive,
            "lease_revoke": self.lease_revoke,
            "lease_ttl": self.lease_ttl,
            "status": self.status,
            "shards": self.shards,
            "health": self.health,
            "ready": self.ready,
        }

    @property
    def node_id(self) -> int:
        return self.service.node.core.id

    async def start(self, host: str, port: int, ssl: SSLContext | None = None) -> None:
        self._server = await asyncio.start_server(
            self._accept, host, port, ssl=ssl, backlog=LISTEN_BACKLOG_MAX
        )

    async def stop(self) -> None:
        """Stop listening and close every connection (their requests are cancelled)."""
        if self._server is not None:
            self._server.close()
        for task in list(self._sessions):
            task.cancel()
        await asyncio.gather(*self._sessions, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        full = self.connections_max is not None and len(self._sessions) >= self.connections_max
        if full and not self._evict_idlest():
            log.warning("refused a native connection: %d open, none idle", len(self._sessions))
            writer.close()
            return
        session = _Session(self, reader, writer)
        self._sessions[task] = session
        try:
            await session.run()
        finally:
            self._sessions.pop(task, None)

    def _evict_idlest(self) -> bool:
        """Close the connection idle the longest to make room; False if none is."""
        candidates = [(s.idle_since, t) for t, s in self._sessions.items() if s.evictable]
        if not candidates:
            return False
        _, task = min(candidates, key=lambda c: c[0])
        log.info("closing the longest-idle native connection to admit a new one")
        self._sessions.pop(task).close()
        return True

    def leader_hint(self, error: NotLeader) -> dict[str, Any]:
        leader = error.leader_hint or self.service.node.leader_id
        member = self.state.members.get(leader)
        if member is None or member.native_url is None:
            return {}
        return {"leader": {"id": leader, "url": member.native_url}}

    # --- operations ---------------------------------------------------------------------
    @staticmethod
    def _session(args: Args) -> tuple[int, int]:
        client_id, seq = int_field(args, "client_id"), int_field(args, "seq")
        if (client_id == 0) != (seq == 0):
            raise BadRequest("client_id and seq go together, both positive")
        return client_id, seq

    async def put(self, args: Args) -> dict[str, Any]:
        only_fields(args, {"key", "value", "lease", "client_id", "seq"}, "put")
        key, value = bytes_field(args, "key"), bytes_field(args, "value")
        command = Put(key, value, int_field(args, "lease"))
        return result_doc(await self.service.execute(command, *self._session(args)), True)

    async def delete(self, args: Args) -> dict[str, Any]:
        only_fields(args, {"key", "range_end", "client_id", "seq"}, "delete")
        command = DeleteRange(bytes_field(args, "key"), bytes_field(args, "range_end", False))
        return result_doc(await self.service.execute(command, *self._session(args)), True)

    async def txn(self, args: Args) -> dict[str, Any]:
        session = self._session(args)
        body = {k: v for k, v in args.items() if k not in ("client_id", "seq")}
        return result_doc(await self.service.execute(parse_txn(body), *session), True)

    async def get(self, args: Args) -> dict[str, Any]:
        only_fields(args, {"key", "revision", "serializable"}, "get")
        result = await self.service.get(
            bytes_field(args, "key"),
            int_field(args, "revision"),
            linearizable=not bool_field(args, "serializable"),
        )
        return result_doc(result, True)

    async def range(self, args: Args) -> dict[str, Any]:
        allowed = {"key", "range_end", "revision", "limit", "count_only", "serializable"}
        only_fields(args, allowed, "range")
        result = await self.service.range(
            bytes_field(args, "key"),
            bytes_field(args, "range_end", required=False),
            revision=int_field(args, "revision"),
            limit=int_field(args, "limit"),
            count_only=bool_field(args, "count_only"),
            linearizable=not bool_field(args, "serializable"),
        )
        return result_doc(result, True)

    async def lease_grant(self, args: Args) -> dict[str, Any]:
        only_fields(args, {"ttl", "client_id", "seq"}, "lease_grant")
        ttl = int_field(args, "ttl", minimum=1, maximum=LEASE_TTL_S_MAX)
        result = await self.service.lease_grant(ttl, *self._session(args))
        return {"id": result.lease_id, "ttl": result.ttl_ms // 1000}

    async def lease_keepalive(self, args: Args) -> dict[str, Any]:
        only_fields(args, {"id", "client_id", "seq"}, "lease_keepalive")
        self._session(args)  # accepted for older clients; a keepalive is not logged
        lease_id = lease_id_field(args)
        info = await self.service.lease_keepalive(lease_id)
        return {"id": lease_id, "ttl": info.ttl_ms // 1000}

    async def lease_revoke(self, args: Args) -> dict[str, Any]:
        only_fields(args, {"id", "client_id", "seq"}, "lease_revoke")
        result = await self.service.lease_revoke(lease_id_field(args), *self._session(args))
        return {"revision": result.revision, "deleted": result.deleted}

    async def lease_ttl(self, args: Args) -> dict[str, Any]:
        only_fields(args, {"id"}, "lease_ttl")
        return await lease_ttl_doc(self.service, lease_id_field(args), binary=True)

    async def status(self, args: Args) -> dict[str, Any]:
        only_fields(args, set(), "status")
        return status_doc(self.service, self.state)

    async def shards(self, args: Args) -> dict[str, Any]:
        only_fields(args, set(), "shards")
        return shards_doc(self.service, self.state)

    async def health(self, args: Args) -> dict[str, Any]:
        """The node answers (and names the leader it knows, 0 if none)."""
        return {"health": "ok", "leader": self.service.node.leader_id}

    async def ready(self, args: Args) -> dict[str, Any]:
        """As `GET /ready`: a leader is known and the applied index has caught up;
        else 503 with the reason."""
        node = self.service.node
        ok, code, reason = readiness(node)
        if not ok:
            raise NotReady(code, reason)
        return {"ready": True, "leader": node.leader_id}
