"""The table of every bound Accord enforces, with its default, unit and setting.

Theory of operation
-------------------
Each layer keeps its bounds in a limits module of its own, so that the lower layers
import nothing from above them (raft imports no one; storage, kv and transport import
only raft's; api, node, security and client import downwards):

    accord.raft.limits       the Raft core, and the snapshot size everything derives from
    accord.storage.limits    WAL records, segments, snapshot files
    accord.kv.limits         keys, values, transactions, tables, the quota, responses
    accord.transport.limits  peer frames, queues, connections and timeouts
    accord.shard.limits      the slot ring, shard maps, the placement driver's pace
    accord.api.limits        the client protocols: requests, answers, per connection
    accord.node.limits       the node: request deadline, pending reads, housekeeping,
                             the replicated auth store (users, roles, grants)
    accord.security.limits   client ports (connections, timeouts, rates), logins, tokens
    accord.client.limits     the Python client's defaults
    accord.node.replica      a replica's two constants (snapshot step, append times)

Every default is written once, in its layer's module; a bound that depends on another
is written as that expression, so the two cannot drift apart (the store quota and
storage's snapshot bound both come from `RAFT_SNAPSHOT_DATA_BYTES_MAX`; the client's
answer frame from the largest `response_bytes_max`). This module re-exports every
bound under its own name (names are unique across the layers); `rows()` describes each
one: value, unit, the setting that changes it, and its docstring's first sentence.
`python -m accord.limits docs/limits.md` rewrites the table in that file.

Nothing in Accord imports this module, since it imports every layer: code imports its
own layer's module. `tests/test_limits.py` checks the bounds against each other.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from accord.api.limits import (
    FORWARD_TIMEOUT_MARGIN_S,
    HTTP_WATCH_LINE_BYTES_MAX,
    JSON_EXPANSION_MAX,
    LISTEN_BACKLOG_MAX,
    NATIVE_ANSWER_ENVELOPE_BYTES,
    NATIVE_ANSWER_FRAME_BYTES_MAX,
    NATIVE_INFLIGHT_MAX,
    NATIVE_REQUEST_FRAME_BYTES_MAX,
    NATIVE_WATCHES_MAX,
    NATIVE_WRITE_BUFFER_BYTES_HIGH,
    REQUEST_BYTES_MAX,
)
from accord.client.limits import (
    ATTEMPT_TIMEOUT_S,
    ATTEMPT_TIMEOUT_S_MIN,
    BREAKER_COOLDOWN_S,
    BREAKER_FAILURES_MAX,
    CALL_TIMEOUT_S,
    CLIENT_ID_BITS,
    CLIENT_SESSIONS_MAX,
    DISCOVERY_TIMEOUT_S,
    LEADER_REFRESH_S,
    NATIVE_LINK_IDLE_S_MAX,
    RETRIES_MAX,
    RETRY_BACKOFF_S_MAX,
    RETRY_BACKOFF_S_MIN,
    WATCH_PROBE_INTERVAL_S,
    WATCH_QUEUE_FRAMES_MAX,
    WATCH_RECONNECT_TIMEOUT_S,
)
from accord.kv.limits import (
    COMMAND_BYTES_MAX,
    INT64_MAX,
    KEY_BYTES_MAX,
    LEASE_ID_MAX,
    LEASE_IDS_PER_COMMAND_MAX,
    LEASE_TTL_MS_MAX,
    LEASE_TTL_MS_MIN,
    LEASES_MAX,
    LEASES_PER_USER_MAX,
    READ_KEYS_SCANNED_MAX,
    RESPONSE_BYTES_CEILING,
    RESPONSE_BYTES_MAX,
    RESPONSE_BYTES_MIN,
    RESPONSE_KV_OVERHEAD_BYTES,
    RESPONSE_OP_OVERHEAD_BYTES,
    RESTORE_BYTES_MAX,
    SESSION_IDLE_MS_MIN,
    SESSIONS_MAX,
    SESSIONS_PER_USER_MAX,
    SNAPSHOT_TABLES_BYTES_MAX,
    STORE_BYTES_MAX,
    STORE_BYTES_MIN,
    TXN_COMPARES_MAX,
    TXN_OPS_MAX,
    TXN_RANGE_OPS_MAX,
    UINT64_MAX,
    VALUE_BYTES_MAX,
    VERSION_OVERHEAD_BYTES,
    WATCH_QUEUE_EVENTS_MAX,
    WATCHERS_MAX,
    WATCHERS_PER_USER_MAX,
)
from accord.node.limits import (
    GRANTS_PER_ROLE_MAX,
    HOUSEKEEPING_INTERVAL_S,
    LEASE_EXPIRY_SLACK_MS,
    NAME_CHARS_MAX,
    PENDING_READS_CEILING,
    PENDING_READS_MAX,
    PREFIX_BYTES_MAX,
    READY_APPLY_LAG_MAX,
    REQUEST_TIMEOUT_S,
    REQUEST_TIMEOUT_S_MAX,
    REQUEST_TIMEOUT_S_MIN,
    ROLES_MAX,
    SESSION_IDLE_MS,
    SLOW_FSYNC_MS,
    SLOW_REQUEST_MS,
    SNAPSHOT_ENTRIES,
    TICK_MS,
    USERS_MAX,
)
from accord.node.replica import (
    APPEND_TIMES_MAX,
    SNAPSHOT_STEP_S,
)
from accord.raft.limits import (
    RAFT_APPEND_BYTES_MAX,
    RAFT_APPEND_ENTRIES_MAX,
    RAFT_APPLY_ENTRIES_MAX,
    RAFT_ELECTION_TICKS,
    RAFT_ENTRY_BYTES_MAX,
    RAFT_HEARTBEAT_TICKS,
    RAFT_INDEX_MAX,
    RAFT_INFLIGHT_MESSAGES_MAX,
    RAFT_MEMBERS_MAX,
    RAFT_NODE_ID_MAX,
    RAFT_SNAPSHOT_BYTES_MAX,
    RAFT_SNAPSHOT_CHUNK_BYTES,
    RAFT_SNAPSHOT_DATA_BYTES_MAX,
    RAFT_TERM_MAX,
    RAFT_UNCOMMITTED_ENTRIES_MAX,
)
from accord.security.limits import (
    CONNECTIONS_MAX,
    ENCRYPTION_KEYS_MAX,
    IDLE_TIMEOUT_S,
    LOGIN_ENTRIES_MAX,
    LOGIN_FAILURES_MAX,
    LOGIN_LOCKOUT_DOUBLINGS_MAX,
    LOGIN_LOCKOUT_S,
    LOGIN_LOCKOUT_S_MAX,
    LOGIN_SOURCE_BURST,
    LOGIN_SOURCE_RPS,
    LOGIN_USER_BURST,
    LOGIN_USER_RPS,
    PASSWORD_BYTES_MAX,
    RATE_LIMIT_BURST,
    RATE_LIMIT_CLIENTS_MAX,
    RATE_LIMIT_RPS,
    READ_TIMEOUT_S,
    TOKEN_CHARS_MAX,
    TOKEN_TTL_S,
)
from accord.shard.limits import (
    LABEL_BYTES_MAX,
    LABELS_MAX,
    LEADER_TRANSFERS_PER_ROUND_MAX,
    METADATA_COMMAND_BYTES_MAX,
    METADATA_NODES_MAX,
    MOVES_IN_FLIGHT_MAX,
    NODE_DOWN_AFTER_S,
    NODE_DOWN_AFTER_S_MAX,
    NODE_DOWN_AFTER_S_MIN,
    NODE_MOVES_IN_FLIGHT_MAX,
    SHARD_RANGES_MAX,
    SHARD_REPLICAS_MAX,
    SHARDS_MAX,
    SHARDS_PER_CLUSTER_MAX,
    SLOT_COUNT,
    SPLITS_PER_ROUND_MAX,
)
from accord.storage.limits import (
    BATCH_BYTES_MAX,
    CHECKPOINT_BYTES_MAX,
    CHECKPOINT_GROUP_BYTES_MAX,
    CIPHER_OVERHEAD_BYTES_MAX,
    ENTRY_OVERHEAD_BYTES,
    GROUP_WRITE_OVERHEAD_BYTES,
    GROUPS_MAX,
    HOST_BATCH_BYTES_MAX,
    RECORD_HEADER_BYTES,
    RECORD_PAYLOAD_BYTES_MAX,
    RESYNC_SCAN_BYTES_MAX,
    SEGMENT_BYTES_MAX,
    SEGMENT_BYTES_MIN,
    SEGMENT_FILE_BYTES_MAX,
    SNAPSHOT_DATA_BYTES_MAX,
    SNAPSHOT_ENVELOPE_BYTES_MAX,
    SNAPSHOT_FILE_BYTES_MAX,
    SNAPSHOT_MEMBERS_MAX,
    SNAPSHOTS_KEPT_DEFAULT,
    SNAPSHOTS_KEPT_MAX,
)
from accord.transport.limits import (
    CLOSE_TIMEOUT_S,
    CLUSTER_ID_BYTES_MAX,
    CONF_MEMBERS_MAX,
    CONNECT_TIMEOUT_S,
    CONNECTIONS_INBOUND_MAX,
    CONTEXT_BYTES_MAX,
    FRAME_BYTES_MAX,
    FRAME_HEADER_BYTES,
    FRAME_MESSAGES_MAX,
    GROUP_ID_MAX,
    HANDSHAKE_BYTES_MAX,
    HANDSHAKE_TIMEOUT_S,
    INDEX_MAX,
    MESSAGE_ENTRIES_MAX,
    NODE_ID_MAX,
    QUEUE_BYTES_MAX,
    QUEUE_MESSAGES_MAX,
    RECONNECT_BACKOFF_S_MAX,
    RECONNECT_BACKOFF_S_MIN,
    SNAPSHOT_BYTES_MAX,
    TERM_MAX,
)

__all__ = [
    "APPEND_TIMES_MAX",
    "ATTEMPT_TIMEOUT_S",
    "ATTEMPT_TIMEOUT_S_MIN",
    "BATCH_BYTES_MAX",
    "BREAKER_COOLDOWN_S",
    "BREAKER_FAILURES_MAX",
    "CALL_TIMEOUT_S",
    "CHECKPOINT_BYTES_MAX",
    "CHECKPOINT_GROUP_BYTES_MAX",
    "CIPHER_OVERHEAD_BYTES_MAX",
    "CLIENT_ID_BITS",
    "CLIENT_SESSIONS_MAX",
    "CLOSE_TIMEOUT_S",
    "CLUSTER_ID_BYTES_MAX",
    "COMMAND_BYTES_MAX",
    "CONF_MEMBERS_MAX",
    "CONNECTIONS_INBOUND_MAX",
    "CONNECTIONS_MAX",
    "CONNECT_TIMEOUT_S",
    "CONTEXT_BYTES_MAX",
    "DISCOVERY_TIMEOUT_S",
    "ENCRYPTION_KEYS_MAX",
    "ENTRY_OVERHEAD_BYTES",
    "FORWARD_TIMEOUT_MARGIN_S",
    "FRAME_BYTES_MAX",
    "FRAME_HEADER_BYTES",
    "FRAME_MESSAGES_MAX",
    "GRANTS_PER_ROLE_MAX",
    "GROUPS_MAX",
    "GROUP_ID_MAX",
    "GROUP_WRITE_OVERHEAD_BYTES",
    "HANDSHAKE_BYTES_MAX",
    "HANDSHAKE_TIMEOUT_S",
    "HOST_BATCH_BYTES_MAX",
    "HOUSEKEEPING_INTERVAL_S",
    "HTTP_WATCH_LINE_BYTES_MAX",
    "IDLE_TIMEOUT_S",
    "INDEX_MAX",
    "INT64_MAX",
    "JSON_EXPANSION_MAX",
    "KEY_BYTES_MAX",
    "LABELS_MAX",
    "LABEL_BYTES_MAX",
    "LEADER_REFRESH_S",
    "LEADER_TRANSFERS_PER_ROUND_MAX",
    "LEASES_MAX",
    "LEASES_PER_USER_MAX",
    "LEASE_EXPIRY_SLACK_MS",
    "LEASE_IDS_PER_COMMAND_MAX",
    "LEASE_ID_MAX",
    "LEASE_TTL_MS_MAX",
    "LEASE_TTL_MS_MIN",
    "LISTEN_BACKLOG_MAX",
    "LOGIN_ENTRIES_MAX",
    "LOGIN_FAILURES_MAX",
    "LOGIN_LOCKOUT_DOUBLINGS_MAX",
    "LOGIN_LOCKOUT_S",
    "LOGIN_LOCKOUT_S_MAX",
    "LOGIN_SOURCE_BURST",
    "LOGIN_SOURCE_RPS",
    "LOGIN_USER_BURST",
    "LOGIN_USER_RPS",
    "MESSAGE_ENTRIES_MAX",
    "METADATA_COMMAND_BYTES_MAX",
    "METADATA_NODES_MAX",
    "MOVES_IN_FLIGHT_MAX",
    "NAME_CHARS_MAX",
    "NATIVE_ANSWER_ENVELOPE_BYTES",
    "NATIVE_ANSWER_FRAME_BYTES_MAX",
    "NATIVE_INFLIGHT_MAX",
    "NATIVE_LINK_IDLE_S_MAX",
    "NATIVE_REQUEST_FRAME_BYTES_MAX",
    "NATIVE_WATCHES_MAX",
    "NATIVE_WRITE_BUFFER_BYTES_HIGH",
    "NODE_DOWN_AFTER_S",
    "NODE_DOWN_AFTER_S_MAX",
    "NODE_DOWN_AFTER_S_MIN",
    "NODE_ID_MAX",
    "NODE_MOVES_IN_FLIGHT_MAX",
    "PASSWORD_BYTES_MAX",
    "PENDING_READS_CEILING",
    "PENDING_READS_MAX",
    "PREFIX_BYTES_MAX",
    "QUEUE_BYTES_MAX",
    "QUEUE_MESSAGES_MAX",
    "RAFT_APPEND_BYTES_MAX",
    "RAFT_APPEND_ENTRIES_MAX",
    "RAFT_APPLY_ENTRIES_MAX",
    "RAFT_ELECTION_TICKS",
    "RAFT_ENTRY_BYTES_MAX",
    "RAFT_HEARTBEAT_TICKS",
    "RAFT_INDEX_MAX",
    "RAFT_INFLIGHT_MESSAGES_MAX",
    "RAFT_MEMBERS_MAX",
    "RAFT_NODE_ID_MAX",
    "RAFT_SNAPSHOT_BYTES_MAX",
    "RAFT_SNAPSHOT_CHUNK_BYTES",
    "RAFT_SNAPSHOT_DATA_BYTES_MAX",
    "RAFT_TERM_MAX",
    "RAFT_UNCOMMITTED_ENTRIES_MAX",
    "RATE_LIMIT_BURST",
    "RATE_LIMIT_CLIENTS_MAX",
    "RATE_LIMIT_RPS",
    "READY_APPLY_LAG_MAX",
    "READ_KEYS_SCANNED_MAX",
    "READ_TIMEOUT_S",
    "RECONNECT_BACKOFF_S_MAX",
    "RECONNECT_BACKOFF_S_MIN",
    "RECORD_HEADER_BYTES",
    "RECORD_PAYLOAD_BYTES_MAX",
    "REQUEST_BYTES_MAX",
    "REQUEST_TIMEOUT_S",
    "REQUEST_TIMEOUT_S_MAX",
    "REQUEST_TIMEOUT_S_MIN",
    "RESPONSE_BYTES_CEILING",
    "RESPONSE_BYTES_MAX",
    "RESPONSE_BYTES_MIN",
    "RESPONSE_KV_OVERHEAD_BYTES",
    "RESPONSE_OP_OVERHEAD_BYTES",
    "RESTORE_BYTES_MAX",
    "RESYNC_SCAN_BYTES_MAX",
    "RETRIES_MAX",
    "RETRY_BACKOFF_S_MAX",
    "RETRY_BACKOFF_S_MIN",
    "ROLES_MAX",
    "SEGMENT_BYTES_MAX",
    "SEGMENT_BYTES_MIN",
    "SEGMENT_FILE_BYTES_MAX",
    "SESSIONS_MAX",
    "SESSIONS_PER_USER_MAX",
    "SESSION_IDLE_MS",
    "SESSION_IDLE_MS_MIN",
    "SHARDS_MAX",
    "SHARDS_PER_CLUSTER_MAX",
    "SHARD_RANGES_MAX",
    "SHARD_REPLICAS_MAX",
    "SLOT_COUNT",
    "SLOW_FSYNC_MS",
    "SLOW_REQUEST_MS",
    "SNAPSHOTS_KEPT_DEFAULT",
    "SNAPSHOTS_KEPT_MAX",
    "SNAPSHOT_BYTES_MAX",
    "SNAPSHOT_DATA_BYTES_MAX",
    "SNAPSHOT_ENTRIES",
    "SNAPSHOT_ENVELOPE_BYTES_MAX",
    "SNAPSHOT_FILE_BYTES_MAX",
    "SNAPSHOT_MEMBERS_MAX",
    "SNAPSHOT_STEP_S",
    "SNAPSHOT_TABLES_BYTES_MAX",
    "SPLITS_PER_ROUND_MAX",
    "STORE_BYTES_MAX",
    "STORE_BYTES_MIN",
    "TERM_MAX",
    "TICK_MS",
    "TOKEN_CHARS_MAX",
    "TOKEN_TTL_S",
    "TXN_COMPARES_MAX",
    "TXN_OPS_MAX",
    "TXN_RANGE_OPS_MAX",
    "UINT64_MAX",
    "USERS_MAX",
    "VALUE_BYTES_MAX",
    "VERSION_OVERHEAD_BYTES",
    "WATCHERS_MAX",
    "WATCHERS_PER_USER_MAX",
    "WATCH_PROBE_INTERVAL_S",
    "WATCH_QUEUE_EVENTS_MAX",
    "WATCH_QUEUE_FRAMES_MAX",
    "WATCH_RECONNECT_TIMEOUT_S",
]

SOURCES = (
    "accord.raft.limits",
    "accord.storage.limits",
    "accord.kv.limits",
    "accord.transport.limits",
    "accord.shard.limits",
    "accord.api.limits",
    "accord.node.limits",
    "accord.security.limits",
    "accord.client.limits",
    "accord.node.replica",
)
"""The modules whose bounds make the table, lowest layer first."""

NODE_SETTINGS = {
    "RAFT_ELECTION_TICKS": "election_ticks",
    "TICK_MS": "tick_ms",
    "SNAPSHOT_ENTRIES": "snapshot_entries",
    "SLOW_REQUEST_MS": "slow_request_ms",
    "SLOW_FSYNC_MS": "slow_fsync_ms",
    "LEASES_MAX": "leases_max",
    "LEASES_PER_USER_MAX": "leases_per_user_max",
    "RESPONSE_BYTES_MAX": "response_bytes_max",
    "READ_KEYS_SCANNED_MAX": "read_keys_scanned_max",
    "STORE_BYTES_MAX": "store_bytes_max",
    "REQUEST_TIMEOUT_S": "request_timeout_s",
    "PENDING_READS_MAX": "pending_reads_max",
    "NODE_DOWN_AFTER_S": "node_down_after_s",
}
"""Bounds that are the default of a node setting (`NodeConfig`: TOML key, `ACCORD_KEY`
variable, `accord node` flag)."""

NODE_SETTING_RANGES = {
    "RESPONSE_BYTES_MIN": ("response_bytes_max", "smallest"),
    "RESPONSE_BYTES_CEILING": ("response_bytes_max", "largest"),
    "STORE_BYTES_MIN": ("store_bytes_max", "smallest"),
    "REQUEST_TIMEOUT_S_MIN": ("request_timeout_s", "smallest"),
    "REQUEST_TIMEOUT_S_MAX": ("request_timeout_s", "largest"),
    "PENDING_READS_CEILING": ("pending_reads_max", "largest"),
    "SHARDS_PER_CLUSTER_MAX": ("shards", "largest"),
    "SHARD_REPLICAS_MAX": ("replicas", "largest"),
    "NODE_DOWN_AFTER_S_MIN": ("node_down_after_s", "smallest"),
    "NODE_DOWN_AFTER_S_MAX": ("node_down_after_s", "largest"),
}
"""Bounds on what a node setting accepts (`accord.server.config.RANGES`)."""

SECURITY_SETTINGS = {
    "CONNECTIONS_MAX": "connections_max",
    "READ_TIMEOUT_S": "read_timeout_s",
    "IDLE_TIMEOUT_S": "idle_timeout_s",
    "RATE_LIMIT_RPS": "rate_limit_rps",
    "RATE_LIMIT_BURST": "rate_limit_burst",
    "LOGIN_SOURCE_RPS": "login_source_rps",
    "LOGIN_SOURCE_BURST": "login_source_burst",
    "LOGIN_USER_RPS": "login_user_rps",
    "LOGIN_USER_BURST": "login_user_burst",
    "LOGIN_FAILURES_MAX": "login_failures_max",
    "LOGIN_LOCKOUT_S": "login_lockout_s",
    "LOGIN_LOCKOUT_S_MAX": "login_lockout_max_s",
    "LOGIN_ENTRIES_MAX": "login_entries_max",
    "TOKEN_TTL_S": "token_ttl_s",
}
"""Bounds that are the default of a `[security]` setting (`SecurityConfig`)."""

CLIENT_SETTINGS = {
    "CALL_TIMEOUT_S": "timeout_s",
    "ATTEMPT_TIMEOUT_S": "attempt_timeout_s",
    "RETRIES_MAX": "retries",
    "RETRY_BACKOFF_S_MIN": "backoff_base_s",
    "RETRY_BACKOFF_S_MAX": "backoff_cap_s",
    "BREAKER_FAILURES_MAX": "breaker_failures_max",
    "BREAKER_COOLDOWN_S": "breaker_cooldown_s",
    "WATCH_PROBE_INTERVAL_S": "watch_probe_interval_s",
    "WATCH_RECONNECT_TIMEOUT_S": "watch_reconnect_timeout_s",
}
"""Bounds that are the default of a keyword argument of `Client` and `AsyncClient`."""

_UNITS = {
    "BYTES": "bytes",
    "S": "s",
    "MS": "ms",
    "RPS": "per s",
    "TICKS": "ticks",
    "BITS": "bits",
    "CHARS": "characters",
}
_SIZE_UNITS = ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB"))
_NOT_BOUNDS = frozenset({"KIB", "MIB", "GIB"})


@dataclass(frozen=True, slots=True)
class Limit:
    name: str
    module: str
    value: int | float
    unit: str
    """The unit its name ends with (`bytes`, `s`, `ms`, ...), else `count`."""
    setting: str
    """How to change it (a node setting, a `[security]` one, a client keyword, a
    setting's range), or "" when it is fixed."""
    derived: str
    """The expression it is computed from, when it depends on other bounds."""
    doc: str
    """Its docstring."""

    @property
    def summary(self) -> str:
        """The docstring's first sentence, on one line."""
        text = " ".join(self.doc.split())
        match = re.match(r"(.+?\.)(\s+[A-Z`(]|$)", text)
        return match.group(1) if match else text


def unit_of(name: str) -> str:
    for token in reversed(name.split("_")):
        if token in _UNITS:
            return _UNITS[token]
    return "count"


def setting_of(name: str) -> str:
    if name in NODE_SETTINGS:
        return f"`{NODE_SETTINGS[name]}`"
    if name in NODE_SETTING_RANGES:
        key, end = NODE_SETTING_RANGES[name]
        return f"{end} `{key}`"
    if name in SECURITY_SETTINGS:
        return f"`[security] {SECURITY_SETTINGS[name]}`"
    if name in CLIENT_SETTINGS:
        return f"client `{CLIENT_SETTINGS[name]}=`"
    return ""


def rows() -> list[Limit]:
    """Every bound of `SOURCES`, in the order the modules define them."""
    table = []
    for module_name in SOURCES:
        module = importlib.import_module(module_name)
        source = inspect.getsource(module)
        body = ast.parse(source).body
        for statement, following in zip(body, [*body[1:], None], strict=True):
            name = _assigned_name(statement)
            if name is None:
                continue
            assert isinstance(statement, ast.Assign)
            doc = ""
            if isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant):
                doc = str(following.value.value)
            table.append(
                Limit(
                    name,
                    module_name,
                    getattr(module, name),
                    unit_of(name),
                    setting_of(name),
                    _derivation(source, statement.value),
                    doc,
                )
            )
    return table


