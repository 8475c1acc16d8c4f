"""Batches, one frame's payload: round trips, packing into frames within the byte and
count bounds, exact rejections, fuzzing.

The fuzz tests hold `decode_batch` to its contract: whatever the bytes, it returns
the frame's messages or raises `ProtocolError`, never anything else.
"""

from __future__ import annotations

import itertools
from typing import Any

import msgpack
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from accord.invariant import InvariantError
from accord.raft.types import Entry, Message, MessageType
from accord.transport.codec import (
    batch_header_bytes,
    decode_batch,
    encode_batch,
    encode_message,
    pack_batch,
    pack_batches,
)
from accord.transport.errors import ProtocolError
from accord.transport.limits import FRAME_MESSAGES_MAX, TERM_MAX

from .strategies import junk, messages


def heartbeat(group: int, commit: int = 0) -> Message:
    return Message(MessageType.HEARTBEAT, group, src=1, dst=2, term=3, commit=commit)


def fields_of(message: Message) -> list[Any]:
    decoded: list[Any] = msgpack.unpackb(encode_message(message), raw=False)
    return decoded


def pack(value: object) -> bytes:
    packed: bytes = msgpack.packb(value, use_bin_type=True)
    return packed


def decodes_or_protocol_error(payload: bytes) -> tuple[Message, ...] | None:
    try:
        return decode_batch(payload)
    except ProtocolError:
        return None


HEARTBEATS = [heartbeat(group) for group in range(3)]
APPEND = Message(MessageType.APPEND, 7, 1, 2, 9, log_term=8, index=10, entries=(Entry(9, 11),))


# --- round trips and layout ---------------------------------------------------------


@given(st.lists(messages(), min_size=1, max_size=40))
@settings(max_examples=200)
def test_round_trip(batch: list[Message]) -> None:
    assert decode_batch(encode_batch(batch)) == tuple(batch)


def test_a_thousand_groups_share_one_frame_in_order() -> None:
    batch = [heartbeat(group, commit=group * 3) for group in range(1000)]
    decoded = decode_batch(encode_batch(batch))
    assert decoded == tuple(batch)
    assert [m.group for m in decoded] == list(range(1000))


@pytest.mark.parametrize("count", [1, 15, 16, 17, 1000, FRAME_MESSAGES_MAX])
def test_layout_is_an_array_of_message_arrays(count: int) -> None:
    batch = [heartbeat(group) for group in range(count)]
    payload = encode_batch(batch)
    assert payload == pack([fields_of(m) for m in batch])
    header_bytes = 1 if count <= 15 else 3
    assert batch_header_bytes(count) == header_bytes
    assert len(payload) == header_bytes + sum(len(encode_message(m)) for m in batch)


@pytest.mark.parametrize("count", [0, 1 << 16])
def test_a_batch_holds_one_to_65535_messages(count: int) -> None:
    with pytest.raises(InvariantError):
        batch_header_bytes(count)


# --- packing into frames ------------------------------------------------------------


def unpack_all(payloads: list[bytes]) -> list[Message]:
    return [m for payload in payloads for m in decode_batch(payload)]


def test_packing_splits_at_the_message_bound() -> None:
    batch = [heartbeat(group) for group in range(2500)]
    payloads = pack_batches([encode_message(m) for m in batch], 1 << 20, FRAME_MESSAGES_MAX)
    assert [len(decode_batch(p)) for p in payloads] == [1024, 1024, 452]
    assert unpack_all(payloads) == batch


def test_packing_splits_at_the_byte_bound_exactly() -> None:
    encoded = [encode_message(heartbeat(group)) for group in range(10)]
    size = len(encoded[0])
    assert all(len(e) == size for e in encoded)
    fits_four = batch_header_bytes(4) + 4 * size
    assert [len(decode_batch(p)) for p in pack_batches(encoded, fits_four, 100)] == [4, 4, 2]
    one_short = fits_four - 1
    assert [len(decode_batch(p)) for p in pack_batches(encoded, one_short, 100)] == [3, 3, 3, 1]


def test_packing_counts_the_longer_header_of_sixteen_messages() -> None:
    encoded = [encode_message(heartbeat(1)) for _ in range(16)]
    size = len(encoded[0])
    # Sixteen encodings and a 1-byte header would fit; the header of 16 is 3 bytes.
    payloads = pack_batches(encoded, 1 + 16 * size, 100)
    assert [len(decode_batch(p)) for p in payloads] == [15, 1]
    payloads = pack_batches(encoded, 3 + 16 * size, 100)
    assert [len(decode_batch(p)) for p in payloads] == [16]


def test_packing_nothing_makes_no_frame() -> None:
    assert pack_batches([], 100, 10) == []


def test_a_message_too_large_for_a_frame_of_its_own_is_a_bug() -> None:
    encoded = encode_message(APPEND)
    assert pack_batches([encoded], len(encoded) + 1, 1) == [pack_batch([encoded])]
    with pytest.raises(InvariantError):
        pack_batches([encoded], len(encoded), 1)


