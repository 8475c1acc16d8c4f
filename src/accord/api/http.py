"""The HTTP/JSON API v1 (aiohttp), as the design document specifies it.

Errors are `{"error": {"code", "message"}}` with a fitting status. A write that
reaches a follower is forwarded once to the leader (header `X-Accord-Forwarded`);
if there is no leader, or the request was already forwarded, the answer is 503 with
code `not_leader` and, when known, the leader's id and URL. Reads are served by any
node: linearizable ones after a ReadIndex round through the leader, serializable
ones (`?consistency=serializable`) from local state at once.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextvars import ContextVar
from importlib import resources
from ssl import SSLContext
from typing import Any
from urllib.parse import quote_from_bytes

import aiohttp
from aiohttp import web
from yarl import URL

from accord.api.limits import FORWARD_TIMEOUT_MARGIN_S, REQUEST_BYTES_MAX
from accord.api.openapi import spec
from accord.api.remotewatch import error_of_answer, open_remote_watch
from accord.api.shardops import METADATA_PATH, ShardOperations
from accord.api.wire import (
    LEASE_TTL_S_MAX,
    MEMBER_ID_MAX,
    BadRequest,
    RemoteError,
    error_answer,
    error_doc,
    event_doc,
    int_field,
    key_value_from_doc,
    lease_ttl_doc,
    only_fields,
    parse_json,
    parse_lease_id,
    parse_start_revisions,
    parse_txn,
    parse_uint,
    path_bytes,
    query_bytes,
    result_doc,
    shards_doc,
    status_doc,
)
from accord.errors import AccordError, DeadlineExceeded, NotLeader, ProposalDropped
from accord.kv import (
    DeleteRange,
    Put,
)
from accord.kv.results import RangeResult
from accord.kv.types import Event, prefix_end
from accord.node.address import ConfigError, Member, parse_address
from accord.node.members import (
    NodeState,
    add_member,
    member_roles,
    promote_member,
    remove_member,
)
from accord.node.observe import readiness
from accord.node.router import ShardedKV
from accord.observability.logs import request_id
from accord.observability.metrics import CONTENT_TYPE, NodeMetrics
from accord.observability.tracing import Tracing

log = logging.getLogger("accord.api")

FORWARDED = "X-Accord-Forwarded"
LEASE_ID = "X-Accord-Lease-Id"
"""The lease id a node's grant over shards chose, on its call to one shard."""
PEER_AUTHORIZATION: ContextVar[str] = ContextVar("accord_peer_authorization", default="")
"""The credentials of the request being served, for the calls it makes to other
nodes (the client's `Authorization`, or a token the guard made for a user known by
certificate or by a native login)."""
SHARD = "X-Accord-Shard"
"""On every answer about keys: the shard that served it (0: the cluster's one group;
a range or watch over several shards names none)."""
CLIENT_ID = "X-Accord-Client-Id"
SEQ = "X-Accord-Seq"
REQUEST_ID = "X-Request-Id"
TRACE_HEADERS = ("traceparent", "tracestate")
CORS = {"Access-Control-Allow-Origin": "*"}
"""On the read-only monitoring answers, so a dashboard served by one node can poll
the others."""
SLOW_REQUEST_EXEMPT = frozenset({"watch"})
"""Operations that are long by nature (a watch stream lasts as long as the client)."""
QUERY_PARAMS: dict[str, frozenset[str]] = {
    "kv_put": frozenset({"lease"}),
    "kv_get": frozenset({"revision", "consistency"}),
    "range": frozenset(
        {"key", "range_end", "prefix", "limit", "count_only", "revision", "consistency"}
    ),
    "watch": frozenset({"key", "range_end", "prefix", "start_revision", "start_revisions"}),
}
"""The query parameters each route reads; any other is refused (400), on every route
of this API (a route not named here takes none), so a misspelt option is never
silently ignored."""
KV_PATH = "/v1/kv/"
API_ROUTES = web.AppKey("accord_api_routes", frozenset[str])
"""The names of the routes `HttpApi.app()` adds (others are added by other packages)."""
FORWARD_AUTHORIZATION = "accord_forward_authorization"
"""Request key: the Authorization a forwarded request carries when the client's own
headers have none (a user authenticated by TLS certificate)."""


