"""Abuse limits on a real node: per-client rate limit (429 + Retry-After), at most
`connections_max` connections per client port (idle ones make room), and slow
clients (headers, bodies, native frames trickling in) cut off after `read_timeout_s`."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from http.client import HTTPConnection

import pytest

from accord.security.config import SecurityConfig
from accord.testing.cluster import http, wait_for
from accord.testing.single import SingleNode

from .sockets import closed_within

READ_TIMEOUT_S = 1.0
CONNECTIONS_MAX = 4


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SingleNode]:
    security = SecurityConfig(
        rate_limit_rps=5.0,
        rate_limit_burst=10,
        connections_max=CONNECTIONS_MAX,
        read_timeout_s=READ_TIMEOUT_S,
    )
    n = SingleNode(tmp_path_factory.mktemp("limits") / "node", security)
    n.start()
    yield n
    n.stop()


def test_a_fast_client_gets_429_with_retry_after_then_recovers(node: SingleNode) -> None:
    statuses = []
    retry_after = None
    for _ in range(40):
        status, body, headers = http("GET", f"{node.url}/v1/kv/rate")
        statuses.append(status)
        if status == 429:
            retry_after = headers.get("Retry-After")
            assert b"rate_limited" in body
            break
    assert 404 in statuses and statuses[-1] == 429, statuses
    assert retry_after is not None and int(retry_after) >= 1
    wait_for(lambda: http("GET", f"{node.url}/v1/kv/rate")[0] == 404, "the bucket to refill")


def test_slow_http_headers_are_cut_off(node: SingleNode) -> None:
    with socket.create_connection(node.config.client) as s:
        s.sendall(b"GET /v1/kv/x HTTP/1.1\r\nHost: x\r\n")  # ... and never the blank line
        assert closed_within(s, READ_TIMEOUT_S + 10) >= READ_TIMEOUT_S * 0.5


def test_slow_http_body_is_cut_off(node: SingleNode) -> None:
    with socket.create_connection(node.config.client) as s:
        s.sendall(b"PUT /v1/kv/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
        s.settimeout(READ_TIMEOUT_S + 10)
        answer = s.recv(4096)
        assert answer.startswith(b"HTTP/1.1 408") or answer == b"", answer


def test_a_busy_keep_alive_connection_outlives_the_read_timeout(node: SingleNode) -> None:
    # One timer per connection, re-armed when it fires: requests that keep arriving
    # in time must never be cut off, however long the connection lives.
    connection = HTTPConnection(*node.config.client, timeout=10)
    try:
        connection.request("GET", "/v1/kv/keepalive")
        connection.getresponse().read()
        sock = connection.sock
        ends = time.monotonic() + 2.5 * READ_TIMEOUT_S
        answered = 1
        while time.monotonic() < ends:
            time.sleep(READ_TIMEOUT_S / 4)  # within the rate limit, and idle a while
            connection.request("GET", "/v1/kv/keepalive")
            response = connection.getresponse()
            response.read()
            assert response.status in (404, 429), response.status
            assert connection.sock is sock, "the node closed a connection in use"
            answered += 1
        assert answered >= 8
    finally:
        connection.close()


@pytest.mark.parametrize(
    "data",
    [b"\x00\x00", b"\x00\x00\x00\x0a\x92"],  # half a length prefix; half a hello frame
    ids=["partial-length", "partial-frame"],
)
def test_slow_native_frames_are_cut_off(node: SingleNode, data: bytes) -> None:
    with socket.create_connection(node.native_address) as s:
        s.sendall(data)
        closed_within(s, READ_TIMEOUT_S + 10)


def test_a_connection_beyond_the_cap_takes_the_place_of_the_longest_idle(
    node: SingleNode,
) -> None:
    held = [socket.create_connection(node.config.client) for _ in range(CONNECTIONS_MAX)]
    try:
        status, _, _ = http("GET", f"{node.url}/v1/kv/cap", timeout=5)
        assert status in (404, 429)
        closed_within(held[0], 5)
    finally:
        for s in held:
            s.close()
