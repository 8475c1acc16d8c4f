"""The limits checked against each other: every bound that another must hold is
computed from real encodings (snapshots, answers, requests, peer messages), not
restated; and the table (`accord.limits`) against the code and the docs."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
from pathlib import Path

import msgpack
import pytest

import accord.limits as table
from accord.api import limits as api
from accord.api.wire import event_doc, kv_doc, result_doc
from accord.client import AsyncClient, Client
from accord.client import limits as client
from accord.client.errors import LimitExceeded as ClientLimitExceeded
from accord.client.native import NativeLink
from accord.kv import (
    DeleteRange,
    Envelope,
    ExpireLeaseIds,
    KVStateMachine,
    LeaseGrant,
    Put,
    encode_command,
)
from accord.kv import limits as kv
from accord.kv.errors import DuplicateKey
from accord.kv.limits import KVLimits, response_kv_bytes, snapshot_bytes_max, version_bytes
from accord.kv.mvcc import event_bytes
from accord.kv.results import DeleteResult, GetResult, PutResult, RangeResult, TxnResult
from accord.kv.types import Event, EventType, KeyValue
from accord.node import limits as node
from accord.raft import ConfState, Entry, EntryType, Message, MessageType, Snapshot
from accord.raft import limits as raft
from accord.security import limits as security
from accord.security.cipher import OVERHEAD_BYTES as CIPHER_OVERHEAD_BYTES
from accord.security.config import SecurityConfig
from accord.server import config as node_config
from accord.server.config import NodeConfig
from accord.storage import limits as storage
from accord.storage.codec import encode_snapshot_body, encode_snapshot_header
from accord.testing.raftnet import RaftNetwork
from accord.transport import limits as transport
from accord.transport.codec import encode_batch

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "accord"
BIG = (1 << 63) - 1
"""The largest integer a revision, version or lease may hold: 9 bytes of msgpack."""


def worst_kv(key_bytes: int = 1, value_bytes: int = 0, fill: bytes = b"k") -> KeyValue:
    return KeyValue(fill * key_bytes, fill * value_bytes, BIG, BIG, BIG, BIG)


# --- the table --------------------------------------------------------------------------
def test_every_bound_is_in_the_table_once_and_re_exported() -> None:
    rows = table.rows()
    names = [row.name for row in rows]
    assert len(names) == len(set(names)), "a name is defined by two layers"
    assert sorted(names) == sorted(table.__all__)
    for row in rows:
        assert getattr(table, row.name) == row.value, row.name
        assert row.doc, f"{row.module}.{row.name} has no docstring"


def test_layers_import_no_limits_from_above() -> None:
    """raft imports nothing of Accord; storage, kv and transport only raft's bounds;
    and no module of Accord imports the table (it imports every layer)."""
    allowed = {
        "raft": set(),
        "storage": {"accord.raft.limits", "accord.raft.types", "accord.storage.protocol"},
        "kv": {"accord.raft.limits"},
        "transport": {"accord.raft", "accord.raft.limits", "accord.invariant"},
    }
    for layer, modules in allowed.items():
        assert _accord_imports(SRC / layer / "limits.py") <= modules, layer
    for path in SRC.rglob("*.py"):
        if path != SRC / "limits.py":
            assert "accord.limits" not in _accord_imports(path), path


def _accord_imports(path: Path) -> set[str]:
    found = set()
    for statement in ast.walk(ast.parse(path.read_text())):
        if isinstance(statement, ast.ImportFrom) and (statement.module or "").startswith("accord"):
            module = statement.module or ""
            found |= {
                f"{module}.{a.name}" if module == "accord" else module for a in statement.names
            }
        elif isinstance(statement, ast.Import):
            found |= {a.name for a in statement.names if a.name.startswith("accord")}
    return found


def test_settings_take_their_defaults_from_the_table() -> None:
    defaults = {f.name: f.default for f in dataclasses.fields(NodeConfig)}
    for name, key in table.NODE_SETTINGS.items():
        assert key in node_config.SCALAR_KEYS, key
        assert defaults[key] == getattr(table, name), key
    security_defaults = SecurityConfig()
    for name, key in table.SECURITY_SETTINGS.items():
        assert getattr(security_defaults, key) == getattr(table, name), key
    for cls in (AsyncClient, Client):
        parameters = inspect.signature(cls).parameters
        for name, keyword in table.CLIENT_SETTINGS.items():
            assert parameters[keyword].default == getattr(table, name), (cls, keyword)


def test_the_configured_ranges_are_the_tables() -> None:
    for name, (key, end) in table.NODE_SETTING_RANGES.items():
        low, high = node_config.RANGES[key]
        assert getattr(table, name) == (low if end == "smallest" else high), name
    for key, (low, high) in node_config.RANGES.items():
        default = {f.name: f.default for f in dataclasses.fields(NodeConfig)}[key]
        assert low <= default <= high, key


def test_the_docs_hold_the_current_table() -> None:
    text = (ROOT / "docs" / "limits.md").read_text()
    start, end = text.index(table.BEGIN), text.index(table.END) + len(table.END)
    assert text[start:end] == table.render_markdown(), "run: python -m accord.limits docs/limits.md"


# --- a snapshot of a full store fits what storage accepts ----------------------------------
def test_the_quota_is_derived_so_its_snapshot_fits_storage() -> None:
    assert storage.SNAPSHOT_DATA_BYTES_MAX == raft.RAFT_SNAPSHOT_DATA_BYTES_MAX
    assert kv.RESTORE_BYTES_MAX == storage.SNAPSHOT_DATA_BYTES_MAX
    assert snapshot_bytes_max(kv.STORE_BYTES_MAX) <= storage.SNAPSHOT_DATA_BYTES_MAX
    assert snapshot_bytes_max(kv.STORE_BYTES_MAX + (1 << 20)) > storage.SNAPSHOT_DATA_BYTES_MAX
    assert node_config.RANGES["store_bytes_max"][1] == kv.STORE_BYTES_MAX
    # The body record and its msgpack binary both have 32-bit lengths.
    assert storage.SNAPSHOT_FILE_BYTES_MAX < 1 << 32


def test_a_snapshot_file_holds_no_more_than_its_envelope_besides_the_data() -> None:
    ids = range(raft.RAFT_NODE_ID_MAX - raft.RAFT_MEMBERS_MAX, raft.RAFT_NODE_ID_MAX)
    members = frozenset(ids)
    conf = ConfState(voters=members, voters_outgoing=members, learners=members)
    snapshot = Snapshot(raft.RAFT_INDEX_MAX, raft.RAFT_TERM_MAX, conf, b"")
    envelope = (
        2 * storage.RECORD_HEADER_BYTES
        + len(encode_snapshot_header(snapshot.index, snapshot.term, True))
        + len(encode_snapshot_body(snapshot))
        + CIPHER_OVERHEAD_BYTES
        + 5  # the data's msgpack binary header
    )
    assert envelope <= storage.SNAPSHOT_ENVELOPE_BYTES_MAX
    assert CIPHER_OVERHEAD_BYTES <= storage.CIPHER_OVERHEAD_BYTES_MAX


def test_a_version_is_charged_more_than_its_snapshot_encoding() -> None:
    for key_bytes, value_bytes in ((1, 0), (300, 70_000), (kv.KEY_BYTES_MAX, kv.VALUE_BYTES_MAX)):
        kvs = worst_kv(key_bytes, value_bytes)
        one = msgpack.packb([kvs.key, [[BIG, BIG, BIG, BIG, kvs.value]]])
        # The key is written once per key: the first version pays for it.
        assert len(one) <= version_bytes(kvs.key, kvs.value)
        two = msgpack.packb([kvs.key, [[BIG, BIG, BIG, BIG, kvs.value]] * 2])
        assert len(two) - len(one) <= version_bytes(kvs.key, kvs.value)


class Store:
    def __init__(self, quota: int) -> None:
        self.machine = KVStateMachine(KVLimits(store_bytes_max=quota))
        self.index = 0

    def apply(self, command: object) -> object:
        self.index += 1
        envelope = encode_command(Envelope(0, 0, command, self.index))  # type: ignore[arg-type]
        return self.machine.apply(self.index, envelope)[0]

    def fill(self, key_bytes: int, value_bytes: int, keys: int, lease: int = 0) -> None:
        """Put `keys` keys over and over until the quota refuses one."""
        n = 0
        while not hasattr(
            self.apply(Put(b"%0*d" % (key_bytes, n % keys), b"v" * value_bytes, lease)), "code"
        ):
            n += 1


@pytest.mark.parametrize(
    ("key_bytes", "value_bytes", "keys"),
    [(1, 0, 10), (6, 0, 10**6), (8, 100, 7), (kv.KEY_BYTES_MAX, 1024, 10**6)],
    ids=["tiny-history", "many-tiny-keys", "history", "large-keys"],
)
def test_a_store_at_its_quota_then_emptied_snapshots_within_the_bound(
    key_bytes: int, value_bytes: int, keys: int
) -> None:
    quota = 256 * 1024
    store = Store(quota)
    store.apply(LeaseGrant((1 << 53) - 1, 60_000))
    store.fill(key_bytes, value_bytes, keys, lease=(1 << 53) - 1)
    assert quota - store.machine.size_bytes < version_bytes(b"k" * key_bytes, b"v" * value_bytes)
    store.apply(DeleteRange(b"\x00", b"\xff" * 8))  # never refused: a tombstone per key
    assert store.machine.size_bytes <= 2 * quota
    snapshot = store.machine.snapshot()
    # The store's part is within its charge; the counters and the lease take the rest.
    assert len(snapshot) <= 2 * quota + 1024
    assert len(snapshot) <= snapshot_bytes_max(quota)


# --- answers fit the frames the client accepts --------------------------------------------
def test_the_client_accepts_the_largest_answer_a_node_may_send() -> None:
    assert node_config.RANGES["response_bytes_max"] == (
        kv.RESPONSE_BYTES_MIN,
        kv.RESPONSE_BYTES_CEILING,
    )
    assert kv.RESPONSE_BYTES_MIN <= kv.RESPONSE_BYTES_MAX <= kv.RESPONSE_BYTES_CEILING
    frame = api.NATIVE_ANSWER_FRAME_BYTES_MAX
    assert frame == kv.RESPONSE_BYTES_CEILING + api.NATIVE_ANSWER_ENVELOPE_BYTES
    source = (SRC / "client" / "native.py").read_text()
    assert "FrameDecoder(NATIVE_ANSWER_FRAME_BYTES_MAX)" in source
    assert "FrameDecoder(NATIVE_REQUEST_FRAME_BYTES_MAX)" in (SRC / "api" / "native.py").read_text()
    # One key-value of the largest sizes always fits the smallest setting.
    largest = response_kv_bytes(b"k" * kv.KEY_BYTES_MAX, b"v" * kv.VALUE_BYTES_MAX)
    assert largest + kv.RESPONSE_OP_OVERHEAD_BYTES <= kv.RESPONSE_BYTES_MIN


@pytest.mark.parametrize(("key_bytes", "value_bytes"), [(1, 0), (300, 70_000), (4096, 1 << 20)])
def test_a_key_value_and_an_event_are_charged_more_than_their_native_form(
    key_bytes: int, value_bytes: int
) -> None:
    item = worst_kv(key_bytes, value_bytes)
    assert len(msgpack.packb(kv_doc(item, True))) <= response_kv_bytes(item.key, item.value)
    for prev in (None, item):
        event = Event(EventType.DELETE, item, prev)
        assert len(msgpack.packb(event_doc(event, True))) <= event_bytes(event)


def test_an_op_is_charged_more_than_its_native_form() -> None:
    ops = [RangeResult(BIG, (), BIG, True), GetResult(BIG, None), DeleteResult(BIG, BIG)]
    ops.append(PutResult(BIG))
    for op in ops:
        with_op = msgpack.packb(result_doc(TxnResult(BIG, True, (op,)), True))
        without = msgpack.packb(result_doc(TxnResult(BIG, True, ()), True))
        assert len(with_op) - len(without) <= kv.RESPONSE_OP_OVERHEAD_BYTES, op


def test_a_full_range_answer_fits_its_bound_plus_the_envelope() -> None:
    bound = kv.RESPONSE_BYTES_MIN
    store = Store(64 << 20)
    store.machine = KVStateMachine(KVLimits(response_bytes_max=bound))
    store.apply(LeaseGrant((1 << 53) - 1, 60_000))
    count = (bound - kv.RESPONSE_OP_OVERHEAD_BYTES) // response_kv_bytes(b"k" * 8, b"")
    for i in range(count):
        store.apply(Put(b"%08d" % i, b"", (1 << 53) - 1))
    result = store.machine.range(b"0", b"9", limit=0)
    assert isinstance(result, RangeResult) and len(result.kvs) == count
    answer = msgpack.packb([BIG, 200, result_doc(result, True)])
    assert len(answer) <= bound + api.NATIVE_ANSWER_ENVELOPE_BYTES
    assert len(answer) > bound // 2  # the charge is not far above the encoding either


def test_an_error_naming_the_longest_key_fits_the_envelope() -> None:
    error = DuplicateKey(bytes(range(256)) * (kv.KEY_BYTES_MAX // 256))
    body = {"error": {"code": error.code, "message": str(error)}}
    assert len(msgpack.packb([BIG, 400, body])) <= api.NATIVE_ANSWER_ENVELOPE_BYTES


def test_an_http_watch_line_fits_the_clients_bound() -> None:
    assert api.HTTP_WATCH_LINE_BYTES_MAX >= api.JSON_EXPANSION_MAX * kv.RESPONSE_BYTES_CEILING
    assert "len(buffer) > HTTP_WATCH_LINE_BYTES_MAX" in (SRC / "client" / "watch.py").read_text()
    for fill in (b"\x01", b"\xff", "\U0001f600".encode(), b"a"):
        item = worst_kv(16, 4096 // len(fill), fill)
        event = Event(EventType.PUT, item, None)
        line = json.dumps({"events": [event_doc(event)]}).encode() + b"\n"
        assert len(line) - 16 <= api.JSON_EXPANSION_MAX * event_bytes(event), fill


# --- requests fit the frames a node accepts -------------------------------------------------
def test_the_largest_key_and_value_can_be_written_over_both_protocols() -> None:
    key, value = b"k" * kv.KEY_BYTES_MAX, bytes(kv.VALUE_BYTES_MAX)
    body = json.dumps({"key": key.decode(), "value_b64": "A" * (4 * len(value) // 3 + 4)})
    assert len(body) <= api.REQUEST_BYTES_MAX
    frame = msgpack.packb([BIG, "put", {"key": key, "value": value, "client_id": BIG, "seq": BIG}])
    assert len(frame) <= api.NATIVE_REQUEST_FRAME_BYTES_MAX
    owner = "u" * node.NAME_CHARS_MAX * 4
    command = encode_command(
        Envelope((1 << 64) - 1, (1 << 64) - 1, Put(key, value, BIG), BIG, owner)
    )
    assert len(command) <= kv.COMMAND_BYTES_MAX == raft.RAFT_ENTRY_BYTES_MAX
    assert api.REQUEST_BYTES_MAX == api.NATIVE_REQUEST_FRAME_BYTES_MAX <= kv.COMMAND_BYTES_MAX


def test_the_client_refuses_a_request_frame_the_node_would_close_the_link_over() -> None:
    link = NativeLink("accord://127.0.0.1:1")
    link._writer = object()  # type: ignore[assignment]  # never written: refused first
    value = bytes(api.NATIVE_REQUEST_FRAME_BYTES_MAX)
    with pytest.raises(ClientLimitExceeded) as refused:
        link._send(1, "put", {"key": b"k", "value": value})
    assert (refused.value.code, refused.value.status) == ("request_too_large", 413)


def test_the_leaders_largest_command_lists_fit_one_command() -> None:
    ids = tuple(range(kv.LEASE_ID_MAX - kv.LEASE_IDS_PER_COMMAND_MAX, kv.LEASE_ID_MAX))
    command = encode_command(Envelope(0, 0, ExpireLeaseIds(ids), BIG))
    assert len(command) <= kv.COMMAND_BYTES_MAX


# --- peer messages and the log ----------------------------------------------------------------
def test_the_largest_append_entries_fits_a_peer_frame_and_the_queue() -> None:
    small = raft.RAFT_APPEND_BYTES_MAX // (raft.RAFT_APPEND_ENTRIES_MAX - 1)
    data = [bytes(small)] * (raft.RAFT_APPEND_ENTRIES_MAX - 1) + [bytes(raft.RAFT_ENTRY_BYTES_MAX)]
    entries = tuple(
        Entry(raft.RAFT_TERM_MAX, raft.RAFT_INDEX_MAX - 300 + i, EntryType.NORMAL, d)
        for i, d in enumerate(data)
    )
    message = Message(
        MessageType.APPEND,
        raft.RAFT_NODE_ID_MAX,
        raft.RAFT_NODE_ID_MAX,
        raft.RAFT_NODE_ID_MAX,
        raft.RAFT_TERM_MAX,
        raft.RAFT_TERM_MAX,
        raft.RAFT_INDEX_MAX,
        entries,
        raft.RAFT_INDEX_MAX,
        context=bytes(transport.CONTEXT_BYTES_MAX),
    )
    framed = len(encode_batch([message]))  # alone in a frame, as the sender checks it
    assert framed <= transport.FRAME_BYTES_MAX <= transport.QUEUE_BYTES_MAX
    assert storage.batch_bytes(entries) <= storage.BATCH_BYTES_MAX
    assert transport.CONF_MEMBERS_MAX == storage.SNAPSHOT_MEMBERS_MAX == raft.RAFT_MEMBERS_MAX
    assert (
        storage.RECORD_PAYLOAD_BYTES_MAX
        >= storage.BATCH_BYTES_MAX + storage.CIPHER_OVERHEAD_BYTES_MAX
    )


@pytest.mark.xfail(
    strict=True,
    reason="open: the Raft core does not bound a Ready's entries in bytes, and storage "
    "refuses a save over BATCH_BYTES_MAX (many large proposals between two fsyncs)",
)
def test_one_ready_never_holds_more_entries_than_storage_saves_at_once() -> None:
    net = RaftNetwork([1])
    net.elect(1)
    core = net.core(1)
    for _ in range(storage.BATCH_BYTES_MAX // raft.RAFT_ENTRY_BYTES_MAX + 1):
        core.propose(bytes(raft.RAFT_ENTRY_BYTES_MAX))
    assert storage.batch_bytes(core.ready().entries) <= storage.BATCH_BYTES_MAX


# --- times and shares ---------------------------------------------------------------------
def test_times_are_ordered_as_the_docs_promise() -> None:
    assert client.ATTEMPT_TIMEOUT_S < client.CALL_TIMEOUT_S
    assert client.CALL_TIMEOUT_S * 1000 < node.SESSION_IDLE_MS
    assert node.SESSION_IDLE_MS >= kv.SESSION_IDLE_MS_MIN
    assert client.NATIVE_LINK_IDLE_S_MAX < security.IDLE_TIMEOUT_S
    assert node.REQUEST_TIMEOUT_S_MIN <= node.REQUEST_TIMEOUT_S <= node.REQUEST_TIMEOUT_S_MAX
    assert node.REQUEST_TIMEOUT_S_MIN >= node.TICK_MS / 1000  # deadlines are checked per tick
    assert node.HOUSEKEEPING_INTERVAL_S * 1000 <= node.LEASE_EXPIRY_SLACK_MS
    assert client.RETRY_BACKOFF_S_MIN < client.RETRY_BACKOFF_S_MAX < client.CALL_TIMEOUT_S
    assert transport.RECONNECT_BACKOFF_S_MIN < transport.RECONNECT_BACKOFF_S_MAX
    assert security.LOGIN_LOCKOUT_S <= security.LOGIN_LOCKOUT_S_MAX
    assert kv.LEASE_TTL_MS_MAX <= kv.INT64_MAX


def test_shares_are_below_their_totals() -> None:
    assert kv.LEASES_PER_USER_MAX <= kv.LEASES_MAX
    assert kv.SESSIONS_PER_USER_MAX <= kv.SESSIONS_MAX
    assert kv.WATCHERS_PER_USER_MAX <= kv.WATCHERS_MAX
    assert node.PREFIX_BYTES_MAX == kv.KEY_BYTES_MAX
    assert kv.TXN_RANGE_OPS_MAX <= kv.TXN_OPS_MAX
    assert 1 <= node.PENDING_READS_MAX <= node.PENDING_READS_CEILING
    assert (
        2 * version_bytes(b"k" * kv.KEY_BYTES_MAX, bytes(kv.VALUE_BYTES_MAX)) <= kv.STORE_BYTES_MIN
    )