def error_response(code: str, message: str, **extra: Any) -> web.Response:
    """An error answer; its status is the code's in the error-code table."""
    status, body = error_doc(code, message, **extra)
    return web.json_response(body, status=status)


def typed_error_response(error: AccordError) -> web.Response:
    """The answer for a typed error: its code's status and the fields it carries; a
    rate limit or login lockout also says when to come back (`Retry-After`)."""
    status, body = error_answer(error)
    response = web.json_response(body, status=status)
    retry_after_s = getattr(error, "retry_after_s", None)
    if retry_after_s is not None:
        response.headers["Retry-After"] = str(max(1, round(retry_after_s + 0.5)))
    return response


@functools.cache
def dashboard_page() -> bytes:
    """The dashboard: one self-contained page (package data, no external assets)."""
    return (resources.files("accord") / "api" / "dashboard" / "index.html").read_bytes()


# --- request checks shared by every route ----------------------------------------------
def check_request(request: web.Request) -> None:
    """What every request must satisfy before its handler runs: a declared body within
    the request limit (a Content-Length the parser cannot hold is declared too: 2^64-1
    reaches aiohttp as "no body" but must not be read as an empty one), and only the
    query parameters its route reads."""
    too_large = declared_too_large(request)
    if too_large is not None:
        raise RequestTooLarge(too_large)
    route = request.match_info.route.name
    if route is None or route not in request.app[API_ROUTES]:
        return  # not a route of this API (auth routes, unmatched paths: their own rules)
    unknown = set(request.query) - QUERY_PARAMS.get(route, frozenset())
    if unknown:
        raise BadRequest(f"unknown query parameter(s): {', '.join(sorted(unknown))}")


def declared_too_large(request: web.Request) -> str | None:
    """Why the body the request declares is over its size limit (None: it is not)."""
    declared = request.headers.get("Content-Length")
    limit = request.client_max_size
    if declared is None or (declared.isdigit() and len(declared) <= 12 and int(declared) <= limit):
        return None
    return f"Content-Length {declared[:24]} exceeds the limit of {limit} bytes"


def query_bool(raw: str, name: str) -> bool:
    if raw.lower() not in ("true", "false", "1", "0"):
        raise BadRequest(f"{name} must be true or false")
    return raw.lower() in ("true", "1")


def kv_path_key(request: web.Request) -> bytes:
    """The key of a `/v1/kv/{key}` request, from the raw path: percent-escapes decode
    to raw bytes (`accord.api.wire.path_bytes`)."""
    raw = request.rel_url.raw_path
    if not raw.startswith(KV_PATH):
        raise BadRequest(f"a key URL starts with {KV_PATH}")
    return path_bytes(raw[len(KV_PATH) :])


class RequestTooLarge(BadRequest):
    code = "request_too_large"


