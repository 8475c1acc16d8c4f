"""TLS contexts for a node's three listeners and its outgoing connections, and what a
verified peer certificate says about who is on the other end.

- peers: mutual TLS, both ends verified against the cluster CA; the handshake fails
  for a certificate from another CA or a self-signed one. A certificate from the right
  CA that is not a node's (see `accord.security.certs.NODE_UNIT`) is refused right
  after the handshake by the peer transport.
- client ports (HTTP and native): the node's certificate; client certificates are
  required with `client_cert_auth`, otherwise optional (when given they must verify,
  and their common name can authenticate the user).
- a follower forwarding to the leader: the node's certificate as a client certificate.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from accord.security.certs import NODE_UNIT
from accord.security.config import SecurityConfig
from accord.security.errors import SecurityError


def _base(purpose: ssl.Purpose, config: SecurityConfig) -> ssl.SSLContext:
    assert config.tls_ca and config.tls_cert and config.tls_key
    context = ssl.create_default_context(purpose, cafile=str(config.tls_ca))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(config.tls_cert), str(config.tls_key))
    return context


def _checked(build: Any, config: SecurityConfig) -> ssl.SSLContext:
    try:
        context: ssl.SSLContext = build()
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise SecurityError(
            f"cannot load TLS material (tls_ca {config.tls_ca}, tls_cert {config.tls_cert}, "
            f"tls_key {config.tls_key}): {exc}"
        ) from exc
    return context


def peer_server_context(config: SecurityConfig) -> ssl.SSLContext:
    def build() -> ssl.SSLContext:
        context = _base(ssl.Purpose.CLIENT_AUTH, config)
        context.verify_mode = ssl.CERT_REQUIRED
        return context

    return _checked(build, config)


def client_context_for_node(config: SecurityConfig) -> ssl.SSLContext:
    """Outgoing: to peers and (forwarding) to the leader's HTTP port."""
    return _checked(lambda: _base(ssl.Purpose.SERVER_AUTH, config), config)


def client_port_context(config: SecurityConfig) -> ssl.SSLContext:
    def build() -> ssl.SSLContext:
        context = _base(ssl.Purpose.CLIENT_AUTH, config)
        context.verify_mode = ssl.CERT_REQUIRED if config.client_cert_auth else ssl.CERT_OPTIONAL
        return context

    return _checked(build, config)


def client_tls(
    ca: str | Path, cert: str | Path | None = None, key: str | Path | None = None
) -> ssl.SSLContext:
    """A context for `AsyncClient(tls=...)`: trusts `ca`, presents `cert` if given."""
    context = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        context.load_cert_chain(str(cert), str(key) if key is not None else None)
    return context


def _subject(peercert: dict[str, Any] | None) -> dict[str, str]:
    fields: dict[str, str] = {}
    for rdn in (peercert or {}).get("subject", ()):
        for name, value in rdn:
            fields[name] = value
    return fields


def certificate_user(peercert: dict[str, Any] | None) -> str | None:
    """The common name of a verified client certificate (not a node's), else None."""
    subject = _subject(peercert)
    if subject.get("organizationalUnitName") == NODE_UNIT:
        return None
    return subject.get("commonName")


def is_node_certificate(peercert: dict[str, Any] | None) -> bool:
    return _subject(peercert).get("organizationalUnitName") == NODE_UNIT


def node_certificate_name(peercert: dict[str, Any] | None) -> str | None:
    return _subject(peercert).get("commonName") if is_node_certificate(peercert) else None
