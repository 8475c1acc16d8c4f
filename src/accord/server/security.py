"""Everything security adds to one node, wired in one place: the auth service and its
bootstrap, the HTTP guard and auth routes, the native guard, rate limiting,
connection limits and slow-client timeouts. `assembly.py` calls this and nothing
else from the security package besides the cipher and TLS contexts."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from accord.api.native import NativeServer
from accord.node.authstore import ROOT
from accord.node.members import NodeState
from accord.node.runtime import Node
from accord.security.config import SecurityConfig
from accord.security.http_guard import HttpGuard, KeyRange
from accord.security.http_limits import ConnectionGate, GatedAppRunner
from accord.security.http_routes import install_http_security
from accord.security.native_guard import NativeGuard
from accord.security.ratelimit import RateLimiter
from accord.security.service import AuthService


class NodeSecurity:
    def __init__(self, config: SecurityConfig, node: Node, state: NodeState) -> None:
        self.config = config
        self.auth = AuthService(node, state, config) if config.auth else None
        self.limiter = (
            RateLimiter(config.rate_limit_rps, config.rate_limit_burst)
            if config.rate_limit_rps > 0
            else None
        )
        self.gate = ConnectionGate(
            config.connections_max, config.read_timeout_s, config.idle_timeout_s
        )

    def http_runner(
        self, app: web.Application, key_range: KeyRange, **kwargs: Any
    ) -> web.AppRunner:
        """An AppRunner for `app` with the guard, the auth routes and the gate installed."""
        install_http_security(app, HttpGuard(self.auth, self.limiter, key_range))
        app.middlewares.insert(0, self.gate.middleware)  # outermost: sees every request
        return GatedAppRunner(app, self.gate, **kwargs)

    def install_native(self, native: NativeServer) -> None:
        if self.auth is not None or self.limiter is not None:
            native.guard = NativeGuard(self.auth, self.limiter)
        native.read_timeout_s = self.config.read_timeout_s
        native.idle_timeout_s = self.config.idle_timeout_s
        native.connections_max = self.config.connections_max

    def node_authorization(self) -> str:
        """The credentials this node's own calls to other nodes carry (the shard
        executor's metadata proposals): a short-lived root token when auth is on and
        bootstrapped, else none (the guard then refuses, and the caller tries later)."""
        if self.auth is None or ROOT not in self.auth.state.auth.users:
            return ""
        return f"Bearer {self.auth.token_for(ROOT)}"

    def start(self) -> None:
        if self.auth is not None:
            self.auth.start()

    async def stop(self) -> None:
        if self.auth is not None:
            await self.auth.stop()
