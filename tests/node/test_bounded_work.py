"""Bounded work per request, against a real 3-node cluster: a transaction that would
answer hundreds of megabytes is refused (413) at once over HTTP and the native
protocol, and neither it nor a client that never reads its answers grows a node's
memory or costs the leader its leadership."""

from __future__ import annotations

import json
import socket
import struct
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest

from accord import Client, Op, ResponseTooLarge
from accord.client.native import parse_native_url
from accord.kv.limits import RESPONSE_BYTES_MAX, TXN_RANGE_OPS_MAX, VALUE_BYTES_MAX
from accord.testing.cluster import LocalCluster, http, running_cluster, wait_for

VALUES = 5
RSS_GROWTH_BYTES_MAX = 200 << 20
ANSWER_S_MAX = 5.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    for cluster in running_cluster(tmp_path_factory.mktemp("bounded") / "cluster"):
        leader = cluster.leader()
        for i in range(VALUES):
            url = f"{cluster.url(leader)}/v1/kv/big/{i}"
            assert http("PUT", url, bytes([65 + i]) * VALUE_BYTES_MAX, timeout=10)[0] == 200
        yield cluster


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def term_and_leader(cluster: LocalCluster, node: int) -> tuple[int, int]:
    status = cluster.status(node)
    assert status is not None
    return status["term"], status["leader"]


def ranges_over_everything(count: int) -> dict[str, Any]:
    return {"success": [{"range": {"key": "big/", "range_end": "big0"}}] * count}


def gets_of_every_value(count: int) -> dict[str, Any]:
    return {"success": [{"get": {"key": f"big/{i % VALUES}"}} for i in range(count)]}


