"""Auth and RBAC on a real node: login, 401/403, prefix escapes over HTTP and the
native protocol, users surviving a restart (log replay and snapshots), the audit log."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest

from accord.testing.single import SingleNode
from accord.transport.framing import FrameDecoder, encode_frame

from .authnode import ROOT_PASSWORD, call, login, setup_alice, start_auth_node


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SingleNode]:
    n = start_auth_node(tmp_path_factory.mktemp("auth") / "node")
    yield n
    n.stop()


@pytest.fixture(scope="module")
def tokens(node: SingleNode) -> dict[str, str]:
    root = login(node.url, "root", ROOT_PASSWORD)
    return {"root": root, "alice": setup_alice(node.url, root)}


def test_no_credentials_401_wrong_password_401_public_paths_open(node: SingleNode) -> None:
    assert call("GET", f"{node.url}/v1/kv/app/x")[0] == 401
    assert call("PUT", f"{node.url}/v1/kv/app/x", raw=b"v")[0] == 401
    assert call("GET", f"{node.url}/v1/kv/app/x", token="forged.token")[0] == 401
    status, body = call("POST", f"{node.url}/v1/auth/login", {"user": "root", "password": "no"})
    assert status == 401 and body["error"]["code"] == "unauthenticated"
    assert call("GET", f"{node.url}/health")[0] == 200
    assert call("GET", f"{node.url}/v1/openapi.json")[0] == 200


def test_grants_allow_inside_the_prefix_only(node: SingleNode, tokens: dict[str, str]) -> None:
    alice, url = tokens["alice"], node.url
    assert call("PUT", f"{url}/v1/kv/app/x", raw=b"1", token=alice)[0] == 200
    assert call("GET", f"{url}/v1/kv/app/x", token=alice)[0] == 200
    assert call("PUT", f"{url}/v1/kv/other", raw=b"1", token=alice)[0] == 403
    assert call("PUT", f"{url}/v1/kv/pub/y", raw=b"1", token=alice)[0] == 403  # read only
    assert call("GET", f"{url}/v1/kv/pub/y", token=alice)[0] == 404  # allowed, absent
    assert call("GET", f"{url}/v1/members", token=alice)[0] == 200
    assert call("POST", f"{url}/v1/members", {"id": 9}, token=alice)[0] == 403
    assert (
        call("POST", f"{url}/v1/auth/users", {"name": "x", "password": "y"}, token=alice)[0] == 403
    )


ESCAPES = [
    ("GET", "/v1/range?key=app/&range_end=b", None),
    ("GET", "/v1/range?key=app/&range_end=%00", None),
    ("GET", "/v1/range?key=ap&range_end=app0", None),
    ("GET", "/v1/range?prefix=ap", None),
    ("GET", "/v1/range?prefix=", None),
    ("GET", "/v1/watch?prefix=other", None),
    ("GET", "/v1/watch?key=app/&range_end=%00", None),
    (
        "POST",
        "/v1/txn",
        {"compare": [{"key": "secret", "target": "value", "op": "==", "value": "x"}]},
    ),
    ("POST", "/v1/txn", {"success": [{"get": {"key": "secret"}}]}),
    ("POST", "/v1/txn", {"failure": [{"put": {"key": "other", "value": "v"}}]}),
    ("POST", "/v1/txn", {"success": [{"delete": {"key": "app/", "range_end": "b"}}]}),
    ("POST", "/v1/txn", {"success": [{"put": {"key_b64": "b3RoZXI=", "value": "v"}}]}),
]


@pytest.mark.parametrize(("method", "path", "body"), ESCAPES)
def test_prefix_escapes_are_denied(
    node: SingleNode, tokens: dict[str, str], method: str, path: str, body: Any
) -> None:
    raw = b"v" if method == "PUT" else None
    status, answer = call(method, node.url + path, body, token=tokens["alice"], raw=raw)
    # 403, or 400 where the request itself is malformed; never served.
    assert status in (403, 400), (path, answer)


def test_inside_prefix_forms_are_allowed(node: SingleNode, tokens: dict[str, str]) -> None:
    alice = tokens["alice"]
    for path in ("/v1/range?prefix=app/", "/v1/range?key=app/a&range_end=app0"):
        assert call("GET", node.url + path, token=alice)[0] == 200, path
    txn = {
        "compare": [{"key": "app/x", "target": "version", "op": ">", "value": 0}],
        "success": [{"put": {"key": "app/t", "value": "1"}}, {"get": {"key": "pub/y"}}],
    }
    status, answer = call("POST", f"{node.url}/v1/txn", txn, token=alice)
    assert status == 200 and answer["succeeded"], answer


async def _native(node: SingleNode, requests: list[list[Any]]) -> list[list[Any]]:
    reader, writer = await asyncio.open_connection(*node.native_address)
    decoder = FrameDecoder(1 << 20)
    writer.write(encode_frame(msgpack.packb(["accord", 1])))
    answers: list[list[Any]] = []
    async with asyncio.timeout(10):
        frames: list[bytes] = []
        while not frames:
            frames += decoder.feed(await reader.read(65536))
        for request in requests:  # one at a time: login must land before the next op
            writer.write(encode_frame(msgpack.packb(request)))
            frames = []
            while not frames:
                data = await reader.read(65536)
                assert data, "connection closed"
                frames += decoder.feed(data)
            answers += [msgpack.unpackb(f) for f in frames]
    writer.close()
    return answers


def test_native_protocol_needs_login_and_checks_grants(
    node: SingleNode, tokens: dict[str, str]
) -> None:
    answers = asyncio.run(
        _native(
            node,
            [
                [1, "get", {"key": b"app/x"}],
                [2, "login", {"user": "alice", "password": "wrong"}],
                [3, "login", {"user": "alice", "password": "alice-pw"}],
                [4, "put", {"key": b"app/n", "value": b"1"}],
                [5, "put", {"key": b"other", "value": b"1"}],
                [6, "range", {"key": b"app/", "range_end": b"\x00"}],
                [7, "watch", {"key": b"other"}],
                [8, "txn", {"success": [{"get": {"key": b"secret"}}]}],
                [9, "get", {"key": b"app/n"}],
                [10, "health", {}],
            ],
        )
    )
    status = {answer[0]: answer[1] for answer in answers}
    assert status == {
        1: 401,
        2: 401,
        3: 200,
        4: 200,
        5: 403,
        6: 403,
        7: 403,
        8: 403,
        9: 200,
        10: 200,
    }


def test_a_password_change_ends_old_tokens(node: SingleNode, tokens: dict[str, str]) -> None:
    root = tokens["root"]
    assert (
        call("POST", f"{node.url}/v1/auth/users", {"name": "bob", "password": "b1"}, token=root)[0]
        == 200
    )
    bob = login(node.url, "bob", "b1")
    assert call("GET", f"{node.url}/v1/auth/whoami", token=bob) == (200, {"user": "bob"})
    assert (
        call("PUT", f"{node.url}/v1/auth/users/bob/password", {"password": "b2"}, token=root)[0]
        == 200
    )
    assert call("GET", f"{node.url}/v1/auth/whoami", token=bob)[0] == 401
    assert call("DELETE", f"{node.url}/v1/auth/users/root", token=root)[0] == 400


def test_users_and_grants_survive_a_restart(tmp_path: Path) -> None:
    node = start_auth_node(tmp_path / "node")
    try:
        root = login(node.url, "root", ROOT_PASSWORD)
        alice = setup_alice(node.url, root)
        for i in range(8):  # snapshot_entries is 5: the auth store goes into a snapshot
            assert call("PUT", f"{node.url}/v1/kv/app/{i}", raw=b"v", token=alice)[0] == 200
        output = node.stop()
        assert list((node.config.data_dir / "raft" / "snap").glob("*.snap"))
        node.start({})  # no root password needed once bootstrapped
        alice = login(node.url, "alice", "alice-pw")
        assert call("GET", f"{node.url}/v1/kv/app/3", token=alice)[0] == 200
        assert call("GET", f"{node.url}/v1/kv/other", token=alice)[0] == 403
        status, described = call(
            "GET", f"{node.url}/v1/auth", token=login(node.url, "root", ROOT_PASSWORD)
        )
        assert status == 200 and described["users"]["alice"] == ["app", "reader"]
    finally:
        output += node.stop()
    records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    audit = [json.loads(r["msg"]) for r in records if r.get("logger") == "accord.audit"]
    assert {"login", "admin"} <= {entry["event"] for entry in audit}, output[-2000:]


def test_percent_encoded_separators_stay_inside_the_key(
    node: SingleNode, tokens: dict[str, str]
) -> None:
    """Keys are opaque bytes: "app%2F..%2F..%2Fother" is the key "app/../../other",
    inside app/, and "other" itself is never written."""
    escape = urllib.parse.quote("app/../../other2", safe="")
    assert call("PUT", f"{node.url}/v1/kv/{escape}", raw=b"v", token=tokens["alice"])[0] == 200
    root = tokens["root"]
    assert call("GET", f"{node.url}/v1/kv/{escape}", token=root)[0] == 200
    assert call("GET", f"{node.url}/v1/kv/other2", token=root)[0] == 404
    # Dot segments are not resolved either: this is the key "app/../other3".
    assert (
        call("PUT", f"{node.url}/v1/kv/ap%70/../other3", raw=b"v", token=tokens["alice"])[0] == 200
    )
    assert call("GET", f"{node.url}/v1/kv/other3", token=root)[0] == 404
    assert call("GET", f"{node.url}/v1/kv/app/../other3", token=root)[0] == 200


@pytest.mark.parametrize("protocol", ["http", "native"])
def test_the_client_logs_in_and_gets_typed_errors(
    node: SingleNode, tokens: dict[str, str], protocol: str
) -> None:
    from accord import AsyncClient
    from accord.client.errors import PermissionDenied, Unauthenticated

    host, port = node.native_address
    endpoint = node.url if protocol == "http" else f"accord://{host}:{port}"

    async def main() -> None:
        async with AsyncClient([endpoint], user="alice", password="alice-pw") as client:
            await client.put(b"app/client", b"v")
            got = await client.get(b"app/client")
            assert got is not None and got.value == b"v"
            with pytest.raises(PermissionDenied):
                await client.put(b"other", b"v")
        async with AsyncClient([endpoint], user="alice", password="nope", timeout_s=5) as bad:
            with pytest.raises(Unauthenticated):
                await bad.get(b"app/client")
        async with AsyncClient([endpoint], token=tokens["alice"]) as by_token:
            assert await by_token.get(b"app/client") is not None

    asyncio.run(main())