def _assigned_name(statement: ast.stmt) -> str | None:
    if not (isinstance(statement, ast.Assign) and len(statement.targets) == 1):
        return None
    target = statement.targets[0]
    if not isinstance(target, ast.Name):
        return None
    name = target.id
    if not name.isupper() or name.startswith("_") or name in _NOT_BOUNDS:
        return None
    return name


def _derivation(source: str, value: ast.expr) -> str:
    """The expression, if it names another bound (sizes in KiB/MiB/GiB do not count)."""
    names = {n.id for n in ast.walk(value) if isinstance(n, ast.Name)}
    names |= {n.attr for n in ast.walk(value) if isinstance(n, ast.Attribute)}
    if not names - _NOT_BOUNDS:
        return ""
    text = ast.get_source_segment(source, value) or ""
    return " ".join(text.replace("_raft_limits.", "").split())


def format_value(limit: Limit) -> str:
    value = limit.value
    if isinstance(value, float):
        return f"{value:g}"
    if value >= 1 << 40 and value & (value - 1) == 0:
        return f"2^{value.bit_length() - 1}"
    if value >= 1 << 40 and (value + 1) & value == 0:
        return f"2^{value.bit_length()}-1"
    if limit.unit == "bytes":
        return _format_bytes(value)
    return f"{value:,}"


