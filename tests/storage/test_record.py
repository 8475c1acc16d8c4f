"""Record framing and the torn-tail / corruption decision, plus reader fuzzing."""

from __future__ import annotations

import contextlib

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.raft.types import HardState
from accord.storage.codec import (
    DecodeError,
    decode_batch,
    decode_snapshot_body,
    encode_batch,
    encode_snapshot_body,
)
from accord.storage.limits import RECORD_HEADER_BYTES, RECORD_PAYLOAD_BYTES_MAX
from accord.storage.model import Batch
from accord.storage.record import RecordType, frame, scan

from .helpers import entries, snapshot

MAX = RECORD_PAYLOAD_BYTES_MAX


def stream(*payloads: bytes) -> tuple[bytes, list[int]]:
    data = b""
    offsets = []
    for payload in payloads:
        offsets.append(len(data))
        data += frame(RecordType.BATCH, payload)
    return data, offsets


def test_frame_and_scan_round_trip() -> None:
    data, offsets = stream(b"one", b"", b"three" * 100)
    records, damage = scan(data, tail=False, payload_bytes_max=MAX)
    assert damage is None
    assert [(r.offset, r.payload) for r in records] == list(
        zip(offsets, [b"one", b"", b"three" * 100], strict=True)
    )


@pytest.mark.parametrize("cut", [1, RECORD_HEADER_BYTES - 1, RECORD_HEADER_BYTES + 2, -1])
def test_cut_final_record_is_a_torn_tail(cut: int) -> None:
    data, offsets = stream(b"a" * 40, b"b" * 40, b"c" * 40)
    end = offsets[2] + cut if cut > 0 else len(data) + cut
    records, damage = scan(data[:end], tail=True, payload_bytes_max=MAX)
    assert len(records) == 2
    assert damage is not None and damage.torn and damage.offset == offsets[2]


def test_bad_checksum_in_final_record_and_zero_fill_are_torn() -> None:
    data, offsets = stream(b"a" * 40, b"b" * 40)
    flipped = bytearray(data)
    flipped[-3] ^= 0x40
    _, damage = scan(bytes(flipped), tail=True, payload_bytes_max=MAX)
    assert damage is not None and damage.torn and damage.offset == offsets[1]
    _, damage = scan(data + bytes(4096), tail=True, payload_bytes_max=MAX)
    assert damage is not None and damage.torn and damage.offset == len(data)


def test_damage_followed_by_a_valid_record_is_corruption() -> None:
    data, offsets = stream(b"a" * 40, b"b" * 40, b"c" * 40)
    flipped = bytearray(data)
    flipped[offsets[1] + RECORD_HEADER_BYTES + 5] ^= 1
    records, damage = scan(bytes(flipped), tail=True, payload_bytes_max=MAX)
    assert len(records) == 1
    assert damage is not None and not damage.torn and damage.offset == offsets[1]


def test_length_flipped_past_the_end_in_a_middle_record_is_still_corruption() -> None:
    # Trusting the length field would call this a torn tail and drop the last record.
    data, offsets = stream(b"a" * 40, b"b" * 40, b"c" * 40)
    flipped = bytearray(data)
    flipped[offsets[1] + 6] ^= 0x10  # high byte of the length: now runs past the end
    _, damage = scan(bytes(flipped), tail=True, payload_bytes_max=MAX)
    assert damage is not None and not damage.torn and damage.offset == offsets[1]


def test_any_damage_outside_the_tail_is_corruption() -> None:
    data, offsets = stream(b"a" * 40, b"b" * 40)
    _, damage = scan(data[:-1], tail=False, payload_bytes_max=MAX)
    assert damage is not None and not damage.torn and damage.offset == offsets[1]


def test_oversized_length_is_damage_not_an_allocation() -> None:
    data, _ = stream(b"a" * 40)
    _, damage = scan(data, tail=False, payload_bytes_max=10)
    assert damage is not None and "exceeds the limit" in damage.reason


def _check_scan_invariants(data: bytes, tail: bool) -> None:
    records, damage = scan(data, tail=tail, payload_bytes_max=MAX)
    position = 0
    for record in records:
        assert record.offset == position
        # Re-framing reproduces the bytes exactly: the checksum held.
        assert frame(record.type, record.payload) == data[record.offset : record.end]
        position = record.end
    if damage is None:
        assert position == len(data)
    else:
        assert damage.offset == position
        assert not (damage.torn and not tail)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=600), tail=st.booleans())
def test_scan_survives_arbitrary_bytes(data: bytes, tail: bool) -> None:
    _check_scan_invariants(data, tail)


@settings(max_examples=300, deadline=None)
@given(
    payloads=st.lists(st.binary(max_size=80), min_size=1, max_size=6),
    edits=st.lists(
        st.tuples(st.sampled_from(["flip", "cut", "insert"]), st.integers(0, 10_000), st.binary()),
        max_size=4,
    ),
    tail=st.booleans(),
)
def test_scan_survives_damaged_streams(
    payloads: list[bytes], edits: list[tuple[str, int, bytes]], tail: bool
) -> None:
    data = bytearray(stream(*payloads)[0])
    for kind, where, blob in edits:
        at = where % (len(data) + 1)
        if kind == "flip" and at < len(data):
            data[at] ^= (blob[0] if blob else 0x01) or 0x01
        elif kind == "cut":
            del data[at:]
        elif kind == "insert":
            data[at:at] = blob
    _check_scan_invariants(bytes(data), tail)


def test_batch_codec_round_trip() -> None:
    batch = Batch(HardState(3, 2, 7), (5, 2), tuple(entries(6, 9, term=3)))
    assert decode_batch(encode_batch(batch)) == batch
    assert decode_batch(encode_batch(Batch())) == Batch()


def test_snapshot_codec_round_trip() -> None:
    snap = snapshot(12, term=4, data=b"\x00state")
    assert decode_snapshot_body(encode_snapshot_body(snap)) == snap


_msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.binary(max_size=8)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=5),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(value=_msgpack_values, raw=st.binary(max_size=64))
def test_decoders_raise_only_decode_error(value: object, raw: bytes) -> None:
    for payload in (msgpack.packb(value, use_bin_type=True), raw):
        for decode in (decode_batch, decode_snapshot_body):
            with contextlib.suppress(DecodeError):
                decode(payload)
