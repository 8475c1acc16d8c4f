"""The `[security]` table of a node's configuration.

Peer links and client ports are secured separately. A node refuses to start unless
its peer links use mutual TLS (peer_ca, peer_cert, peer_key; or, when those are
absent, the tls_* files, so one set of files may serve both) or `insecure_peers` says
explicitly that they may not. Client ports use TLS only with tls_ca/tls_cert/tls_key.

Every setting can also come from the environment as `ACCORD_<KEY>` (upper-cased), which
overrides the file, like the node's other settings. Secrets themselves never go into
the file: the encryption key comes from `encryption_key_file` or `ACCORD_ENCRYPTION_KEY`
(see `accord.security.keys`), the root password from `root_password_file` or
`ACCORD_ROOT_PASSWORD`.

| key                    | default | meaning                                              |
|------------------------|---------|------------------------------------------------------|
| encryption_key_file    | -       | key file for encryption at rest (base64 keys)        |
| peer_ca                | tls_ca  | CA certificate (PEM) that signs every node's peer     |
|                        |         | certificate                                           |
| peer_cert, peer_key    | tls_*   | this node's certificate (naming its node id and      |
|                        |         | cluster id, see `accord.security.certs`) and key:     |
|                        |         | mutual TLS on every peer link                         |
| insecure_peers         | false   | peer links in plaintext, even with peer_* set:       |
|                        |         | anyone who reaches the peer port can speak Raft       |
| tls_ca                 | -       | CA certificate (PEM) that signs clients' certificates |
| tls_cert, tls_key      | -       | this node's certificate and key for the client ports: |
|                        |         | with tls_ca, TLS on the HTTP and native ports         |
| client_cert_auth       | false   | client ports require a certificate from the CA        |
| auth                   | false   | users, passwords, tokens and RBAC on the client APIs  |
| root_password_file     | -       | the root user's password when auth is bootstrapped    |
| token_ttl_s            | 3600    | lifetime of a login token                             |
| connections_max        | 1024    | open connections per client port                     |
| rate_limit_rps         | 0       | requests per second per client (0: unlimited)        |
| rate_limit_burst       | 100     | requests a client may send at once above the rate    |
| read_timeout_s         | 30      | HTTP headers/body and native partial frames must     |
|                        |         | arrive within this (slow clients are cut off)        |
| login_source_rps       | 2       | login attempts per second per source address (0: no  |
| login_source_burst     | 30      | limit), and how many may come at once                |
| login_user_rps         | 1       | failed logins per second per user name, known or not |
| login_user_burst       | 10      | (0: no limit), and how many may come at once         |
| login_failures_max     | 5       | failures in a row for one (user, address) before it  |
|                        |         | is locked (0: never locked)                          |
| login_lockout_s        | 5       | the first lock; doubled by each further failure,     |
| login_lockout_max_s    | 900     | up to this; a success, or a quiet spell this long    |
|                        |         | after the lock, forgets the failures                 |
| login_entries_max      | 10000   | addresses, names and pairs the login limits remember |
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

from accord.security import limits
from accord.security.errors import SecurityError
from accord.security.loginlimit import LoginLimits

TABLE = "security"


@dataclass(frozen=True, slots=True)
class SecurityConfig:
    encryption_key_file: Path | None = None
    encryption_key: str | None = None
    """Key text from ACCORD_ENCRYPTION_KEY (never rendered into a file)."""
    peer_ca: Path | None = None
    peer_cert: Path | None = None
    peer_key: Path | None = None
    insecure_peers: bool = False
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    client_cert_auth: bool = False
    auth: bool = False
    root_password_file: Path | None = None
    root_password: str | None = None
    """From ACCORD_ROOT_PASSWORD (never rendered into a file)."""
    token_ttl_s: int = limits.TOKEN_TTL_S
    connections_max: int = limits.CONNECTIONS_MAX
    rate_limit_rps: float = limits.RATE_LIMIT_RPS
    rate_limit_burst: int = limits.RATE_LIMIT_BURST
    read_timeout_s: float = limits.READ_TIMEOUT_S
    login_source_rps: float = limits.LOGIN_SOURCE_RPS
    login_source_burst: int = limits.LOGIN_SOURCE_BURST
    login_user_rps: float = limits.LOGIN_USER_RPS
    login_user_burst: int = limits.LOGIN_USER_BURST
    login_failures_max: int = limits.LOGIN_FAILURES_MAX
    login_lockout_s: float = limits.LOGIN_LOCKOUT_S
    login_lockout_max_s: float = limits.LOGIN_LOCKOUT_S_MAX
    login_entries_max: int = limits.LOGIN_ENTRIES_MAX
    idle_timeout_s: float = limits.IDLE_TIMEOUT_S

    @property
    def tls(self) -> bool:
        """TLS on the client ports (HTTP and native)."""
        return self.tls_cert is not None

    @property
    def peer_tls_files(self) -> tuple[Path, Path, Path] | None:
        """(CA, certificate, key) for mutual TLS between peers; None: plaintext peers."""
        if self.insecure_peers:
            return None
        if self.peer_ca and self.peer_cert and self.peer_key:
            return self.peer_ca, self.peer_cert, self.peer_key
        if self.tls_ca and self.tls_cert and self.tls_key:
            return self.tls_ca, self.tls_cert, self.tls_key
        return None

    @property
    def login_limits(self) -> LoginLimits:
        return LoginLimits(
            source_rps=self.login_source_rps,
            source_burst=self.login_source_burst,
            user_rps=self.login_user_rps,
            user_burst=self.login_user_burst,
            failures_max=self.login_failures_max,
            lockout_s=self.login_lockout_s,
            lockout_max_s=self.login_lockout_max_s,
            entries_max=self.login_entries_max,
        )


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
    peer_files = (config.peer_ca, config.peer_cert, config.peer_key)
    if any(peer_files) and not all(peer_files):
        raise SecurityError("security: peer_ca, peer_cert and peer_key go together")

    if config.client_cert_auth and not config.tls:
        raise SecurityError("security: client_cert_auth needs TLS (tls_ca, tls_cert, tls_key)")
    timeouts_s = (config.read_timeout_s, config.idle_timeout_s)
    if config.connections_max < 1 or min(timeouts_s) <= 0 or config.token_ttl_s < 1:
        raise SecurityError(
            "security: connections_max, read_timeout_s, idle_timeout_s, token_ttl_s must be > 0"
        )
    _check_login_limits(config.login_limits)
    return config


def _check_login_limits(limits: LoginLimits) -> None:
    if min(limits.source_burst, limits.user_burst, limits.entries_max) < 1:
        raise SecurityError(
            "security: login_source_burst, login_user_burst, login_entries_max must be > 0"
        )
    if limits.failures_max and not 0 < limits.lockout_s <= limits.lockout_max_s:
        raise SecurityError("security: need 0 < login_lockout_s <= login_lockout_max_s")


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
