"""Class 1: an outsider on the peer port.

Each reproducer speaks the peer protocol with the project's own encoders
(`encode_hello`, `encode_batch`, `encode_frame`), so it stays correct as the codec
evolves. A connection that is refused, at the TLS handshake or by a hello reply,
counts as held: the outsider never reached Raft. Otherwise the verdict is the effect
on the cluster: every node alive, the leader and term unchanged, no forged entry
applied, writes still served.
"""

from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass

from accord.chaos.hostile.outcome import Outcome, judge
from accord.chaos.localup import UpCluster, UpNode
from accord.kv.commands import Envelope, Put, encode_command
from accord.raft.types import Entry, EntryType, Message, MessageType
from accord.security.localcluster import PEERS_DIR
from accord.security.tls import client_context_for_node
from accord.transport.codec import Hello, decode_hello_reply, encode_batch, encode_hello
from accord.transport.errors import TransportError
from accord.transport.framing import FrameDecoder, encode_frame
from accord.transport.peer import REFUSAL_REASON

PEER_TIMEOUT_S = 3.0
EFFECT_WAIT_S = 3.0
"""How long a reproducer watches for the effect of what it sent."""
LEADER_WAIT_S = 15.0
TERM_MAX = (1 << 64) - 1
FORGED_KEY = b"injected"
FORGED_VALUE = b"forged-by-outsider"


@dataclass
class PeerAnswer:
    accepted: bool
    reason: str
    """The refusal reason, or the error that ended the connection."""


def speak(
    node: UpNode,
    hello: Hello,
    messages: list[Message],
    context: ssl.SSLContext | None = None,
) -> PeerAnswer:
    """Open a peer connection to `node`, say `hello`, then send `messages` if accepted."""
    try:
        with socket.create_connection(node.peer, timeout=PEER_TIMEOUT_S) as raw:
            host = node.peer[0]
            sock = raw if context is None else context.wrap_socket(raw, server_hostname=host)
            sock.sendall(encode_frame(encode_hello(hello)))
            reply = decode_hello_reply(_read_frame(sock))
            if not reply.accepted:
                return PeerAnswer(False, reply.reason)
            for message in messages:
                sock.sendall(encode_frame(encode_batch([message])))
            time.sleep(0.2)  # let the listener read the frames before the close
            return PeerAnswer(True, "")
    except (OSError, TransportError, ValueError) as exc:
        return PeerAnswer(False, f"{type(exc).__name__}: {exc}"[:200])


def _read_frame(sock: socket.socket) -> bytes:
    decoder = FrameDecoder()
    while True:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed before the hello reply")
        frames = decoder.feed(data)
        if frames:
            return frames[0]


def heartbeat(src: int, dst: int, term: int) -> Message:
    return Message(type=MessageType.HEARTBEAT, group=0, src=src, dst=dst, term=term)


def _roles(cluster: UpCluster) -> tuple[UpNode, UpNode, int]:
    """(leader, a follower, term), after waiting for a leader."""
    found = cluster.leader(LEADER_WAIT_S)
    if found is None:
        raise RuntimeError("no leader before the reproducer")
    leader_id, term = found
    follower = next(n for n in cluster.nodes if n.id != leader_id)
    return cluster.node(leader_id), follower, term


def _watch_health(cluster: UpCluster, failures: list[str]) -> dict[str, object]:
    """Watch the nodes for EFFECT_WAIT_S, then check that a write is served."""
    time.sleep(EFFECT_WAIT_S)  # an observation window: nodes that crash do it within it
    exits = cluster.exit_codes()
    dead = [name for name, up in cluster.alive().items() if not up]
    if dead:
        failures.append(f"nodes exited: {exits or dead}")
    write = cluster.put("hostile/after-peer", b"ok", timeout_s=5.0) if not dead else 0
    if write != 200 and len(dead) < len(cluster.nodes):
        failures.append(f"a write after it answered {write}")
    return {"dead": dead, "exit_codes": exits, "write_status": write}


def plaintext_hello(cluster: UpCluster) -> Outcome:
    leader, follower, _ = _roles(cluster)
    answer = speak(leader, Hello(cluster.cluster_id, follower.id, leader.id), [])
    failures = ["a plaintext hello with no credentials was accepted"] if answer.accepted else []
    return judge(
        1,
        "peer_plaintext_hello",
        "plaintext hello with the right cluster id to the leader's peer port",
        failures,
        accepted=answer.accepted,
        reason=answer.reason,
    )


def refused_hello_leak(cluster: UpCluster) -> Outcome:
    node = cluster.nodes[0]
    answer = speak(node, Hello("not-this-cluster", 99, node.id), [])
    leaked = cluster.cluster_id in answer.reason
    failures = [f"the refusal names the cluster id {cluster.cluster_id!r}"] if leaked else []
    return judge(
        1,
        "peer_refusal_leak",
        "hello with a wrong cluster id; does the refusal reveal the real one?",
        failures,
        accepted=answer.accepted,
        reason=answer.reason,
    )


