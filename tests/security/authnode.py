"""Helpers for tests against a real node with auth on."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from accord.security.config import SecurityConfig
from accord.testing.cluster import wait_for
from accord.testing.single import SingleNode

ROOT_PASSWORD = "root-secret-pw"


def call(
    method: str,
    url: str,
    body: Any = None,
    token: str | None = None,
    context: ssl.SSLContext | None = None,
    raw: bytes | None = None,
) -> tuple[int, Any]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url, data=data, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            status, payload = response.status, response.read()
    except urllib.error.HTTPError as e:
        status, payload = e.code, e.read()
    try:
        return status, json.loads(payload)
    except ValueError:
        return status, payload


def login(url: str, user: str, password: str, context: ssl.SSLContext | None = None) -> str:
    status, body = call(
        "POST", f"{url}/v1/auth/login", {"user": user, "password": password}, context=context
    )
    assert status == 200, body
    return str(body["token"])


def start_auth_node(
    directory: Path, env: dict[str, str] | None = None, **security: Any
) -> SingleNode:
    node = SingleNode(directory, SecurityConfig(auth=True, **security))
    node.start({"ACCORD_ROOT_PASSWORD": ROOT_PASSWORD, **(env or {})})
    wait_for(
        lambda: (
            call("POST", f"{node.url}/v1/auth/login", {"user": "root", "password": ROOT_PASSWORD})[
                0
            ]
            == 200
        ),
        "auth bootstrap",
    )
    return node


def setup_alice(url: str, root: str) -> str:
    """User alice with readwrite on app/ and read on pub/; returns her token."""
    for method, path, body in [
        ("POST", "/v1/auth/users", {"name": "alice", "password": "alice-pw"}),
        ("POST", "/v1/auth/roles", {"name": "app"}),
        ("POST", "/v1/auth/roles/app/grant", {"prefix": "app/", "permission": "readwrite"}),
        ("POST", "/v1/auth/roles", {"name": "reader"}),
        ("POST", "/v1/auth/roles/reader/grant", {"prefix": "pub/", "permission": "read"}),
        ("PUT", "/v1/auth/users/alice/roles/app", None),
        ("PUT", "/v1/auth/users/alice/roles/reader", None),
    ]:
        status, answer = call(method, f"{url}{path}", body, token=root)
        assert status == 200, (path, answer)
    return login(url, "alice", "alice-pw")
