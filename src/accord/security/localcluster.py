"""The TLS material `accord up` makes for a local cluster.

Always, for mutual TLS between peers (with or without `--secure`), in `DIR/peers/`:

    ca.crt, ca.key                  the peer CA (signs node certificates only)
    node-nK.crt, node-nK.key        each node's peer certificate, naming its node id
                                    and cluster id

With `--secure`, everything on for the client ports too, in `DIR/secure/`:

    ca.crt, ca.key                  the cluster CA
    node-nK.crt, node-nK.key        each node's certificate (TLS, mutual TLS for peers)
    client-root.crt, client-root.key   a client certificate for root
    encryption.key                  the key for encryption at rest (0600)
    root.password                   root's password (0600), also printed once

and `DIR/client.env` (0600): the `ACCORD_*` variables that point the `accord`
commands and `accord.security.clientenv` at the cluster as root.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path

from accord.security.certs import init_ca, issue
from accord.security.config import SecurityConfig
from accord.security.keys import write_key_file

SECURE_DIR = "secure"
PEERS_DIR = "peers"


def create_peer_material(
    root: Path,
    cluster_id: str,
    nodes: Mapping[int, str],
    hosts: Mapping[int, Sequence[str]] | None = None,
) -> dict[int, tuple[Path, Path, Path]]:
    """Each node's (peer CA, certificate, key) under `root/peers/`, for `nodes` (id ->
    name), valid for 127.0.0.1, localhost and the node's `hosts` (the addresses peers
    dial it at). The CA is made unless it exists (a directory from before peers were
    authenticated has none); certificates are issued anew."""
    directory = root / PEERS_DIR
    if not (directory / "ca.crt").exists():
        init_ca(directory, name=f"Accord peer CA ({cluster_id})")
    files = {}
    for node_id, name in nodes.items():
        cert, key = issue(
            directory,
            name,
            node=True,
            hosts=(hosts or {}).get(node_id, ()),
            node_id=node_id,
            cluster_id=cluster_id,
        )
        files[node_id] = (directory / "ca.crt", cert, key)
    return files


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)


def create_secure_material(
    root: Path, node_names: list[str]
) -> tuple[dict[str, SecurityConfig], str]:
    """Create the CA, certificates, key and root password; each node's `[security]`
    settings and root's password (to print once)."""
    directory = root / SECURE_DIR
    init_ca(directory)
    write_key_file(directory / "encryption.key")
    password = secrets.token_urlsafe(18)
    _write_private(directory / "root.password", password + "\n")
    issue(directory, "root", node=False)
    configs = {}
    for name in node_names:
        cert, key = issue(directory, name, node=True)
        configs[name] = SecurityConfig(
            encryption_key_file=directory / "encryption.key",
            tls_ca=directory / "ca.crt",
            tls_cert=cert,
            tls_key=key,
            auth=True,
            root_password_file=directory / "root.password",
        )
    return configs, password


def write_client_env(root: Path, endpoints: list[str], password: str) -> Path:
    directory = root / SECURE_DIR
    lines = [
        f"ACCORD_ENDPOINTS={','.join(endpoints)}",
        f"ACCORD_CACERT={directory / 'ca.crt'}",
        "ACCORD_USER=root",
        f"ACCORD_PASSWORD={password}",
    ]
    path = root / "client.env"
    _write_private(path, "\n".join(f"export {line}" for line in lines) + "\n")
    return path
