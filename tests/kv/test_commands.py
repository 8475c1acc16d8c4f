"""Command encoding: exact round trips, strict decoding, fuzzing, static checks."""

from __future__ import annotations

import contextlib

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accord.errors import AccordError
from accord.kv import (
    BadCommand,
    Command,
    Compact,
    Compare,
    CompareOp,
    CompareTarget,
    DeleteRange,
    DuplicateKey,
    Envelope,
    ExpireLeases,
    ExpireSessions,
    Get,
    InvalidRequest,
    KVLimits,
    LeaseGrant,
    LeaseKeepAlive,
    LeaseRevoke,
    LimitExceeded,
    Put,
    Range,
    Txn,
    check_command,
    check_envelope,
    decode_command,
    encode_command,
)
from accord.kv.commands import FORMAT_VERSION

from .strategies import envelopes

EXAMPLES: list[Command] = [
    Put(b"k", b"v"),
    Put(b"k", b"", lease=7, prev_kv=True),
    Get(b"k", 3),
    Range(b"a", b"\x00", 4, 10, True),
    DeleteRange(b"a", b"b", True),
    Txn(
        (
            Compare(b"k", CompareTarget.VALUE, CompareOp.EQUAL, b"v"),
            Compare(b"k", CompareTarget.MOD_REVISION, CompareOp.LESS, 9),
        ),
        (Put(b"x", b"1"), Get(b"x")),
        (DeleteRange(b"x"), Range(b"a", b"z")),
    ),
    Txn(),
    Compact(5),
    LeaseGrant(1, 5000),
    LeaseRevoke(1),
    LeaseKeepAlive(2),
    ExpireLeases(),
    ExpireSessions(60_000),
]


@pytest.mark.parametrize("command", EXAMPLES, ids=lambda c: type(c).__name__)
def test_every_command_round_trips(command: object) -> None:
    envelope = Envelope(3, 4, command, 1234)  # type: ignore[arg-type]
    data = encode_command(envelope)
    assert decode_command(data) == envelope


@given(envelopes)
@settings(max_examples=300, deadline=None)
def test_random_envelopes_round_trip_exactly(envelope: Envelope) -> None:
    data = encode_command(envelope)
    decoded = decode_command(data)
    assert decoded == envelope
    assert encode_command(decoded) == data


def test_encoding_is_compact() -> None:
    data = encode_command(Envelope(1, 1, Put(b"key", b"value"), 1_700_000_000_000))
    assert len(data) <= 30


def _packed(obj: object) -> bytes:
    return bytes(msgpack.packb(obj, use_bin_type=True))


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        ([FORMAT_VERSION, 1, 1, 0], "expected 5 or 6 fields"),
        ([2, 1, 1, 0, [1, b"k", b"v", 0, False]], "format version"),
        ([FORMAT_VERSION, -1, 1, 0, [1, b"k", b"v", 0, False]], "client id"),
        ([FORMAT_VERSION, 1, -5, 0, [1, b"k", b"v", 0, False]], "seq"),
        ([FORMAT_VERSION, 1, 1, True, [1, b"k", b"v", 0, False]], "now_ms"),
        ([FORMAT_VERSION, 1, 1, 0, [1, "k", b"v", 0, False]], "key"),
        ([FORMAT_VERSION, 1, 1, 0, [1, b"k", b"v", 0, 1]], "boolean"),
        ([FORMAT_VERSION, 1, 1, 0, [1, b"k", b"v", 0]], "expected 4 fields"),
        ([FORMAT_VERSION, 1, 1, 0, [99]], "unknown command tag"),
        ([FORMAT_VERSION, 1, 1, 0, []], "empty command"),
        ([FORMAT_VERSION, 1, 1, 0, ["put"]], "command tag"),
        ([FORMAT_VERSION, 1, 1, 0, [5, [], [[6, 3]], []]], "not allowed inside"),
        ([FORMAT_VERSION, 1, 1, 0, [5, [], [[5, [], [], []]], []]], "not allowed inside"),
        ([FORMAT_VERSION, 1, 1, 0, [5, [[b"k", 9, 0, 1]], [], []]], "CompareTarget"),
        ([FORMAT_VERSION, 1, 1, 0, [5, [[b"k", 0, 0, 1]], [], []]], "compare value"),
        ([FORMAT_VERSION, 1, 1, 0, [5, [[b"k", 1, 0, b"x"]], [], []]], "compare value"),
        ({"a": 1}, "expected an array"),
    ],
)
def test_malformed_envelopes_are_refused_with_a_reason(obj: object, reason: str) -> None:
    with pytest.raises(BadCommand, match=reason) as info:
        decode_command(_packed(obj))
    assert info.value.code == "bad_command"
    assert isinstance(info.value, AccordError)


def test_undecodable_and_oversized_bytes_are_bad_commands() -> None:
    for data in [b"", b"\xc1", b"\x92\x01", _packed([1, 1, 1, 0, [10]]) + b"\x00"]:
        with pytest.raises(BadCommand):
            decode_command(data)
    with pytest.raises(BadCommand, match="over the limit"):
        decode_command(b"\x00" * (8 << 20))


