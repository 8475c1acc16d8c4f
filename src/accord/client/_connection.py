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

Sessions (exactly-once writes): the connection draws a random 63-bit client id and
numbers its writes 1, 2, 3, ...; every attempt of a write carries the same
`X-Accord-Client-Id` / `X-Accord-Seq`, so the server applies a retried write once and
answers the retries from its record. The server keeps only each client's latest
result, so writes are sent one at a time: `write()` holds a lock for the whole call,
retries included (reads are not serialized and do not use sequence numbers). A
`session_expired` answer means no session exists for the client id, which also means
no attempt of this write was applied (a write with seq > 1 is never applied without
a session, and a session is forgotten only after minutes of silence); the connection
then opens a new session — a new random client id, seq 1 — and sends the write again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import multidict
import yarl

from accord.client.endpoints import Endpoints, normalize_url
from accord.client.errors import (
    SessionExpired,
    error_from_answer,
    leader_url_of,
    parse_error_body,
)
from accord.client.limits import (
    CLIENT_ID_BITS,
    DISCOVERY_TIMEOUT_S,
    LEADER_REFRESH_S,
)
from accord.client.policy import (
    Clock,
    EndpointFailure,
    Retrier,
    RetryPolicy,
)
from accord.client.results import BadAnswer, ClusterStatus, decode_status

CLIENT_ID_HEADER = "X-Accord-Client-Id"
SEQ_HEADER = "X-Accord-Seq"


@dataclass(frozen=True, slots=True)
class Reply:
    url: str
    """The endpoint that answered."""
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> dict[str, Any]:
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
    ) -> None:
        self.endpoints = endpoints
        self.retrier = retrier
        self.clock = clock
        self._rng = rng
        self.client_id = new_client_id(rng)
        self.seq = 0
        self._http: aiohttp.ClientSession | None = None
        self._write_lock = asyncio.Lock()
        self._discovery_lock = asyncio.Lock()
        self._discovered_at: float | None = None
        self.closed = False

    @property
    def policy(self) -> RetryPolicy:
        return self.retrier.policy

    async def close(self) -> None:
        self.closed = True
        if self._http is not None:
            await self._http.close()
            self._http = None

    def _session(self) -> aiohttp.ClientSession:
        if self.closed:
            raise RuntimeError("the client is closed")
        if self._http is None:
            # Deadlines are ours (asyncio.timeout per attempt); watches never end.
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
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
        session = self._session()
        try:
            async with asyncio.timeout(timeout_s):
                async with session.request(
                    request.method,
                    yarl.URL(url + request.target, encoded=True),
                    data=request.body,
                    headers=headers,
                ) as response:
                    body = await response.read()
                    copied = multidict.CIMultiDict(response.headers)
                    return Reply(url, response.status, copied, body)
        except TimeoutError as e:
            raise EndpointFailure(url, f"no answer within {timeout_s:.3g}s", timed_out=True) from e
        except (aiohttp.ClientError, OSError) as e:
            raise EndpointFailure(url, _describe(e)) from e

    def check(self, reply: Reply, request: Request) -> Reply:
        """`reply` if it is a success (or an allowed 404); else raise its error."""
        if 200 <= reply.status < 300:
            return reply
        error = parse_error_body(reply.body)
        if reply.status == 404 and request.not_found_ok and error.get("code") == "not_found":
            return reply
        if error.get("code") == "not_leader":
            hint = error.get("leader")
            leader_id = hint.get("id") if isinstance(hint, dict) else 0
            url = leader_url_of(error)
            if url and isinstance(leader_id, int):
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
        """One attempt on the endpoint the routing picks."""
        url = self.endpoints.pick(leader=leader)
        try:
            reply = await self.exchange(url, request, timeout_s, headers)
        except EndpointFailure:
            self.endpoints.failed(url)
            raise
        self.endpoints.succeeded(url)
        return self.check(reply, request)

    # --- calls ----------------------------------------------------------------------------
    async def read(self, request: Request, timeout_s: float, *, leader: bool) -> Reply:
        """A request without effect: retried on any retryable failure; `leader` sends
        it to the leader when known (linearizable reads)."""
        started = self.clock()
        await self.ensure_discovered(min(timeout_s / 2, DISCOVERY_TIMEOUT_S))
        timeout_s -= self.clock() - started

        async def attempt(attempt_timeout_s: float) -> Reply:
            return await self.attempt(request, attempt_timeout_s, leader=leader)

        return await self.retrier.run(attempt, timeout_s)

    async def write(self, request: Request, timeout_s: float) -> Reply:
        """A request with effect, sent to the leader with the client's session headers;
        every retry carries the same sequence number."""
        async with self._write_lock:
            self.seq += 1
            renewable = self.seq > 1

            async def attempt(attempt_timeout_s: float) -> Reply:
                nonlocal renewable
                started = self.clock()
                if self._leader_stale():
                    await self.discover(min(attempt_timeout_s / 2, DISCOVERY_TIMEOUT_S))
                left_s = max(attempt_timeout_s - (self.clock() - started), 0.001)
                try:
                    return await self.attempt(
                        request, left_s, leader=True, headers=self._session_headers()
                    )
                except SessionExpired:
                    if not renewable:
                        raise
                    renewable = False
                    self.client_id, self.seq = new_client_id(self._rng), 1
                    return await self.attempt(
                        request, left_s, leader=True, headers=self._session_headers()
                    )

            return await self.retrier.run(attempt, timeout_s)

    def _session_headers(self) -> dict[str, str]:
        return {CLIENT_ID_HEADER: str(self.client_id), SEQ_HEADER: str(self.seq)}

    # --- discovery --------------------------------------------------------------------------
    def _leader_stale(self) -> bool:
        if self.endpoints.leader_url is None or self._discovered_at is None:
            return True
        return self.clock() - self._discovered_at >= LEADER_REFRESH_S

    async def ensure_discovered(self, timeout_s: float) -> None:
        """Discover once, on first use."""
        if self._discovered_at is None:
            await self.discover(timeout_s)

    def learn(self, status: ClusterStatus) -> None:
        """Record the members and the leader a node reported."""
        self.endpoints.add(
            m.url for m in status.members if m.url and m.role in ("voter", "learner")
        )
        if status.leader and status.leader_url:
            self.endpoints.set_leader(status.leader, status.leader_url)

    async def discover(self, timeout_s: float) -> None:
        """Ask the endpoints, one after another, for the cluster's status until one
        names a leader or `timeout_s` has passed. Best effort: never raises."""
        async with self._discovery_lock:
            if self._discovered_at is not None and not self._leader_stale():
                return  # another task just did it
            request = Request("GET", "/v1/cluster/status")
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
        return status.leader != 0

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
                    request.method, yarl.URL(url + request.target, encoded=True)
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


def make_connection(
    urls: Sequence[str],
    *,
    policy: RetryPolicy,
    breaker_failures_max: int,
    breaker_cooldown_s: float,
    clock: Clock = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    rng: random.Random | None = None,
) -> Connection:
    rng = rng or random.SystemRandom()
    endpoints = Endpoints(
        [normalize_url(u) for u in urls], clock, breaker_failures_max, breaker_cooldown_s
    )
    return Connection(endpoints, Retrier(policy, clock, sleep, rng), clock, rng)