@given(
    st.lists(st.integers(0, 60), max_size=120),
    st.integers(1, 20),
    st.integers(0, 200),
)
@settings(max_examples=300)
def test_packing_keeps_order_and_bounds_and_fills_each_frame(
    data_sizes: list[int], messages_max: int, spare_bytes: int
) -> None:
    batch = [
        Message(MessageType.APPEND, i, 1, 2, 1, entries=(Entry(1, 1, data=bytes(n)),))
        for i, n in enumerate(data_sizes)
    ]
    encoded = [encode_message(m) for m in batch]
    payload_bytes_max = 1 + max((len(e) for e in encoded), default=0) + spare_bytes
    payloads = pack_batches(encoded, payload_bytes_max, messages_max)
    assert unpack_all(payloads) == batch  # every message, once, in order
    sizes = iter(encoded)
    counts = [len(decode_batch(p)) for p in payloads]
    for payload, count in zip(payloads, counts, strict=True):
        assert len(payload) <= payload_bytes_max and 0 < count <= messages_max
        taken = list(itertools.islice(sizes, count))
        assert len(payload) == batch_header_bytes(count) + sum(len(e) for e in taken)
    # Greedy: no frame but the last could have taken the next message too.
    start = 0
    for payload, count in zip(payloads[:-1], counts[:-1], strict=True):
        start += count
        grown = batch_header_bytes(count + 1) + len(payload) - batch_header_bytes(count)
        assert count == messages_max or grown + len(encoded[start]) > payload_bytes_max


# --- exact rejections ---------------------------------------------------------------

GOOD = fields_of(HEARTBEATS[0])
BAD_TERM = [*GOOD[:4], (1 << 64) - 1, *GOOD[5:]]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "empty frame"),
        (b"\x90", "batch of 0 messages"),
        (pack({"messages": []}), "array header"),
        (pack(3), "array header"),
        (pack(b"x"), "array header"),
        (pack(None), "array header"),
        (b"\xdc\x00", "array header"),  # an array16 header cut short
        (b"\xdd\x00\x00", "array header"),  # an array32 header cut short
        # A version-1 frame: one bare message, whose first field is no message.
        (encode_message(HEARTBEATS[0]), "message 0 of 14: message: expected an array"),
        (pack([GOOD] * (FRAME_MESSAGES_MAX + 1)), f"batch of {FRAME_MESSAGES_MAX + 1} messages"),
        # Refused from the header alone: the messages it announces are not even there.
        (b"\xdc\x04\x01", "batch of 1025 messages"),
        (b"\xdd\xff\xff\xff\xff", "batch of 4294967295 messages"),
        (pack([GOOD, BAD_TERM, GOOD]), "message 1 of 3: term"),
        (pack([GOOD, 5]), "message 1 of 2: message: expected an array, got int"),
        (pack([GOOD, GOOD[:-1]]), "message 1 of 2: message: expected 14 fields"),
        (pack([GOOD, {"type": 3}]), "undecodable"),  # maps are never allowed
        (pack([GOOD, "text"]), "undecodable"),  # neither are strings
        (pack([GOOD, msgpack.ExtType(1, b"x")]), "undecodable"),
        (encode_batch(HEARTBEATS) + b"\x00", "undecodable"),  # trailing bytes
        (encode_batch(HEARTBEATS)[:-1], "undecodable"),  # cut short
        (b"\x93" + b"".join(encode_message(m) for m in HEARTBEATS[:2]), "undecodable"),
        (b"\x92" + encode_message(HEARTBEATS[0]) * 3, "undecodable"),  # one too many
        (b"\x91" * 100_000, "undecodable"),  # nesting deeper than msgpack's stack
    ],
)
def test_rejects_malformed_batches(payload: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason):
        decode_batch(payload)


def test_the_message_bound_is_the_callers() -> None:
    payload = encode_batch(HEARTBEATS)
    assert decode_batch(payload, messages_max=3) == tuple(HEARTBEATS)
    with pytest.raises(ProtocolError, match="batch of 3 messages; 1 to 2 are accepted"):
        decode_batch(payload, messages_max=2)


def test_the_largest_term_in_a_batch_is_accepted_one_more_is_refused() -> None:
    top = [*GOOD[:4], TERM_MAX, *GOOD[5:]]
    assert decode_batch(pack([GOOD, top]))[1].term == TERM_MAX
    with pytest.raises(ProtocolError, match="message 1 of 2: term"):
        decode_batch(pack([GOOD, [*GOOD[:4], TERM_MAX + 1, *GOOD[5:]]]))


# --- fuzzing ------------------------------------------------------------------------

# Frames that open like a batch reach the message decoder more often than random bytes.
batch_headers = st.sampled_from(
    [b"\x91", b"\x92", b"\x9f", b"\xdc\x00\x02", b"\xdd\x00\x00\x00\x01"]
)


@given(st.one_of(st.binary(max_size=256), st.tuples(batch_headers, st.binary(max_size=256))))
@settings(max_examples=1000)
@example(b"\x91\x9e" + b"\x00" * 14)
@example(b"\xdc\xff\xff")
def test_random_bytes_never_crash(payload: bytes | tuple[bytes, bytes]) -> None:
    decodes_or_protocol_error(payload if isinstance(payload, bytes) else b"".join(payload))


@given(st.lists(messages(), min_size=1, max_size=6), st.data())
@settings(max_examples=500)
def test_mutated_bytes_never_crash(batch: list[Message], data: st.DataObject) -> None:
    payload = bytearray(encode_batch(batch))
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


@given(st.lists(messages(), min_size=1, max_size=6), st.data())
@settings(max_examples=500)
def test_mutated_structure_never_crashes(batch: list[Message], data: st.DataObject) -> None:
    tree: list[Any] = [fields_of(m) for m in batch]
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
        parent.append(data.draw(st.one_of(junk, st.just(fields_of(batch[0])))))
    decoded = decodes_or_protocol_error(pack(tree))
    if decoded is not None:
        # Whatever got through is a well-formed batch that re-encodes faithfully.
        assert decode_batch(encode_batch(decoded)) == decoded
