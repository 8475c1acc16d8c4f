"""What `accord node` does about its peer links at start, and what a hostile peer
can do to a node whose peers are plaintext (insecure_peers): real processes."""

from __future__ import annotations

import dataclasses
import json
import socket
from pathlib import Path

import msgpack

from accord.limits import RAFT_TERM_MAX
from accord.raft.types import MessageType
from accord.security.config import SecurityConfig
from accord.server.config import render_config
from accord.storage import FileStorage
from accord.testing.cluster import http
from accord.testing.single import SingleNode
from accord.transport.codec import Hello, decode_hello_reply, encode_hello
from accord.transport.framing import FrameDecoder, encode_frame


def _without_peer_tls(node: SingleNode, security: SecurityConfig) -> None:
    node.config = dataclasses.replace(node.config, security=security)
    node.config_path.write_text(render_config(node.config))


def test_a_node_without_peer_tls_refuses_to_start(tmp_path: Path) -> None:
    node = SingleNode(tmp_path / "n")
    _without_peer_tls(node, SecurityConfig())
    code, output = node.run_to_exit()
    assert code != 0
    assert "peer links need mutual TLS" in output and "insecure_peers = true" in output
    assert "Traceback" not in output


def test_insecure_peers_starts_and_warns_loudly(tmp_path: Path) -> None:
    node = SingleNode(tmp_path / "n", SecurityConfig(insecure_peers=True))
    node.start()
    output = node.stop()
    assert "INSECURE PEERS" in output and "PLAINTEXT: insecure_peers" in output


def test_the_environment_can_say_insecure_peers(tmp_path: Path) -> None:
    node = SingleNode(tmp_path / "n")
    _without_peer_tls(node, SecurityConfig())
    node.start({"ACCORD_INSECURE_PEERS": "1"})
    assert "INSECURE PEERS" in node.stop()


def test_a_peer_certificate_naming_no_node_is_refused_at_start(tmp_path: Path) -> None:
    from accord.security.certs import init_ca, issue

    init_ca(tmp_path / "pki")
    cert, key = issue(tmp_path / "pki", "n1", node=True)  # no --id / --cluster-id
    node = SingleNode(tmp_path / "n")
    security = SecurityConfig(peer_ca=tmp_path / "pki" / "ca.crt", peer_cert=cert, peer_key=key)
    _without_peer_tls(node, security)
    code, output = node.run_to_exit()
    assert code != 0 and "names no node" in output and "--id 1 --cluster-id accord-single" in output


def test_a_term_out_of_range_on_disk_refuses_to_start(tmp_path: Path) -> None:
    node = SingleNode(tmp_path / "n")
    node.start()
    node.stop()
    with FileStorage(node.config.data_dir / "raft") as storage:
        state = storage.load().hard_state
        storage.save(dataclasses.replace(state, term=(1 << 64) - 1, vote=0), [])
    code, output = node.run_to_exit()
    assert code != 0 and "is beyond the bound" in output and "Traceback" not in output


def _status(node: SingleNode) -> dict[str, object]:
    code, body, _ = http("GET", f"{node.url}/v1/cluster/status")
    assert code == 200, body
    status: dict[str, object] = json.loads(body)
    return status


def test_a_plaintext_peer_cannot_crash_a_node_with_a_huge_term(tmp_path: Path) -> None:
    """The reproducer: HEARTBEAT with term 2^64-1 made every node exit with code 70."""
    node = SingleNode(tmp_path / "n", SecurityConfig(insecure_peers=True))
    node.start()
    try:
        term = _status(node)["term"]
        for forged_term in ((1 << 64) - 1, 1 << 63, RAFT_TERM_MAX + 1):
            # The wire layout of a frame of one message (see accord.transport.codec),
            # packed by hand: the codec's encoder would never produce these.
            heartbeat = int(MessageType.HEARTBEAT)
            message = [heartbeat, 0, 2, 1, forged_term, 0, 0, [], 0, False, 0, b"", None, 0]
            fields = [message]
            with socket.create_connection(node.config.peer, timeout=5) as s:
                s.sendall(encode_frame(encode_hello(Hello("accord-single", 2, 1))))
                reply = FrameDecoder(1 << 16)
                while not (frames := reply.feed(s.recv(4096))):
                    pass
                assert decode_hello_reply(frames[0]).accepted  # plaintext: anyone may talk
                s.sendall(encode_frame(msgpack.packb(fields, use_bin_type=True)))
                while s.recv(4096):  # the node closes the connection: a protocol error
                    pass
        assert _status(node)["term"] == term
        assert node.proc is not None and node.proc.poll() is None
    finally:
        output = node.stop()
    assert "term: expected an integer in [0, 4611686018427387904]" in output
