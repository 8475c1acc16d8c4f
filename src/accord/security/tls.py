"""TLS contexts for a node's three listeners and its outgoing connections, and what a
verified peer certificate says about who is on the other end.

- peers: mutual TLS, both ends verified against the peer CA; the handshake fails
  for a certificate from another CA or a self-signed one. A certificate from the right
  CA that is not a node's (see `accord.security.certs.NODE_UNIT`), or that names no
  node id and cluster id, is refused right after the handshake by the peer transport;
  a hello claiming another id than the certificate's is refused too.
- client ports (HTTP and native): the node's certificate; client certificates are
  required with `client_cert_auth`, otherwise optional (when given they must verify,
  and their common name can authenticate the user).
- a follower forwarding to the leader: the node's certificate as a client certificate.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from accord.security.certs import NODE_UNIT, parse_node_uri
from accord.security.errors import SecurityError

Files = tuple[Path, Path, Path]
"""(CA certificate, certificate, key), PEM files."""


def _base(purpose: ssl.Purpose, files: Files) -> ssl.SSLContext:
    ca, cert, key = files
    context = ssl.create_default_context(purpose, cafile=str(ca))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert), str(key))
    return context


def _checked(build: Any, files: Files) -> ssl.SSLContext:
    try:
        context: ssl.SSLContext = build()
    except (OSError, ssl.SSLError, ValueError) as exc:
        ca, cert, key = files
        raise SecurityError(
            f"cannot load TLS material (CA {ca}, certificate {cert}, key {key}): {exc}"
        ) from exc
    return context


def peer_server_context(files: Files) -> ssl.SSLContext:
    """The Raft listener: a certificate from the peer CA is required."""

    def build() -> ssl.SSLContext:
        context = _base(ssl.Purpose.CLIENT_AUTH, files)
        context.verify_mode = ssl.CERT_REQUIRED
        return context

    return _checked(build, files)


def client_context_for_node(files: Files) -> ssl.SSLContext:
    """Outgoing: to peers (peer files) or, forwarding, to the leader's HTTP port
    (client-port files)."""
    return _checked(lambda: _base(ssl.Purpose.SERVER_AUTH, files), files)


def client_port_context(files: Files, client_cert_auth: bool) -> ssl.SSLContext:
    def build() -> ssl.SSLContext:
        context = _base(ssl.Purpose.CLIENT_AUTH, files)
        context.verify_mode = ssl.CERT_REQUIRED if client_cert_auth else ssl.CERT_OPTIONAL
        return context

    return _checked(build, files)


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


def node_identity(peercert: dict[str, Any] | None) -> tuple[str, int] | None:
    """(cluster id, node id) a verified node certificate names (its one `node_uri`);
    None for a client's certificate or a node certificate that names no node."""
    if not is_node_certificate(peercert):
        return None
    names = (peercert or {}).get("subjectAltName", ())
    found = {parse_node_uri(value) for kind, value in names if kind == "URI"}
    found.discard(None)
    return found.pop() if len(found) == 1 else None
