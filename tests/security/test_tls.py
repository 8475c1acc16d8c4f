"""TLS on a real node: clients with the CA read and write over both protocols, plain
TCP gets nothing useful, and only a node certificate from the cluster CA may open a
Raft connection (self-signed, foreign-CA and client certificates are refused)."""

from __future__ import annotations

import asyncio
import socket
import ssl
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from accord import AsyncClient
from accord.security.certs import init_ca, issue
from accord.security.config import SecurityConfig
from accord.security.tls import client_tls
from accord.testing.single import SingleNode
from accord.transport.codec import Hello, HelloReply, decode_hello_reply, encode_hello
from accord.transport.framing import FrameDecoder, encode_frame
from accord.transport.peer import REFUSAL_NODE_ID, REFUSAL_REASON

CLUSTER = "accord-single"


def _get(url: str, context: ssl.SSLContext) -> int:
    with urllib.request.urlopen(url, timeout=2, context=context) as response:
        status: int = response.status
        return status


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    init_ca(directory)
    issue(directory, "n1", node=True, node_id=1, cluster_id=CLUSTER)
    issue(directory, "n9", node=True, node_id=9, cluster_id=CLUSTER)
    issue(directory, "other", node=True, node_id=9, cluster_id="another-cluster")
    issue(directory, "legacy", node=True)  # names no node id: from before ids
    issue(directory, "alice", node=False)
    foreign = directory / "foreign"
    init_ca(foreign)
    issue(foreign, "n9", node=True, node_id=9, cluster_id=CLUSTER)
    return directory


@pytest.fixture(scope="module")
def node(pki: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SingleNode]:
    security = SecurityConfig(
        tls_ca=pki / "ca.crt", tls_cert=pki / "node-n1.crt", tls_key=pki / "node-n1.key"
    )
    n = SingleNode(tmp_path_factory.mktemp("tls") / "node", security)
    context = client_tls(pki / "ca.crt")
    n.start(ready=lambda: _get(f"{n.url}/ready", context) == 200)
    yield n
    n.stop()


def test_a_client_with_the_ca_reads_and_writes_over_both_protocols(
    node: SingleNode, pki: Path
) -> None:
    host, port = node.native_address

    async def main() -> None:
        tls = client_tls(pki / "ca.crt")
        for endpoint in (node.url, f"accords://{host}:{port}"):
            async with AsyncClient([endpoint], tls=tls, timeout_s=10) as client:
                await client.put(b"tls-key", endpoint.encode())
                got = await client.get(b"tls-key")
                assert got is not None and got.value == endpoint.encode()

    assert node.url.startswith("https://")
    asyncio.run(main())


def test_plain_tcp_to_a_tls_port_gets_nothing_useful(node: SingleNode) -> None:
    for address in (node.config.client, node.native_address):
        with socket.create_connection(address, timeout=5) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            received = b""
            try:
                while chunk := s.recv(4096):
                    received += chunk
            except (ConnectionResetError, TimeoutError):
                pass
        assert b"HTTP/1.1 200" not in received and b"health" not in received


def test_a_client_without_the_ca_does_not_trust_the_node(node: SingleNode) -> None:
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        _get(f"{node.url}/health", ssl.create_default_context())


def _peer_hello(node: SingleNode, context: ssl.SSLContext, src: int = 9) -> bytes:
    """Dial the Raft port with `context`, send a hello, return what came back."""
    with (
        socket.create_connection(node.config.peer, timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as s,
    ):
        s.sendall(encode_frame(encode_hello(Hello(CLUSTER, src, 1))))
        received = b""
        try:
            while chunk := s.recv(4096):
                received += chunk
                if FrameDecoder(1 << 16).feed(received):
                    break
        except (ConnectionResetError, ssl.SSLError, TimeoutError):
            pass
        return received


def _peer_context(ca: Path, cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    context.load_cert_chain(str(cert), str(key))
    return context


def test_a_node_certificate_from_the_cluster_ca_is_accepted(node: SingleNode, pki: Path) -> None:
    context = _peer_context(pki / "ca.crt", pki / "node-n9.crt", pki / "node-n9.key")
    frames = FrameDecoder(1 << 16).feed(_peer_hello(node, context))
    assert frames and decode_hello_reply(frames[0]).reason in (None, "")


@pytest.mark.parametrize(
    "stem",
    ["foreign/ca", "foreign/node-n9", "client-alice", "node-legacy"],
    ids=["self-signed", "foreign-ca", "client-certificate", "certificate-naming-no-node"],
)
def test_other_certificates_cannot_speak_raft(node: SingleNode, pki: Path, stem: str) -> None:
    context = _peer_context(pki / "ca.crt", pki / f"{stem}.crt", pki / f"{stem}.key")
    try:
        received = _peer_hello(node, context)
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        return  # refused in the TLS handshake
    assert received == b""


def test_a_peer_without_a_certificate_is_refused(node: SingleNode, pki: Path) -> None:
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    try:
        received = _peer_hello(node, context)
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        return
    assert received == b""


def _refusal(received: bytes) -> HelloReply:
    frames = FrameDecoder(1 << 16).feed(received)
    assert frames, "no reply"
    return decode_hello_reply(frames[0])


def test_a_node_certificate_claiming_another_id_is_refused(node: SingleNode, pki: Path) -> None:
    context = _peer_context(pki / "ca.crt", pki / "node-n9.crt", pki / "node-n9.key")
    reply = _refusal(_peer_hello(node, context, src=3))
    assert not reply.accepted
    # The refusal is generic: no cluster id, no node id (the details are in the log).
    assert reply == HelloReply(REFUSAL_NODE_ID, REFUSAL_REASON)
    assert CLUSTER not in reply.reason


def test_a_node_certificate_of_another_cluster_is_refused(node: SingleNode, pki: Path) -> None:
    context = _peer_context(pki / "ca.crt", pki / "node-other.crt", pki / "node-other.key")
    assert _refusal(_peer_hello(node, context)) == HelloReply(REFUSAL_NODE_ID, REFUSAL_REASON)
    assert "the certificate names ('another-cluster', 9)" in node.log_path.read_text()


def test_a_plaintext_dialer_gets_nothing_from_the_peer_port(node: SingleNode) -> None:
    with socket.create_connection(node.config.peer, timeout=5) as s:
        s.sendall(encode_frame(encode_hello(Hello(CLUSTER, 9, 1))))
        received = b""
        try:
            while chunk := s.recv(4096):
                received += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    assert b"accord" not in received  # at most a TLS alert, never a hello reply
