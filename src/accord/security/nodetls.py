"""The TLS contexts one node needs, built once from its `[security]` settings.

Peer links and client ports are separate: peers use mutual TLS with the peer files
(`SecurityConfig.peer_tls_files`) unless `insecure_peers` says otherwise, client ports
use TLS only with the tls_* files. A node refuses to build plaintext peer links it was
not told to accept, and refuses a peer certificate of its own that does not name its
node id and cluster id (peers would refuse it).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from accord.security import tls
from accord.security.certs import certificate_identity, node_uri
from accord.security.config import SecurityConfig
from accord.security.errors import SecurityError

INSECURE_PEERS_WARNING = (
    "INSECURE PEERS: insecure_peers = true, peer links are plaintext and unauthenticated; "
    "anyone who can reach the peer port can speak Raft to this node (forge terms, entries, "
    "depose the leader). Use it only on a network no one else can reach."
)


@dataclass(frozen=True, slots=True)
class PeerTls:
    server: ssl.SSLContext
    """The Raft listener: mutual TLS."""
    client: ssl.SSLContext
    """Dialing peers."""
    cluster_id: str
    """Peers' certificates must name this cluster id (and the id they claim)."""


@dataclass(frozen=True, slots=True)
class NodeTls:
    client_ports: ssl.SSLContext | None
    """HTTP and native listeners (None: plaintext)."""
    forwarding: ssl.SSLContext | None
    """Forwarding to the leader's HTTP port (None: plaintext)."""
    peers: PeerTls | None
    """Peer links (None only with insecure_peers)."""

    @staticmethod
    def build(config: SecurityConfig, node_id: int, cluster_id: str) -> NodeTls:
        client_files = None
        if config.tls_ca and config.tls_cert and config.tls_key:
            client_files = (config.tls_ca, config.tls_cert, config.tls_key)
        return NodeTls(
            client_ports=(
                tls.client_port_context(client_files, config.client_cert_auth)
                if client_files
                else None
            ),
            forwarding=tls.client_context_for_node(client_files) if client_files else None,
            peers=_peer_tls(config, node_id, cluster_id),
        )


def _peer_tls(config: SecurityConfig, node_id: int, cluster_id: str) -> PeerTls | None:
    files = config.peer_tls_files
    if files is None:
        if not config.insecure_peers:
            raise SecurityError(
                "peer links need mutual TLS: set peer_ca, peer_cert and peer_key in "
                "[security] (`accord certs issue --node NAME --id ID --cluster-id CLUSTER`), "
                "or set insecure_peers = true to run them in plaintext"
            )
        return None
    cert = files[1]
    named = certificate_identity(cert)
    if named != (cluster_id, node_id):
        found = "names no node" if named is None else f"names {node_uri(*named)}"
        raise SecurityError(
            f"the peer certificate {cert} {found}, but this node is "
            f"{node_uri(cluster_id, node_id)}: issue one with `accord certs issue --node NAME "
            f"--id {node_id} --cluster-id {cluster_id}`"
        )
    return PeerTls(tls.peer_server_context(files), tls.client_context_for_node(files), cluster_id)