# --- the application -------------------------------------------------------------------
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class HttpApi:
    def __init__(
        self,
        service: ShardedKV,
        state: NodeState,
        *,
        metrics: NodeMetrics | None = None,
        tracing: Tracing | None = None,
        slow_request_ms: int = 1000,
        forward_ssl: SSLContext | None = None,
    ) -> None:
        self.service = service
        service.remote = self  # lease calls over shards reach other nodes through here
        self.state = state
        self.metrics = metrics
        self.tracing = tracing
        self.slow_request_s = slow_request_ms / 1000
        self._client: aiohttp.ClientSession | None = None
        self._forward_ssl = forward_ssl  # TLS: the node's certificate, presented to the leader
        self.shard_operations = ShardOperations(service.node, state, self._peer_client, FORWARDED)
        service.shards.executor.remote = self.shard_operations  # its calls to other nodes

    def app(self) -> web.Application:
        app = web.Application(
            client_max_size=REQUEST_BYTES_MAX, middlewares=[self._observe, self._errors]
        )
        r = app.router
        r.add_put("/v1/kv/{key:.+}", self.put, name="kv_put")
        r.add_get("/v1/kv/{key:.+}", self.get, name="kv_get")
        r.add_delete("/v1/kv/{key:.+}", self.delete, name="kv_delete")
        r.add_get("/v1/range", self.range, name="range")
        r.add_post("/v1/txn", self.txn, name="txn")
        r.add_get("/v1/watch", self.watch, name="watch")
        r.add_post("/v1/lease/grant", self.lease_grant, name="lease_grant")
        r.add_post("/v1/lease/{id:[0-9]+}/keepalive", self.lease_keepalive, name="lease_keepalive")
        r.add_get("/v1/lease/{id:[0-9]+}", self.lease_get, name="lease_get")
        r.add_delete("/v1/lease/{id:[0-9]+}", self.lease_revoke, name="lease_revoke")
        r.add_get("/v1/cluster/status", self.status, name="status")
        r.add_get("/v1/cluster/shards", self.shards, name="shards")
        r.add_post(METADATA_PATH, self.shard_metadata, name="shard_metadata")
        r.add_post("/v1/cluster/shards/{id:[0-9]+}/move", self.shard_move, name="shard_move")
        r.add_get("/v1/members", self.members, name="members")
        r.add_post("/v1/members", self.member_add, name="member_add")
        r.add_post("/v1/members/{id:[0-9]+}/promote", self.member_promote, name="member_promote")
        r.add_delete("/v1/members/{id:[0-9]+}", self.member_remove, name="member_remove")
        r.add_get("/health", self.health, name="health")
        r.add_get("/ready", self.ready, name="ready")
        r.add_get("/metrics", self.metrics_text, name="metrics")
        r.add_get("/", self.dashboard, name="dashboard")
        r.add_get("/v1/openapi.json", self.openapi, name="openapi")
        app[API_ROUTES] = frozenset(route.name for route in r.routes() if route.name)
        app.on_cleanup.append(self._close_client)
        return app

    # --- observation: metrics, request ids, spans, slow requests ---------------------------
    @web.middleware
    async def _observe(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route.name
        operation = route or "unmatched"
        rid = request.headers.get(REQUEST_ID)
        if rid is None and CLIENT_ID in request.headers:
            rid = f"{request.headers[CLIENT_ID]}:{request.headers.get(SEQ, '')}"
        token = request_id.set(rid[:64] if rid else None)  # bounded: it lands in every log line
        started = time.perf_counter()
        status = 500
        try:
            if self.tracing is None:
                response = await handler(request)
            else:
                response = await self._traced(request, handler, operation)
            status = response.status
            return response
        except asyncio.CancelledError:
            status = 499  # the client went away first (nginx's convention)
            raise
        finally:
            elapsed = time.perf_counter() - started
            if self.metrics is not None:
                self.metrics.observe_request(operation, status, elapsed)
            if elapsed > self.slow_request_s and operation not in SLOW_REQUEST_EXEMPT:
                log.warning(
                    "slow request: %s %s took %.3fs (status %d)",
                    request.method,
                    request.path,
                    elapsed,
                    status,
                    extra={
                        "event": "slow_request",
                        "operation": operation,
                        "status": status,
                        "seconds": round(elapsed, 6),
                    },
                )
            request_id.reset(token)

    async def _traced(
        self, request: web.Request, handler: Handler, operation: str
    ) -> web.StreamResponse:
        assert self.tracing is not None
        attributes = {"http.request.method": request.method, "http.route": operation}
        name = f"{request.method} {operation}"
        with self.tracing.server_span(name, request.headers, attributes) as span:
            if request_id.get() is None:
                request_id.set(self.tracing.current_trace_id())
            response = await handler(request)
            span.set_attribute("http.response.status_code", response.status)
            return response

    async def _close_client(self, app: web.Application) -> None:
        if self._client is not None:
            await self._client.close()

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            check_request(request)
            authorization = request.get(FORWARD_AUTHORIZATION) or request.headers.get(
                "Authorization", ""
            )
            PEER_AUTHORIZATION.set(str(authorization))  # each request is a task of its own
            return await handler(request)
        except NotLeader as e:
            return await self._not_leader(request, e)
        except AccordError as e:
            response = typed_error_response(e)
            if isinstance(e, RequestTooLarge):  # the body stays unread: the connection
                response.force_close()  # cannot go on
            return response
        except web.HTTPRequestEntityTooLarge as e:
            return error_response("request_too_large", str(e.text))
        except web.HTTPException as e:  # answered with aiohttp's status (404, 405, ...)
            response = error_response("http_error", e.reason)
            response.set_status(e.status, e.reason)
            if "Allow" in e.headers:  # 405: the methods the route has
                response.headers["Allow"] = e.headers["Allow"]
            return response
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as e:  # a bug: answer in the API's format, and log it
            log.exception("unexpected error serving %s %s", request.method, request.path)
            return error_response("internal", f"internal error: {type(e).__name__}")

    async def _not_leader(self, request: web.Request, error: NotLeader) -> web.StreamResponse:
        leader = error.leader_hint or self.service.node.leader_id
        member = self.state.members.get(leader)
        url = member.client_url if member else None
        # A watch is a stream: forwarding buffers whole answers, so it is refused here
        # with the node to ask instead.
        streaming = request.match_info.route.name == "watch"
        if (
            url
            and not streaming
            and not request.headers.get(FORWARDED)
            and leader != self.service.node.core.id
        ):
            return await self._forward(request, url)
        extra = {"leader": {"id": leader, "url": url}} if url else {}
        return error_response("not_leader", str(error), **extra)

    async def _forward(self, request: web.Request, leader_url: str) -> web.StreamResponse:
        client = self._peer_client()
        body = await request.read()
        headers = {FORWARDED: "1", "Content-Type": request.content_type}
        headers.update(
            (k, v) for k, v in request.headers.items() if k.lower().startswith("x-accord-")
        )
        if REQUEST_ID in request.headers:
            headers[REQUEST_ID] = request.headers[REQUEST_ID]
        if self.tracing is not None:
            self.tracing.inject(headers)  # the leader's spans join this request's trace
        else:
            headers.update((h, request.headers[h]) for h in TRACE_HEADERS if h in request.headers)
        authorization = request.get(FORWARD_AUTHORIZATION) or request.headers.get("Authorization")
        if authorization:
            headers["Authorization"] = authorization
        try:
            async with client.request(
                request.method,
                leader_url + request.rel_url.raw_path_qs,
                data=body,
                headers=headers,
            ) as upstream:
                payload = await upstream.read()
                out = web.Response(status=upstream.status, body=payload)
                for name in (
                    "Content-Type",
                    *(h for h in upstream.headers if h.startswith("X-Accord-")),
                ):
                    if name in upstream.headers:
                        out.headers[name] = upstream.headers[name]
                return out
        except aiohttp.ClientConnectorError as e:  # nothing was sent: safe to retry
            return error_response("not_leader", f"cannot reach the leader: {e}")
        except (aiohttp.ClientError, TimeoutError) as e:
            # The leader may have applied the request before the connection broke.
            return error_response(
                "deadline_exceeded", f"outcome unknown: forwarding to the leader failed: {e}"
            )

    # --- handlers -------------------------------------------------------------------------
    @staticmethod
    def _key(request: web.Request) -> bytes:
        return kv_path_key(request)

    @staticmethod
    def _linearizable(request: web.Request) -> bool:
        mode = request.query.get("consistency", "linearizable")
        if mode not in ("linearizable", "serializable"):
            raise BadRequest("consistency must be linearizable or serializable")
        return mode == "linearizable"

    @staticmethod
    def _request_id(request: web.Request) -> tuple[int, int]:
        """(client id, seq) from X-Accord-Client-Id / X-Accord-Seq: a retry with the
        same pair takes effect once. Neither header: no session."""
        client, seq = request.headers.get(CLIENT_ID), request.headers.get(SEQ)
        if client is None and seq is None:
            return 0, 0
        if client is None or seq is None:
            raise BadRequest(f"{CLIENT_ID} and {SEQ} go together")
        client_id, seq_number = parse_uint(client, CLIENT_ID), parse_uint(seq, SEQ)
        if client_id == 0 or seq_number == 0:
            raise BadRequest(f"{CLIENT_ID} and {SEQ} must be positive")
        return client_id, seq_number

    @staticmethod
    def key_range(request: web.Request) -> tuple[bytes, bytes]:
        """The key range a range or watch request names (its query); the HTTP guard
        checks permissions on the same range."""
        q = query_bytes(request.rel_url.raw_query_string)  # keys are bytes, as in paths
        if "prefix" in q:
            key = q["prefix"]
            return key, prefix_end(key)
        if "key" in q:
            return q["key"], q.get("range_end", b"")
        raise BadRequest("give key (and range_end) or prefix")

    @staticmethod
    def _query_int(request: web.Request, name: str) -> int:
        return parse_uint(request.query.get(name, "0"), name)

    def _shard_headers(self, key: bytes, range_end: bytes = b"") -> dict[str, str]:
        """`X-Accord-Shard` for an answer about `[key, range_end)`, if one shard has it."""
        shards = self.service.shard_ids(key, range_end) if self.service.sharded else [0]
        return {SHARD: str(shards[0])} if len(shards) == 1 else {}

    async def put(self, request: web.Request) -> web.Response:
        value = await request.read()
        command = Put(self._key(request), value, self._query_int(request, "lease"))
        result = await self.service.execute(command, *self._request_id(request))
        return web.json_response(result_doc(result), headers=self._shard_headers(command.key))

    async def get(self, request: web.Request) -> web.Response:
        result = await self.service.get(
            self._key(request), self._query_int(request, "revision"), self._linearizable(request)
        )
        if result.kv is None:
            return error_response("not_found", "key not found", revision=result.revision)
        kv = result.kv
        return web.Response(
            body=kv.value,
            content_type="application/octet-stream",
            headers={
                **self._shard_headers(kv.key),
                "X-Accord-Revision": str(result.revision),
                "X-Accord-Mod-Revision": str(kv.mod_revision),
                "X-Accord-Create-Revision": str(kv.create_revision),
                "X-Accord-Version": str(kv.version),
                "X-Accord-Lease": str(kv.lease),
            },
        )

    async def delete(self, request: web.Request) -> web.Response:
        command = DeleteRange(self._key(request))
        result = await self.service.execute(command, *self._request_id(request))
        return web.json_response(result_doc(result), headers=self._shard_headers(command.key))

    async def range(self, request: web.Request) -> web.Response:
        q = request.query
        key, end = self.key_range(request)
        result = await self.service.range(
            key,
            end,
            revision=self._query_int(request, "revision"),
            limit=self._query_int(request, "limit"),
            count_only=query_bool(q.get("count_only", "false"), "count_only"),
            linearizable=self._linearizable(request),
            shard=self._pinned_shard(request),
        )
        return web.json_response(result_doc(result), headers=self._shard_headers(key, end))

    async def txn(self, request: web.Request) -> web.Response:
        command = parse_txn(parse_json(await request.read()))
        result = await self.service.execute(command, *self._request_id(request))
        shard = self.service.shard_of_command(command) if self.service.sharded else 0
        return web.json_response(result_doc(result), headers={SHARD: str(shard)})

    async def _json_body(self, request: web.Request, allowed: set[str]) -> dict[str, Any]:
        return only_fields(parse_json(await request.read() or b"{}"), allowed, "request body")

    async def watch(self, request: web.Request) -> web.StreamResponse:
        """A stream of JSON lines, one per batch of events, in revision order."""
        key, end = self.key_range(request)
        start_revision = self._query_int(request, "start_revision")
        starts = parse_start_revisions(request.query.get("start_revisions", ""))
        pinned = self._pinned_shard(request)
        watch_id = self.service.open_watch(key, end, start_revision, starts, pinned=pinned)
        events = self.service.stream_shards(watch_id)
        headers = {"Content-Type": "application/x-ndjson", **self._shard_headers(key, end)}
        if pinned:
            headers[SHARD] = str(pinned)
        response = web.StreamResponse(headers=headers)
        try:  # its parts on other nodes are open before the watcher hears it is open
            await self.service.connect_watch(watch_id)
        except AccordError:  # answered with its status: nothing is sent yet
            await events.aclose()
            self.service.close_watch(watch_id)
            raise
        try:
            await response.prepare(request)
            async for batch in events:
                lines = [event_doc(e) for e in batch.events]
                if batch.shard:  # a sharded cluster: each event's revision is its shard's
                    for line in lines:
                        line["shard"] = batch.shard
                await response.write(json.dumps({"events": lines}).encode() + b"\n")
        except AccordError as e:  # the stream's last line (its status is long sent)
            _, error = error_doc(e.code, str(e))
            await response.write(json.dumps(error).encode() + b"\n")
        except ConnectionResetError:
            pass  # the watcher went away
        finally:
            await events.aclose()
            self.service.close_watch(watch_id)  # also when the stream never started
        return response

    @staticmethod
    def _pinned_shard(request: web.Request) -> int:
        """The shard a node's call over shards pins this request to (its
        `X-Accord-Shard`, with `X-Accord-Forwarded`); 0: none, the whole cluster."""
        if not request.headers.get(FORWARDED) or SHARD not in request.headers:
            return 0
        return parse_uint(request.headers[SHARD], SHARD, minimum=1)

    async def lease_grant(self, request: web.Request) -> web.Response:
        body = await self._json_body(request, {"ttl"})
        ttl = int_field(body, "ttl", minimum=1, maximum=LEASE_TTL_S_MAX)
        shard = self._pinned_shard(request)
        lease_id = parse_lease_id(request.headers[LEASE_ID]) if shard else 0
        result = await self.service.lease_grant(
            ttl, *self._request_id(request), lease_id=lease_id, shard=shard
        )
        return web.json_response({"id": result.lease_id, "ttl": result.ttl_ms // 1000})

    async def lease_keepalive(self, request: web.Request) -> web.Response:
        # Answered by the leader without a Raft write (a follower forwards it there), so
        # a client's session headers, if any, are not used.
        lease_id = parse_lease_id(request.match_info["id"])
        info = await self.service.lease_keepalive(lease_id, shard=self._pinned_shard(request))
        return web.json_response({"id": lease_id, "ttl": info.ttl_ms // 1000})

    async def lease_revoke(self, request: web.Request) -> web.Response:
        lease_id = parse_lease_id(request.match_info["id"])
        result = await self.service.lease_revoke(
            lease_id, *self._request_id(request), shard=self._pinned_shard(request)
        )
        return web.json_response({"revision": result.revision, "deleted": result.deleted})

    # --- calls to other nodes' shards (RemoteShards) ----------------------------------------
    async def call(self, shard: int, leader: int, op: str, lease_id: int, ttl_s: int) -> int:
        """A lease operation on `shard` alone, by its leader `leader`: the request's
        own credentials go with it, so that node's guard checks them again."""
        base_url, headers = self._pinned_to(shard, leader)
        headers["Content-Type"] = "application/json"
        method, path, body = {
            "lease_grant": ("POST", "/v1/lease/grant", {"ttl": ttl_s}),
            "lease_keepalive": ("POST", f"/v1/lease/{lease_id}/keepalive", None),
            "lease_revoke": ("DELETE", f"/v1/lease/{lease_id}", None),
        }[op]
        if op == "lease_grant":
            headers[LEASE_ID] = str(lease_id)
        try:
            async with self._peer_client().request(
                method,
                base_url + path,
                data=json.dumps(body).encode() if body is not None else None,
                headers=headers,
            ) as answer:
                doc = json.loads(await answer.read())
        except aiohttp.ClientConnectorError as e:  # nothing was sent
            raise NotLeader(0, f"cannot reach node {leader}: {e}") from e
        except (aiohttp.ClientError, TimeoutError, ValueError) as e:
            raise DeadlineExceeded(f"outcome unknown: shard {shard} on node {leader}: {e}") from e
        if answer.status == 200:
            return int(doc.get("deleted", 0)) if op == "lease_revoke" else int(doc["ttl"]) * 1000
        error = doc.get("error") if isinstance(doc, dict) else None
        if not isinstance(error, dict):
            raise RemoteError("internal", f"node {leader} answered {answer.status}")
        if error.get("code") == "not_leader":
            hint = (error.get("leader") or {}).get("id", 0)
            raise NotLeader(hint if isinstance(hint, int) else 0, str(error.get("message")))
        if error.get("code") == "proposal_dropped":
            raise ProposalDropped(str(error.get("message")))
        raise RemoteError(str(error.get("code")), str(error.get("message")))

    async def range_part(
        self,
        shard: int,
        node: int,
        key: bytes,
        range_end: bytes,
        *,
        limit: int,
        count_only: bool,
        linearizable: bool,
    ) -> RangeResult:
        """One shard's part of a range over shards, read by `node`, with the
        request's own credentials (that node's guard checks them again)."""
        query = {"key": key, "range_end": range_end, "limit": limit}
        query |= {"count_only": "true" if count_only else "false"}
        if not linearizable:
            query["consistency"] = "serializable"
        doc = await self._pinned_get(shard, node, "/v1/range", query)
        try:
            return RangeResult(
                int(doc["revision"]),
                tuple(key_value_from_doc(kv) for kv in doc.get("kvs", [])),
                int(doc["count"]),
                doc["more"] is True,
            )
        except (KeyError, ValueError, TypeError) as e:
            raise RemoteError("internal", f"node {node} answered a range badly: {e}") from e

    async def _pinned_get(
        self, shard: int, node: int, path: str, query: dict[str, Any]
    ) -> dict[str, Any]:
        """GET `path` on `node`, pinned to `shard`; its JSON answer, or its error."""
        base_url, headers = self._pinned_to(shard, node)
        encoded = "&".join(
            f"{name}={quote_from_bytes(v if isinstance(v, bytes) else str(v).encode(), safe='')}"
            for name, v in query.items()
        )
        url = URL(f"{base_url}{path}?{encoded}", encoded=True)
        try:
            async with self._peer_client().get(url, headers=headers) as answer:
                doc = json.loads(await answer.read())
        except aiohttp.ClientConnectorError as e:
            raise NotLeader(0, f"cannot reach node {node}: {e}") from e
        except (aiohttp.ClientError, TimeoutError, ValueError) as e:
            raise DeadlineExceeded(f"no answer from node {node} about shard {shard}: {e}") from e
        if answer.status == 200 and isinstance(doc, dict):
            return doc
        raise error_of_answer(doc, f"node {node} answered {answer.status}")

    async def open_watch(
        self, shard: int, node: int, key: bytes, range_end: bytes, start_revision: int
    ) -> AsyncGenerator[list[Event], None]:
        """One shard's part of a merged watch, on `node`: the request's own
        credentials go with it, so that node's guard checks them again."""
        base_url, headers = self._pinned_to(shard, node)
        what = f"shard {shard} on node {node}"
        return await open_remote_watch(
            self._peer_client(), base_url, headers, what, key, range_end, start_revision
        )

    def _pinned_to(self, shard: int, node: int) -> tuple[str, dict[str, str]]:
        """`node`'s URL and the headers of a call pinned to `shard`, carrying the
        request's own credentials."""
        member = self.state.members.get(node)
        if member is None:
            raise NotLeader(0, f"no address for node {node}, a replica of shard {shard}")
        headers = {FORWARDED: "1", SHARD: str(shard)}
        authorization = PEER_AUTHORIZATION.get()
        if authorization:
            headers["Authorization"] = authorization
        return member.client_url, headers

    def _peer_client(self) -> aiohttp.ClientSession:
        if self._client is None:
            self._client = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(
                    total=self.service.node.request_timeout_s + FORWARD_TIMEOUT_MARGIN_S
                ),
                connector=aiohttp.TCPConnector(ssl=self._forward_ssl or True),
            )
        return self._client

    async def lease_get(self, request: web.Request) -> web.Response:
        lease_id = parse_lease_id(request.match_info["id"])
        return web.json_response(await lease_ttl_doc(self.service, lease_id))

    async def members(self, request: web.Request) -> web.Response:
        await self.service.node.read_barrier()
        return web.json_response(
            {
                "members": member_roles(self.service.node, self.state),
                "joint": self.service.node.core.conf.joint,
            }
        )

    async def member_add(self, request: web.Request) -> web.Response:
        """Add a member (as a learner unless "voter": true); its addresses are
        replicated with the change, so every node can reach it."""
        body = await self._json_body(request, {"id", "name", "peer", "client", "native", "voter"})
        member_id = int_field(body, "id", minimum=1, maximum=MEMBER_ID_MAX)
        for name in ("name", "peer", "client"):
            if not isinstance(body.get(name), str):
                raise BadRequest(f"{name} must be a string")
        if not isinstance(body.get("native", ""), str):
            raise BadRequest("native must be a string")
        try:
            member = Member(
                member_id,
                body["name"],
                parse_address(body["peer"], "peer"),
                parse_address(body["client"], "client"),
                parse_address(body["native"], "native") if body.get("native") else None,
            )
        except ConfigError as e:
            raise BadRequest(str(e)) from e
        await add_member(self.service.node, member, voter=body.get("voter") is True)
        return web.json_response({"members": member_roles(self.service.node, self.state)})

    async def member_promote(self, request: web.Request) -> web.Response:
        member_id = parse_uint(request.match_info["id"], "id", minimum=1)
        await promote_member(self.service.node, member_id)
        return web.json_response({"members": member_roles(self.service.node, self.state)})

    async def member_remove(self, request: web.Request) -> web.Response:
        member_id = parse_uint(request.match_info["id"], "id", minimum=1)
        await remove_member(self.service.node, member_id)
        return web.json_response({"members": member_roles(self.service.node, self.state)})

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response(status_doc(self.service, self.state), headers=CORS)

    async def shards(self, request: web.Request) -> web.Response:
        return web.json_response(shards_doc(self.service, self.state), headers=CORS)

    async def shard_move(self, request: web.Request) -> web.Response:
        return await self.shard_operations.move(request)

    async def shard_metadata(self, request: web.Request) -> web.Response:
        return await self.shard_operations.metadata(request)

    async def health(self, request: web.Request) -> web.Response:
        """Liveness: answering at all shows the event loop runs; a node whose Ready
        loop died is stopping and says so."""
        node = self.service.node
        if node.fatal.is_set():
            response = error_response("failed", "the node failed and is stopping")
        else:
            response = web.json_response({"health": "ok", "leader": node.leader_id})
        response.headers.update(CORS)
        return response

    async def ready(self, request: web.Request) -> web.Response:
        """Readiness: a leader is known and the applied index has caught up."""
        node = self.service.node
        ok, code, reason = readiness(node)
        indexes = {"commit": node.core.log.committed, "applied": node.applied_index}
        if ok:
            response = web.json_response({"ready": True, "leader": node.leader_id, **indexes})
        else:
            response = error_response(code, reason, **indexes)
        response.headers.update(CORS)
        return response

    async def metrics_text(self, request: web.Request) -> web.Response:
        if self.metrics is None:
            return error_response("not_found", "metrics are not enabled on this node")
        response = web.Response(body=self.metrics.render())
        response.headers["Content-Type"] = CONTENT_TYPE
        response.headers.update(CORS)
        return response

    async def dashboard(self, request: web.Request) -> web.Response:
        return web.Response(body=dashboard_page(), content_type="text/html", charset="utf-8")

    async def openapi(self, request: web.Request) -> web.Response:
        return web.json_response(spec())
