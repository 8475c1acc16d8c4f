"""Helpers of the client tests: cluster URLs, a free port, a request recorder."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass

from accord.client import AsyncClient
from accord.client._connection import Reply, Request
from accord.testing.cluster import LocalCluster


def url(c: LocalCluster, node: int, protocol: str = "http") -> str:
    """Node `node`'s endpoint for `protocol` ("http" or "native")."""
    return c.native_url(node) if protocol == "native" else c.url(node)


def urls(c: LocalCluster, protocol: str = "http") -> list[str]:
    return [url(c, node, protocol) for node in (1, 2, 3)]


def dead_url(protocol: str = "http") -> str:
    """The URL of a loopback port nobody listens on (right now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    scheme = "accord" if protocol == "native" else "http"
    return f"{scheme}://127.0.0.1:{port}"


@dataclass(frozen=True)
class Sent:
    url: str
    method: str
    target: str
    headers: Mapping[str, str]


class Recorder:
    """Records every HTTP exchange a client makes (and can fail some on purpose)."""

    def __init__(self, client: AsyncClient) -> None:
        self.sent: list[Sent] = []
        self.lose_replies = 0
        """The next this many replies are dropped after the request was served."""
        conn = client._conn
        self._exchange = conn.exchange
        conn.exchange = self._record  # type: ignore[method-assign]

    async def _record(
        self,
        url: str,
        request: Request,
        timeout_s: float,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        self.sent.append(Sent(url, request.method, request.target, dict(headers or {})))
        reply = await self._exchange(url, request, timeout_s, headers)
        if self.lose_replies and request.method != "GET":
            self.lose_replies -= 1
            from accord.client.policy import EndpointFailure

            raise EndpointFailure(url, "reply lost (test)")
        return reply

    def writes(self) -> list[Sent]:
        return [s for s in self.sent if s.method != "GET"]

    def reads(self, prefix: str) -> list[Sent]:
        return [s for s in self.sent if s.method == "GET" and s.target.startswith(prefix)]
