"""Authentication, authorization and rate limiting for the HTTP API: one aiohttp
middleware, installed outermost, and the `/v1/auth/...` routes.

Who is asking: a `Authorization: Bearer TOKEN` header (from `POST /v1/auth/login`),
else the common name of a verified client certificate (a user of that name must
exist). What they may do is decided per route (`_RULES`, by method and route
pattern); a route missing from the table is root-only, so a new endpoint is never
open by accident. Public (no credentials): `PUBLIC_PATHS`.

The key a rule checks is taken from the same place the handler takes it
(`request.match_info`, the same query parsing, the same transaction parser), so what
is authorized is exactly what runs: no decoding differences to slip through.

Leases belong to the user who granted them: the lease routes and every put that
attaches a key (`?lease=ID`, a transaction's put with `lease`) are refused with 404
`lease_not_found` for a lease of another user (`AuthService.check_lease_owner`).
The user is also made the request's owner (`REQUEST_OWNER`), which the per-user
bounds on leases, sessions and watches count by.

A follower forwards writes to the leader with the client's `Authorization` header; a
user authenticated by certificate has none, so the guard gives the request a
short-lived token for that (`FORWARD_AUTHORIZATION`).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from aiohttp import web

from accord.api.http import FORWARD_AUTHORIZATION, kv_path_key, typed_error_response
from accord.api.wire import BadRequest, parse_json, parse_txn, parse_uint
from accord.kv import Put, Txn
from accord.node.authstore import READ, WRITE
from accord.node.service import REQUEST_OWNER
from accord.security.errors import RateLimited, SecurityError, Unauthenticated
from accord.security.ratelimit import RateLimiter
from accord.security.rbac import Need, txn_needs
from accord.security.service import AuthService
from accord.security.tls import certificate_user

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
KeyRange = Callable[[web.Request], tuple[bytes, bytes]]

PUBLIC_PATHS = frozenset(
    {"/health", "/ready", "/metrics", "/", "/v1/openapi.json", "/v1/auth/login"}
)
"""Served without credentials: liveness, Prometheus scraping, the API description and
logging in. Everything else needs a user once auth is on."""
USER_KEY = "accord_user"

# (method, route pattern) → what the request needs: "user" (any authenticated user),
# "root", or the name of a method of HttpGuard that computes the key needs.
_RULES: dict[tuple[str, str], str] = {
    ("PUT", "/v1/kv/{key}"): "_kv_write",
    ("GET", "/v1/kv/{key}"): "_kv_read",
    ("DELETE", "/v1/kv/{key}"): "_kv_write",
    ("GET", "/v1/range"): "_range_read",
    ("GET", "/v1/watch"): "_range_read",
    ("POST", "/v1/txn"): "_txn",
    ("POST", "/v1/lease/grant"): "user",
    ("POST", "/v1/lease/{id}/keepalive"): "_lease",
    ("GET", "/v1/lease/{id}"): "_lease",
    ("DELETE", "/v1/lease/{id}"): "_lease_revoke",
    ("GET", "/v1/cluster/status"): "user",
    ("GET", "/v1/cluster/shards"): "user",
    ("GET", "/v1/members"): "user",
    ("GET", "/v1/auth/whoami"): "user",
}


def _pattern(request: web.Request) -> str:
    """The route's pattern without its regexes: "/v1/lease/{id:[0-9]+}" → "/v1/lease/{id}"."""
    resource = request.match_info.route.resource
    if resource is None:
        return request.path
    return re.sub(r"\{(\w+):[^{}]*\}", r"{\1}", resource.canonical)


