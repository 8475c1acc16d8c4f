"""Wire encoding of Raft messages and of the connection handshake (pure, no I/O).

Theory of operation
-------------------
After the handshake, every frame payload is one batch: a msgpack array of one to
`FRAME_MESSAGES_MAX` messages, of any groups, in the order they were sent::

    [message, message, ...]

Messages are on the hot path, so each is a positional array, never a map with field
names; the layout is `Message`'s field order::

    [type, group, src, dst, term, log_term, index, entries, commit,
     reject, reject_hint, context, chunk, offset]

    entries: [[term, index, entry_type, data], ...]
    chunk:   nil | [index, term, conf, offset, data, total_bytes]
    conf:    [voters, voters_outgoing, learners]     (each a sorted list of node ids)

Integers are msgpack ints, `reject` a msgpack bool, `context` and `data` msgpack bin.
A batch is its array header (1 byte up to 15 messages, 3 bytes up to 65,535) followed
by the messages' own encodings, so the sender encodes each message once, when it is
queued (its size decides whether the queue takes it), and `pack_batches` only joins
encodings: in order, each batch holding as many of the next messages as fit the
frame's byte and count bounds. Protocol version 1 sent one bare message per frame;
version 2 (this layout) is refused by version-1 nodes at the handshake and refuses
them, as every version does (stop every node to upgrade). A bare message is never
read as a batch: a batch's items must be arrays, a message's first field is an int.

A connection opens with a handshake (see `Hello` and `HelloReply`). Both start with
the magic string and the protocol version, and the reply's layout never changes, so a
node can always tell a peer of another version why it refuses it.

Decoding is strict and total: `decode_batch` returns the messages of a frame or
raises `ProtocolError`, whatever the bytes, and a frame is taken or refused whole (one
bad message refuses the batch, before any of it is delivered). The count in a batch's
array header is checked first, from the first bytes alone, so a frame announcing too
many messages costs nothing to refuse. Types are checked exactly (a bool is not an
int, a str is not bytes), every integer must lie within its bound (terms up to
`TERM_MAX`, indexes up to `INDEX_MAX`, ids up to `NODE_ID_MAX`, byte counts up to
`SNAPSHOT_BYTES_MAX`: far below 2^63, so the core can always add one), node ids
non-zero, enum values known, lengths within `accord.transport.limits`, and the
fields must fit the message type (a chunk exactly on SNAPSHOT, entries only on
APPEND), so nothing a peer sends can trip an invariant inside the Raft core. Checks
that depend on the connection (addressed to this node, from the node that shook
hands) are the caller's, per message. The encoder trusts its input: messages come
from our own core.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import msgpack

from accord.invariant import invariant
from accord.raft.types import (
    ConfState,
    Entry,
    EntryType,
    Message,
    MessageType,
    NodeId,
    SnapshotChunk,
)
from accord.transport.errors import HandshakeRejected, ProtocolError
from accord.transport.limits import (
    CLUSTER_ID_BYTES_MAX,
    CONF_MEMBERS_MAX,
    CONTEXT_BYTES_MAX,
    FRAME_MESSAGES_MAX,
    GROUP_ID_MAX,
    HANDSHAKE_BYTES_MAX,
    INDEX_MAX,
    MESSAGE_ENTRIES_MAX,
    NODE_ID_MAX,
    SNAPSHOT_BYTES_MAX,
    TERM_MAX,
)

PROTOCOL_MAGIC = "accord"
PROTOCOL_VERSION = 2

MESSAGE_FIELDS = 14
ENTRY_FIELDS = 4
CHUNK_FIELDS = 6
CONF_FIELDS = 3

_E = TypeVar("_E")
_VERSION_MAX = 1 << 16  # any version number a future release could use

_MESSAGE_TYPES: dict[int, MessageType] = {int(t): t for t in MessageType}
_ENTRY_TYPES: dict[int, EntryType] = {int(t): t for t in EntryType}
_ARRAY_ITEMS_MAX = max(MESSAGE_ENTRIES_MAX, CONF_MEMBERS_MAX, MESSAGE_FIELDS, FRAME_MESSAGES_MAX)
_FIXARRAY, _FIXARRAY_ITEMS_MAX, _ARRAY16, _ARRAY32 = 0x90, 15, 0xDC, 0xDD
# msgpack raises ValueError (and its subclasses) for malformed input; the others are
# listed so that no surprise in a future msgpack version escapes as a crash.
_UNPACK_ERRORS = (ValueError, TypeError, OverflowError, msgpack.UnpackException)


# --- messages -----------------------------------------------------------------------


def encode_message(message: Message) -> bytes:
    """The compact msgpack array for `message` (see the module docstring)."""
    m = message
    entries = [(e.term, e.index, e.type, e.data) for e in m.entries]
    chunk = None if m.chunk is None else _chunk_fields(m.chunk)
    fields = (
        m.type,
        m.group,
        m.src,
        m.dst,
        m.term,
        m.log_term,
        m.index,
        entries,
        m.commit,
        m.reject,
        m.reject_hint,
        m.context,
        chunk,
        m.offset,
    )
    packed: bytes = msgpack.packb(fields, use_bin_type=True)
    return packed


def _chunk_fields(chunk: SnapshotChunk) -> tuple[object, ...]:
    conf = chunk.conf
    conf_fields = (sorted(conf.voters), sorted(conf.voters_outgoing), sorted(conf.learners))
    return (chunk.index, chunk.term, conf_fields, chunk.offset, chunk.data, chunk.total_bytes)


def decode_message(payload: bytes) -> Message:
    """Decode one message's encoding (not a frame: see `decode_batch`); any deviation
    from the format is a `ProtocolError`."""
    return _message(_unpack(payload, str_bytes_max=0))


def _message(value: object) -> Message:
    fields = _array(value, MESSAGE_FIELDS, "message")
    kind, group, src, dst, term, log_term, index = fields[:7]
    entries, commit, reject, reject_hint, context, chunk, offset = fields[7:]
    message_type = _enum(kind, _MESSAGE_TYPES, "message type")
    if type(reject) is not bool:
        raise ProtocolError(f"reject: expected a bool, got {type(reject).__name__}")
    decoded_entries = _entries(entries)
    if decoded_entries and message_type is not MessageType.APPEND:
        raise ProtocolError(f"{message_type.name} message carries entries")
    decoded_chunk = None if chunk is None else _chunk(chunk)
    if (decoded_chunk is None) == (message_type is MessageType.SNAPSHOT):
        raise ProtocolError("a snapshot chunk belongs on SNAPSHOT messages, and only there")
    return Message(
        type=message_type,
        group=_uint(group, GROUP_ID_MAX, "group"),
        src=_node(src, "src"),
        dst=_node(dst, "dst"),
        term=_uint(term, TERM_MAX, "term"),
        log_term=_uint(log_term, TERM_MAX, "log_term"),
        index=_uint(index, INDEX_MAX, "index"),
        entries=decoded_entries,
        commit=_uint(commit, INDEX_MAX, "commit"),
        reject=reject,
        reject_hint=_uint(reject_hint, INDEX_MAX, "reject_hint"),
        context=_bytes(context, CONTEXT_BYTES_MAX, "context"),
        chunk=decoded_chunk,
        offset=_uint(offset, SNAPSHOT_BYTES_MAX, "offset"),
    )


def _entries(value: object) -> tuple[Entry, ...]:
    items = _array(value, None, "entries")
    if len(items) > MESSAGE_ENTRIES_MAX:
        raise ProtocolError(f"{len(items)} entries; at most {MESSAGE_ENTRIES_MAX} are accepted")
    entries = []
    for item in items:
        term, index, kind, data = _array(item, ENTRY_FIELDS, "entry")
        if type(data) is not bytes:
            raise ProtocolError(f"entry data: expected bytes, got {type(data).__name__}")
        entry_type = _enum(kind, _ENTRY_TYPES, "entry type")
        term = _positive(term, TERM_MAX, "entry term")
        entries.append(Entry(term, _positive(index, INDEX_MAX, "entry index"), entry_type, data))
    return tuple(entries)


def _chunk(value: object) -> SnapshotChunk:
    index, term, conf, offset, data, total = _array(value, CHUNK_FIELDS, "chunk")
    chunk = SnapshotChunk(
        index=_uint(index, INDEX_MAX, "chunk index"),
        term=_uint(term, TERM_MAX, "chunk term"),
        conf=_conf(conf),
        offset=_uint(offset, SNAPSHOT_BYTES_MAX, "chunk offset"),
        data=_bytes(data, None, "chunk data"),
        total_bytes=_uint(total, SNAPSHOT_BYTES_MAX, "chunk total_bytes"),
    )
    if chunk.offset + len(chunk.data) > chunk.total_bytes:
        raise ProtocolError("chunk extends past the snapshot's total_bytes")
    return chunk


def _conf(value: object) -> ConfState:
    voters, outgoing, learners = _array(value, CONF_FIELDS, "conf")
    return ConfState(
        voters=_members(voters, "voters"),
        voters_outgoing=_members(outgoing, "voters_outgoing"),
        learners=_members(learners, "learners"),
    )


def _members(value: object, what: str) -> frozenset[NodeId]:
    items = _array(value, None, what)
    if len(items) > CONF_MEMBERS_MAX:
        raise ProtocolError(f"{what}: {len(items)} members; at most {CONF_MEMBERS_MAX}")
    members = frozenset(_node(item, what) for item in items)
    if len(members) != len(items):
        raise ProtocolError(f"{what}: duplicate node ids")
    return members


# --- batches: one frame's payload ---------------------------------------------------


def batch_header_bytes(count: int) -> int:
    """Bytes a batch of `count` messages adds to their encodings (its array header)."""
    invariant(0 < count < 1 << 16, "a batch holds 1 to 65,535 messages")
    return 1 if count <= _FIXARRAY_ITEMS_MAX else 3


def pack_batch(encoded: Sequence[bytes]) -> bytes:
    """One frame payload holding `encoded` (each from `encode_message`), in order."""
    count = len(encoded)
    header_bytes = batch_header_bytes(count)
    if header_bytes == 1:
        header = bytes((_FIXARRAY | count,))
    else:
        header = bytes((_ARRAY16,)) + count.to_bytes(2, "big")
    return header + b"".join(encoded)


def encode_batch(messages: Iterable[Message]) -> bytes:
    """One frame payload holding `messages`, in order."""
    return pack_batch([encode_message(m) for m in messages])


def pack_batches(
    encoded: Iterable[bytes], payload_bytes_max: int, messages_max: int
) -> list[bytes]:
    """Frame payloads for `encoded` (message encodings, in order): as few as the
    bounds allow, since each takes as many of the next messages as fit in at most
    `payload_bytes_max` bytes and `messages_max` messages. Every message must fit a
    batch of its own (the sender refuses one that does not when it is queued)."""
    invariant(0 < messages_max < 1 << 16, "messages_max must fit an array16")
    payloads: list[bytes] = []
    batch: list[bytes] = []
    batch_bytes = 1  # the header of a batch of up to 15, then the encodings
    for message in encoded:  # the hot path of every link: no calls but the needed ones
        size = len(message)
        if 1 + size > payload_bytes_max:
            invariant(False, "a message over a frame of its own was queued")
        count = len(batch) + 1
        if count == _FIXARRAY_ITEMS_MAX + 1:
            batch_bytes += 2  # the header of 16 or more
        if count > messages_max or batch_bytes + size > payload_bytes_max:
            payloads.append(pack_batch(batch))
            batch, batch_bytes = [], 1
        batch.append(message)
        batch_bytes += size
    if batch:
        payloads.append(pack_batch(batch))
    return payloads


def decode_batch(payload: bytes, messages_max: int = FRAME_MESSAGES_MAX) -> tuple[Message, ...]:
    """Decode one frame payload into its messages, in order, or raise `ProtocolError`
    for the whole frame; more than `messages_max` messages is an error found from the
    header alone, before anything else is decoded."""
    count = _batch_count(payload)
    if not 0 < count <= messages_max:
        raise ProtocolError(f"batch of {count} messages; 1 to {messages_max} are accepted")
    items = _array(_unpack(payload, str_bytes_max=0), count, "batch")
    messages = []
    for position, item in enumerate(items):
        try:
            messages.append(_message(item))
        except ProtocolError as exc:
            raise ProtocolError(f"message {position} of {count}: {exc.reason}") from None
    return tuple(messages)


def _batch_count(payload: bytes) -> int:
    """The item count in the array header that opens `payload`."""
    if not payload:
        raise ProtocolError("empty frame")
    first = payload[0]
    if first & 0xF0 == _FIXARRAY:
        return first & 0x0F
    if first == _ARRAY16 and len(payload) >= 3:
        return int.from_bytes(payload[1:3], "big")
    if first == _ARRAY32 and len(payload) >= 5:
        return int.from_bytes(payload[1:5], "big")
    raise ProtocolError(f"batch: expected an array header, got byte {first:#04x}")


# --- handshake ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello:
    """The first frame on every connection, sent by the side that dialled.

    Wire: `["accord", version, cluster_id, src, dst]`; `dst` is the node the dialler
    means to reach, so a listener at a reused address refuses a stranger's traffic.
    """

    cluster_id: str
    src: NodeId
    dst: NodeId
    version: int = PROTOCOL_VERSION


@dataclass(frozen=True, slots=True)
class HelloReply:
    """The listener's answer to a `Hello`; it sends nothing else on the connection.

    Wire: `["accord", version, node_id, reason]`; an empty `reason` accepts the
    connection, anything else explains the refusal and the listener closes.
    This layout is the same in every protocol version.
    """

    node_id: NodeId
    reason: str = ""
    version: int = PROTOCOL_VERSION

    @property
    def accepted(self) -> bool:
        return not self.reason


def encode_hello(hello: Hello) -> bytes:
    fields = (PROTOCOL_MAGIC, hello.version, hello.cluster_id, hello.src, hello.dst)
    packed: bytes = msgpack.packb(fields, use_bin_type=True)
    return packed


def decode_hello(payload: bytes) -> Hello:
    """Decode a `Hello`. A peer of another protocol version is refused with
    `HandshakeRejected` before the rest of its hello is interpreted."""
    # Maps are allowed here (never in messages): a later version's hello may use one,
    # and must still reach the version check to be refused with a reason.
    unpacked = _unpack(payload, HANDSHAKE_BYTES_MAX, map_items_max=HANDSHAKE_BYTES_MAX)
    fields = _array(unpacked, None, "hello")
    _check_preamble(fields)
    if len(fields) != 5:
        raise ProtocolError(f"hello: expected 5 fields, got {len(fields)}")
    cluster_id = fields[2]
    if type(cluster_id) is not str or len(cluster_id.encode()) > CLUSTER_ID_BYTES_MAX:
        raise ProtocolError("hello: cluster id must be a string of at most 255 bytes")
    return Hello(cluster_id, _node(fields[3], "hello src"), _node(fields[4], "hello dst"))


def encode_hello_reply(reply: HelloReply) -> bytes:
    fields = (PROTOCOL_MAGIC, reply.version, reply.node_id, reply.reason)
    packed: bytes = msgpack.packb(fields, use_bin_type=True)
    return packed


def decode_hello_reply(payload: bytes) -> HelloReply:
    fields = _array(_unpack(payload, HANDSHAKE_BYTES_MAX), 4, "hello reply")
    magic, version, node_id, reason = fields
    if magic != PROTOCOL_MAGIC:
        raise ProtocolError("hello reply: not an Accord peer (bad magic)")
    if type(reason) is not str:
        raise ProtocolError("hello reply: reason must be a string")
    node = _uint(node_id, NODE_ID_MAX, "hello reply node id")
    return HelloReply(node, reason, _uint(version, _VERSION_MAX, "version"))


def _check_preamble(fields: list[Any]) -> None:
    if len(fields) < 2 or fields[0] != PROTOCOL_MAGIC:
        raise ProtocolError("hello: not an Accord peer (bad magic)")
    version = _uint(fields[1], _VERSION_MAX, "hello version")
    if version != PROTOCOL_VERSION:
        raise HandshakeRejected(
            f"protocol version {version} is not supported (this node speaks {PROTOCOL_VERSION})"
        )


# --- strict primitives --------------------------------------------------------------


def _unpack(payload: bytes, str_bytes_max: int, map_items_max: int = 0) -> Any:
    try:
        return msgpack.unpackb(
            payload,
            raw=False,
            use_list=True,
            max_str_len=str_bytes_max,
            max_array_len=_ARRAY_ITEMS_MAX,
            max_map_len=map_items_max,
            max_ext_len=0,
        )
    except _UNPACK_ERRORS as exc:
        raise ProtocolError(f"undecodable payload: {exc}") from None


def _array(value: object, length: int | None, what: str) -> list[Any]:
    if type(value) is not list:
        raise ProtocolError(f"{what}: expected an array, got {type(value).__name__}")
    if length is not None and len(value) != length:
        raise ProtocolError(f"{what}: expected {length} fields, got {len(value)}")
    return value


def _uint(value: object, value_max: int, what: str) -> int:
    # `type(...) is int` rejects bool, which msgpack keeps distinct from integers.
    if type(value) is not int or not 0 <= value <= value_max:
        raise ProtocolError(f"{what}: expected an integer in [0, {value_max}], got {value!r:.40}")
    return value


def _positive(value: object, value_max: int, what: str) -> int:
    if type(value) is not int or not 0 < value <= value_max:
        raise ProtocolError(f"{what}: expected an integer in [1, {value_max}], got {value!r:.40}")
    return value


def _node(value: object, what: str) -> NodeId:
    return _positive(value, NODE_ID_MAX, what)


def _enum(value: object, table: dict[int, _E], what: str) -> _E:
    member = table.get(value) if type(value) is int else None
    if member is None:
        raise ProtocolError(f"{what}: unknown value {value!r:.40}")
    return member


def _bytes(value: object, length_max: int | None, what: str) -> bytes:
    if type(value) is not bytes:
        raise ProtocolError(f"{what}: expected bytes, got {type(value).__name__}")
    if length_max is not None and len(value) > length_max:
        raise ProtocolError(f"{what}: {len(value)} bytes; at most {length_max}")
    return value
