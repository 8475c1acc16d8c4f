"""Peer links of a default `accord up` cluster (no `--secure`): mutual TLS with
certificates bound to node ids. Real sockets, real TLS, real node processes."""

from __future__ import annotations

import dataclasses
import json
import shutil
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from accord.raft.types import Message, MessageType
from accord.security.certs import issue
from accord.security.config import SecurityConfig
from accord.server.config import load_config, render_config
from accord.testing.cluster import LocalCluster, http, running_cluster
from accord.transport.codec import (
    Hello,
    HelloReply,
    decode_hello_reply,
    encode_batch,
    encode_hello,
)
from accord.transport.framing import FrameDecoder, encode_frame
from accord.transport.peer import REFUSAL_NODE_ID, REFUSAL_REASON


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    yield from running_cluster(tmp_path_factory.mktemp("peer-auth") / "cluster")


def _cluster_id(cluster: LocalCluster) -> str:
    return load_config(cluster.directory / "n1" / "node.toml", env={}).cluster_id


def _status(cluster: LocalCluster, node: int) -> dict[str, object]:
    code, body, _ = http("GET", f"{cluster.url(node)}/v1/cluster/status")
    assert code == 200, body
    status: dict[str, object] = json.loads(body)
    return status


def _peer_port(cluster: LocalCluster, node: int) -> tuple[str, int]:
    return ("127.0.0.1", cluster.base + 100 + node)


def _context(peers: Path, stem: str) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(peers / "ca.crt"))
    context.load_cert_chain(str(peers / f"{stem}.crt"), str(peers / f"{stem}.key"))
    return context


def _read_reply(s: socket.socket) -> HelloReply | None:
    decoder = FrameDecoder(1 << 16)
    try:
        while chunk := s.recv(4096):
            if frames := decoder.feed(chunk):
                return decode_hello_reply(frames[0])
    except (ConnectionResetError, ssl.SSLError, TimeoutError):
        pass
    return None


def test_the_cluster_serves_plain_http_and_keeps_its_peer_material(cluster: LocalCluster) -> None:
    assert cluster.url(1).startswith("http://")  # client ports as without peer TLS
    config = load_config(cluster.directory / "n1" / "node.toml", env={})
    assert config.security.peer_cert == cluster.directory / "peers" / "node-n1.crt"
    assert not config.security.tls and not config.security.insecure_peers


def test_a_plaintext_dialer_is_refused(cluster: LocalCluster) -> None:
    with socket.create_connection(_peer_port(cluster, 2), timeout=5) as s:
        s.sendall(encode_frame(encode_hello(Hello(_cluster_id(cluster), 3, 2))))
        assert _read_reply(s) is None  # the TLS handshake failed: no hello reply


def test_node_1_claiming_to_be_node_3_is_refused_and_deposes_no_one(
    cluster: LocalCluster,
) -> None:
    leader, target = cluster.leader(), 2
    before = _status(cluster, target)
    forged = Message(
        MessageType.HEARTBEAT, 0, src=3, dst=target, term=int(str(before["term"])) + 1000
    )
    context = _context(cluster.directory / "peers", "node-n1")
    with (
        socket.create_connection(_peer_port(cluster, target), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as s,
    ):
        s.sendall(encode_frame(encode_hello(Hello(_cluster_id(cluster), 3, target))))
        s.sendall(encode_frame(encode_batch([forged])))
        reply = _read_reply(s)
    # Refused, and the refusal names neither the cluster nor any node.
    assert reply == HelloReply(REFUSAL_NODE_ID, REFUSAL_REASON)
    after = _status(cluster, target)
    assert after["term"] == before["term"] and cluster.leader() == leader
    log = (cluster.directory / f"n{target}" / "node.log").read_text()
    assert "the hello claims node 3" in log


def test_a_node_certificate_of_another_cluster_is_refused(cluster: LocalCluster) -> None:
    # Signed by this cluster's own peer CA, but naming another cluster id.
    peers = cluster.directory / "peers"
    issue(peers, "stranger", node=True, node_id=3, cluster_id="another-cluster")
    context = _context(peers, "node-stranger")
    with (
        socket.create_connection(_peer_port(cluster, 2), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as s,
    ):
        s.sendall(encode_frame(encode_hello(Hello(_cluster_id(cluster), 3, 2))))
        reply = _read_reply(s)
    assert reply == HelloReply(REFUSAL_NODE_ID, REFUSAL_REASON)
    assert "names ('another-cluster', 3)" in (cluster.directory / "n2" / "node.log").read_text()


def test_a_directory_from_before_peer_tls_gains_it_on_restart(tmp_path: Path) -> None:
    first = LocalCluster(tmp_path / "old")
    first.start()
    first.stop()
    # What an older `accord up` left: configs without peer settings, no peers/ directory.
    for path in sorted(first.directory.glob("n*/node.toml")):
        config = load_config(path, env={})
        path.write_text(render_config(dataclasses.replace(config, security=SecurityConfig())))
    shutil.rmtree(first.directory / "peers")
    again = LocalCluster(first.directory)
    again.base = first.base  # the configs keep their ports
    again.start()
    try:
        assert http("PUT", f"{again.url(again.leader())}/v1/kv/k", b"v")[0] == 200
        config = load_config(first.directory / "n2" / "node.toml", env={})
        assert config.security.peer_cert == first.directory / "peers" / "node-n2.crt"
    finally:
        output = again.stop()
    assert "peer links now use mutual TLS" in output
