"""Every operation of the served OpenAPI document, table-driven: without credentials
401; with a user who holds no role 403, except the few documented as open to any
authenticated user; the public paths stay public."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from accord.security.http_guard import PUBLIC_PATHS
from accord.testing.single import SingleNode

from .authnode import ROOT_PASSWORD, call, login, start_auth_node

ANY_USER = {
    ("GET", "/v1/cluster/status"),
    ("GET", "/v1/cluster/shards"),
    ("GET", "/v1/members"),
    ("GET", "/v1/auth/whoami"),
    ("POST", "/v1/lease/grant"),
    ("POST", "/v1/lease/{id}/keepalive"),
    ("GET", "/v1/lease/{id}"),
    ("DELETE", "/v1/lease/{id}"),  # needs write on the lease's keys; lease 1 has none
}
PARAMS = {"{key}": "app/t", "{id}": "1", "{name}": "someone", "{role}": "app"}
QUERIES = {"/v1/range": "?prefix=app/", "/v1/watch": "?prefix=app/"}
BODIES: dict[str, Any] = {
    "/v1/txn": {"success": [{"get": {"key": "app/t"}}]},
    "/v1/lease/grant": {"ttl": 10},
    "/v1/members": {"id": 9, "name": "n9", "peer": "127.0.0.1:1", "client": "127.0.0.1:2"},
    "/v1/auth/login": {"user": "root", "password": ROOT_PASSWORD},
    "/v1/auth/users": {"name": "someone", "password": "pw"},
    "/v1/auth/users/{name}/password": {"password": "pw"},
    "/v1/auth/roles": {"name": "r"},
    "/v1/auth/roles/{name}/grant": {"prefix": "", "permission": "readwrite"},
    "/v1/auth/roles/{name}/revoke": {"prefix": ""},
}


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SingleNode]:
    n = start_auth_node(tmp_path_factory.mktemp("openapi") / "node")
    yield n
    n.stop()


@pytest.fixture(scope="module")
def operations(node: SingleNode) -> list[tuple[str, str]]:
    status, document = call("GET", f"{node.url}/v1/openapi.json")
    assert status == 200
    return [
        (method.upper(), path)
        for path, ops in document["paths"].items()
        for method in ops
        if method in ("get", "put", "post", "delete")
    ]


@pytest.fixture(scope="module")
def nobody(node: SingleNode) -> str:
    root = login(node.url, "root", ROOT_PASSWORD)
    body = {"name": "nobody", "password": "nobody-pw"}
    assert call("POST", f"{node.url}/v1/auth/users", body, token=root)[0] == 200
    return login(node.url, "nobody", "nobody-pw")


def _send(node: SingleNode, method: str, path: str, token: str | None) -> int:
    target = path
    for name, value in PARAMS.items():
        target = target.replace(name, value)
    target += QUERIES.get(path, "")
    body = BODIES.get(path)
    raw = b"v" if path == "/v1/kv/{key}" and method == "PUT" else None
    return call(method, node.url + target, body, token=token, raw=raw)[0]


def test_the_document_lists_the_auth_routes(operations: list[tuple[str, str]]) -> None:
    assert ("POST", "/v1/auth/login") in operations and ("PUT", "/v1/kv/{key}") in operations
    assert len(operations) > 25


def test_every_operation_needs_credentials(
    node: SingleNode, operations: list[tuple[str, str]]
) -> None:
    wrong = {}
    for method, path in operations:
        status = _send(node, method, path, None)
        expected_public = path in PUBLIC_PATHS
        if (status == 401) == expected_public:
            wrong[(method, path)] = status
    assert not wrong, wrong


def test_a_user_without_roles_is_denied(
    node: SingleNode, operations: list[tuple[str, str]], nobody: str
) -> None:
    wrong = {}
    for method, path in operations:
        if path in PUBLIC_PATHS:
            continue
        status = _send(node, method, path, nobody)
        denied = status == 403
        if denied == ((method, path) in ANY_USER) or status == 401:
            wrong[(method, path)] = status
    assert not wrong, wrong
