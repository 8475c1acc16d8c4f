"""Peer certificates for tests that write node configurations by hand.

`with_peer_tls(security, directory, cluster_id, nodes)` makes a peer CA and a
certificate per node (id -> name) under `directory/peers/` (as `accord up` does) and
returns each node's `security` with the peer settings added.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

from accord.security.config import SecurityConfig
from accord.security.localcluster import create_peer_material


def with_peer_tls(
    security: SecurityConfig, directory: Path, cluster_id: str, nodes: Mapping[int, str]
) -> dict[int, SecurityConfig]:
    files = create_peer_material(directory, cluster_id, nodes)
    return {
        node_id: dataclasses.replace(security, peer_ca=ca, peer_cert=cert, peer_key=key)
        for node_id, (ca, cert, key) in files.items()
    }
