"""`AsyncClient`: the asyncio client of Accord's HTTP/JSON API v1.

Theory of operation
-------------------
Each method turns its arguments into one HTTP request and hands it to the
`Connection` as a read or a write (routing, deadlines, retries with backoff, circuit
breakers and exactly-once sessions live there; see `accord.client._connection`):

- writes — `put`, `delete`, `txn`, `lease_grant`, `lease_keepalive`, `lease_revoke` —
  go to the leader, carry the client's session headers, and are sent one at a time
  per client (concurrent writes from one `AsyncClient` wait for each other; use more
  clients for parallel writes);
- linearizable reads — `get`, `range`, `lease_ttl` — go to the leader when it is
  known (the node that can serve them without a hop), else round robin;
- serializable reads (`serializable=True`), `status()` and watches go round robin
  over the endpoints, spreading the load.

Endpoints `accord://host:port` select the native msgpack protocol (one pipelined
connection per node, no HTTP or JSON on the way); `http://host:port` the HTTP API.

Keys and values are `str | bytes` (`str` is encoded as UTF-8); results carry `bytes`.
The HTTP API puts a key in the URL path, which holds UTF-8 text only; over HTTP, a key
that is not UTF-8 (or is `.` or `..`, which URL paths cannot carry) is sent inside a
transaction instead, with the same result (such a read is then linearizable even if
`serializable` was asked, and costs a Raft round), and watches take UTF-8 keys only.
The native protocol carries any bytes.
"""

from __future__ import annotations

import json
import random
import ssl
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from urllib.parse import quote, urlencode

from accord.client._connection import STATUS_REQUEST, Connection, Request, make_connection
from accord.client.auth import Credentials
from accord.client.endpoints import normalize_url
from accord.client.errors import InvalidRequest, ResponseTooLarge
from accord.client.limits import (
    ATTEMPT_TIMEOUT_S,
    BREAKER_COOLDOWN_S,
    BREAKER_FAILURES_MAX,
    CALL_TIMEOUT_S,
    RETRIES_MAX,
    RETRY_BACKOFF_S_MAX,
    RETRY_BACKOFF_S_MIN,
    WATCH_PROBE_INTERVAL_S,
    WATCH_RECONNECT_TIMEOUT_S,
)
from accord.client.policy import BreakerState, RetryPolicy
from accord.client.results import (
    ClusterStatus,
    Lease,
    LeaseRevoked,
    LeaseTTL,
    Member,
    decode_delete,
    decode_get,
    decode_lease,
    decode_lease_ttl,
    decode_put,
    decode_range,
    decode_revisions,
    decode_status,
    kv_from_headers,
)
from accord.client.txn import Compare, Op, decode_txn, key_range, to_bytes, txn_body, txn_doc
from accord.client.watch import Watch
from accord.invariant import invariant
from accord.kv.results import (
    DeleteResult,
    GetResult,
    PutResult,
    RangeResult,
    TxnResult,
)
from accord.kv.types import KeyValue

Key = str | bytes


