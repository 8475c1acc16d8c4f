"""TLS material for a cluster: a CA, node certificates and client certificates.

Layout of a certificate directory (what `accord certs` writes):

    ca.crt, ca.key                 the cluster CA (keep ca.key offline in production)
    node-NAME.crt, node-NAME.key   a node: server and client auth (peers use mutual TLS)
    client-NAME.crt, client-NAME.key   a client; its common name is the user name

Keys are ECDSA P-256 and written 0600. A node certificate's subject alternative names
are its name, `localhost`, `127.0.0.1` and any `--host` given, and the URI
`accord://CLUSTER/node/ID` (`node_uri`) naming the node's id and its cluster id: a peer
may only claim, in its handshake, the id and cluster its certificate names. Its
organizational unit is `NODE_UNIT`, which is how a node tells a peer's certificate
from a client's (both may come from the same CA, and only nodes may speak Raft).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import urllib.parse
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from accord.raft.limits import RAFT_NODE_ID_MAX
from accord.security.errors import SecurityError

NODE_UNIT = "accord-node"
CLIENT_UNIT = "accord-client"
CA_DAYS = 3650
CERT_DAYS = 825
NODE_URI_SCHEME = "accord"


def node_uri(cluster_id: str, node_id: int) -> str:
    """The URI a node certificate carries: `accord://CLUSTER/node/ID` (the cluster id
    percent-encoded, so any id the configuration allows fits)."""
    return f"{NODE_URI_SCHEME}://{urllib.parse.quote(cluster_id, safe='')}/node/{node_id}"


def parse_node_uri(uri: str) -> tuple[str, int] | None:
    """(cluster id, node id) from a `node_uri`, or None for any other URI."""
    parts = urllib.parse.urlsplit(uri)
    prefix, _, digits = parts.path.rpartition("/")
    if parts.scheme != NODE_URI_SCHEME or prefix != "/node" or parts.query or parts.fragment:
        return None
    if not (digits.isascii() and digits.isdigit() and len(digits) <= 19) or int(digits) <= 0:
        return None
    return urllib.parse.unquote(parts.netloc), int(digits)


def certificate_identity(path: Path) -> tuple[str, int] | None:
    """(cluster id, node id) named by the node certificate at `path`, or None."""
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise SecurityError(f"cannot read the certificate {path}: {exc}") from exc
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    found = {parse_node_uri(u) for u in names.get_values_for_type(x509.UniformResourceIdentifier)}
    found.discard(None)
    return found.pop() if len(found) == 1 else None


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
    os.chmod(path, 0o600)  # an existing file keeps its mode through O_CREAT


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def init_ca(directory: Path, name: str = "Accord cluster CA") -> Path:
    """Create `directory/ca.crt` and `ca.key`; refuses to overwrite an existing CA."""
    directory.mkdir(parents=True, exist_ok=True)
    cert_path = directory / "ca.crt"
    if cert_path.exists() or (directory / "ca.key").exists():
        raise SecurityError(f"{directory} already holds a CA; use another directory")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(directory / "ca.key", _key_pem(key))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path


def _load_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    try:
        cert = x509.load_pem_x509_certificate((directory / "ca.crt").read_bytes())
        key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), None)
    except (OSError, ValueError) as exc:
        raise SecurityError(f"cannot load the CA from {directory}: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise SecurityError(f"{directory / 'ca.key'} is not an EC key")
    return cert, key


def _alt_names(
    name: str, hosts: Sequence[str], identity: tuple[str, int] | None
) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys([name, "localhost", "127.0.0.1", *hosts]):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    if identity is not None:
        names.append(x509.UniformResourceIdentifier(node_uri(*identity)))
    return names


def issue(
    directory: Path,
    name: str,
    *,
    node: bool,
    hosts: Sequence[str] = (),
    node_id: int | None = None,
    cluster_id: str | None = None,
) -> tuple[Path, Path]:
    """Issue a node (or client) certificate signed by the CA in `directory`;
    returns the (certificate, key) paths. A node certificate names `node_id` and
    `cluster_id` (both or neither; without them no node accepts it on a peer link)."""
    if not name or not all(c.isalnum() or c in "-_." for c in name):
        raise SecurityError(f"certificate names use letters, digits, '-', '_', '.': {name!r}")
    identity = _identity(node, node_id, cluster_id)
    ca_cert, ca_key = _load_ca(directory)
    key = ec.generate_private_key(ec.SECP256R1())
    unit = NODE_UNIT if node else CLIENT_UNIT
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit),
            x509.NameAttribute(NameOID.COMMON_NAME, name),
        ]
    )
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
    if node:
        usages.insert(0, ExtendedKeyUsageOID.SERVER_AUTH)
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CERT_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if node:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(_alt_names(name, hosts, identity)), critical=False
        )
    cert = builder.sign(ca_key, hashes.SHA256())
    stem = f"{'node' if node else 'client'}-{name}"
    cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
    _write_private(key_path, _key_pem(key))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def _identity(node: bool, node_id: int | None, cluster_id: str | None) -> tuple[str, int] | None:
    if node_id is None and cluster_id is None:
        return None
    if not node:
        raise SecurityError("only a node certificate names a node id and a cluster id")
    if node_id is None or not cluster_id:
        raise SecurityError("a node certificate names both a node id and a cluster id")
    if not 0 < node_id <= RAFT_NODE_ID_MAX:
        raise SecurityError(f"node id must be in 1..{RAFT_NODE_ID_MAX}, got {node_id}")
    return cluster_id, node_id
