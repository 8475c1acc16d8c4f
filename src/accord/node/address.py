"""Members' addresses: `Member` (a member's id, name and ports), `HOST:PORT` parsing
and the native endpoint's URL, and `ConfigError` for a bad setting or address.

The node's runtime and the API need these (the member registry, membership changes
over HTTP) without the rest of the node's configuration, which `accord.server.config`
reads and validates.
"""

from __future__ import annotations

from dataclasses import dataclass

from accord.errors import AccordError


class ConfigError(AccordError):
    """The node's configuration is missing something or holds a bad value."""

    code = "bad_config"


@dataclass(frozen=True, slots=True)
class Member:
    id: int
    name: str
    peer: tuple[str, int]
    client: tuple[str, int]
    native: tuple[str, int] | None = None
    tls: bool = False
    """Its client ports speak TLS (https://, accords://); the same for the whole cluster."""

    @property
    def client_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.client[0]}:{self.client[1]}"

    @property
    def native_url(self) -> str | None:
        return native_url(self.native, self.tls)


def native_url(address: tuple[str, int] | None, tls: bool = False) -> str | None:
    """`accord://host:port` (`accords://` with TLS), the form clients take for a native
    endpoint."""
    return f"{'accords' if tls else 'accord'}://{address[0]}:{address[1]}" if address else None


def parse_address(value: str, what: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    valid_port = port.isascii() and port.isdigit() and len(port) <= 5
    if not sep or not host or not valid_port or not 0 < int(port) < 65536:
        raise ConfigError(f"{what}: expected HOST:PORT with a port in 1..65535, got {value!r}")
    return host, int(port)
