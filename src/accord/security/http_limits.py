"""Connection limits and slow-client timeouts for the HTTP port (aiohttp has neither
a connection cap nor a header read timeout).

`GatedAppRunner` is an `aiohttp.web.AppRunner` whose protocol factory wraps each
connection's protocol:

- at `connections_max` open connections, a new one closes the connection idle the
  longest (no handler running, nothing left to write) to take its place, and is
  closed at once only if every connection has a request in progress;
- a connection that sends nothing, or is idle between keep-alive requests, for
  `idle_timeout_s` is closed;
- a connection that has sent bytes of a request must have its request begin (headers
  complete, handler started) within `read_timeout_s`, or it is closed: a slowloris
  client trickling headers holds nothing for long. `ConnectionGate.middleware` marks
  the start and end of each request.

Request bodies get the same bound in the middleware: the body is read (at most the
API's request size) within `read_timeout_s` before the handler runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from accord.api.http import declared_too_large, error_response

log = logging.getLogger("accord.security")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
STREAMING_PATHS = frozenset({"/v1/watch"})


class _GatedProtocol(asyncio.Protocol):
    """One connection's protocol, wrapped. The timeouts cost no timer per request: the
    first bytes of a request note the time (`waiting_since`), the start of its handler
    clears it, and one timer per connection, re-armed only when it fires, closes the
    connection once a request has waited `read_timeout_s`. A second timer, also
    re-armed only when it fires, closes it once it has been idle (no request begun,
    nothing left to write) for `idle_timeout_s` since `idle_since`."""

    def __init__(self, gate: ConnectionGate, inner: asyncio.Protocol) -> None:
        self._gate = gate
        self._inner = inner
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._admitted = False
        self.busy = False
        self.waiting_since: float | None = None
        self.idle_since = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        gate = self._gate
        if len(gate.open) >= gate.connections_max and not gate.evict_idlest():
            gate.refused += 1
            log.warning("refused an HTTP connection: %d open, none idle", len(gate.open))
            self._transport.abort()
            return
        loop = asyncio.get_running_loop()
        self.idle_since = loop.time()
        self._idle_timer = loop.call_at(self.idle_since + gate.idle_timeout_s, self._check_idle)
        gate.open[transport] = self
        self._admitted = True
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._transport is not None:
            self._gate.open.pop(self._transport, None)
        if self._admitted:
            self._admitted = False
            self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self.busy and self.waiting_since is None:
            loop = asyncio.get_running_loop()
            self.waiting_since = loop.time()
            if self._timer is None:
                self._timer = loop.call_at(
                    self.waiting_since + self._gate.read_timeout_s, self._check
                )
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def request_started(self) -> None:
        self.busy = True
        self.waiting_since = None

    def request_finished(self) -> None:
        self.busy = False
        self.idle_since = asyncio.get_running_loop().time()

    @property
    def evictable(self) -> bool:
        """No handler running and no answer still being written: closing it loses no
        request the node has begun (at worst one whose headers are still arriving)."""
        transport = self._transport
        return not self.busy and transport is not None and transport.get_write_buffer_size() == 0

    @property
    def idle(self) -> bool:
        """Evictable, and not even the first bytes of a next request have come."""
        return self.evictable and self.waiting_since is None

    def close(self) -> None:
        """Close at once (the gate makes room for a new connection)."""
        self._disarm()
        if self._transport is not None:
            self._gate.open.pop(self._transport, None)
            self._transport.abort()

    def _disarm(self) -> None:
        for timer in (self._timer, self._idle_timer):
            if timer is not None:
                timer.cancel()
        self._timer = self._idle_timer = None

    def _check(self) -> None:
        self._timer = None
        since = self.waiting_since
        if self.busy or since is None or self._transport is None:
            return  # no request waiting now; the next one's bytes arm a new timer
        loop = asyncio.get_running_loop()
        deadline = since + self._gate.read_timeout_s
        if loop.time() < deadline:
            self._timer = loop.call_at(deadline, self._check)  # a later request waits
            return
        self._gate.timed_out += 1
        log.warning("closing a slow HTTP connection: no complete request in time")
        self._transport.abort()

    def _check_idle(self) -> None:
        loop = asyncio.get_running_loop()
        now, timeout = loop.time(), self._gate.idle_timeout_s
        self._idle_timer = None
        if self._transport is None:
            return
        if not self.idle:  # in use: look again a full timeout after it may end
            self._idle_timer = loop.call_at(now + timeout, self._check_idle)
            return
        deadline = self.idle_since + timeout
        if now < deadline:
            self._idle_timer = loop.call_at(deadline, self._check_idle)
            return
        self._gate.idle_closed += 1
        log.info("closing an idle HTTP connection after %.1fs", timeout)
        self.close()

    def __getattr__(self, name: str) -> Any:  # anything else aiohttp may ask its protocol
        return getattr(self._inner, name)


class ConnectionGate:
    """The open connections of one HTTP port. At `connections_max`, a new connection
    closes the one idle the longest to take its place, so idle sockets cannot lock
    clients out; only when every connection has a request in progress is the new one
    refused."""

    def __init__(self, connections_max: int, read_timeout_s: float, idle_timeout_s: float) -> None:
        self.connections_max = connections_max
        self.read_timeout_s = read_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.open: dict[asyncio.BaseTransport, _GatedProtocol] = {}
        self.refused = 0
        self.timed_out = 0
        self.idle_closed = 0
        self.evicted = 0

    def evict_idlest(self) -> bool:
        """Close the connection that has had no request in progress for the longest
        (one trickling its headers counts from the end of its previous request, so
        slow clients cannot hold the port either); False if every one is busy."""
        candidates = [p for p in self.open.values() if p.evictable]
        if not candidates:
            return False
        victim = min(candidates, key=lambda p: p.idle_since)
        self.evicted += 1
        log.info("closing the longest-idle HTTP connection to admit a new one")
        victim.close()
        return True

    def wrap(self, factory: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        return lambda: _GatedProtocol(self, factory())

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        protocol = self.open.get(request.transport) if request.transport else None
        if protocol is not None:
            protocol.request_started()
        try:
            too_large = declared_too_large(request)
            if too_large is not None:  # refused before waiting for a byte of it
                return _closing("request_too_large", too_large)
            # A body that has not all arrived yet must do so in time (most have: they
            # came with the headers, and reading them waits for nothing).
            if (
                request.can_read_body
                and not request.content.is_eof()
                and request.path not in STREAMING_PATHS
            ):
                try:
                    async with asyncio.timeout(self.read_timeout_s):
                        await request.read()  # cached: the handler reads it again for free
                except TimeoutError:
                    return _closing("timeout", "request body too slow")
                except web.HTTPRequestEntityTooLarge as e:  # answered as the API does
                    return _closing("request_too_large", str(e.text))
            return await handler(request)
        finally:
            if protocol is not None:
                protocol.request_finished()


def _closing(code: str, message: str) -> web.Response:
    """An error answer that ends the connection (its body was not, or not all, read)."""
    response = error_response(code, message)
    response.headers["Connection"] = "close"
    return response


class _GatedServer:
    """aiohttp's `web.Server` with each connection's protocol wrapped by the gate."""

    def __init__(self, server: web.Server, gate: ConnectionGate) -> None:
        self._server = server
        self._factory = gate.wrap(cast(Callable[[], asyncio.Protocol], server))

    def __call__(self) -> asyncio.Protocol:
        return self._factory()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._server, name)


class MalformedRequestLogger(logging.LoggerAdapter[logging.Logger]):
    """aiohttp's server logger, except that a request its parser refuses (a URL over
    8190 bytes, a bad header, an overflowing Content-Length: answered 400 by aiohttp)
    is one warning line: a client's mistake, not a traceback in the node's log."""

    def exception(self, msg: object, *args: object, **kwargs: Any) -> None:
        error = kwargs.get("exc_info")
        if isinstance(error, HttpProcessingError):
            log.warning("refused a malformed HTTP request: %s", str(error.message)[:200])
            return
        self.logger.exception(msg, *args, **kwargs)


class GatedAppRunner(web.AppRunner):
    def __init__(self, app: web.Application, gate: ConnectionGate, **kwargs: Any) -> None:
        kwargs.setdefault("logger", MalformedRequestLogger(logging.getLogger("aiohttp.server")))
        super().__init__(app, **kwargs)
        self._gate = gate

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        return cast(web.Server, _GatedServer(server, self._gate))
