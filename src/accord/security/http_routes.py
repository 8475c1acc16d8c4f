"""The `/v1/auth/...` routes of the HTTP API: login, and administration of users,
roles and grants (root only; the guard enforces it).

    POST   /v1/auth/login                      {"user", "password"} → {"token", "expires_at_ms"}
                                               (429 rate_limited / login_locked, Retry-After)
    GET    /v1/auth/whoami                     → {"user"}
    GET    /v1/auth                            → {"users": {name: [roles]}, "roles": {...}}
    POST   /v1/auth/users                      {"name", "password"}
    DELETE /v1/auth/users/{name}
    PUT    /v1/auth/users/{name}/password      {"password"}
    PUT    /v1/auth/users/{name}/roles/{role}  grant a role
    DELETE /v1/auth/users/{name}/roles/{role}  revoke it
    POST   /v1/auth/roles                      {"name"}
    DELETE /v1/auth/roles/{name}
    POST   /v1/auth/roles/{name}/grant         {"prefix" or "prefix_b64", "permission"}
    POST   /v1/auth/roles/{name}/revoke        {"prefix" or "prefix_b64"}

Changes go through Raft (a follower forwards them to the leader).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from aiohttp import web

from accord.api.wire import BadRequest, parse_json
from accord.security.http_guard import USER_KEY, Handler, HttpGuard
from accord.security.openapi import with_auth
from accord.security.service import AuthService


async def _body(request: web.Request, allowed: set[str]) -> dict[str, Any]:
    raw = parse_json(await request.read() or b"{}")
    if not isinstance(raw, dict) or set(raw) - allowed:
        raise BadRequest(f"body must be an object with fields among {sorted(allowed)}")
    return raw


def _prefix(body: dict[str, Any]) -> bytes:
    if isinstance(body.get("prefix"), str):
        return str(body["prefix"]).encode()
    if isinstance(body.get("prefix_b64"), str):
        try:
            return base64.b64decode(body["prefix_b64"], validate=True)
        except (binascii.Error, ValueError) as e:
            raise BadRequest("prefix_b64 is not base64") from e
    raise BadRequest("give prefix (text) or prefix_b64")


class AuthRoutes:
    def __init__(self, auth: AuthService) -> None:
        self.auth = auth

    def add_to(self, app: web.Application) -> None:
        r = app.router
        r.add_post("/v1/auth/login", self.login)
        r.add_get("/v1/auth/whoami", self.whoami)
        r.add_get("/v1/auth", self.describe)
        r.add_post("/v1/auth/users", self.user_add)
        r.add_delete("/v1/auth/users/{name}", self.user_delete)
        r.add_put("/v1/auth/users/{name}/password", self.user_password)
        r.add_put("/v1/auth/users/{name}/roles/{role}", self.user_grant)
        r.add_delete("/v1/auth/users/{name}/roles/{role}", self.user_revoke)
        r.add_post("/v1/auth/roles", self.role_add)
        r.add_delete("/v1/auth/roles/{name}", self.role_delete)
        r.add_post("/v1/auth/roles/{name}/grant", self.role_grant)
        r.add_post("/v1/auth/roles/{name}/revoke", self.role_revoke)

    async def login(self, request: web.Request) -> web.Response:
        body = await _body(request, {"user", "password"})
        remote = request.remote or "?"
        # A refusal (401, or 429 from the login limits, with Retry-After) is answered by
        # the API's error middleware, as every other typed error.
        token, expires_ms = await self.auth.login(
            body.get("user"), body.get("password"), remote, remote
        )
        return web.json_response({"token": token, "expires_at_ms": expires_ms})

    async def whoami(self, request: web.Request) -> web.Response:
        return web.json_response({"user": request.get(USER_KEY)})

    async def describe(self, request: web.Request) -> web.Response:
        await self.auth.node.read_barrier()
        return web.json_response(self.auth.state.auth.describe())

    async def user_add(self, request: web.Request) -> web.Response:
        body = await _body(request, {"name", "password"})
        await self.auth.add_user(request[USER_KEY], body.get("name"), body.get("password"))
        return web.json_response({"ok": True})

    async def user_delete(self, request: web.Request) -> web.Response:
        await self.auth.delete_user(request[USER_KEY], request.match_info["name"])
        return web.json_response({"ok": True})

    async def user_password(self, request: web.Request) -> web.Response:
        body = await _body(request, {"password"})
        name = request.match_info["name"]
        await self.auth.set_password(request[USER_KEY], name, body.get("password"))
        return web.json_response({"ok": True})

    async def user_grant(self, request: web.Request) -> web.Response:
        m = request.match_info
        await self.auth.grant_role(request[USER_KEY], m["name"], m["role"])
        return web.json_response({"ok": True})

    async def user_revoke(self, request: web.Request) -> web.Response:
        m = request.match_info
        await self.auth.revoke_role(request[USER_KEY], m["name"], m["role"])
        return web.json_response({"ok": True})

    async def role_add(self, request: web.Request) -> web.Response:
        body = await _body(request, {"name"})
        await self.auth.add_role(request[USER_KEY], body.get("name"))
        return web.json_response({"ok": True})

    async def role_delete(self, request: web.Request) -> web.Response:
        await self.auth.delete_role(request[USER_KEY], request.match_info["name"])
        return web.json_response({"ok": True})

    async def role_grant(self, request: web.Request) -> web.Response:
        body = await _body(request, {"prefix", "prefix_b64", "permission"})
        role = request.match_info["name"]
        await self.auth.grant_permission(
            request[USER_KEY], role, _prefix(body), body.get("permission")
        )
        return web.json_response({"ok": True})

    async def role_revoke(self, request: web.Request) -> web.Response:
        body = await _body(request, {"prefix", "prefix_b64"})
        role = request.match_info["name"]
        await self.auth.revoke_permission(request[USER_KEY], role, _prefix(body))
        return web.json_response({"ok": True})


@web.middleware
async def _openapi_with_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Serve the OpenAPI document with the auth paths and answers merged in."""
    response = await handler(request)
    if request.path != "/v1/openapi.json" or not isinstance(response, web.Response):
        return response
    if response.status != 200 or response.body is None:
        return response
    assert isinstance(response.body, bytes)
    return web.json_response(with_auth(json.loads(response.body)))


def install_http_security(app: web.Application, guard: HttpGuard) -> None:
    """Put the guard in front of every handler and add the auth routes (if auth is on)."""
    app.middlewares.insert(0, guard.middleware)
    if guard.auth is not None:
        AuthRoutes(guard.auth).add_to(app)
        app.middlewares.append(_openapi_with_auth)
