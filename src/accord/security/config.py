"""The `[security]` table of a node's configuration.

Every setting can also come from the environment as `ACCORD_<KEY>` (upper-cased), which
overrides the file, like the node's other settings. Secrets themselves never go into
the file: the encryption key comes from `encryption_key_file` or `ACCORD_ENCRYPTION_KEY`
(see `accord.security.keys`), the root password from `root_password_file` or
`ACCORD_ROOT_PASSWORD`.

| key                    | default | meaning                                              |
|------------------------|---------|------------------------------------------------------|
| encryption_key_file    | -       | key file for encryption at rest (base64 keys)        |
| tls_ca                 | -       | CA certificate (PEM) that signs nodes' and clients'   |
| tls_cert, tls_key      | -       | this node's certificate and key; with tls_ca: TLS on  |
|                        |         | the HTTP and native ports, mutual TLS between peers   |
| client_cert_auth       | false   | client ports require a certificate from the CA        |
| auth                   | false   | users, passwords, tokens and RBAC on the client APIs  |
| root_password_file     | -       | the root user's password when auth is bootstrapped    |
| token_ttl_s            | 3600    | lifetime of a login token                             |
| connections_max        | 1024    | open connections per client port                     |
| rate_limit_rps         | 0       | requests per second per client (0: unlimited)        |
| rate_limit_burst       | 100     | requests a client may send at once above the rate    |
| read_timeout_s         | 30      | HTTP headers/body and native partial frames must     |
|                        |         | arrive within this (slow clients are cut off)        |
| idle_timeout_s         | 30      | a connection with no request in progress (HTTP:      |
|                        |         | none begun, native: none in flight and no watch)     |
|                        |         | for this long is closed                              |
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from accord.security.errors import SecurityError

TABLE = "security"


@dataclass(frozen=True, slots=True)
class SecurityConfig:
    encryption_key_file: Path | None = None
    encryption_key: str | None = None
    """Key text from ACCORD_ENCRYPTION_KEY (never rendered into a file)."""
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    client_cert_auth: bool = False
    auth: bool = False
    root_password_file: Path | None = None
    root_password: str | None = None
    """From ACCORD_ROOT_PASSWORD (never rendered into a file)."""
    token_ttl_s: int = 3600
    connections_max: int = 1024
    rate_limit_rps: float = 0.0
    rate_limit_burst: int = 100
    read_timeout_s: float = 30.0
    idle_timeout_s: float = 30.0

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None


_SECRETS = {"encryption_key": "ACCORD_ENCRYPTION_KEY", "root_password": "ACCORD_ROOT_PASSWORD"}
_KINDS = {f.name: f.type for f in fields(SecurityConfig)}


def _coerce(key: str, value: Any) -> Any:
    kind = str(_KINDS[key])
    number: int | float
    try:
        if "Path" in kind:
            return Path(str(value)) if str(value) else None
        if kind == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).lower()
            if text not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError(value)
            return text in ("1", "true", "yes")
        if kind == "int":
            if isinstance(value, bool):
                raise ValueError(value)
            number = int(value)
        elif kind == "float":
            if isinstance(value, bool):
                raise ValueError(value)
            number = float(value)
        else:
            return str(value)
    except (TypeError, ValueError):
        raise SecurityError(f"security.{key}: bad value {value!r}") from None
    if number < 0 or number != number:
        raise SecurityError(f"security.{key}: must not be negative, got {value!r}")
    return number


def parse_security(raw: Any, env: Mapping[str, str] | None = None) -> SecurityConfig:
    """Validate the `[security]` table, overridden by `ACCORD_<KEY>` variables."""
    env = os.environ if env is None else env
    if not isinstance(raw, Mapping):
        raise SecurityError("security: expected a table")
    unknown = set(raw) - set(_KINDS) - set(_SECRETS)
    if unknown or set(raw) & set(_SECRETS):
        bad = sorted(unknown | (set(raw) & set(_SECRETS)))
        raise SecurityError(f"unknown security settings: {', '.join(bad)}")
    values = {key: _coerce(key, value) for key, value in raw.items()}
    for key in _KINDS:
        variable = _SECRETS.get(key, f"ACCORD_{key.upper()}")
        if env.get(variable):
            values[key] = _coerce(key, env[variable])
    config = SecurityConfig(**values)
    tls_files = (config.tls_ca, config.tls_cert, config.tls_key)
    if any(tls_files) and not all(tls_files):
        raise SecurityError("security: tls_ca, tls_cert and tls_key go together")
    if config.client_cert_auth and not config.tls:
        raise SecurityError("security: client_cert_auth needs TLS (tls_ca, tls_cert, tls_key)")
    timeouts_s = (config.read_timeout_s, config.idle_timeout_s)
    if config.connections_max < 1 or min(timeouts_s) <= 0 or config.token_ttl_s < 1:
        raise SecurityError(
            "security: connections_max, read_timeout_s, idle_timeout_s, token_ttl_s must be > 0"
        )
    return config


def render_security(config: SecurityConfig) -> str:
    """The `[security]` table for `config` (empty when every setting is the default)."""
    lines = []
    default = SecurityConfig()
    for f in fields(SecurityConfig):
        value = getattr(config, f.name)
        if f.name in _SECRETS or value == getattr(default, f.name):
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int | float):
            text = repr(value)
        else:
            text = json.dumps(str(value))
        lines.append(f"{f.name} = {text}")
    return "\n".join(["", f"[{TABLE}]", *lines, ""]) if lines else ""
