"""`accord up --secure`: everything on for a local cluster, with its material in
`DIR/secure/`:

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
from pathlib import Path

from accord.security.certs import init_ca, issue
from accord.security.config import SecurityConfig
from accord.security.keys import write_key_file

SECURE_DIR = "secure"


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
