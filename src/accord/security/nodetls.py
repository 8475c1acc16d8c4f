"""The TLS contexts one node needs, built once from its `[security]` settings."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

from accord.security import tls
from accord.security.config import SecurityConfig


@dataclass(frozen=True, slots=True)
class NodeTls:
    client_ports: ssl.SSLContext
    """HTTP and native listeners."""
    peer_server: ssl.SSLContext
    """The Raft listener: mutual TLS."""
    outgoing: ssl.SSLContext
    """Dialing peers, and forwarding to the leader's HTTP port."""

    @staticmethod
    def build(config: SecurityConfig) -> NodeTls | None:
        if not config.tls:
            return None
        return NodeTls(
            client_ports=tls.client_port_context(config),
            peer_server=tls.peer_server_context(config),
            outgoing=tls.client_context_for_node(config),
        )

    @staticmethod
    def accept_peer(peercert: Any) -> bool:
        """Only a node's certificate may open a Raft connection."""
        return tls.is_node_certificate(peercert)