def heartbeat_depose(cluster: UpCluster) -> Outcome:
    leader, follower, term = _roles(cluster)
    hello = Hello(cluster.cluster_id, follower.id, leader.id)
    answer = speak(leader, hello, [heartbeat(follower.id, leader.id, 1000)])
    time.sleep(EFFECT_WAIT_S)  # an observation window: a deposed leader shows within it
    after = cluster.leader(LEADER_WAIT_S)
    failures = []
    if after != (leader.id, term):
        failures.append(f"leader/term went from {(leader.id, term)} to {after}")
    return judge(
        1,
        "peer_heartbeat_term_1000",
        f"HEARTBEAT term 1000 from 'n{follower.id}' to the leader n{leader.id}",
        failures,
        accepted=answer.accepted,
        reason=answer.reason,
        leader_term_before=(leader.id, term),
        leader_term_after=after,
    )


def forged_append(cluster: UpCluster) -> Outcome:
    leader, follower, term = _roles(cluster)
    status = cluster.status(follower) or {}
    commit = int(status.get("commit", 0))
    data = encode_command(Envelope(0, 0, Put(FORGED_KEY, FORGED_VALUE)))
    append = Message(
        type=MessageType.APPEND,
        group=0,
        src=leader.id,
        dst=follower.id,
        term=term + 1,
        log_term=term,
        index=commit,
        entries=(Entry(term + 1, commit + 1, EntryType.NORMAL, data),),
        commit=commit + 1,
    )
    answer = speak(follower, Hello(cluster.cluster_id, leader.id, follower.id), [append])
    applied = _forged_visible(cluster, follower)
    failures = [f"n{follower.id} applied {FORGED_KEY.decode()}={FORGED_VALUE.decode()}"]
    failures = failures if applied else []
    health = _watch_health(cluster, failures)
    return judge(
        1,
        "peer_forged_append",
        f"APPEND term {term + 1} 'from n{leader.id}' with a forged put to n{follower.id}",
        failures,
        accepted=answer.accepted,
        reason=answer.reason,
        forged_applied=applied,
        leader_term_after=cluster.leader(LEADER_WAIT_S),
        **health,
    )


def _forged_visible(cluster: UpCluster, node: UpNode) -> bool:
    path = f"/v1/kv/{FORGED_KEY.decode()}?consistency=serializable"
    deadline = time.monotonic() + EFFECT_WAIT_S
    while time.monotonic() < deadline:
        try:
            response = cluster.http(node, "GET", path, timeout_s=2.0)
        except OSError:
            return False
        if response.status == 200 and response.body == FORGED_VALUE:
            return True
        time.sleep(0.2)
    return False


def term_overflow(cluster: UpCluster) -> Outcome:
    leader, follower, _ = _roles(cluster)
    hello = Hello(cluster.cluster_id, leader.id, follower.id)
    answer = speak(follower, hello, [heartbeat(leader.id, follower.id, TERM_MAX)])
    failures: list[str] = []
    health = _watch_health(cluster, failures)
    return judge(
        1,
        "peer_term_2^64-1",
        f"HEARTBEAT term 2^64-1 'from n{leader.id}' to n{follower.id}",
        failures,
        accepted=answer.accepted,
        reason=answer.reason,
        **health,
    )


def cert_claims_other_id(cluster: UpCluster) -> Outcome:
    """A valid peer certificate (of node A, from the cluster's peer CA) in a hello
    claiming node B: it must pass TLS and be refused by the identity check."""
    leader, _, term = _roles(cluster)
    others = [n for n in cluster.nodes if n.id != leader.id]
    holder, claimed = others[0], others[-1] if len(others) > 1 else others[0]
    peers = cluster.directory / PEERS_DIR
    context = client_context_for_node(
        (peers / "ca.crt", peers / f"node-{holder.name}.crt", peers / f"node-{holder.name}.key")
    )
    hello = Hello(cluster.cluster_id, claimed.id + (holder.id == claimed.id), leader.id)
    message = heartbeat(hello.src, leader.id, term + 5)
    answer = speak(leader, hello, [message], context)
    time.sleep(EFFECT_WAIT_S)
    after = cluster.leader(LEADER_WAIT_S)
    failures = []
    if answer.accepted:
        failures.append(f"{holder.name}'s certificate was accepted as node {hello.src}")
    elif answer.reason != REFUSAL_REASON:  # refused by TLS: the check was never reached
        failures.append(f"refused before the identity check: {answer.reason}")
    if after != (leader.id, term):
        failures.append(f"leader/term went from {(leader.id, term)} to {after}")
    return judge(
        1,
        "peer_cert_other_id",
        f"TLS with {holder.name}'s node certificate, hello as node {hello.src}, "
        f"HEARTBEAT term {term + 5} to the leader",
        failures,
        accepted=answer.accepted,
        reason=answer.reason,
        leader_term_before=(leader.id, term),
        leader_term_after=after,
    )
