"""Results of applied commands, and their msgpack form.

Every command `apply()` accepts yields exactly one result. A command that fails
yields `ErrorResult` (never an exception): `code` is the typed error's code,
`details` its constructor arguments, and `exception()` rebuilds the error.

Results are kept in client sessions (a retry is answered with the recorded result),
so they are part of the snapshot: `encode_result()` turns one into plain msgpack
values (`[tag, field, ...]`, key-values as `[key, value, create, mod, version,
lease]`) and `decode_result()` reverses it strictly, raising `_wire.WireError`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from accord.kv import _wire
from accord.kv.errors import Detail, KVError, error_from_parts
from accord.kv.types import KeyValue


@dataclass(frozen=True, slots=True)
class PutResult:
    revision: int
    prev_kv: KeyValue | None = None
    """The replaced version, when the put asked for it and the key existed."""


@dataclass(frozen=True, slots=True)
class GetResult:
    revision: int
    """The store's revision when the read was served (not the key's)."""
    kv: KeyValue | None


@dataclass(frozen=True, slots=True)
class RangeResult:
    revision: int
    kvs: tuple[KeyValue, ...]
    """In key order; empty when `count_only`."""
    count: int
    """Every key in the range, regardless of `limit`."""
    more: bool
    """Whether `limit` left keys out."""


@dataclass(frozen=True, slots=True)
class DeleteResult:
    revision: int
    deleted: int
    prev_kvs: tuple[KeyValue, ...] = ()
    """The deleted versions, when asked for."""


OpResult = PutResult | GetResult | RangeResult | DeleteResult


@dataclass(frozen=True, slots=True)
class TxnResult:
    revision: int
    succeeded: bool
    responses: tuple[OpResult, ...]
    """One per op of the branch that ran, in order. Every one carries the revision
    the transaction ended at."""


@dataclass(frozen=True, slots=True)
class CompactResult:
    revision: int
    compact_revision: int


@dataclass(frozen=True, slots=True)
class LeaseGrantResult:
    lease_id: int
    ttl_ms: int
    deadline_ms: int


@dataclass(frozen=True, slots=True)
class LeaseRevokeResult:
    revision: int
    deleted: int
    """Keys deleted with the lease."""


@dataclass(frozen=True, slots=True)
class LeaseKeepAliveResult:
    lease_id: int
    ttl_ms: int
    deadline_ms: int


@dataclass(frozen=True, slots=True)
class ExpireLeasesResult:
    revision: int
    expired: tuple[int, ...]
    """Ids of the leases revoked, ascending."""
    deleted: int
    """Keys deleted with them, all at `revision`."""


@dataclass(frozen=True, slots=True)
class LeasesRenewedResult:
    renewed: int
    """Leases whose deadline moved (`RenewAllLeases`, `LeaseCheckpoint`)."""


@dataclass(frozen=True, slots=True)
class ExpireSessionsResult:
    expired: int
    """Sessions forgotten."""


@dataclass(frozen=True, slots=True)
class NoopResult:
    """The result of an empty log entry (a new leader's first entry)."""


@dataclass(frozen=True, slots=True)
class ErrorResult:
    code: str
    message: str
    details: tuple[Detail, ...] = ()

    @classmethod
    def of(cls, error: KVError) -> ErrorResult:
        return cls(error.code, str(error), error.details())

    def exception(self) -> KVError:
        """The typed error this result records."""
        return error_from_parts(self.code, self.details)


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    """A lease as the read methods report it. `remaining_ms` is measured against the
    state machine's clock (the latest `now_ms` applied), not the reader's."""

    lease_id: int
    ttl_ms: int
    deadline_ms: int
    remaining_ms: int
    keys: tuple[bytes, ...] = ()
    owner: str = ""
    """The user who granted it (`""`: an anonymous client)."""


Result = (
    PutResult
    | GetResult
    | RangeResult
    | DeleteResult
    | TxnResult
    | CompactResult
    | LeaseGrantResult
    | LeaseRevokeResult
    | LeaseKeepAliveResult
    | ExpireLeasesResult
    | ExpireSessionsResult
    | LeasesRenewedResult
    | NoopResult
    | ErrorResult
)

# --- msgpack form ----------------------------------------------------------------


def encode_kv(kv: KeyValue) -> list[Any]:
    return [kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease]


def decode_kv(value: object) -> KeyValue:
    key, data, create, mod, version, lease = _wire.array(value, "key-value", 6)
    return KeyValue(
        _wire.blob(key, "key"),
        _wire.blob(data, "value"),
        _wire.uint(create, "create revision"),
        _wire.uint(mod, "mod revision"),
        _wire.uint(version, "version"),
        _wire.uint(lease, "lease"),
    )


def _enc_field(value: Any) -> Any:
    if isinstance(value, KeyValue):
        return encode_kv(value)
    if isinstance(value, tuple):
        return [_enc_field(item) for item in value]
    if value is None or isinstance(value, int | bytes | str):
        return value
    return encode_result(value)


def encode_result(result: Result) -> list[Any]:
    """`[tag, field, ...]` in declaration order (nested results and key-values as
    arrays)."""
    return [_TAG_OF[type(result)], *[_enc_field(getattr(result, n)) for n in result.__slots__]]


def _optional_kv(value: object) -> KeyValue | None:
    return None if value is None else decode_kv(value)


def _kvs(value: object) -> tuple[KeyValue, ...]:
    return tuple(decode_kv(item) for item in _wire.array(value, "key-values"))


def _ints(value: object) -> tuple[int, ...]:
    return tuple(_wire.uint(item, "lease id") for item in _wire.array(value, "ids"))


def _details(value: object) -> tuple[Detail, ...]:
    items = _wire.array(value, "error details")
    for item in items:
        if type(item) not in (int, str, bytes):
            raise _wire.WireError(f"error detail of type {type(item).__name__}")
    return tuple(items)


def _op_results(value: object) -> tuple[OpResult, ...]:
    results = tuple(decode_result(item) for item in _wire.array(value, "responses"))
    for result in results:
        if not isinstance(result, PutResult | GetResult | RangeResult | DeleteResult):
            raise _wire.WireError(f"{type(result).__name__} inside a transaction result")
    return results  # type: ignore[return-value]  # each checked just above


def _int(value: object) -> int:
    return _wire.uint(value, "integer field")


def _bool(value: object) -> bool:
    return _wire.flag(value, "boolean field")


def _str(value: object) -> str:
    return _wire.text(value, "text field")


_DECODERS: dict[int, tuple[type[Any], tuple[Callable[[object], Any], ...]]] = {
    1: (PutResult, (_int, _optional_kv)),
    2: (GetResult, (_int, _optional_kv)),
    3: (RangeResult, (_int, _kvs, _int, _bool)),
    4: (DeleteResult, (_int, _int, _kvs)),
    5: (TxnResult, (_int, _bool, _op_results)),
    6: (CompactResult, (_int, _int)),
    7: (LeaseGrantResult, (_int, _int, _int)),
    8: (LeaseRevokeResult, (_int, _int)),
    9: (LeaseKeepAliveResult, (_int, _int, _int)),
    10: (ExpireLeasesResult, (_int, _ints, _int)),
    11: (ExpireSessionsResult, (_int,)),
    12: (NoopResult, ()),
    13: (ErrorResult, (_str, _str, _details)),
    14: (LeasesRenewedResult, (_int,)),
}
_TAG_OF: dict[type[Any], int] = {cls: tag for tag, (cls, _) in _DECODERS.items()}


def decode_result(value: object) -> Result:
    fields = _wire.array(value, "result")
    if not fields or type(fields[0]) is not int or fields[0] not in _DECODERS:
        raise _wire.WireError("unknown result tag")
    cls, decoders = _DECODERS[fields[0]]
    if len(fields) != len(decoders) + 1:
        raise _wire.WireError(f"{cls.__name__}: expected {len(decoders)} fields")
    result: Result = cls(*[dec(f) for dec, f in zip(decoders, fields[1:], strict=True)])
    return result
