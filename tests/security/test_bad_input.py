"""Bad input that once got a 5xx (or was silently misread) against a real node: each
answer is a 4xx in the API's error format, and the node logs no traceback for any."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest

from accord.testing.cluster import http
from accord.testing.single import SingleNode
from accord.transport.framing import FrameDecoder, encode_frame

HUGE = "9" * 5000
MEMBER = '"name": "x", "peer": "127.0.0.1:1", "client": "127.0.0.1:2"'


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SingleNode]:
    n = SingleNode(tmp_path_factory.mktemp("badinput") / "node")
    n.start()
    yield n
    log = n.stop()
    assert "Traceback" not in log, log[-4000:]


def _raw(node: SingleNode, head: bytes) -> tuple[int, bytes, bytes]:
    """Send the request line and headers `head` as they are (and no body); (status,
    head, body) of the answer, read up to its Content-Length (a node that refused a
    declared body may linger a while before closing, draining it)."""
    with socket.create_connection(node.config.client, timeout=10) as s:
        s.sendall(head + b"Host: x\r\nConnection: close\r\n\r\n")
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.partition(b"\r\n\r\n")[2]) < _length(answer):
            chunk = s.recv(65536)
            if not chunk:
                break
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), head, body


def _length(answer: bytes) -> int:
    for line in answer.partition(b"\r\n\r\n")[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":", 1)[1])
    return 1 << 30  # no length: until the node closes


def _error_code(body: bytes) -> str:
    return str(json.loads(body)["error"]["code"])


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/lease/grant", f'{{"ttl": {HUGE}}}'),
        ("/v1/lease/grant", f'{{"ttl": -{HUGE}}}'),
        ("/v1/lease/grant", '{"ttl": 315360001}'),
        ("/v1/lease/grant", '{"ttl": NaN}'),
        ("/v1/txn", f'{{"success": [{{"get": {{"key": "a", "revision": {HUGE}}}}}]}}'),
        (
            "/v1/txn",
            f'{{"compare": [{{"key": "a", "target": "version", "op": "==", "value": {HUGE}}}]}}',
        ),
        ("/v1/txn", '{"success": [{"delete": {"key": "a", "limit": 1}}]}'),
        ("/v1/members", f'{{"id": {HUGE}, {MEMBER}}}'),
        ("/v1/members", f'{{"id": {2**64}, {MEMBER}}}'),
        ("/v1/members", f'{{"id": {2**63}, {MEMBER}}}'),
    ],
    ids=lambda v: v[:40],
)
def test_out_of_range_numbers_and_fields_are_400(node: SingleNode, path: str, body: str) -> None:
    status, answer, _ = http("POST", node.url + path, body.encode())
    assert status == 400, answer
    assert json.loads(answer)["error"]["code"] in ("bad_request", "invalid_request")


@pytest.mark.parametrize("length", ["18446744073709551615", "5000000", "1" + "0" * 30])
def test_a_declared_body_over_the_limit_is_413_before_any_is_read(
    node: SingleNode, length: str
) -> None:
    # 2^64-1 reaches aiohttp as "no body": it once stored an empty value (200).
    head = f"PUT /v1/kv/cl HTTP/1.1\r\nContent-Length: {length}\r\n".encode()
    status, _, body = _raw(node, head)
    if len(length) > 20:
        assert status == 400  # the HTTP parser's own refusal: it overflows 64 bits
    else:
        assert status == 413 and _error_code(body) == "request_too_large"
    assert http("GET", f"{node.url}/v1/kv/cl")[0] == 404  # nothing was stored


def test_a_url_over_the_line_limit_is_400(node: SingleNode) -> None:
    status, _, _ = _raw(node, b"GET /v1/kv/" + b"a" * 9000 + b" HTTP/1.1\r\n")
    assert status == 400  # and no traceback in the log (checked when the node stops)


@pytest.mark.parametrize(
    "target",
    ["/v1/kv/k?foo=1", "/v1/kv/k?revision=1&consistency=x", "/v1/cluster/status?x=1",
     "/v1/range?key=a&count_only=yes", "/v1/lease/1?verbose=1", "/v1/members?all=1"],
)  # fmt: skip
def test_unknown_or_malformed_query_parameters_are_400(node: SingleNode, target: str) -> None:
    status, answer, _ = http("GET", node.url + target)
    assert status == 400, answer


def test_lease_id_0_is_400_on_every_lease_route(node: SingleNode) -> None:
    for method, path in [
        ("GET", "/v1/lease/0"),
        ("DELETE", "/v1/lease/0"),
        ("POST", "/v1/lease/0/keepalive"),
    ]:
        status, answer, _ = http(method, node.url + path)
        assert status == 400, (method, answer)


def test_405_names_the_allowed_methods(node: SingleNode) -> None:
    status, head, body = _raw(node, b"POST /v1/kv/k HTTP/1.1\r\nContent-Length: 0\r\n")
    assert status == 405 and _error_code(body) == "http_error"
    allow = next(line for line in head.split(b"\r\n") if line.lower().startswith(b"allow:"))
    assert {b"GET", b"PUT", b"DELETE"} <= set(allow.split(b":", 1)[1].strip().split(b","))


def test_percent_escapes_are_bytes_in_paths_and_queries_alike(node: SingleNode) -> None:
    assert http("PUT", f"{node.url}/v1/kv/pct%FF%41", b"v")[0] == 200
    status, body, _ = http("GET", f"{node.url}/v1/range?key=pct%FFA")
    assert status == 200
    kvs = json.loads(body)["kvs"]
    assert [kv["key_b64"] for kv in kvs] == ["cGN0/0E="]  # b"pct\xffA"
    assert http("GET", f"{node.url}/v1/kv/pct%ffA")[0] == 200  # the same key
    assert http("GET", f"{node.url}/v1/kv/pct%25FFA")[0] == 404  # a literal "%FF"


# --- the native protocol ------------------------------------------------------------------
def _native(node: SingleNode, requests: list[list[Any]]) -> list[list[Any]]:
    with socket.create_connection(node.native_address, timeout=10) as s:
        s.sendall(encode_frame(msgpack.packb(["accord", 1])))
        for request in requests:
            s.sendall(encode_frame(msgpack.packb(request, use_bin_type=True)))
        decoder, answers = FrameDecoder(1 << 22), []
        while len(answers) < len(requests) + 1:
            frames = decoder.feed(s.recv(65536))
            answers += [msgpack.unpackb(f, raw=False) for f in frames]
    return answers[1:]


@pytest.mark.parametrize(
    "request_",
    [
        [1, "get", {b"key": b"x"}],
        [1, "txn", {"success": [{"get": {b"key": b"a"}}]}],
        [1, "range", {"key": b"a", "count_only": 1}],
        [1, "get", {"key": b"a", "serializable": "yes"}],
        [1, "delete", {"key": b"a", "limit": 3}],
        [1, "lease_grant", {"ttl": 2**64 - 1}],
        [1, "lease_ttl", {"id": 0}],
        [1, "lease_revoke", {"id": 0}],
        [1, "put", {"key": b"k", "value": b"v", "lease": 2**63}],
        [1, "health", {b"x": 1}],
    ],
    ids=str,
)
def test_native_bad_arguments_are_400(node: SingleNode, request_: list[Any]) -> None:
    [answer] = _native(node, [request_])
    assert answer[0] == 1 and answer[1] == 400, answer


def test_the_openapi_bounds_are_the_ones_the_server_enforces(node: SingleNode) -> None:
    status, body, _ = http("GET", f"{node.url}/v1/openapi.json")
    assert status == 200
    paths = json.loads(body)["paths"]
    grant = paths["/v1/lease/grant"]["post"]["requestBody"]
    ttl = grant["content"]["application/json"]["schema"]["properties"]["ttl"]
    for value, expected in [(ttl["minimum"] - 1, 400), (ttl["maximum"] + 1, 400), (2, 200)]:
        answer = http("POST", f"{node.url}/v1/lease/grant", json.dumps({"ttl": value}).encode())
        assert answer[0] == expected, (value, answer)
    lease_id = paths["/v1/lease/{id}"]["get"]["parameters"][0]["schema"]
    assert http("GET", f"{node.url}/v1/lease/{lease_id['minimum'] - 1}")[0] == 400
    assert http("GET", f"{node.url}/v1/lease/{lease_id['maximum'] + 1}")[0] == 400
    revision = paths["/v1/range"]["get"]["parameters"][-1]["schema"]
    assert http("GET", f"{node.url}/v1/range?key=a&revision={revision['maximum'] + 1}")[0] == 400
    assert "400" in paths["/v1/txn"]["post"]["responses"]
    assert paths["/v1/txn"]["post"]["requestBody"]["required"] is True
    assert http("POST", f"{node.url}/v1/txn", b"")[0] == 400
