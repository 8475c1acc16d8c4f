"""The message and handshake codec: round trips, exact rejections, fuzzing.

The fuzz tests hold `decode_message` to its contract: whatever the bytes, it returns
a `Message` or raises `ProtocolError`, never anything else.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

import msgpack
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from accord.raft.types import ConfState, Entry, Message, MessageType, SnapshotChunk
from accord.transport import limits
from accord.transport.codec import (
    PROTOCOL_VERSION,
    Hello,
    HelloReply,
    decode_hello,
    decode_hello_reply,
    decode_message,
    encode_hello,
    encode_hello_reply,
    encode_message,
)
from accord.transport.errors import HandshakeRejected, ProtocolError

from .strategies import junk, messages

HEARTBEAT = Message(MessageType.HEARTBEAT, group=0, src=1, dst=2, term=3, commit=7)
APPEND = Message(
    MessageType.APPEND, 5, 1, 2, 9, log_term=8, index=10, entries=(Entry(9, 11, data=b"x"),)
)
SNAPSHOT = Message(
    MessageType.SNAPSHOT,
    0,
    1,
    2,
    4,
    chunk=SnapshotChunk(20, 3, ConfState(frozenset({1, 2, 3})), 0, b"abc", 6),
)


def fields_of(message: Message) -> list[Any]:
    decoded: list[Any] = msgpack.unpackb(encode_message(message), raw=False)
    return decoded


def pack(value: object) -> bytes:
    packed: bytes = msgpack.packb(value, use_bin_type=True)
    return packed


def decodes_or_protocol_error(payload: bytes) -> Message | None:
    try:
        return decode_message(payload)
    except ProtocolError:
        return None


# --- round trips ------------------------------------------------------------------


@given(messages())
@settings(max_examples=300)
def test_round_trip(message: Message) -> None:
    assert decode_message(encode_message(message)) == message


def test_layout_is_a_positional_array() -> None:
    fields = fields_of(APPEND)
    assert fields == [1, 5, 1, 2, 9, 8, 10, [[9, 11, 0, b"x"]], 0, False, 0, b"", None, 0]
    chunk = fields_of(SNAPSHOT)[12]
    assert chunk == [20, 3, [[1, 2, 3], [], []], 0, b"abc", 6]


def test_a_heartbeat_is_small() -> None:
    assert len(encode_message(HEARTBEAT)) <= 20


# --- exact rejections -------------------------------------------------------------


def with_field(message: Message, position: int, value: object) -> bytes:
    fields = fields_of(message)
    fields[position] = value
    return pack(fields)


@pytest.mark.parametrize(
    ("position", "value", "reason"),
    [
        (0, 99, "message type"),
        (0, True, "message type"),
        (1, -1, "group"),
        (2, 0, "src"),
        (3, 0, "dst"),
        (4, 1.5, "term"),
        (4, "3", "undecodable"),  # strings are not allowed at all in messages
        (4, True, "term"),
        (7, [[1, 1, 0, b""]], "carries entries"),
        (9, 1, "reject"),
        (11, "text", "undecodable"),
        (11, b"x" * (limits.CONTEXT_BYTES_MAX + 1), "context"),
        (12, [1, 1, [[], [], []], 0, b"", 0], "snapshot chunk"),
        (13, None, "offset"),
    ],
)
def test_rejects_bad_field(position: int, value: object, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason):
        decode_message(with_field(HEARTBEAT, position, value))


# --- integer bounds ---------------------------------------------------------------
# Every integer a peer sends, as (name, bound, payload with that field set to a value).


def _in_entry(position: int) -> Any:
    def build(value: int) -> bytes:
        entry: list[Any] = [9, 11, 0, b"x"]
        entry[position] = value
        return with_field(APPEND, 7, [entry])

    return build


def _in_chunk(position: int) -> Any:
    def build(value: int) -> bytes:
        chunk = fields_of(SNAPSHOT)[12]
        chunk[position] = value
        if position == 3:  # the offset must stay inside total_bytes to reach its check
            chunk[5] = value
            chunk[4] = b""
        return with_field(SNAPSHOT, 12, chunk)

    return build


def _in_voters(value: int) -> bytes:
    return with_field(SNAPSHOT, 12, [20, 3, [[value], [], []], 0, b"abc", 6])


def _at(position: int) -> Any:
    return lambda value: with_field(HEARTBEAT, position, value)


INTEGER_FIELDS = {
    "group": (limits.GROUP_ID_MAX, _at(1)),
    "src": (limits.NODE_ID_MAX, _at(2)),
    "dst": (limits.NODE_ID_MAX, _at(3)),
    "term": (limits.TERM_MAX, _at(4)),
    "log_term": (limits.TERM_MAX, _at(5)),
    "index": (limits.INDEX_MAX, _at(6)),
    "commit": (limits.INDEX_MAX, _at(8)),
    "reject_hint": (limits.INDEX_MAX, _at(10)),
    "offset": (limits.SNAPSHOT_BYTES_MAX, _at(13)),
    "entry term": (limits.TERM_MAX, _in_entry(0)),
    "entry index": (limits.INDEX_MAX, _in_entry(1)),
    "chunk index": (limits.INDEX_MAX, _in_chunk(0)),
    "chunk term": (limits.TERM_MAX, _in_chunk(1)),
    "chunk offset": (limits.SNAPSHOT_BYTES_MAX, _in_chunk(3)),
    "chunk total_bytes": (limits.SNAPSHOT_BYTES_MAX, _in_chunk(5)),
    "voters": (limits.NODE_ID_MAX, _in_voters),
}


def test_bounds_are_far_below_two_to_the_63() -> None:
    for bound, _ in INTEGER_FIELDS.values():
        assert bound <= 1 << 62


@pytest.mark.parametrize("name", sorted(INTEGER_FIELDS))
def test_every_integer_field_accepts_its_bound(name: str) -> None:
    bound, build = INTEGER_FIELDS[name]
    decode_message(build(bound))


@pytest.mark.parametrize("value", [(1 << 64) - 1, 1 << 63])
@pytest.mark.parametrize("name", sorted(INTEGER_FIELDS))
def test_every_integer_field_refuses_huge_values(name: str, value: int) -> None:
    _, build = INTEGER_FIELDS[name]
    with pytest.raises(ProtocolError, match=name):
        decode_message(build(value))


@given(st.sampled_from(sorted(INTEGER_FIELDS)), st.data())
@settings(max_examples=300)
def test_any_integer_above_its_bound_is_refused(name: str, data: st.DataObject) -> None:
    bound, build = INTEGER_FIELDS[name]
    value = data.draw(st.one_of(st.just(bound + 1), st.integers(bound + 1, (1 << 64) - 1)))
    with pytest.raises(ProtocolError, match=name):
        decode_message(build(value))


def test_a_heartbeat_with_the_largest_term_decodes_and_encodes_again() -> None:
    """The crash of a node on term 2^64-1 came from re-encoding term + 1."""
    top = decode_message(with_field(HEARTBEAT, 4, limits.TERM_MAX))
    encode_message(dataclasses.replace(top, term=top.term + 1))


@pytest.mark.parametrize(
    ("entries", "reason"),
    [
        ([[0, 1, 0, b""]], "entry term"),
        ([[1, 0, 0, b""]], "entry index"),
        ([[1, 1, 7, b""]], "entry type"),
        ([[1, 1, 0, None]], "entry data"),
        ([[1, 1, 0]], "entry"),
        ({"a": 1}, "undecodable"),
        ([[1, 1, 0, b""]] * (limits.MESSAGE_ENTRIES_MAX + 1), "entries|max_array_len"),
    ],
)
def test_rejects_bad_entries(entries: object, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason):
        decode_message(with_field(APPEND, 7, entries))


@pytest.mark.parametrize(
    ("chunk", "reason"),
    [
        (None, "snapshot chunk"),
        ([20, 3, [[1], [], []], 5, b"abc", 6], "past the snapshot"),
        ([20, 3, [[1, 1], [], []], 0, b"", 0], "duplicate"),
        ([20, 3, [[0], [], []], 0, b"", 0], "voters"),
        ([20, 3, [[1], []], 0, b"", 0], "conf"),
        ([20, 3, [[1], [], []], 0, None, 6], "chunk data"),
    ],
)
def test_rejects_bad_chunks(chunk: object, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason):
        decode_message(with_field(SNAPSHOT, 12, chunk))


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\xc1",  # never used in msgpack
        pack({"type": 3}),
        pack([3, 0, 1, 2]),
        pack([*fields_of(HEARTBEAT), 0]),
        encode_message(HEARTBEAT) + b"\x00",  # trailing bytes
        encode_message(HEARTBEAT)[:-1],
        b"\x91" * 100_000,  # nesting deeper than msgpack's stack
        b"\xdd\xff\xff\xff\xff",  # an array claiming 4 billion items
        pack(msgpack.ExtType(1, b"x")),
    ],
)
def test_rejects_malformed_payloads(payload: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_message(payload)


# --- fuzzing ----------------------------------------------------------------------


@given(st.binary(max_size=256))
@settings(max_examples=1000)
@example(b"\x9e" + b"\x00" * 14)
def test_random_bytes_never_crash(payload: bytes) -> None:
    decodes_or_protocol_error(payload)


@given(messages(), st.data())
@settings(max_examples=500)
def test_mutated_bytes_never_crash(message: Message, data: st.DataObject) -> None:
    payload = bytearray(encode_message(message))
    for _ in range(data.draw(st.integers(1, 4))):
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        at = data.draw(st.integers(0, max(0, len(payload) - 1)))
        if action == "flip" and payload:
            payload[at] ^= data.draw(st.integers(1, 255))
        elif action == "cut":
            del payload[at:]
        else:
            payload[at:at] = data.draw(st.binary(min_size=1, max_size=4))
    decodes_or_protocol_error(bytes(payload))


def paths(tree: object, prefix: tuple[int, ...] = ()) -> list[tuple[int, ...]]:
    found = [prefix]
    if isinstance(tree, list):
        for i, child in enumerate(tree):
            found.extend(paths(child, (*prefix, i)))
    return found


@given(messages(), st.data())
@settings(max_examples=500)
def test_mutated_structure_never_crashes(message: Message, data: st.DataObject) -> None:
    tree = fields_of(message)
    path = data.draw(st.sampled_from(paths(tree)[1:]))
    parent = tree
    for i in path[:-1]:
        parent = parent[i]
    action = data.draw(st.sampled_from(["replace", "delete", "append"]))
    if action == "replace":
        parent[path[-1]] = data.draw(junk)
    elif action == "delete":
        del parent[path[-1]]
    else:
        parent.append(data.draw(junk))
    decoded = decodes_or_protocol_error(pack(tree))
    if decoded is not None:
        # Whatever got through is a well-formed message that re-encodes faithfully.
        assert decode_message(encode_message(decoded)) == decoded


# --- handshake --------------------------------------------------------------------


def test_hello_round_trip() -> None:
    hello = Hello("prod-eu", src=3, dst=1)
    assert decode_hello(encode_hello(hello)) == hello
    reply = HelloReply(1, "go away")
    assert decode_hello_reply(encode_hello_reply(reply)) == reply
    assert not reply.accepted and HelloReply(1).accepted


def test_hello_of_another_version_is_refused_before_the_rest_is_read() -> None:
    payload = pack(["accord", PROTOCOL_VERSION + 1, {"a layout": "we do not know"}])
    with pytest.raises(HandshakeRejected, match="protocol version"):
        decode_hello(payload)


@pytest.mark.parametrize(
    "fields",
    [
        ["nope", 1, "c", 1, 2],
        ["accord", 1, "c", 0, 2],
        ["accord", 1, "c", 1],
        ["accord", 1, b"c", 1, 2],
        ["accord", 1, "x" * 300, 1, 2],
        ["accord", -1, "c", 1, 2],
        [],
    ],
)
def test_bad_hello_is_a_protocol_error(fields: list[object]) -> None:
    with pytest.raises(ProtocolError):
        decode_hello(pack(fields))


@given(st.binary(max_size=64))
def test_random_handshakes_never_crash(payload: bytes) -> None:
    for decode in (decode_hello, decode_hello_reply):
        with contextlib.suppress(ProtocolError):
            decode(payload)
