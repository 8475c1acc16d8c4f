"""Node configuration: a TOML file, overridden by `ACCORD_*` environment variables,
overridden by command-line flags; validated into one frozen `NodeConfig`.

Example file (what `accord up` writes for each node):

    name = "n1"
    id = 1
    cluster_id = "accord-local"
    data_dir = "/tmp/accord/n1"
    client = "127.0.0.1:7001"        # HTTP API
    peer = "127.0.0.1:7101"          # Raft traffic
    native = "127.0.0.1:7201"        # native msgpack protocol (optional)
    tick_ms = 50
    election_ticks = 10
    log_format = "json"              # or "text"
    log_level = "info"
    tracing = "off"                  # or "console", "otlp" (OTEL_* variables)
    slow_request_ms = 1000           # requests slower than this are logged
    slow_fsync_ms = 100              # WAL syncs slower than this are logged
    leases_max = 1000000             # leases in the cluster (same on every node)
    leases_per_user_max = 100000     # leases one user holds (same on every node)
    response_bytes_max = 16777216    # what one range, txn or watch chunk may return
    read_keys_scanned_max = 100000   # keys the reads of one request may visit
    store_bytes_max = 1073741824     # the store's quota (same on every node)
    request_timeout_s = 5.0          # deadline of a request that names none
    pending_reads_max = 10000        # linearizable reads waiting in this node at once

    [members.1]
    name = "n1"
    peer = "127.0.0.1:7101"
    client = "127.0.0.1:7001"
    native = "127.0.0.1:7201"

    [dial]                           # optional: where to dial a peer instead of its
    2 = "127.0.0.1:9102"             # registered address (e.g. a fault-injecting proxy)

    [security]                       # mutual TLS between peers (accord.security.config):
    peer_ca = "/tmp/accord/peers/ca.crt"         # required, unless
    peer_cert = "/tmp/accord/peers/node-n1.crt"  # insecure_peers = true says the peer
    peer_key = "/tmp/accord/peers/node-n1.key"   # links may be plaintext

`response_bytes_max`, `read_keys_scanned_max` and `store_bytes_max` are state machine
bounds (`accord.kv.limits`): give every member of a cluster the same values, or members
could disagree about which transactions fail. Every setting's default and range is in
the limits table (`accord.limits`, docs/limits.md).

`dial` changes only where this node connects to reach a peer; the member registry,
which every node replicates, keeps the members' own addresses. The `debug_*` keys are
deliberate bugs for fault testing (off by default; never set them in production).

Environment variables use the upper-cased key: `ACCORD_CLIENT=127.0.0.1:7001`.

`Member`, `parse_address` and `ConfigError` are `accord.node.address`'s: the runtime
and the API need members' addresses without the rest of the configuration (the
`[security]` table above all, which the node's packages do not know).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accord.kv.limits import (
    LEASES_MAX,
    LEASES_PER_USER_MAX,
    READ_KEYS_SCANNED_MAX,
    RESPONSE_BYTES_CEILING,
    RESPONSE_BYTES_MAX,
    RESPONSE_BYTES_MIN,
    STORE_BYTES_MAX,
    STORE_BYTES_MIN,
)
from accord.node.address import ConfigError, Member, native_url, parse_address
from accord.node.limits import (
    PENDING_READS_CEILING,
    PENDING_READS_MAX,
    REQUEST_TIMEOUT_S,
    REQUEST_TIMEOUT_S_MAX,
    REQUEST_TIMEOUT_S_MIN,
    SLOW_FSYNC_MS,
    SLOW_REQUEST_MS,
    SNAPSHOT_ENTRIES,
    TICK_MS,
)
from accord.raft.limits import RAFT_ELECTION_TICKS
from accord.security.config import SecurityConfig, parse_security, render_security
from accord.shard.limits import (
    LABEL_BYTES_MAX,
    LABELS_MAX,
    NODE_DOWN_AFTER_S,
    NODE_DOWN_AFTER_S_MAX,
    NODE_DOWN_AFTER_S_MIN,
    SHARD_REPLICAS_MAX,
    SHARDS_PER_CLUSTER_MAX,
)

SCALAR_KEYS = {
    "name": str,
    "id": int,
    "cluster_id": str,
    "data_dir": str,
    "client": str,
    "peer": str,
    "native": str,
    "tick_ms": int,
    "election_ticks": int,
    "snapshot_entries": int,
    "join": bool,
    "shards": int,
    "replicas": int,
    "labels": str,
    "node_down_after_s": float,
    "log_format": str,
    "log_level": str,
    "tracing": str,
    "slow_request_ms": int,
    "slow_fsync_ms": int,
    "leases_max": int,
    "leases_per_user_max": int,
    "response_bytes_max": int,
    "read_keys_scanned_max": int,
    "store_bytes_max": int,
    "request_timeout_s": float,
    "pending_reads_max": int,
    "debug_unsafe_local_reads": bool,
    "debug_ack_before_fsync": bool,
    "debug_send_before_persist": bool,
    "debug_slow_disk_ms": int,
}
LOG_FORMATS = ("json", "text")
LOG_LEVELS = ("debug", "info", "warning", "error")
TRACING_MODES = ("off", "console", "otlp")


@dataclass(frozen=True, slots=True)
class NodeConfig:
    name: str
    id: int
    data_dir: Path
    client: tuple[str, int]
    peer: tuple[str, int]
    members: dict[int, Member] = field(default_factory=dict)
    cluster_id: str = "accord"
    tick_ms: int = TICK_MS
    election_ticks: int = RAFT_ELECTION_TICKS
    snapshot_entries: int = SNAPSHOT_ENTRIES
    """Applied entries between two snapshots (then the log is compacted)."""
    join: bool = False
    """True for a node added to a running cluster: it waits to be contacted."""
    shards: int = 1
    """Shards the cluster's first map cuts the keys into (same on every initial node);
    1: no map, the primary group holds every key (a cluster of one group)."""
    replicas: int = 3
    """Voters of each shard (at most one per node: min(replicas, nodes))."""
    labels: tuple[tuple[str, str], ...] = ()
    """This node's failure domains (`zone=a,host=h1`): the placement driver never puts
    two replicas of a shard in one domain (see docs/sharding.md)."""
    node_down_after_s: float = NODE_DOWN_AFTER_S
    """How long a node may go unanswered before the placement driver marks it down
    and moves its replicas elsewhere (sharded clusters)."""
    native: tuple[str, int] | None = None
    """Where the native msgpack protocol listens (None: not served)."""
    log_format: str = "json"
    log_level: str = "info"
    tracing: str = "off"
    """Where request spans go: nowhere, stdout, or an OTLP collector."""
    slow_request_ms: int = SLOW_REQUEST_MS
    slow_fsync_ms: int = SLOW_FSYNC_MS
    leases_max: int = LEASES_MAX
    """Leases in the table at once; part of the replicated behaviour, so every node of
    a cluster must have the same value (as for `leases_per_user_max`)."""
    leases_per_user_max: int = LEASES_PER_USER_MAX
    """Leases one user holds at once (with auth off, all clients together)."""
    response_bytes_max: int = RESPONSE_BYTES_MAX
    """What the reads of one request may return (see `accord.kv.limits`)."""
    read_keys_scanned_max: int = READ_KEYS_SCANNED_MAX
    """Keys the reads of one request may visit (see `accord.kv.limits`)."""
    store_bytes_max: int = STORE_BYTES_MAX
    """The store's quota: puts are refused beyond it (see `accord.kv.limits`); at most
    the default, whose snapshot is the largest storage accepts."""
    request_timeout_s: float = REQUEST_TIMEOUT_S
    """Deadline of a write, membership change or linearizable read that names none."""
    pending_reads_max: int = PENDING_READS_MAX
    """Linearizable reads waiting in this node at once; one more fails at once (503
    `too_many_pending_reads`)."""
    dial: dict[int, tuple[str, int]] = field(default_factory=dict)
    """Member id -> the address this node dials to reach that member, instead of the
    member's registered peer address (fault testing puts a proxy there)."""
    debug_unsafe_local_reads: bool = False
    """DELIBERATE BUG: serve linearizable reads from local state without ReadIndex."""
    debug_ack_before_fsync: bool = False
    """DELIBERATE BUG: acknowledge appends and votes before they are on disk, and
    write the log behind, about once a second: a crash loses acknowledged writes."""
    debug_send_before_persist: bool = False
    """DELIBERATE BUG in the host's executor (not the Raft core): every message of a
    batch leaves before its fsync: a crash then loses writes that a slow disk
    (`debug_slow_disk_ms`) had not written yet though they were acknowledged."""
    debug_slow_disk_ms: int = 0
    """Fault injection (not a bug): every synced write waits a random 0..2x this many
    ms before it starts, as an uneven, slow disk would."""
    security: SecurityConfig = field(default_factory=SecurityConfig)
    """The `[security]` table (accord.security.config); all off by default."""

    @property
    def client_url(self) -> str:
        scheme = "https" if self.security.tls else "http"
        return f"{scheme}://{self.client[0]}:{self.client[1]}"

    @property
    def native_url(self) -> str | None:
        return native_url(self.native, self.security.tls)