class HttpGuard:
    def __init__(
        self,
        auth: AuthService | None,
        limiter: RateLimiter | None,
        key_range: KeyRange,
    ) -> None:
        self.auth = auth
        self.limiter = limiter
        self._key_range = key_range

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            request = await self._admit(request)
        except SecurityError as e:
            return typed_error_response(e)
        owner = REQUEST_OWNER.set(request.get(USER_KEY, ""))
        try:
            return await handler(request)
        finally:  # a keep-alive connection serves its next request in this same task
            REQUEST_OWNER.reset(owner)

    async def _admit(self, request: web.Request) -> web.Request:
        remote = request.remote or "?"
        public = request.path in PUBLIC_PATHS
        user: str | None = None
        failure: SecurityError | None = None
        if self.auth is not None and not public:
            try:
                user, by_certificate = self._authenticate(request)
            except Unauthenticated as e:
                failure = e
        if self.limiter is not None:
            wait_s = self.limiter.acquire(user or f"ip:{remote}")
            if wait_s > 0:
                raise RateLimited(wait_s)
        if failure is not None:
            raise failure
        if self.auth is None or user is None:
            return request
        await self._authorize(request, user, remote)
        if by_certificate:  # what a follower sends on when it forwards to the leader
            request[FORWARD_AUTHORIZATION] = f"Bearer {self.auth.token_for(user)}"
        request[USER_KEY] = user
        return request

    def _authenticate(self, request: web.Request) -> tuple[str, bool]:
        assert self.auth is not None
        header = request.headers.get("Authorization", "")
        if header:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated("Authorization must be 'Bearer TOKEN'")
            return self.auth.user_of_token(token.strip()), False
        transport = request.transport
        peercert = transport.get_extra_info("peercert") if transport is not None else None
        name = certificate_user(peercert)
        if name is not None:
            return self.auth.user_of_certificate(name), True
        raise Unauthenticated("credentials required: log in at /v1/auth/login")

    async def _authorize(self, request: web.Request, user: str, remote: str) -> None:
        assert self.auth is not None
        what = f"{request.method} {request.path}"
        rule = _RULES.get((request.method, _pattern(request)), "root")
        if rule == "user":
            return
        if rule == "root":
            self.auth.require_root(user, what, remote)
            return
        needs = await getattr(self, rule)(request)
        if needs is not None:
            self.auth.check(user, needs, what, remote)
        self.auth.check_lease_owner(user, await self._leases_named(request), what, remote)

    async def _leases_named(self, request: web.Request) -> list[int]:
        """The leases the request inspects, changes or attaches keys to (malformed
        input: none; the handler answers 400)."""
        try:
            if "id" in request.match_info and request.path.startswith("/v1/lease/"):
                return [parse_uint(request.match_info["id"], "id")]
            if request.method == "PUT" and request.path.startswith("/v1/kv/"):
                return [parse_uint(request.query.get("lease", "0"), "lease")]
            if request.method == "POST" and request.path == "/v1/txn":
                return txn_leases(parse_txn(parse_json(await request.read())))
        except Exception:  # the handler's own parsing answers it with a 4xx
            return []
        return []

    # --- key needs per route (None: malformed; the handler answers 400 the same way) ---
    async def _kv_write(self, request: web.Request) -> list[Need] | None:
        try:
            return [(WRITE, kv_path_key(request), b"")]
        except BadRequest:
            return None

    async def _kv_read(self, request: web.Request) -> list[Need] | None:
        try:
            return [(READ, kv_path_key(request), b"")]
        except BadRequest:
            return None

    async def _range_read(self, request: web.Request) -> list[Need] | None:
        try:
            key, end = self._key_range(request)
        except BadRequest:
            return None
        return [(READ, key, end)]

    async def _txn(self, request: web.Request) -> list[Need] | None:
        try:
            txn = parse_txn(parse_json(await request.read()))
        except (BadRequest, ValueError, RecursionError, SecurityError):
            return None
        except Exception:  # the handler's parser fails the same way and answers 4xx/5xx
            return None
        return list(txn_needs(txn))

    async def _lease(self, request: web.Request) -> list[Need]:
        return []  # any user, but only for their own leases (`_leases_named`)

    async def _lease_revoke(self, request: web.Request) -> list[Need]:
        assert self.auth is not None
        try:
            lease_id = int(request.match_info["id"])
        except ValueError:
            return []
        info = self.auth.state.lease_ttl(lease_id, keys=True)
        keys = info.keys if info is not None else ()
        # Revoking deletes every attached key: that takes write on each of them.
        return [(WRITE, key, b"") for key in keys]


def txn_leases(txn: Txn) -> list[int]:
    """The leases a transaction's puts attach keys to."""
    return [op.lease for op in (*txn.success, *txn.failure) if isinstance(op, Put) and op.lease]
