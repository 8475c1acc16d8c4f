"""How one request reaches the cluster: routing, retries, sessions, discovery.

Theory of operation
-------------------
`Connection` owns the aiohttp session, the `Endpoints` (with their circuit breakers)
and the `Retrier`. A call is a `read()` or a `write()`; each attempt picks an
endpoint, sends one HTTP request and turns the answer into a `Reply` or a typed
exception (`accord.client.errors`). Connection failures and attempt timeouts become
`EndpointFailure`, which feeds the endpoint's breaker; any answer counts as success.

Discovery: `GET /v1/cluster/status` tells the members' URLs and the leader's id.
It runs on first use, before a write while the leader is unknown (a failure on the
leader's endpoint or a `not_leader` answer forgets it), and again once the last
discovery is `LEADER_REFRESH_S` old, so a leader that changed while the old one kept
answering (and forwarding) is found. A `not_leader` answer that names the leader is
used at once.

Sessions (exactly-once writes): a session is a random 63-bit client id whose writes
are numbered 1, 2, 3, ...; every attempt of a write carries the same client id and
sequence number (`X-Accord-Client-Id` / `X-Accord-Seq` over HTTP, `client_id` / `seq`
over the native protocol), so the server applies a retried write once and answers the
retries from its record. The server keeps only each client id's latest result, so a
session carries one write at a time, retries included. Concurrent writes each take a
session of their own from a pool (opened on demand, at most `CLIENT_SESSIONS_MAX`, reused
afterwards), so they travel in parallel — pipelined on one connection with the native
protocol. Reads use no sessions. A `session_expired` answer means no session exists
for the client id, which also means no attempt of this write was applied (a write
with seq > 1 is never applied without a session, and a session is forgotten only
after minutes of silence); the write then gets a new session — a new random client
id, seq 1 — and is sent again.

Protocols: endpoints given as `accord://host:port` make the connection speak the
native protocol (`accord.client.native`) to every node, learning the members'
native addresses from discovery; `http://` endpoints (or bare `host:port`) use the
HTTP API. One connection speaks one protocol. A native `Request` carries its
operation and arguments (`native`), and a native answer's document is in
`Reply.data`; everything else (routing, retries, breakers) is the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import multidict
import yarl

from accord.client.auth import Credentials
from accord.client.endpoints import Endpoints, normalize_url
from accord.client.errors import (
    SessionExpired,
    error_from_answer,
    leader_url_of,
    parse_error_body,
)
from accord.client.limits import (
    CLIENT_ID_BITS,
    CLIENT_SESSIONS_MAX,
    DISCOVERY_TIMEOUT_S,
    LEADER_REFRESH_S,
)
from accord.client.native import Answer, NativePool, is_native
from accord.client.policy import (
    Clock,
    EndpointFailure,
    Retrier,
    RetryPolicy,
)
from accord.client.results import BadAnswer, ClusterStatus, decode_status
from accord.client.routes import ShardRoutes

CLIENT_ID_HEADER = "X-Accord-Client-Id"
SEQ_HEADER = "X-Accord-Seq"


@dataclass(frozen=True, slots=True)
class Reply:
    url: str
    """The endpoint that answered."""
    status: int
    headers: Mapping[str, str]
    body: bytes
    data: dict[str, Any] | None = None
    """The answer's document, for a native answer (`body` is then empty)."""

    def json(self) -> dict[str, Any]:
        if self.data is not None:
            return self.data
        try:
            data = json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as e:
            raise BadAnswer(f"{self.url} answered with invalid JSON: {e}") from e
        if not isinstance(data, dict):
            raise BadAnswer(f"{self.url} answered with {type(data).__name__}, not an object")
        return data


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    target: str
    """Path and query string, already percent-encoded."""
    body: bytes | None = None
    not_found_ok: bool = False
    """Return a 404 `not_found` answer instead of raising (a missing key)."""
    native: tuple[str, dict[str, Any]] | None = None
    """The same request in the native protocol: (operation, arguments)."""
    route: tuple[bytes, bytes] | None = None
    """The key (and range end) the request is about: on a sharded cluster it goes
    to that shard's leader (`routes.ShardRoutes`)."""


@dataclass(slots=True)
class Session:
    client_id: int
    seq: int = 0


def new_client_id(rng: random.Random) -> int:
    return rng.randrange(1, 1 << CLIENT_ID_BITS)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