def post_txn(cluster: LocalCluster, node: int, txn: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    started = time.monotonic()
    code, body, _ = http("POST", f"{cluster.url(node)}/v1/txn", json.dumps(txn).encode(), 10)
    assert time.monotonic() - started < ANSWER_S_MAX
    return code, json.loads(body)


class Native:
    """A blocking native-protocol connection."""

    def __init__(self, url: str) -> None:
        self.sock = socket.create_connection(parse_native_url(url), timeout=10)
        self.buffer = b""
        self.send(["accord", 1])
        assert self.receive()[:2] == ["accord", 1]

    def send(self, item: Any) -> None:
        payload = msgpack.packb(item)
        self.sock.sendall(struct.pack(">I", len(payload)) + payload)

    def receive(self) -> Any:
        header = self._read(4)
        return msgpack.unpackb(self._read(struct.unpack(">I", header)[0]))

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.sock.recv(1 << 20)
            assert chunk, "the node closed the connection"
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def close(self) -> None:
        self.sock.close()


def test_a_txn_of_gets_answering_640_mib_is_refused_fast_over_http(cluster: LocalCluster) -> None:
    leader = cluster.leader()
    before = term_and_leader(cluster, leader)
    rss = {node: rss_bytes(pid) for node, pid in cluster.pids().items()}
    for _ in range(8):
        code, body = post_txn(cluster, leader, gets_of_every_value(128))
        assert code == 413 and body["error"]["code"] == "response_too_large", body
    error = body["error"]
    assert (error["op"], error["keys"]) == (15, 0)  # fifteen 1 MiB values fit in 16 MiB
    assert "limit" in error["message"]
    code, body = post_txn(cluster, leader, ranges_over_everything(TXN_RANGE_OPS_MAX))
    assert code == 413 and body["error"]["code"] == "response_too_large", body
    code, body = post_txn(cluster, leader, ranges_over_everything(128))
    assert code == 413 and body["error"]["code"] == "limit_exceeded", body
    for node, pid in cluster.pids().items():
        assert rss_bytes(pid) - rss[node] < RSS_GROWTH_BYTES_MAX
    assert term_and_leader(cluster, leader) == before


def test_the_same_txn_over_the_native_protocol(cluster: LocalCluster) -> None:
    leader = cluster.leader()
    before = term_and_leader(cluster, leader)
    pid = cluster.pids()[leader]
    rss = rss_bytes(pid)
    link = Native(cluster.native_url(leader))
    try:
        started = time.monotonic()
        for request_id in range(1, 9):
            link.send([request_id, "txn", gets_of_every_value(128)])
        answers = [link.receive() for _ in range(8)]
        assert time.monotonic() - started < ANSWER_S_MAX
    finally:
        link.close()
    for _, status, body in answers:
        assert status == 413 and body["error"]["code"] == "response_too_large", body
    assert rss_bytes(pid) - rss < RSS_GROWTH_BYTES_MAX
    assert term_and_leader(cluster, leader) == before


def test_a_range_too_large_for_one_answer_pages_through_the_client(cluster: LocalCluster) -> None:
    leader = cluster.leader()
    keys = [f"page/{i:02}".encode() for i in range(20)]  # 20 MiB: more than one answer
    for key in keys:
        url = f"{cluster.url(leader)}/v1/kv/{key.decode()}"
        assert http("PUT", url, b"p" * VALUE_BYTES_MAX, timeout=10)[0] == 200
    code, body, _ = http("GET", f"{cluster.url(leader)}/v1/range?prefix=page/")
    assert code == 413 and json.loads(body)["error"]["keys"] == 15
    for url in (cluster.url(leader), cluster.native_url(leader)):
        with Client([url], timeout_s=30) as client:
            whole = client.range(prefix="page/")
            assert [kv.key for kv in whole.kvs] == keys
            assert whole.count == 20 and not whole.more
            some = client.range(prefix="page/", limit=17)
            assert [kv.key for kv in some.kvs] == keys[:17] and some.more
            with pytest.raises(ResponseTooLarge) as refused:
                client.txn(success=[Op.range(b"page/", b"page0")] * 2)
            assert refused.value.status == 413 and refused.value.keys == 15


def test_a_native_client_that_never_reads_holds_bounded_memory(cluster: LocalCluster) -> None:
    """Small gets of a 256 KiB value, sent without reading a single answer: the node
    must stop reading once answers wait unread (so the client's sends block) instead
    of answering every request it has read into memory."""
    leader = cluster.leader()
    value = b"m" * (256 << 10)
    assert http("PUT", f"{cluster.url(leader)}/v1/kv/mid", value, timeout=10)[0] == 200
    pid = cluster.pids()[leader]
    rss = rss_bytes(pid)
    link = Native(cluster.native_url(leader))
    link.sock.settimeout(2.0)
    sent, pushed_back = 0, False
    try:
        while sent < 1_000_000 and not pushed_back:  # 1M answers would be 250 GiB
            frames = b""
            for request_id in range(sent + 1, sent + 1001):
                payload = msgpack.packb([request_id, "get", {"key": b"mid", "serializable": True}])
                frames += struct.pack(">I", len(payload)) + payload
            try:
                link.sock.sendall(frames)
            except TimeoutError:
                pushed_back = True
            sent += 1000
        assert pushed_back, f"the node read all {sent} requests"
        assert rss_bytes(pid) - rss < RSS_GROWTH_BYTES_MAX
        wait_for(lambda: cluster.status(leader), "the node to answer others meanwhile", 5)
        assert term_and_leader(cluster, leader)[1] == leader
    finally:
        link.close()
    wait_for(lambda: rss_bytes(pid) - rss < RSS_GROWTH_BYTES_MAX, "memory after the close", 10)


def put_values(cluster: LocalCluster, prefix: str, count: int) -> list[bytes]:
    leader = cluster.leader()
    keys = [f"{prefix}{i:02}".encode() for i in range(count)]
    for key in keys:
        url = f"{cluster.url(leader)}/v1/kv/{key.decode()}"
        assert http("PUT", url, b"w" * VALUE_BYTES_MAX, timeout=10)[0] == 200
    return keys


def test_an_http_watch_catches_up_in_lines_within_the_bound(cluster: LocalCluster) -> None:
    keys = put_values(cluster, "catchup/", 20)  # 20 MiB of history: more than one line
    leader = cluster.leader()
    url = f"{cluster.url(leader)}/v1/watch?prefix=catchup/&start_revision=2"
    seen: list[bytes] = []
    lines = 0
    with urllib.request.urlopen(url, timeout=10) as stream:
        while len(seen) < len(keys):
            line = stream.readline()
            assert len(line) < RESPONSE_BYTES_MAX * 4 // 3, len(line)
            batch = json.loads(line)
            assert "events" in batch, batch
            seen += [event["kv"]["key"].encode() for event in batch["events"]]
            lines += 1
    assert seen == keys and lines > 1


def test_a_slow_http_watcher_is_cancelled_with_a_clear_error(cluster: LocalCluster) -> None:
    leader = cluster.leader()
    host, port = cluster.url(leader).removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)  # a reader that is slow
    sock.settimeout(10)
    sock.connect((host, int(port)))
    try:
        sock.sendall(f"GET /v1/watch?prefix=slow/ HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        received = sock.recv(1 << 12)
        assert received.startswith(b"HTTP/1.1 200"), received
        put_values(cluster, "slow/", 40)  # 40 MiB of events, never read meanwhile
        deadline = time.monotonic() + 20
        while b"watch_cancelled" not in received[-(1 << 16) :]:
            assert time.monotonic() < deadline, "no watch_cancelled line"
            chunk = sock.recv(1 << 20)
            assert chunk, "the stream ended without an error line"
            received += chunk
    finally:
        sock.close()
    assert b"fell behind" in received[-(1 << 16) :]