# --- fuzzing: nothing but BadCommand, ever --------------------------------------------

msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.binary(max_size=8)
    | st.text(max_size=4),
    lambda children: (
        st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=30,
)


def _decode_or_bad_command(data: bytes) -> None:
    with contextlib.suppress(BadCommand):
        decode_command(data)


@given(st.binary(max_size=200))
@settings(max_examples=1000, deadline=None)
def test_fuzz_random_bytes(data: bytes) -> None:
    _decode_or_bad_command(data)


@given(msgpack_values, st.integers(0, 12))
@settings(max_examples=1000, deadline=None)
def test_fuzz_random_msgpack_in_an_envelope(value: object, tag: int) -> None:
    _decode_or_bad_command(_packed(value))
    _decode_or_bad_command(_packed([FORMAT_VERSION, 1, 1, 0, value]))
    if isinstance(value, list):
        _decode_or_bad_command(_packed([FORMAT_VERSION, 1, 1, 0, [tag, *value]]))


@given(envelopes, st.data())
@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_fuzz_mutated_valid_encodings(envelope: Envelope, data: st.DataObject) -> None:
    encoded = bytearray(encode_command(envelope))
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(encoded) - 1))
        action = data.draw(st.sampled_from(["flip", "delete", "insert", "truncate"]))
        if action == "flip":
            encoded[position] ^= data.draw(st.integers(1, 255))
        elif action == "delete":
            del encoded[position]
        elif action == "insert":
            encoded.insert(position, data.draw(st.integers(0, 255)))
        else:
            del encoded[position:]
        if not encoded:
            break
    _decode_or_bad_command(bytes(encoded))


# --- static checks ---------------------------------------------------------------------

SMALL = KVLimits(key_bytes_max=4, value_bytes_max=8, txn_ops_max=2, txn_compares_max=1)


@pytest.mark.parametrize(
    ("command", "error", "match"),
    [
        (Put(b"", b"v"), InvalidRequest, "key is empty"),
        (Get(b""), InvalidRequest, "key is empty"),
        (Range(b"", b""), InvalidRequest, "key is empty"),
        (Put(b"kkkkk", b"v"), LimitExceeded, "key bytes is 5; the limit is 4"),
        (Put(b"k", b"v" * 9), LimitExceeded, "value bytes is 9"),
        (Range(b"k", b"kkkkkk"), LimitExceeded, "range end bytes"),
        (Range(b"k", limit=-1), InvalidRequest, "negative"),
        (Get(b"k", -1), InvalidRequest, "negative"),
        (Put(b"k", b"v", lease=-1), InvalidRequest, "lease id"),
        (Txn(success=(Put(b"a", b""),) * 3), LimitExceeded, "transaction ops"),
        (
            Txn(compares=(Compare(b"a", CompareTarget.VERSION, CompareOp.EQUAL, 0),) * 2),
            LimitExceeded,
            "compares",
        ),
        (
            Txn(compares=(Compare(b"", CompareTarget.VERSION, CompareOp.EQUAL, 0),)),
            InvalidRequest,
            "compare is empty",
        ),
        (
            Txn(compares=(Compare(b"a", CompareTarget.VALUE, CompareOp.EQUAL, 0),)),
            InvalidRequest,
            "bytes operand",
        ),
        (
            Txn(compares=(Compare(b"a", CompareTarget.VERSION, CompareOp.EQUAL, b""),)),
            InvalidRequest,
            "integer operand",
        ),
        (Txn(failure=(Put(b"a", b""), Put(b"a", b"x"))), DuplicateKey, "more than once"),
        (Txn(success=(DeleteRange(b"a", b"c"), Put(b"b", b""))), DuplicateKey, "b'b'"),
        (Compact(0), InvalidRequest, "at least 1"),
        (LeaseGrant(0, 10), InvalidRequest, "lease id 0"),
        (LeaseGrant(1, 0), InvalidRequest, "TTL"),
        (LeaseRevoke(2**63), InvalidRequest, "lease id"),
        (LeaseKeepAlive(0), InvalidRequest, "lease id"),
        (ExpireSessions(10), InvalidRequest, "idle time"),
    ],
)
def test_check_command_refuses(command: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        check_command(command, SMALL)  # type: ignore[arg-type]


def test_check_command_accepts_valid_commands() -> None:
    for command in EXAMPLES:
        check_command(command, KVLimits())
    # two deletes may overlap; a range may start at the empty key
    check_command(Txn(success=(DeleteRange(b"a", b"c"), DeleteRange(b"b"))), SMALL)
    check_command(Range(b"", b"\x00"), SMALL)


def test_check_envelope_requires_consistent_request_ids() -> None:
    with pytest.raises(InvalidRequest, match="seq 0"):
        check_envelope(Envelope(0, 5, ExpireLeases()), KVLimits())
    with pytest.raises(InvalidRequest, match="start at 1"):
        check_envelope(Envelope(5, 0, ExpireLeases()), KVLimits())
    check_envelope(Envelope(0, 0, ExpireLeases()), KVLimits())