class Connection:
    def __init__(
        self,
        endpoints: Endpoints,
        retrier: Retrier,
        clock: Clock,
        rng: random.Random,
        tls: ssl.SSLContext | None = None,
        credentials: Credentials | None = None,
    ) -> None:
        self.endpoints = endpoints
        self.tls = tls
        self.credentials = credentials
        self.retrier = retrier
        self.clock = clock
        self._rng = rng
        self.native = all(is_native(url) for url in endpoints.urls)
        if not self.native and any(is_native(url) for url in endpoints.urls):
            raise ValueError("endpoints must all be accord:// (native) or all HTTP")
        self._native_links = NativePool(tls)
        if credentials is not None:
            self._native_links.login = credentials.native_login()
        self.idle_sessions: list[Session] = []
        """Sessions not in use, for writes of no known shard (a cluster of one group)."""
        self.shard_sessions: dict[int, list[Session]] = {}
        """Shard id -> the sessions not in use for its writes."""
        self._session_slots = asyncio.Semaphore(CLIENT_SESSIONS_MAX)
        self._http: aiohttp.ClientSession | None = None
        self._discovery_lock = asyncio.Lock()
        self._discovered_at: float | None = None
        self.routes = ShardRoutes()
        self._member_urls: dict[str, str] = {}
        """Member name -> the URL this client reaches it at (native or HTTP)."""
        self.closed = False

    @property
    def policy(self) -> RetryPolicy:
        return self.retrier.policy

    async def close(self) -> None:
        self.closed = True
        await self._native_links.close()
        if self._http is not None:
            await self._http.close()
            self._http = None

    def _session(self) -> aiohttp.ClientSession:
        if self.closed:
            raise RuntimeError("the client is closed")
        if self._http is None:
            # Deadlines are ours (asyncio.timeout per attempt); watches never end.
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None),
                connector=aiohttp.TCPConnector(ssl=self.tls or True),
            )
        return self._http

    # --- one HTTP exchange --------------------------------------------------------------
    async def exchange(
        self,
        url: str,
        request: Request,
        timeout_s: float,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """Send `request` to `url` once; `EndpointFailure` if there is no answer."""
        if self.native:
            return await self._exchange_native(url, request, timeout_s, headers)
        session = self._session()
        try:
            async with asyncio.timeout(timeout_s):
                for attempt in (1, 2):
                    sent = {**(headers or {}), **await self._auth_header(url, attempt > 1)}
                    async with session.request(
                        request.method,
                        yarl.URL(url + request.target, encoded=True),
                        data=request.body,
                        headers=sent,
                    ) as response:
                        body = await response.read()
                        copied = multidict.CIMultiDict(response.headers)
                        reply = Reply(url, response.status, copied, body)
                    if not self._should_relogin(reply) or attempt > 1:
                        return reply
                raise AssertionError("unreachable")
        except TimeoutError as e:
            raise EndpointFailure(url, f"no answer within {timeout_s:.3g}s", timed_out=True) from e
        except (aiohttp.ClientError, OSError) as e:
            raise EndpointFailure(url, _describe(e)) from e

    async def _auth_header(self, url: str, renew: bool) -> dict[str, str]:
        """The Authorization header (logging in first when there is no token yet)."""
        credentials = self.credentials
        if credentials is None:
            return {}
        if credentials.can_login and (credentials.token is None or renew):
            login = {"user": credentials.user, "password": credentials.password}
            async with self._session().post(f"{url}/v1/auth/login", json=login) as response:
                data = await response.json(content_type=None)
                if response.status != 200:
                    error = data.get("error") if isinstance(data, dict) else None
                    raise error_from_answer(
                        response.status, error if isinstance(error, dict) else {}
                    )
            credentials.token = str(data["token"])
        return credentials.header()

    def _should_relogin(self, reply: Reply) -> bool:
        """A 401 with a password at hand: the token expired or was revoked."""
        return reply.status == 401 and self.credentials is not None and self.credentials.can_login

    async def _exchange_native(
        self,
        url: str,
        request: Request,
        timeout_s: float,
        headers: Mapping[str, str] | None,
    ) -> Reply:
        if self.closed:
            raise RuntimeError("the client is closed")
        if request.native is None:
            raise TypeError(f"{request.target} has no native form")
        op, args = request.native
        if headers and CLIENT_ID_HEADER in headers:
            args = {**args, "client_id": int(headers[CLIENT_ID_HEADER])}
            args["seq"] = int(headers[SEQ_HEADER])
        try:
            async with asyncio.timeout(timeout_s):
                link = await self._native_links.link(url)
                status, data = await link.call(op, args)
        except TimeoutError as e:
            raise EndpointFailure(url, f"no answer within {timeout_s:.3g}s", timed_out=True) from e
        except OSError as e:
            raise EndpointFailure(url, _describe(e)) from e
        return Reply(url, status, {}, b"", data)

    def check(self, reply: Reply, request: Request, shard: int | None = None) -> Reply:
        """`reply` if it is a success (or an allowed 404); else raise its error (a
        `not_leader` about `shard` moves that shard's leader, not the cluster's)."""
        if 200 <= reply.status < 300:
            return reply
        if reply.data is not None:
            raw = reply.data.get("error")
            error = raw if isinstance(raw, dict) else {}
        else:
            error = parse_error_body(reply.body)
        if reply.status == 404 and request.not_found_ok and error.get("code") == "not_found":
            return reply
        if error.get("code") == "not_leader":
            hint = error.get("leader")
            leader_id = hint.get("id") if isinstance(hint, dict) else 0
            url = leader_url_of(error)
            if shard is not None:
                self.routes.set_leader(shard, url)
            elif url and isinstance(leader_id, int):
                self.endpoints.set_leader(leader_id, url)
            else:
                self.endpoints.forget_leader()
        raise error_from_answer(reply.status, error)

    async def attempt(
        self,
        request: Request,
        timeout_s: float,
        *,
        leader: bool,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """One attempt on the endpoint the routing picks: the leader of the request's
        shard if it is known, else the cluster's leader (or any node, not `leader`)."""
        shard = self.routes.shard_of(*request.route) if leader and request.route else None
        url = self.routes.leader_url(shard) if shard is not None else None
        if url is None:
            url = self.endpoints.pick(leader=leader)
        try:
            reply = await self.exchange(url, request, timeout_s, headers)
        except EndpointFailure:
            self.endpoints.failed(url)
            if shard is not None:
                self.routes.set_leader(shard, None)
            raise
        self.endpoints.succeeded(url)
        return self.check(reply, request, shard)

    # --- calls ----------------------------------------------------------------------------
    async def read(self, request: Request, timeout_s: float, *, leader: bool) -> Reply:
        """A request without effect: retried on any retryable failure; `leader` sends
        it to the leader when known (linearizable reads)."""
        started = self.clock()
        await self.ensure_discovered(min(timeout_s / 2, DISCOVERY_TIMEOUT_S))
        timeout_s -= self.clock() - started

        async def attempt(attempt_timeout_s: float) -> Reply:
            if leader and self.routes.stale:
                await self.discover(min(attempt_timeout_s / 2, DISCOVERY_TIMEOUT_S))
            return await self.attempt(request, attempt_timeout_s, leader=leader)

        return await self.retrier.run(attempt, timeout_s)

    async def write(self, request: Request, timeout_s: float) -> Reply:
        """A request with effect, sent to the leader in a session of its own; every
        retry carries the same client id and sequence number. On a sharded cluster
        each shard keeps its own sessions, so a session's writes go to one shard (a
        shard that never saw a session cannot tell it from one that expired)."""
        shard = self.routes.shard_of(*request.route) if request.route else None
        pool = self.idle_sessions if shard is None else self.shard_sessions.setdefault(shard, [])
        async with self._session_slots:
            session = pool.pop() if pool else self._new_session()
            try:
                return await self._write(session, request, timeout_s)
            finally:
                pool.append(session)

    def _new_session(self) -> Session:
        return Session(new_client_id(self._rng))

    async def _write(self, session: Session, request: Request, timeout_s: float) -> Reply:
        session.seq += 1
        renewable = session.seq > 1

        async def attempt(attempt_timeout_s: float) -> Reply:
            nonlocal renewable
            started = self.clock()
            if self._leader_stale():
                await self.discover(min(attempt_timeout_s / 2, DISCOVERY_TIMEOUT_S))
            left_s = max(attempt_timeout_s - (self.clock() - started), 0.001)
            try:
                return await self.attempt(
                    request, left_s, leader=True, headers=_session_headers(session)
                )
            except SessionExpired:
                if not renewable:
                    raise
                renewable = False
                session.client_id, session.seq = new_client_id(self._rng), 1
                return await self.attempt(
                    request, left_s, leader=True, headers=_session_headers(session)
                )

        return await self.retrier.run(attempt, timeout_s)

    # --- discovery --------------------------------------------------------------------------
    def _leader_stale(self) -> bool:
        if self.endpoints.leader_url is None or self._discovered_at is None:
            return True
        if self.routes.stale:
            return True
        return self.clock() - self._discovered_at >= LEADER_REFRESH_S

    async def ensure_discovered(self, timeout_s: float) -> None:
        """Discover once, on first use."""
        if self._discovered_at is None:
            await self.discover(timeout_s)

    def learn(self, status: ClusterStatus) -> None:
        """Record the members and the leader a node reported."""
        live = [m for m in status.members if m.role in ("voter", "learner")]
        self._member_urls = {
            m.name: (m.native_url if self.native else m.url) or ""
            for m in live
            if m.name is not None
        }
        if self.native:
            self.endpoints.add(m.native_url for m in live if m.native_url)
            leader_url = status.leader_native_url
        else:
            self.endpoints.add(m.url for m in live if m.url)
            leader_url = status.leader_url
        if status.leader and leader_url:
            self.endpoints.set_leader(status.leader, leader_url)

    async def discover(self, timeout_s: float) -> None:
        """Ask the endpoints, one after another, for the cluster's status until one
        names a leader or `timeout_s` has passed. Best effort: never raises."""
        async with self._discovery_lock:
            if self._discovered_at is not None and not self._leader_stale():
                return  # another task just did it
            request = STATUS_REQUEST
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    for _ in range(len(self.endpoints.urls)):
                        if await self._discover_one(request, timeout_s):
                            break
            self._discovered_at = self.clock()

    async def _discover_one(self, request: Request, timeout_s: float) -> bool:
        try:
            reply = await self.attempt(request, timeout_s, leader=False)
            status = decode_status(reply.json())
        except Exception:  # an unreachable or confused node: try the next one
            return False
        self.learn(status)
        if status.leader != 0:
            await self._learn_routes(timeout_s)
        return status.leader != 0

    async def _learn_routes(self, timeout_s: float) -> None:
        """The shard map, best effort: a node that does not serve it (an older one)
        leaves the routes as they were."""
        try:
            reply = await self.attempt(SHARDS_REQUEST, timeout_s, leader=False)
            self.routes.learn(reply.json(), self._member_urls)
        except Exception:  # routing is an optimisation: requests work without it
            self.routes.stale = False  # not again before the next refresh

    # --- streams ------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def stream(
        self, url: str, request: Request, timeout_s: float
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """An open streaming answer from `url` (its status checked within `timeout_s`);
        the caller reads the body at its own pace."""
        session = self._session()
        try:
            async with asyncio.timeout(timeout_s):
                response = await session.request(
                    request.method,
                    yarl.URL(url + request.target, encoded=True),
                    headers=await self._auth_header(url, False),
                )
        except TimeoutError as e:
            self.endpoints.failed(url)
            raise EndpointFailure(url, f"no answer within {timeout_s:.3g}s", timed_out=True) from e
        except (aiohttp.ClientError, OSError) as e:
            self.endpoints.failed(url)
            raise EndpointFailure(url, _describe(e)) from e
        self.endpoints.succeeded(url)
        try:
            if response.status != 200:
                body = await response.read()
                self.check(Reply(url, response.status, response.headers, body), request)
            yield response
        finally:
            response.close()  # a watch is cancelled when its connection closes

    @contextlib.asynccontextmanager
    async def native_stream(
        self, url: str, request: Request, timeout_s: float
    ) -> AsyncIterator[AsyncIterator[Answer]]:
        """A streaming native request on a link of its own, opened within
        `timeout_s`; yields its answers (see `NativeLink.stream`)."""
        assert request.native is not None
        try:
            async with asyncio.timeout(timeout_s):
                link = await self._native_links.open(url)
        except TimeoutError as e:
            self.endpoints.failed(url)
            raise EndpointFailure(url, f"no answer within {timeout_s:.3g}s", timed_out=True) from e
        except OSError as e:
            self.endpoints.failed(url)
            raise EndpointFailure(url, _describe(e)) from e
        self.endpoints.succeeded(url)
        try:
            async with link.stream(*request.native) as answers:
                yield answers
        finally:
            await link.close()


STATUS_REQUEST = Request("GET", "/v1/cluster/status", native=("status", {}))
SHARDS_REQUEST = Request("GET", "/v1/cluster/shards", native=("shards", {}))
READY_REQUEST = Request("GET", "/ready", native=("ready", {}))


def _session_headers(session: Session) -> dict[str, str]:
    return {CLIENT_ID_HEADER: str(session.client_id), SEQ_HEADER: str(session.seq)}


def make_connection(
    urls: Sequence[str],
    *,
    policy: RetryPolicy,
    breaker_failures_max: int,
    breaker_cooldown_s: float,
    clock: Clock = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    rng: random.Random | None = None,
    tls: ssl.SSLContext | None = None,
    credentials: Credentials | None = None,
) -> Connection:
    rng = rng or random.SystemRandom()
    endpoints = Endpoints(
        [normalize_url(u) for u in urls], clock, breaker_failures_max, breaker_cooldown_s
    )
    return Connection(endpoints, Retrier(policy, clock, sleep, rng), clock, rng, tls, credentials)
