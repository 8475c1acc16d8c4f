"""The client side of the native protocol (`accord.api.native` describes the wire).

Theory of operation
-------------------
A `NativeLink` is one TCP connection to one node: requests are written as they are
made and answered out of order, matched by request id, so any number of calls share
the connection (pipelining). A reader task delivers each answer to the waiting
call's future; when the connection breaks, every waiting call fails with
`ConnectionError` (its outcome is unknown to the caller, which retries through its
session) and the link is dead: the pool opens a new one on the next call.

A call that times out simply stops waiting; its answer, if it comes, is dropped.

Watches get a link of their own (`NativePool.open`): their frames are queued for the
reader, and a full queue stops the reader, which stops reading the socket, so a
slow consumer slows its own stream (the node then ends a watcher that falls too far
behind) and never another call.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import ssl
from collections.abc import AsyncIterator
from typing import Any

import msgpack

from accord.api.limits import NATIVE_ANSWER_FRAME_BYTES_MAX, NATIVE_REQUEST_FRAME_BYTES_MAX
from accord.client.errors import LimitExceeded, error_from_answer
from accord.client.limits import NATIVE_LINK_IDLE_S_MAX, WATCH_QUEUE_FRAMES_MAX
from accord.client.results import BadAnswer
from accord.transport.errors import TransportError
from accord.transport.framing import FrameDecoder, encode_frame

PROTOCOL = "accord"
VERSION = 1
STREAMING = 100
READ_BYTES = 1 << 16

Args = dict[str, Any]
Answer = tuple[int, dict[str, Any]]
"""(status, body) of one answer frame."""


def parse_native_url(url: str) -> tuple[str, int]:
    """`accord://host:port` or `accords://host:port` (TLS) → (host, port)."""
    rest = url.removeprefix("accords://").removeprefix("accord://")
    host, _, port = rest.rpartition(":")
    if not host or not port.isdigit() or rest == url:
        raise ValueError(f"not a native endpoint (accord[s]://HOST:PORT): {url!r}")
    return host, int(port)


def is_native(url: str) -> bool:
    return url.startswith(("accord://", "accords://"))


def _ssl_for(url: str, tls: ssl.SSLContext | None) -> ssl.SSLContext | None:
    if not url.startswith("accords://"):
        return None
    return tls if tls is not None else ssl.create_default_context()


class NativeLink:
    def __init__(
        self,
        url: str,
        stream_queue_frames: int = WATCH_QUEUE_FRAMES_MAX,
        tls: ssl.SSLContext | None = None,
        login: Args | None = None,
    ) -> None:
        self.url = url
        self._tls = tls
        self._login = login
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._ids = itertools.count(1)
        self._calls: dict[int, asyncio.Future[Answer]] = {}
        self._streams: dict[int, asyncio.Queue[Answer | BaseException]] = {}
        self._queue_frames = stream_queue_frames
        self._reading: asyncio.Task[None] | None = None
        self.node_id = 0
        """The id of the node at the other end, from its hello."""
        self.dead = False
        """The connection broke or was closed; the pool opens a new link."""
        self._used_at = 0.0
        """When a request or stream last began or ended (the loop's clock)."""

    def idle_s(self) -> float:
        """How long the link has had no request or stream in progress."""
        if self._calls or self._streams:
            return 0.0
        return asyncio.get_running_loop().time() - self._used_at

    async def connect(self) -> None:
        host, port = parse_native_url(self.url)
        self._reader, self._writer = await asyncio.open_connection(
            host, port, ssl=_ssl_for(self.url, self._tls)
        )
        self._writer.write(encode_frame(msgpack.packb([PROTOCOL, VERSION])))
        decoder = FrameDecoder(NATIVE_ANSWER_FRAME_BYTES_MAX)
        frames: list[bytes] = []
        while not frames:
            data = await self._reader.read(READ_BYTES)
            if not data:
                raise ConnectionError(f"{self.url} closed the connection during the hello")
            frames = decoder.feed(data)
        hello = _unpack(self.url, frames[0])
        if not (isinstance(hello, list) and hello[:2] == [PROTOCOL, VERSION] and len(hello) == 3):
            raise BadAnswer(f"{self.url} answered the hello with {hello!r}")
        self.node_id = int(hello[2])
        self._used_at = asyncio.get_running_loop().time()
        self._reading = asyncio.create_task(self._read(decoder, frames[1:]))
        if self._login is not None:  # credentials: the connection's first request
            status, body = await self.call("login", self._login)
            if status != 200:
                raw = body.get("error") if isinstance(body, dict) else None
                raise error_from_answer(status, raw if isinstance(raw, dict) else {})

    async def close(self) -> None:
        self._fail(ConnectionError(f"connection to {self.url} closed"))
        if self._reading is not None:
            self._reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reading
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()

    def _send(self, request_id: int, op: str, args: dict[str, Any]) -> None:
        if self.dead or self._writer is None:
            raise ConnectionError(f"connection to {self.url} is closed")
        payload = msgpack.packb([request_id, op, args])
        if len(payload) > NATIVE_REQUEST_FRAME_BYTES_MAX:  # the node would close the link
            raise LimitExceeded(
                f"request of {len(payload)} bytes exceeds the limit of "
                f"{NATIVE_REQUEST_FRAME_BYTES_MAX} bytes",
                code="request_too_large",
                status=413,
            )
        self._writer.write(encode_frame(payload))

    async def call(self, op: str, args: dict[str, Any]) -> Answer:
        """Send one request and wait for its answer (the caller bounds the wait)."""
        request_id = next(self._ids)
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._calls[request_id] = future
        try:
            self._send(request_id, op, args)
            assert self._writer is not None
            await self._writer.drain()
            return await future
        finally:
            self._calls.pop(request_id, None)
            self._used_at = asyncio.get_running_loop().time()

    @contextlib.asynccontextmanager
    async def stream(self, op: str, args: dict[str, Any]) -> AsyncIterator[AsyncIterator[Answer]]:
        """A streaming request: yields its answers, the last one final (status not 100).
        Leaving the block early cancels the stream on the node."""
        request_id = next(self._ids)
        queue: asyncio.Queue[Answer | BaseException] = asyncio.Queue(self._queue_frames)
        self._streams[request_id] = queue
        finished = False

        async def answers() -> AsyncIterator[Answer]:
            nonlocal finished
            while not finished:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                finished = item[0] != STREAMING
                yield item

        try:
            self._send(request_id, op, args)
            yield answers()
        finally:
            self._streams.pop(request_id, None)
            self._used_at = asyncio.get_running_loop().time()
            if not finished and not self.dead:
                with contextlib.suppress(ConnectionError):
                    self._send(next(self._ids), "cancel", {"id": request_id})

    async def _read(self, decoder: FrameDecoder, pending: list[bytes]) -> None:
        assert self._reader is not None
        try:
            for frame in pending:
                await self._deliver(frame)
            while data := await self._reader.read(READ_BYTES):
                for frame in decoder.feed(data):
                    await self._deliver(frame)
            self._fail(ConnectionError(f"{self.url} closed the connection"))
        except (OSError, TransportError, BadAnswer) as e:
            self._fail(e if isinstance(e, OSError) else ConnectionError(f"{self.url}: {e}"))

    async def _deliver(self, frame: bytes) -> None:
        answer = _unpack(self.url, frame)
        if not (
            isinstance(answer, list)
            and len(answer) == 3
            and isinstance(answer[0], int)
            and isinstance(answer[1], int)
            and isinstance(answer[2], dict)
        ):
            raise BadAnswer(f"{self.url} sent a frame that is not [id, status, body]")
        request_id, status, body = answer
        if request_id == 0:  # the node refuses the connection as a whole
            raise BadAnswer(f"{self.url} closed the connection: {body.get('error')}")
        future = self._calls.get(request_id)
        if future is not None:
            if not future.done():
                future.set_result((status, body))
            return
        queue = self._streams.get(request_id)
        if queue is not None:
            await queue.put((status, body))  # a full queue stops reading: backpressure

    def _fail(self, error: BaseException) -> None:
        self.dead = True
        for future in self._calls.values():
            if not future.done():
                future.set_exception(error)
        for queue in self._streams.values():
            if queue.full():
                # Drop the undelivered frames rather than the error: the watch resumes
                # from the last event it handed out, so it reads them again.
                while not queue.empty():
                    queue.get_nowait()
            queue.put_nowait(error)
        if self._writer is not None:
            self._writer.close()


def _unpack(url: str, frame: bytes) -> Any:
    try:
        return msgpack.unpackb(frame, raw=False, strict_map_key=True)
    except (ValueError, TypeError, msgpack.ExtraData, RecursionError) as e:
        raise BadAnswer(f"{url} sent a frame that is not msgpack: {e}") from e


class NativePool:
    """One shared, pipelined link per endpoint, opened on first use and reopened after
    it breaks."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self._links: dict[str, NativeLink] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.tls = tls
        self.login: Args | None = None
        """Arguments of the `login` op every new link sends first (None: no login)."""
        self.link_idle_s_max = NATIVE_LINK_IDLE_S_MAX

    async def link(self, url: str) -> NativeLink:
        link = self._links.get(url)
        if link is not None and not link.dead and link.idle_s() < self.link_idle_s_max:
            return link
        async with self._locks.setdefault(url, asyncio.Lock()):
            link = self._links.get(url)
            if link is not None and not link.dead and link.idle_s() >= self.link_idle_s_max:
                await link.close()  # the node may be closing it as idle: do not race it
            if link is None or link.dead:
                link = await self.open(url)
                self._links[url] = link
            return link

    async def open(self, url: str) -> NativeLink:
        """A new link of the caller's own (watches)."""
        link = NativeLink(url, tls=self.tls, login=self.login)
        try:
            await link.connect()
        except BaseException:
            await link.close()
            raise
        return link

    async def close(self) -> None:
        links, self._links = list(self._links.values()), {}
        for link in links:
            await link.close()
