"""The native protocol on the wire, against a real cluster: handshake, pipelining,
answers matched by id, routing errors, bad input and the per-connection limits."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest

from accord.api.limits import NATIVE_REQUEST_FRAME_BYTES_MAX, NATIVE_WATCHES_MAX
from accord.client.native import parse_native_url
from accord.testing.cluster import LocalCluster, http, running_cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    yield from running_cluster(tmp_path_factory.mktemp("native") / "cluster")


class Wire:
    """A blocking native-protocol connection that shows every frame."""

    def __init__(self, url: str, hello: Any = ("accord", 1)) -> None:
        self.sock = socket.create_connection(parse_native_url(url), timeout=10)
        self.buffer = b""
        if hello is not None:
            self.send(list(hello))

    def send_raw(self, payload: bytes) -> None:
        self.sock.sendall(struct.pack(">I", len(payload)) + payload)

    def send(self, item: Any) -> None:
        self.send_raw(msgpack.packb(item))

    def request(self, request_id: int, op: str, args: dict[str, Any]) -> None:
        self.send([request_id, op, args])

    def _read_exact(self, n: int) -> bytes | None:
        while len(self.buffer) < n:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                return None
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def receive(self) -> Any:
        """The next frame, or None when the node closed the connection."""
        header = self._read_exact(4)
        if header is None:
            return None
        payload = self._read_exact(struct.unpack(">I", header)[0])
        assert payload is not None
        return msgpack.unpackb(payload)

    def answers(self, count: int) -> dict[int, tuple[int, dict[str, Any]]]:
        found = {}
        for _ in range(count):
            request_id, status, body = self.receive()
            found[request_id] = (status, body)
        return found

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def leader_wire(cluster: LocalCluster) -> Iterator[Wire]:
    wire = Wire(cluster.native_url(cluster.leader()))
    assert wire.receive()[:2] == ["accord", 1]
    yield wire
    wire.close()


def test_the_hello_names_the_node(cluster: LocalCluster) -> None:
    for node in (1, 2, 3):
        wire = Wire(cluster.native_url(node))
        assert wire.receive() == ["accord", 1, node]
        wire.close()


def test_a_wrong_hello_is_refused_and_the_connection_closed(cluster: LocalCluster) -> None:
    wire = Wire(cluster.native_url(1), hello=("redis", 2))
    request_id, status, body = wire.receive()
    assert (request_id, status, body["error"]["code"]) == (0, 400, "bad_request")
    assert "hello" in body["error"]["message"]
    assert wire.receive() is None


def test_pipelined_requests_are_all_answered_by_id(leader_wire: Wire) -> None:
    count = 200
    for i in range(count):  # every request written before any answer is read
        leader_wire.request(i + 1, "put", {"key": f"pipe/{i}".encode(), "value": b"v%d" % i})
    puts = leader_wire.answers(count)
    assert sorted(puts) == list(range(1, count + 1))
    revisions = [puts[i + 1][1]["revision"] for i in range(count)]
    assert all(status == 200 for status, _ in puts.values())
    assert len(set(revisions)) == count
    for i in range(count):
        leader_wire.request(1000 + i, "get", {"key": f"pipe/{i}".encode()})
    gets = leader_wire.answers(count)
    for i in range(count):
        status, body = gets[1000 + i]
        assert status == 200 and body["kv"]["value"] == b"v%d" % i
        assert body["kv"]["mod_revision"] == revisions[i]


def test_bad_requests_get_an_answer_and_the_connection_goes_on(leader_wire: Wire) -> None:
    leader_wire.request(1, "frobnicate", {})
    leader_wire.request(2, "put", {"key": b"k", "value": b"v", "colour": "red"})
    leader_wire.request(3, "put", {"key": 7, "value": b"v"})
    leader_wire.request(4, "get", {"key": b"k", "revision": -1})
    leader_wire.request(5, "put", {"key": b"k", "value": b"v", "client_id": 9})
    leader_wire.request(6, "put", {"key": b"", "value": b"v"})
    leader_wire.send(["not", "a", "request", "at all"])
    leader_wire.send_raw(b"\xc1")  # a byte msgpack never uses
    answers = {}
    for _ in range(8):
        request_id, status, body = leader_wire.receive()
        answers.setdefault(request_id, []).append((status, body["error"]))
    assert answers[1][0][0] == 400 and "unknown op" in answers[1][0][1]["message"]
    assert answers[2][0][0] == 400 and "colour" in answers[2][0][1]["message"]
    assert answers[3][0][0] == 400 and "key" in answers[3][0][1]["message"]
    assert answers[4][0][0] == 400 and "revision" in answers[4][0][1]["message"]
    assert answers[5][0][0] == 400 and "seq" in answers[5][0][1]["message"]
    assert answers[6][0][0] == 400  # the empty key
    assert [status for status, _ in answers[0]] == [400, 400]  # no id to answer to
    leader_wire.request(7, "put", {"key": b"still/here", "value": b"yes"})
    assert leader_wire.answers(1)[7][0] == 200


def test_an_oversized_frame_closes_the_connection(leader_wire: Wire) -> None:
    leader_wire.sock.sendall(struct.pack(">I", NATIVE_REQUEST_FRAME_BYTES_MAX + 1))
    request_id, status, body = leader_wire.receive()
    assert (request_id, status) == (0, 400) and "frame" in body["error"]["message"]
    assert leader_wire.receive() is None


def test_a_follower_names_the_leaders_native_url(cluster: LocalCluster) -> None:
    leader = cluster.leader()
    follower = next(n for n in (1, 2, 3) if n != leader)
    wire = Wire(cluster.native_url(follower))
    wire.receive()
    wire.request(1, "put", {"key": b"k", "value": b"v"})
    wire.request(2, "get", {"key": b"pipe/0"})  # reads are served by any node
    answers = wire.answers(2)
    status, body = answers[1]
    assert status == 503 and body["error"]["code"] == "not_leader"
    assert body["error"]["leader"] == {"id": leader, "url": cluster.native_url(leader)}
    assert answers[2][0] == 200
    wire.close()


def test_watches_stream_events_and_are_limited_per_connection(leader_wire: Wire) -> None:
    leader_wire.request(1, "put", {"key": b"nw/a", "value": b"1"})
    start = leader_wire.answers(1)[1][1]["revision"]
    leader_wire.request(2, "watch", {"key": b"nw/", "range_end": b"nw0", "start_revision": start})
    request_id, status, body = leader_wire.receive()
    assert (request_id, status) == (2, 100)
    assert [(e["type"], e["kv"]["key"]) for e in body["events"]] == [("put", b"nw/a")]
    for i in range(NATIVE_WATCHES_MAX - 1):
        leader_wire.request(100 + i, "watch", {"key": b"nw/none/%d" % i})
    leader_wire.request(999, "watch", {"key": b"nw/one-too-many"})
    status, body = leader_wire.answers(1)[999]
    assert status == 413 and body["error"]["code"] == "limit_exceeded"
    leader_wire.request(3, "cancel", {"id": 2})
    assert leader_wire.answers(1)[3] == (200, {"cancelled": True})
    leader_wire.request(4, "watch", {"key": b"nw/now-there-is-room"})
    leader_wire.request(5, "cancel", {"id": 4})
    assert leader_wire.answers(1)[5] == (200, {"cancelled": True})


def test_health_and_ready_answer_like_their_http_twins(leader_wire: Wire) -> None:
    leader_wire.request(1, "health", {})
    leader_wire.request(2, "ready", {})
    leader_wire.request(3, "status", {})
    answers = leader_wire.answers(3)
    leader = answers[3][1]["leader"]
    assert answers[1] == (200, {"health": "ok", "leader": leader})
    assert answers[2] == (200, {"ready": True, "leader": leader})


def native_puts_counted(cluster: LocalCluster, node: int) -> float:
    _, body, _ = http("GET", f"{cluster.url(node)}/metrics")
    line = 'accord_native_requests_total{operation="put",status="200"} '
    found = [ln for ln in body.decode().splitlines() if ln.startswith(line)]
    return float(found[0].split()[-1]) if found else 0.0


def test_native_requests_are_counted_in_the_metrics(
    cluster: LocalCluster, leader_wire: Wire
) -> None:
    leader = cluster.leader()
    before = native_puts_counted(cluster, leader)
    for i in range(10):
        leader_wire.request(i + 1, "put", {"key": b"metered/%d" % i, "value": b"v"})
    assert all(status == 200 for status, _ in leader_wire.answers(10).values())
    assert native_puts_counted(cluster, leader) == before + 10
