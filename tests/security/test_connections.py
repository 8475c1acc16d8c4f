"""Idle connections on a real node: closed after `idle_timeout_s` (HTTP sockets that
never send a byte or sit idle between keep-alive requests, native connections idle
after the hello), and unable to lock clients out at `connections_max`: a new
connection closes the longest-idle one to take its place."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack
from http.client import HTTPConnection

import msgpack
import pytest

from accord.client.native import NativePool
from accord.security.config import SecurityConfig
from accord.testing.cluster import http
from accord.testing.single import SingleNode
from accord.transport.framing import FrameDecoder, encode_frame

from .sockets import closed_within

IDLE_TIMEOUT_S = 1.5
CONNECTIONS_MAX = 20
SERVED_WITHIN_S = 5.0


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SingleNode]:
    security = SecurityConfig(connections_max=CONNECTIONS_MAX, idle_timeout_s=IDLE_TIMEOUT_S)
    n = SingleNode(tmp_path_factory.mktemp("conns") / "node", security)
    n.start()
    yield n
    n.stop()


def _still_open(s: socket.socket) -> bool:
    s.setblocking(False)
    try:
        return s.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except ConnectionError:
        return False
    finally:
        s.setblocking(True)


def _native(node: SingleNode) -> tuple[socket.socket, FrameDecoder]:
    """A native connection past the hello."""
    s = socket.create_connection(node.native_address, timeout=10)
    s.sendall(encode_frame(msgpack.packb(["accord", 1])))
    decoder = FrameDecoder(1 << 22)
    assert _frame(s, decoder)[:2] == ["accord", 1]
    return s, decoder


def _frame(s: socket.socket, decoder: FrameDecoder) -> list[object]:
    while True:
        frames = decoder.feed(s.recv(65536) or b"")
        if frames:
            return msgpack.unpackb(frames[0], raw=False)


def _native_call(node: SingleNode, op: str, args: dict[str, object]) -> list[object]:
    s, decoder = _native(node)
    with s:
        s.sendall(encode_frame(msgpack.packb([1, op, args])))
        return _frame(s, decoder)


def test_an_http_socket_that_never_sends_a_byte_is_closed(node: SingleNode) -> None:
    with socket.create_connection(node.config.client) as s:
        assert closed_within(s, IDLE_TIMEOUT_S + 10) >= IDLE_TIMEOUT_S * 0.5


def test_an_idle_keep_alive_connection_is_closed(node: SingleNode) -> None:
    connection = HTTPConnection(*node.config.client, timeout=10)
    try:
        connection.request("GET", "/v1/kv/idle")
        connection.getresponse().read()
        assert connection.sock is not None
        assert closed_within(connection.sock, IDLE_TIMEOUT_S + 10) >= IDLE_TIMEOUT_S * 0.5
    finally:
        connection.close()


def test_a_native_connection_idle_after_hello_is_closed(node: SingleNode) -> None:
    s, decoder = _native(node)
    with s:
        s.sendall(encode_frame(msgpack.packb([7, "health", {}])))
        assert _frame(s, decoder)[:2] == [7, 200]
        assert closed_within(s, IDLE_TIMEOUT_S + 10) >= IDLE_TIMEOUT_S * 0.5


def test_a_native_connection_with_a_watch_is_not_idle(node: SingleNode) -> None:
    s, decoder = _native(node)
    with s:
        s.sendall(encode_frame(msgpack.packb([9, "watch", {"key": b"watched"}])))
        # The watch must outlive several idle timeouts, then still deliver.
        deadline = time.monotonic() + 3 * IDLE_TIMEOUT_S
        while time.monotonic() < deadline:
            assert _still_open(s), "a connection with an open watch was closed as idle"
            time.sleep(0.1)
        status, _, _ = http("PUT", f"{node.url}/v1/kv/watched", b"v")
        assert status == 200
        answer = _frame(s, decoder)
        assert answer[:2] == [9, 100], answer


def test_idle_http_sockets_at_the_cap_do_not_lock_clients_out(node: SingleNode) -> None:
    with ExitStack() as stack:
        held = [
            stack.enter_context(socket.create_connection(node.config.client))
            for _ in range(CONNECTIONS_MAX)
        ]
        started = time.monotonic()
        status, _, _ = http("GET", f"{node.url}/v1/kv/cap", timeout=SERVED_WITHIN_S)
        assert status == 404
        assert time.monotonic() - started < SERVED_WITHIN_S
        closed_within(held[0], 2)  # the longest-idle connection made room


def test_idle_native_sockets_at_the_cap_do_not_lock_clients_out(node: SingleNode) -> None:
    with ExitStack() as stack:
        for _ in range(CONNECTIONS_MAX):
            stack.enter_context(_native(node)[0])
        started = time.monotonic()
        answer = _native_call(node, "health", {})
        assert answer[:2] == [1, 200], answer
        assert time.monotonic() - started < SERVED_WITHIN_S


def test_at_the_cap_with_every_connection_busy_a_new_one_is_refused(node: SingleNode) -> None:
    with ExitStack() as stack:
        for i in range(CONNECTIONS_MAX):  # watch streams: handlers in progress
            s = stack.enter_context(socket.create_connection(node.config.client))
            s.sendall(f"GET /v1/watch?key=busy{i} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            s.settimeout(10)
            assert s.recv(4096).startswith(b"HTTP/1.1 200"), "the watch did not start"
        with socket.create_connection(node.config.client) as extra:
            closed_within(extra, 10)
    # The watches are gone: a client is served again.
    wait_for_served(node)


def wait_for_served(node: SingleNode) -> None:
    deadline = time.monotonic() + SERVED_WITHIN_S
    while time.monotonic() < deadline:
        try:
            if http("GET", f"{node.url}/v1/kv/cap", timeout=2)[0] == 404:
                return
        except OSError:
            pass
        time.sleep(0.05)
    pytest.fail("no client served after the watches closed")


def test_the_client_reopens_a_native_link_before_the_node_closes_it(node: SingleNode) -> None:
    async def run() -> None:
        pool = NativePool()
        pool.link_idle_s_max = IDLE_TIMEOUT_S / 3  # as the default stays below the node's
        url = f"accord://{node.native_address[0]}:{node.native_address[1]}"
        try:
            first = await pool.link(url)
            assert (await first.call("health", {}))[0] == 200
            deadline = time.monotonic() + 10
            while first.idle_s() < pool.link_idle_s_max:  # idle past the client's bound
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            second = await pool.link(url)
            assert second is not first and first.dead
            assert (await second.call("health", {}))[0] == 200
        finally:
            await pool.close()

    asyncio.run(run())