def _format_bytes(value: int) -> str:
    """`16 MiB`, `32 MiB + 64 KiB`; plain digits when not a whole number of KiB."""
    for size, unit in _SIZE_UNITS:
        if value >= size and value % 1024 == 0:
            whole, rest = divmod(value, size)
            text = f"{whole:,} {unit}"
            return f"{text} + {_format_bytes(rest)}" if rest else text
    return f"{value:,}"


BEGIN = "<!-- BEGIN limits table: python -m accord.limits docs/limits.md -->"
END = "<!-- END limits table -->"


def render_markdown() -> str:
    """The table as docs/limits.md holds it: one section per module."""
    lines = []
    table = rows()
    for module_name in SOURCES:
        lines += [
            "",
            f"### `{module_name}`",
            "",
            "| name | default | unit | setting | what it bounds |",
            "| --- | --- | --- | --- | --- |",
        ]
        for limit in (r for r in table if r.module == module_name):
            summary = limit.summary.replace("|", "\\|")
            if limit.derived:
                summary = f"= `{limit.derived}`. {summary}"
            setting = limit.setting or "fixed"
            value = format_value(limit)
            lines.append(f"| `{limit.name}` | {value} | {limit.unit} | {setting} | {summary} |")
    return "\n".join([BEGIN, *lines, "", END])


def rewrite(path: Path) -> bool:
    """Put the current table between the markers of `path`; True if it changed."""
    text = path.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    new = text[:start] + render_markdown() + text[end:]
    if new != text:
        path.write_text(new)
    return new != text


if __name__ == "__main__":
    if len(sys.argv) == 2:
        print("rewritten" if rewrite(Path(sys.argv[1])) else "up to date")
    else:
        print(render_markdown())