def _text(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _kv_target(key: bytes) -> str | None:
    """`/v1/kv/{key}` for a key a URL path can carry, else None."""
    text = _text(key)
    if text is None or text in ("", ".", ".."):
        return None
    return "/v1/kv/" + quote(text, safe="")


def _query(path: str, params: dict[str, str | int | bool]) -> str:
    """`path` with a query string of the parameters that are set (zero and False are
    the defaults, left out)."""
    shown = {k: str(v).lower() if isinstance(v, bool) else v for k, v in params.items() if v}
    if not shown:
        return path
    return f"{path}{'&' if '?' in path else '?'}{urlencode(shown, quote_via=quote)}"


def _range_query(start: bytes, end: bytes, prefix: bytes | None) -> str | None:
    """The key part of a `/v1/range` or `/v1/watch` query; None if a key is not text."""
    if prefix is not None:
        text = _text(prefix)
        return None if text is None else urlencode({"prefix": text}, quote_via=quote)
    key, range_end = _text(start), _text(end)
    if key is None or range_end is None:
        return None
    params = {"key": key, "range_end": range_end} if range_end else {"key": key}
    return urlencode(params, quote_via=quote)


class AsyncClient:
    """Accord client for asyncio. Use `async with AsyncClient([...]) as client:`,
    or call `aclose()` when done.

    `endpoints` are client URLs: `http://host:port` (or `host:port`) for the HTTP API,
    `accord://host:port` for the native protocol (`https://`, `accords://` with TLS);
    the other members are discovered. `tls` is the `ssl.SSLContext` for TLS endpoints
    (`accord.security.tls.client_tls(ca, cert, key)` builds one; a client certificate
    in it authenticates as its common name). `user` and `password` log in (again
    whenever a token expires); `token` uses a token obtained elsewhere.
    `timeout_s` is the default deadline of each call (each method also takes
    `timeout_s=`); `retries` bounds the retries within it. The other settings are
    documented in `accord.client.limits`. `rng` and `clock` are for tests.
    """

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        timeout_s: float = CALL_TIMEOUT_S,
        retries: int = RETRIES_MAX,
        attempt_timeout_s: float = ATTEMPT_TIMEOUT_S,
        backoff_base_s: float = RETRY_BACKOFF_S_MIN,
        backoff_cap_s: float = RETRY_BACKOFF_S_MAX,
        breaker_failures_max: int = BREAKER_FAILURES_MAX,
        breaker_cooldown_s: float = BREAKER_COOLDOWN_S,
        watch_probe_interval_s: float = WATCH_PROBE_INTERVAL_S,
        watch_reconnect_timeout_s: float = WATCH_RECONNECT_TIMEOUT_S,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        tls: ssl.SSLContext | None = None,
        user: str | None = None,
        password: str | None = None,
        token: str | None = None,
    ) -> None:
        if isinstance(endpoints, str):
            endpoints = [e for e in endpoints.split(",") if e.strip()]
        if not endpoints:
            raise ValueError("give at least one endpoint")
        invariant(timeout_s > 0, "timeout_s must be positive")
        self.timeout_s = timeout_s
        self._watch_probe_interval_s = watch_probe_interval_s
        self._watch_reconnect_timeout_s = watch_reconnect_timeout_s
        policy = RetryPolicy(retries, backoff_base_s, backoff_cap_s, attempt_timeout_s)
        self._conn: Connection = make_connection(
            endpoints,
            policy=policy,
            breaker_failures_max=breaker_failures_max,
            breaker_cooldown_s=breaker_cooldown_s,
            clock=clock,
            rng=rng,
            tls=tls,
            credentials=(
                Credentials(user, password, token)
                if user is not None or password is not None or token is not None
                else None
            ),
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._conn.close()

    # --- plumbing ----------------------------------------------------------------------
    def _timeout(self, timeout_s: float | None) -> float:
        return self.timeout_s if timeout_s is None else timeout_s

    async def _write_json(self, request: Request, timeout_s: float | None) -> dict[str, object]:
        reply = await self._conn.write(request, self._timeout(timeout_s))
        return reply.json()

    async def _read_json(
        self, request: Request, *, leader: bool, timeout_s: float | None
    ) -> dict[str, object]:
        reply = await self._conn.read(request, self._timeout(timeout_s), leader=leader)
        return reply.json()

    @property
    def _native(self) -> bool:
        return self._conn.native

    # --- keys ----------------------------------------------------------------------------
    async def put(
        self, key: Key, value: Key, *, lease: int = 0, timeout_s: float | None = None
    ) -> PutResult:
        """Write `value` under `key` (attached to `lease` if not 0)."""
        k, v = to_bytes(key), to_bytes(value)
        target = _kv_target(k)
        if target is None and not self._native:
            result = await self.txn(success=[Op.put(k, v, lease=lease)], timeout_s=timeout_s)
            response = result.responses[0]
            assert isinstance(response, PutResult)
            return response
        request = Request(
            "PUT",
            _query(target or "", {"lease": lease}),
            v,
            native=("put", {"key": k, "value": v, "lease": lease}),
            route=(k, b""),
        )
        return decode_put(await self._write_json(request, timeout_s))

    async def get(
        self,
        key: Key,
        *,
        revision: int = 0,
        serializable: bool = False,
        timeout_s: float | None = None,
    ) -> KeyValue | None:
        """The key's value and metadata (as of `revision` if not 0), None if absent.
        Linearizable unless `serializable` (served by any node from its local state)."""
        k = to_bytes(key)
        target = _kv_target(k)
        if target is None and not self._native:
            got = await self._txn_read(Op.get(k, revision=revision), timeout_s)
            assert isinstance(got, GetResult)
            return got.kv
        query = {"revision": revision, "consistency": serializable and "serializable"}
        args = {"key": k, "revision": revision, "serializable": serializable}
        reply = await self._conn.read(
            Request(
                "GET",
                _query(target or "", query),
                not_found_ok=True,
                native=("get", args),
                route=(k, b""),
            ),
            self._timeout(timeout_s),
            leader=not serializable,
        )
        if reply.data is not None:
            return decode_get(reply.data).kv
        if reply.status == 404:
            return None
        return kv_from_headers(k, reply.body, reply.headers)

    async def delete(self, key: Key, *, timeout_s: float | None = None) -> DeleteResult:
        """Delete `key`; `deleted` is 0 if it did not exist."""
        k = to_bytes(key)
        target = _kv_target(k)
        if target is None and not self._native:
            result = await self.txn(success=[Op.delete(k)], timeout_s=timeout_s)
            response = result.responses[0]
            assert isinstance(response, DeleteResult)
            return response
        request = Request("DELETE", target or "", native=("delete", {"key": k}), route=(k, b""))
        return decode_delete(await self._write_json(request, timeout_s))

    async def range(
        self,
        key: Key | None = None,
        range_end: Key | None = None,
        *,
        prefix: Key | None = None,
        limit: int = 0,
        revision: int = 0,
        count_only: bool = False,
        serializable: bool = False,
        timeout_s: float | None = None,
    ) -> RangeResult:
        """Keys in `[key, range_end)` (just `key` without `range_end`), or with
        `prefix`, or every key if neither is given; in key order, at most `limit`.

        A range whose answer would exceed the node's `response_bytes_max` is read in
        pages as large as fit, every page at the revision of the first, and returned
        whole (`timeout_s` applies to each page). Pass a `limit` to bound what this
        process holds; continue from the key after the last one while `more`."""
        start, end = key_range(key, range_end, prefix)
        page = (limit, revision, serializable, timeout_s)
        try:
            return await self._range_page(start, end, prefix, count_only, *page)
        except ResponseTooLarge as e:
            if count_only:
                raise
            return await self._range_pages(start, end, max(e.keys, 1), *page)

    async def _range_pages(
        self,
        start: bytes,
        end: bytes,
        page_limit: int,
        limit: int,
        revision: int,
        serializable: bool,
        timeout_s: float | None,
    ) -> RangeResult:
        """`range()` in pages of at most `page_limit` keys (fewer when a page of that
        many does not fit either), each starting after the last key of the one before."""
        kvs: list[KeyValue] = []
        count = 0
        while True:
            want = page_limit if limit == 0 else min(page_limit, limit - len(kvs))
            try:
                got = await self._range_page(
                    start, end, None, False, want, revision, serializable, timeout_s
                )
            except ResponseTooLarge as e:
                if want == 1:
                    raise
                page_limit = max(min(e.keys, want - 1), 1)
                continue
            if revision == 0:
                revision, count = got.revision, got.count  # the first page's: the whole range
            kvs += got.kvs
            if not got.more or not got.kvs or len(kvs) == limit:
                return RangeResult(revision, tuple(kvs), count, count > len(kvs))
            start = got.kvs[-1].key + b"\0"

    async def _range_page(
        self,
        start: bytes,
        end: bytes,
        prefix: Key | None,
        count_only: bool,
        limit: int,
        revision: int,
        serializable: bool,
        timeout_s: float | None,
    ) -> RangeResult:
        keys = _range_query(start, end, None if prefix is None else to_bytes(prefix))
        if keys is None and not self._native:
            op = Op.range(start, end or None, limit=limit, revision=revision)
            got = await self._txn_read(op, timeout_s)
            assert isinstance(got, RangeResult)
            return RangeResult(got.revision, () if count_only else got.kvs, got.count, got.more)
        options = {"limit": limit, "revision": revision, "count_only": count_only}
        target = _query(
            f"/v1/range?{keys}", {**options, "consistency": serializable and "serializable"}
        )
        args = {"key": start, "range_end": end, **options, "serializable": serializable}
        request = Request("GET", target, native=("range", args), route=(start, end))
        body = await self._read_json(request, leader=not serializable, timeout_s=timeout_s)
        return decode_range(body)

    # --- transactions ----------------------------------------------------------------------
    async def txn(
        self,
        compare: Sequence[Compare] = (),
        success: Sequence[Op] = (),
        failure: Sequence[Op] = (),
        *,
        timeout_s: float | None = None,
    ) -> TxnResult:
        """If every comparison holds, run `success`, else `failure`, atomically."""
        body = await self._write_json(_txn_request(compare, success, failure), timeout_s)
        return decode_txn(body, success, failure)

    async def _txn_read(self, op: Op, timeout_s: float | None) -> object:
        """A read that the URL cannot carry, as a transaction of one read: it has no
        effect, so it goes without a session and may be retried freely."""
        request = _txn_request((), (op,), ())
        reply = await self._conn.read(request, self._timeout(timeout_s), leader=True)
        return decode_txn(reply.json(), (op,), ()).responses[0]

    # --- leases ---------------------------------------------------------------------------
    async def lease_grant(self, ttl_s: int, *, timeout_s: float | None = None) -> Lease:
        """A new lease that lives `ttl_s` seconds unless kept alive."""
        if not isinstance(ttl_s, int) or isinstance(ttl_s, bool) or ttl_s < 1:
            raise InvalidRequest("ttl_s must be a positive integer", code="bad_request")
        body = json.dumps({"ttl": ttl_s}).encode()
        request = Request("POST", "/v1/lease/grant", body, native=("lease_grant", {"ttl": ttl_s}))
        return decode_lease(await self._write_json(request, timeout_s))

    async def lease_keepalive(self, lease_id: int, *, timeout_s: float | None = None) -> Lease:
        """Restart the lease's time to live. The leader answers it without a log write,
        and repeating it is harmless, so it needs no session."""
        target = f"/v1/lease/{int(lease_id)}/keepalive"
        request = Request("POST", target, native=("lease_keepalive", {"id": int(lease_id)}))
        return decode_lease(await self._read_json(request, leader=True, timeout_s=timeout_s))

    async def lease_revoke(self, lease_id: int, *, timeout_s: float | None = None) -> LeaseRevoked:
        """End the lease now and delete its keys."""
        request = Request(
            "DELETE", f"/v1/lease/{int(lease_id)}", native=("lease_revoke", {"id": int(lease_id)})
        )
        body = await self._write_json(request, timeout_s)
        revision = body.get("revision")
        assert isinstance(revision, int)
        return LeaseRevoked(revision)

    async def lease_ttl(self, lease_id: int, *, timeout_s: float | None = None) -> LeaseTTL:
        """The lease's remaining time to live and its keys (`LeaseNotFound` if gone)."""
        request = Request(
            "GET", f"/v1/lease/{int(lease_id)}", native=("lease_ttl", {"id": int(lease_id)})
        )
        body = await self._read_json(request, leader=True, timeout_s=timeout_s)
        return decode_lease_ttl(body)

    # --- watches ----------------------------------------------------------------------------
    def watch(
        self,
        key: Key | None = None,
        *,
        prefix: Key | None = None,
        range_end: Key | None = None,
        start_revision: int = 0,
    ) -> Watch:
        """Events on `key` (up to `range_end`), on `prefix`, or on every key; from
        `start_revision`, or from now if 0. Iterate with `async for`; `aclose()` (or
        `async with`) ends it. Survives node failures; see `accord.client.watch`."""
        start, end = key_range(key, range_end, prefix)
        query = _range_query(start, end, None if prefix is None else to_bytes(prefix))
        if query is None and not self._native:
            raise InvalidRequest("watched keys must be UTF-8 text", code="bad_request")

        async def current_revision() -> tuple[int, dict[int, int]]:
            """The range's revision now, and each shard's when it spans shards."""
            request = Request(
                "GET",
                f"/v1/range?{query}&count_only=true",
                native=("range", {"key": start, "range_end": end, "count_only": True}),
                route=(start, end),
            )
            body = await self._read_json(request, leader=True, timeout_s=None)
            return decode_range(body).revision, decode_revisions(body)

        return Watch(
            self._conn,
            query or "",
            start_revision,
            key_range=(start, end),
            current_revision=current_revision,
            reconnect_timeout_s=self._watch_reconnect_timeout_s,
            probe_interval_s=self._watch_probe_interval_s,
        )

    # --- cluster ------------------------------------------------------------------------------
    async def status(
        self, *, endpoint: str | None = None, timeout_s: float | None = None
    ) -> ClusterStatus:
        """A node's view of the cluster: of `endpoint` if given (one attempt, no
        retries), else of any node that answers."""
        request = STATUS_REQUEST
        timeout = self._timeout(timeout_s)
        if endpoint is None:
            reply = await self._conn.read(request, timeout, leader=False)
        else:
            url = normalize_url(endpoint)
            reply = self._conn.check(await self._conn.exchange(url, request, timeout), request)
        status = decode_status(reply.json())
        self._conn.learn(status)
        return status

    async def members(self, *, timeout_s: float | None = None) -> tuple[Member, ...]:
        return (await self.status(timeout_s=timeout_s)).members

    def endpoint_states(self) -> dict[str, BreakerState]:
        """Every known endpoint and the state of its circuit breaker."""
        return self._conn.endpoints.states()

    @property
    def leader_url(self) -> str | None:
        """The leader's URL as last discovered (None while unknown)."""
        return self._conn.endpoints.leader_url


def _txn_request(
    compare: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op]
) -> Request:
    keys = [*(c.key for c in compare), *(op.key for op in (*success, *failure))]
    return Request(
        "POST",
        "/v1/txn",
        txn_body(compare, success, failure),
        native=("txn", txn_doc(compare, success, failure, binary=True)),
        route=(keys[0], b"") if keys else None,  # a transaction's keys share one shard
    )


__all__ = ["AsyncClient"]
