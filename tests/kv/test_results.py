"""Result encoding, and typed errors rebuilt from the results that record them."""

from __future__ import annotations

import msgpack
import pytest

from accord.errors import AccordError
from accord.kv import (
    BadCommand,
    CompactResult,
    DeleteResult,
    ErrorResult,
    ExpireLeasesResult,
    ExpireSessionsResult,
    GetResult,
    KeyValue,
    LeaseGrantResult,
    LeaseKeepAliveResult,
    LeaseRevokeResult,
    NoopResult,
    PutResult,
    RangeResult,
    Result,
    TxnResult,
)
from accord.kv._wire import WireError
from accord.kv.errors import ERROR_CLASSES, KVError, error_from_parts
from accord.kv.results import decode_result, encode_result

KV = KeyValue(b"k", b"v", 2, 3, 2, 7)

RESULTS: list[Result] = [
    PutResult(3),
    PutResult(3, KV),
    GetResult(3, None),
    GetResult(3, KV),
    RangeResult(3, (KV, KV), 5, True),
    DeleteResult(3, 1, (KV,)),
    TxnResult(4, False, (PutResult(4), GetResult(4, KV), RangeResult(4, (), 0, False))),
    CompactResult(4, 2),
    LeaseGrantResult(1, 100, 200),
    LeaseRevokeResult(5, 2),
    LeaseKeepAliveResult(1, 100, 300),
    ExpireLeasesResult(6, (1, 2), 3),
    ExpireSessionsResult(4),
    NoopResult(),
    ErrorResult("compacted", "revision 1 has been compacted", (1, 2)),
]


@pytest.mark.parametrize("result", RESULTS, ids=lambda r: type(r).__name__)
def test_results_round_trip_through_msgpack(result: Result) -> None:
    wire = msgpack.unpackb(msgpack.packb(encode_result(result), use_bin_type=True))
    assert decode_result(wire) == result


@pytest.mark.parametrize(
    "wire",
    [[], [99], [1, 3], [1, 3, [b"k"]], [5, 1, True, [[11, 4]]], [13, "c", "m", [1.5]], "x"],
)
def test_malformed_results_are_refused(wire: object) -> None:
    with pytest.raises(WireError):
        decode_result(wire)


SAMPLE_ARGUMENTS: dict[str, tuple[int | str | bytes, ...]] = {
    "bad_command": ("why",),
    "bad_snapshot": ("why",),
    "invalid_request": ("why",),
    "duplicate_key": (b"k",),
    "limit_exceeded": ("key bytes", 5, 4),
    "too_many_leases": ("leases", 5, 4),
    "too_many_sessions": ("sessions", 5, 4),
    "too_many_watches": ("watchers", 5, 4),
    "quota_exceeded": (10, 5),
    "response_too_large": (17, 16, 3, 2),
    "compacted": (1, 2),
    "future_revision": (9, 2),
    "lease_not_found": (4,),
    "lease_exists": (4,),
    "stale_request": (1, 2, 3),
    "session_expired": (1, 2),
    "watch_cancelled": (1, "slow", 5),
    "watch_not_found": (1,),
}


@pytest.mark.parametrize("code", sorted(ERROR_CLASSES))
def test_every_error_survives_its_result(code: str) -> None:
    cls = ERROR_CLASSES[code]
    error = cls(*SAMPLE_ARGUMENTS[code])
    assert isinstance(error, KVError) and isinstance(error, AccordError)
    result = ErrorResult.of(error)
    assert result.code == code and result.message == str(error)
    wire = msgpack.unpackb(msgpack.packb(encode_result(result), use_bin_type=True))
    rebuilt = decode_result(wire).exception()  # type: ignore[union-attr]
    assert type(rebuilt) is cls and str(rebuilt) == str(error)
    assert rebuilt.details() == error.details()


def test_unknown_codes_and_wrong_arity_are_bad_commands() -> None:
    with pytest.raises(BadCommand):
        error_from_parts("nope", ())
    with pytest.raises(BadCommand):
        error_from_parts("compacted", (1,))