def _coerce(key: str, value: Any) -> Any:
    kind = SCALAR_KEYS[key]
    if kind is bool and isinstance(value, str):
        if value.lower() not in ("1", "0", "true", "false", "yes", "no"):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value.lower() in ("1", "true", "yes")
    if kind is int and isinstance(value, str):
        digits = value.strip()
        if not (digits.isascii() and digits.isdigit() and len(digits) <= 18):
            raise ConfigError(f"{key}: expected a non-negative integer, got {value!r}")
        return int(digits)
    if kind is float:
        return _coerce_float(key, value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{key}: expected {kind.__name__}, got {value!r}")
    return value


def _coerce_float(key: str, value: Any) -> float:
    """A number of seconds: a TOML integer or float, or a decimal string (no inf, nan)."""
    if isinstance(value, str):
        text = value.strip()
        digits = text.replace(".", "", 1)
        if not (digits.isascii() and digits.isdigit() and len(text) <= 18):
            raise ConfigError(f"{key}: expected a non-negative number, got {value!r}")
        return float(text)
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    return float(value)


def parse_labels(text: str) -> tuple[tuple[str, str], ...]:
    """`zone=a,host=h1` -> (("zone", "a"), ("host", "h1")), checked against the
    metadata's bounds so a node never proposes labels the metadata group refuses."""
    labels: list[tuple[str, str]] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value:
            raise ConfigError(f"labels: expected NAME=VALUE[,NAME=VALUE...], got {part!r}")
        if max(len(name.encode()), len(value.encode())) > LABEL_BYTES_MAX:
            raise ConfigError(f"labels: names and values are at most {LABEL_BYTES_MAX} bytes")
        labels.append((name, value))
    if len(labels) > LABELS_MAX:
        raise ConfigError(f"labels: at most {LABELS_MAX}")
    if len({name for name, _ in labels}) != len(labels):
        raise ConfigError("labels: a label is named twice")
    return tuple(labels)


def render_labels(labels: tuple[tuple[str, str], ...]) -> str:
    return ",".join(f"{name}={value}" for name, value in labels)


def _members(raw: Any) -> dict[int, Member]:
    if not isinstance(raw, Mapping):
        raise ConfigError("members: expected a table of [members.ID] tables")
    members: dict[int, Member] = {}
    for key, entry in raw.items():
        if not (str(key).isascii() and str(key).isdigit()) or int(key) <= 0:
            raise ConfigError(f"members.{key}: member ids are positive integers")
        if not isinstance(entry, Mapping) or not {"name", "peer", "client"} <= entry.keys():
            raise ConfigError(f"members.{key}: needs name, peer and client")
        member_id = int(key)
        members[member_id] = Member(
            id=member_id,
            name=str(entry["name"]),
            peer=parse_address(str(entry["peer"]), f"members.{key}.peer"),
            client=parse_address(str(entry["client"]), f"members.{key}.client"),
            native=(
                parse_address(str(entry["native"]), f"members.{key}.native")
                if "native" in entry
                else None
            ),
        )
    return members


def _dial(raw: Any) -> dict[int, tuple[str, int]]:
    if not isinstance(raw, Mapping):
        raise ConfigError('dial: expected a table of member id = "HOST:PORT"')
    dial: dict[int, tuple[str, int]] = {}
    for key, value in raw.items():
        if not (str(key).isascii() and str(key).isdigit()) or int(key) <= 0:
            raise ConfigError(f"dial.{key}: member ids are positive integers")
        dial[int(key)] = parse_address(str(value), f"dial.{key}")
    return dial


def load_config(
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> NodeConfig:
    """Merge file < environment < overrides, then validate."""
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text())
        except FileNotFoundError as e:
            raise ConfigError(f"config file {path} does not exist") from e
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config file {path} is not valid TOML: {e}") from e
    unknown = set(raw) - set(SCALAR_KEYS) - {"members", "dial", "security"}
    if unknown:
        raise ConfigError(f"unknown configuration keys: {', '.join(sorted(unknown))}")
    env = os.environ if env is None else env
    for key in SCALAR_KEYS:
        value = env.get(f"ACCORD_{key.upper()}")
        if value is not None:
            raw[key] = value
    for key, value in (overrides or {}).items():
        if value is not None:
            raw[key] = value
    security = parse_security(raw.pop("security", {}), env)
    config = _validate(raw)
    members = {i: dataclasses.replace(m, tls=security.tls) for i, m in config.members.items()}
    return dataclasses.replace(config, security=security, members=members)


def _validate(raw: dict[str, Any]) -> NodeConfig:
    for key in ("name", "id", "data_dir", "client", "peer"):
        if key not in raw:
            raise ConfigError(f"missing required setting {key!r}")
    values = {key: _coerce(key, value) for key, value in raw.items() if key in SCALAR_KEYS}
    if values["id"] <= 0:
        raise ConfigError(f"id: must be a positive integer, got {values['id']}")
    if values.get("tick_ms", TICK_MS) < 1:
        raise ConfigError("tick_ms: must be at least 1")
    if values.get("election_ticks", RAFT_ELECTION_TICKS) < 3:
        raise ConfigError("election_ticks: must be at least 3")
    if not 0 <= values.get("debug_slow_disk_ms", 0) <= 10_000:
        raise ConfigError("debug_slow_disk_ms: must be between 0 and 10000")
    if values.get("slow_request_ms", 1) < 1 or values.get("slow_fsync_ms", 1) < 1:
        raise ConfigError("slow_request_ms and slow_fsync_ms: must be at least 1")
    if values.get("snapshot_entries", SNAPSHOT_ENTRIES) < 1:
        raise ConfigError("snapshot_entries: must be at least 1")
    if values.get("leases_max", 1) < 1 or values.get("leases_per_user_max", 1) < 1:
        raise ConfigError("leases_max and leases_per_user_max: must be at least 1")
    if values.get("read_keys_scanned_max", READ_KEYS_SCANNED_MAX) < 1:
        raise ConfigError("read_keys_scanned_max: must be at least 1")
    _check_ranges(values)
    _check_observability(values)
    members = _members(raw.get("members", {}))
    config = NodeConfig(
        name=values["name"],
        id=values["id"],
        data_dir=Path(values["data_dir"]),
        client=parse_address(values["client"], "client"),
        peer=parse_address(values["peer"], "peer"),
        members=members,
        cluster_id=values.get("cluster_id", "accord"),
        tick_ms=values.get("tick_ms", TICK_MS),
        election_ticks=values.get("election_ticks", RAFT_ELECTION_TICKS),
        snapshot_entries=values.get("snapshot_entries", SNAPSHOT_ENTRIES),
        join=values.get("join", False),
        shards=values.get("shards", 1),
        replicas=values.get("replicas", 3),
        labels=parse_labels(values.get("labels", "")),
        node_down_after_s=values.get("node_down_after_s", NODE_DOWN_AFTER_S),
        native=parse_address(values["native"], "native") if "native" in values else None,
        log_format=values.get("log_format", "json"),
        log_level=values.get("log_level", "info"),
        tracing=values.get("tracing", "off"),
        slow_request_ms=values.get("slow_request_ms", SLOW_REQUEST_MS),
        slow_fsync_ms=values.get("slow_fsync_ms", SLOW_FSYNC_MS),
        leases_max=values.get("leases_max", LEASES_MAX),
        leases_per_user_max=values.get("leases_per_user_max", LEASES_PER_USER_MAX),
        response_bytes_max=values.get("response_bytes_max", RESPONSE_BYTES_MAX),
        read_keys_scanned_max=values.get("read_keys_scanned_max", READ_KEYS_SCANNED_MAX),
        store_bytes_max=values.get("store_bytes_max", STORE_BYTES_MAX),
        request_timeout_s=values.get("request_timeout_s", REQUEST_TIMEOUT_S),
        pending_reads_max=values.get("pending_reads_max", PENDING_READS_MAX),
        dial=_dial(raw.get("dial", {})),
        debug_unsafe_local_reads=values.get("debug_unsafe_local_reads", False),
        debug_ack_before_fsync=values.get("debug_ack_before_fsync", False),
        debug_send_before_persist=values.get("debug_send_before_persist", False),
        debug_slow_disk_ms=values.get("debug_slow_disk_ms", 0),
    )
    if not config.join and config.id not in members:
        raise ConfigError(
            f"this node (id {config.id}) is not in [members]; list every initial member, "
            "or set join = true for a node added to a running cluster"
        )
    return config


RANGES: dict[str, tuple[float, float]] = {
    "response_bytes_max": (RESPONSE_BYTES_MIN, RESPONSE_BYTES_CEILING),
    "store_bytes_max": (STORE_BYTES_MIN, STORE_BYTES_MAX),
    "request_timeout_s": (REQUEST_TIMEOUT_S_MIN, REQUEST_TIMEOUT_S_MAX),
    "pending_reads_max": (1, PENDING_READS_CEILING),
    "shards": (1, SHARDS_PER_CLUSTER_MAX),
    "replicas": (1, SHARD_REPLICAS_MAX),
    "node_down_after_s": (NODE_DOWN_AFTER_S_MIN, NODE_DOWN_AFTER_S_MAX),
}
"""The settings bounded on both sides: (smallest, largest) value accepted. The limits
table (`accord.limits`) says why each bound is where it is."""


def _check_ranges(values: dict[str, Any]) -> None:
    for key, (low, high) in RANGES.items():
        if key in values and not low <= values[key] <= high:
            raise ConfigError(f"{key}: must be in {low}..{high}, got {values[key]}")


def _check_observability(values: dict[str, Any]) -> None:
    for key, allowed in (
        ("log_format", LOG_FORMATS),
        ("log_level", LOG_LEVELS),
        ("tracing", TRACING_MODES),
    ):
        if key in values and values[key] not in allowed:
            raise ConfigError(f"{key}: expected one of {', '.join(allowed)}, got {values[key]!r}")
    if values.get("tracing") == "otlp" and not _importable(OTLP_EXPORTER):
        raise ConfigError(
            f"tracing: 'otlp' needs the {OTLP_EXPORTER} module "
            "(pip install opentelemetry-exporter-otlp-proto-http)"
        )


OTLP_EXPORTER = "opentelemetry.exporter.otlp.proto.http.trace_exporter"


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def render_config(config: NodeConfig) -> str:
    """The TOML text that `load_config` reads back into `config`."""
    q = json.dumps  # a JSON string is a valid TOML basic string (quotes, escapes)
    lines = [
        f"name = {q(config.name)}",
        f"id = {config.id}",
        f"cluster_id = {q(config.cluster_id)}",
        f"data_dir = {q(str(config.data_dir))}",
        f"client = {q(f'{config.client[0]}:{config.client[1]}')}",
        f"peer = {q(f'{config.peer[0]}:{config.peer[1]}')}",
        *([f"native = {q(f'{config.native[0]}:{config.native[1]}')}"] if config.native else []),
        f"tick_ms = {config.tick_ms}",
        f"election_ticks = {config.election_ticks}",
        f"snapshot_entries = {config.snapshot_entries}",
        f"join = {'true' if config.join else 'false'}",
        f"shards = {config.shards}",
        f"replicas = {config.replicas}",
        *([f"labels = {q(render_labels(config.labels))}"] if config.labels else []),
        f"node_down_after_s = {config.node_down_after_s!r}",
        f"log_format = {q(config.log_format)}",
        f"log_level = {q(config.log_level)}",
        f"tracing = {q(config.tracing)}",
        f"slow_request_ms = {config.slow_request_ms}",
        f"slow_fsync_ms = {config.slow_fsync_ms}",
        f"leases_max = {config.leases_max}",
        f"leases_per_user_max = {config.leases_per_user_max}",
        f"response_bytes_max = {config.response_bytes_max}",
        f"read_keys_scanned_max = {config.read_keys_scanned_max}",
        f"store_bytes_max = {config.store_bytes_max}",
        f"request_timeout_s = {config.request_timeout_s!r}",
        f"pending_reads_max = {config.pending_reads_max}",
    ]
    for key in ("debug_unsafe_local_reads", "debug_ack_before_fsync", "debug_send_before_persist"):
        if getattr(config, key):
            lines.append(f"{key} = true")
    if config.debug_slow_disk_ms:
        lines.append(f"debug_slow_disk_ms = {config.debug_slow_disk_ms}")
    for member in sorted(config.members.values(), key=lambda m: m.id):
        lines += [
            "",
            f"[members.{member.id}]",
            f"name = {q(member.name)}",
            f"peer = {q(f'{member.peer[0]}:{member.peer[1]}')}",
            f"client = {q(f'{member.client[0]}:{member.client[1]}')}",
        ]
        if member.native:
            lines.append(f"native = {q(f'{member.native[0]}:{member.native[1]}')}")
    if config.dial:
        lines += ["", "[dial]"]
        lines += [f"{i} = {q(f'{a[0]}:{a[1]}')}" for i, a in sorted(config.dial.items())]
    return "\n".join(lines) + "\n" + render_security(config.security)
