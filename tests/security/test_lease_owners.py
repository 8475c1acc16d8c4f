"""Leases belong to the user who granted them, on a real node with auth on: another
user can neither see, keep alive, revoke nor attach keys to them (HTTP and native),
and each user holds a bounded number of leases."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from accord.testing.single import SingleNode

from .authnode import ROOT_PASSWORD, call, login, setup_alice, start_auth_node
from .test_auth import _native

LEASES_PER_USER = 3


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SingleNode]:
    n = start_auth_node(tmp_path_factory.mktemp("leases") / "node")
    yield n
    n.stop()


@pytest.fixture(scope="module")
def tokens(node: SingleNode) -> dict[str, str]:
    root = login(node.url, "root", ROOT_PASSWORD)
    alice = setup_alice(node.url, root)
    for method, path, body in [
        ("POST", "/v1/auth/users", {"name": "bob", "password": "bob-pw"}),
        ("PUT", "/v1/auth/users/bob/roles/app", None),
        ("PUT", "/v1/auth/users/bob/roles/reader", None),
    ]:
        status, answer = call(method, f"{node.url}{path}", body, token=root)
        assert status == 200, (path, answer)
    return {"root": root, "alice": alice, "bob": login(node.url, "bob", "bob-pw")}


def grant(node: SingleNode, token: str, ttl: int = 600) -> int:
    status, body = call("POST", f"{node.url}/v1/lease/grant", {"ttl": ttl}, token=token)
    assert status == 200, body
    return int(body["id"])


def refused(status: int, body: Any) -> bool:
    """Another user's lease looks exactly like a lease that does not exist."""
    return status == 404 and body["error"]["code"] == "lease_not_found"


def test_another_users_lease_cannot_be_seen_kept_alive_revoked_or_attached(
    node: SingleNode, tokens: dict[str, str]
) -> None:
    url, alice, bob = node.url, tokens["alice"], tokens["bob"]
    lease = grant(node, bob)
    assert call("PUT", f"{url}/v1/kv/app/bob?lease={lease}", raw=b"v", token=bob)[0] == 200
    assert refused(*call("GET", f"{url}/v1/lease/{lease}", token=alice))
    assert refused(*call("POST", f"{url}/v1/lease/{lease}/keepalive", token=alice))
    assert refused(*call("DELETE", f"{url}/v1/lease/{lease}", token=alice))
    assert refused(*call("PUT", f"{url}/v1/kv/app/a?lease={lease}", raw=b"v", token=alice))
    txn = {"success": [{"put": {"key": "app/t", "value": "1", "lease": lease}}]}
    assert refused(*call("POST", f"{url}/v1/txn", txn, token=alice))
    missing = call("GET", f"{url}/v1/lease/1", token=alice)
    assert refused(*missing), "the same answer as for a lease that does not exist"
    # The owner still has everything, and root sees all.
    status, body = call("GET", f"{url}/v1/lease/{lease}", token=bob)
    assert status == 200 and body["keys"] == [{"key": "app/bob"}]
    assert call("POST", f"{url}/v1/lease/{lease}/keepalive", token=bob)[0] == 200
    assert call("GET", f"{url}/v1/lease/{lease}", token=tokens["root"])[0] == 200
    assert call("GET", f"{url}/v1/kv/app/a", token=alice)[0] == 404, "nothing was attached"
    assert call("DELETE", f"{url}/v1/lease/{lease}", token=bob)[0] == 200


def test_roots_lease_is_not_anyones(node: SingleNode, tokens: dict[str, str]) -> None:
    url, alice = node.url, tokens["alice"]
    lease = grant(node, tokens["root"])
    assert refused(*call("PUT", f"{url}/v1/kv/app/r?lease={lease}", raw=b"v", token=alice))
    assert refused(*call("POST", f"{url}/v1/lease/{lease}/keepalive", token=alice))
    assert refused(*call("DELETE", f"{url}/v1/lease/{lease}", token=alice))


def test_the_native_protocol_enforces_ownership_too(
    node: SingleNode, tokens: dict[str, str]
) -> None:
    lease = grant(node, tokens["bob"])
    answers = asyncio.run(
        _native(
            node,
            [
                [1, "login", {"user": "alice", "password": "alice-pw"}],
                [2, "lease_ttl", {"id": lease}],
                [3, "lease_keepalive", {"id": lease}],
                [4, "lease_revoke", {"id": lease}],
                [5, "put", {"key": b"app/n", "value": b"1", "lease": lease}],
                [
                    6,
                    "txn",
                    {"success": [{"put": {"key": b"app/t", "value": b"1", "lease": lease}}]},
                ],
                [7, "lease_grant", {"ttl": 60}],
            ],
        )
    )
    status = {answer[0]: (answer[1], answer[2]) for answer in answers}
    assert status[1][0] == 200 and status[7][0] == 200
    for request_id in (2, 3, 4, 5, 6):
        code, body = status[request_id]
        assert (code, body["error"]["code"]) == (404, "lease_not_found"), request_id
    own = status[7][1]["id"]
    answers = asyncio.run(
        _native(
            node,
            [
                [1, "login", {"user": "alice", "password": "alice-pw"}],
                [2, "lease_keepalive", {"id": own}],
                [3, "put", {"key": b"app/own", "value": b"1", "lease": own}],
            ],
        )
    )
    assert [answer[1] for answer in answers] == [200, 200, 200]


def test_each_user_holds_a_bounded_number_of_leases(tmp_path: Path) -> None:
    env = {"ACCORD_LEASES_PER_USER_MAX": str(LEASES_PER_USER)}
    node = start_auth_node(tmp_path / "node", env)
    try:
        root = login(node.url, "root", ROOT_PASSWORD)
        alice = setup_alice(node.url, root)
        for _ in range(LEASES_PER_USER):
            grant(node, alice)
        status, body = call("POST", f"{node.url}/v1/lease/grant", {"ttl": 60}, token=alice)
        assert status == 429 and body["error"]["code"] == "too_many_leases", body
        assert "alice" in body["error"]["message"]
        grant(node, root)  # another user still can
    finally:
        node.stop()
