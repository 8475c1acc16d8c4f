"""Commands of the KV state machine and their compact msgpack encoding.

Theory of operation
-------------------
A client request becomes an `Envelope`: the client's id and sequence number (its
request id, used for exactly-once retries), the command, and `now_ms`, the leader's
clock stamped when it proposes the entry. The envelope is encoded once by the leader
and the same bytes are replicated; every replica decodes them in `apply()`.

Commands the leader proposes on its own (`RenewAllLeases`, `LeaseCheckpoint`,
`ExpireLeaseIds`, `ExpireSessions`) use client id 0, which has no session: they are
applied whenever they are committed, since applying one twice is harmless.
(`LeaseKeepAlive` and `ExpireLeases` are no longer proposed; they stay decodable and
applied as before, so a log written by an earlier version replays the same.)

The envelope also names its `owner`: the authenticated user who sent it (`""` for
anonymous clients and the leader's own commands). A lease records the owner of its
grant, and the per-owner bounds on leases and sessions count by it.

The encoding is a msgpack array `[FORMAT, client_id, seq, now_ms, command]`, with
`owner` appended as a sixth field only when it is not empty (so the bytes of an
anonymous request are what earlier versions wrote), where a command is
`[tag, field, ...]` with its fields in declaration order (see `_TAGS`); a
`Txn` nests its compares as `[key, target, op, value]` and its ops as commands.
`decode_command()` accepts exactly what `encode_command()` writes and raises
`BadCommand` for anything else. Value checks that are not about the encoding (key
sizes, lease ids, TTL bounds) belong to `check_command()`, which returns the same
typed errors the state machine records.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from accord.kv import _wire
from accord.kv.errors import BadCommand
from accord.kv.limits import COMMAND_BYTES_MAX, UINT64_MAX

FORMAT_VERSION = 1


class CompareTarget(IntEnum):
    VALUE = 0
    VERSION = 1
    CREATE_REVISION = 2
    MOD_REVISION = 3


class CompareOp(IntEnum):
    EQUAL = 0
    NOT_EQUAL = 1
    LESS = 2
    GREATER = 3


@dataclass(frozen=True, slots=True)
class Compare:
    """A condition on one key's latest version. `value` is bytes for `VALUE` and an int
    otherwise. A missing key has version and revisions 0; a `VALUE` comparison on a
    missing key is always false (etcd's rule)."""

    key: bytes
    target: CompareTarget
    op: CompareOp
    value: bytes | int


@dataclass(frozen=True, slots=True)
class Put:
    key: bytes
    value: bytes
    lease: int = 0
    """Attach the key to this lease (0: none). Replaces any earlier attachment."""
    prev_kv: bool = False
    """Return the version this put replaced."""


@dataclass(frozen=True, slots=True)
class Get:
    key: bytes
    revision: int = 0
    """Read as of this revision (0: the latest)."""


@dataclass(frozen=True, slots=True)
class Range:
    key: bytes
    range_end: bytes = b""
    revision: int = 0
    limit: int = 0
    """Most key-values returned (0: no limit); `count` still counts every match."""
    count_only: bool = False


@dataclass(frozen=True, slots=True)
class DeleteRange:
    key: bytes
    range_end: bytes = b""
    prev_kv: bool = False


TxnOp = Put | Get | Range | DeleteRange


@dataclass(frozen=True, slots=True)
class Txn:
    """If every compare holds, apply `success`, else `failure`: atomically, at one
    revision, each op seeing the writes of the ops before it."""

    compares: tuple[Compare, ...] = ()
    success: tuple[TxnOp, ...] = ()
    failure: tuple[TxnOp, ...] = ()


@dataclass(frozen=True, slots=True)
class Compact:
    """Forget every version older than `revision` that a read at `revision` or later
    cannot see."""

    revision: int


@dataclass(frozen=True, slots=True)
class LeaseGrant:
    """Create lease `lease_id` (chosen by the leader) with deadline `now_ms + ttl_ms`."""

    lease_id: int
    ttl_ms: int


@dataclass(frozen=True, slots=True)
class LeaseRevoke:
    lease_id: int


@dataclass(frozen=True, slots=True)
class LeaseKeepAlive:
    """Move the lease's deadline to `now_ms + ttl_ms`."""

    lease_id: int


@dataclass(frozen=True, slots=True)
class ExpireLeases:
    """Revoke every lease whose deadline is `<= now_ms`, deleting its keys at one
    revision. The leader proposes it periodically."""


@dataclass(frozen=True, slots=True)
class RenewAllLeases:
    """Move the deadline of every lease in the table to `now_ms + ttl_ms`: a new
    leader's first command, one for the whole table (clients could not keep leases
    alive while there was no leader)."""


@dataclass(frozen=True, slots=True)
class LeaseCheckpoint:
    """Record deadlines the leader computed from client keepalives, as
    `(lease_id, deadline_ms)` pairs; a lease's deadline only moves forward, and never
    past `now_ms + ttl_ms`. Missing leases are skipped."""

    leases: tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class ExpireLeaseIds:
    """Revoke the listed leases whose deadline is `<= now_ms` (the leader decided they
    expired; one renewed meanwhile is kept), deleting their keys at one revision."""

    lease_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ExpireSessions:
    """Forget the sessions of clients not seen for `idle_ms` (as of `now_ms`)."""

    idle_ms: int


Command = (
    Put
    | Get
    | Range
    | DeleteRange
    | Txn
    | Compact
    | LeaseGrant
    | LeaseRevoke
    | LeaseKeepAlive
    | ExpireLeases
    | ExpireSessions
    | RenewAllLeases
    | LeaseCheckpoint
    | ExpireLeaseIds
)


@dataclass(frozen=True, slots=True)
class Envelope:
    """One replicated request: `(client_id, seq)` identifies it for exactly-once
    retries (client id 0: no session); `now_ms` is stamped by the leader."""

    client_id: int
    seq: int
    command: Command
    now_ms: int = 0
    owner: str = ""
    """Who sent it: the authenticated user, `""` when anonymous."""


# --- encoding --------------------------------------------------------------------

_TAGS: dict[type[Any], int] = {
    Put: 1,
    Get: 2,
    Range: 3,
    DeleteRange: 4,
    Txn: 5,
    Compact: 6,
    LeaseGrant: 7,
    LeaseRevoke: 8,
    LeaseKeepAlive: 9,
    ExpireLeases: 10,
    ExpireSessions: 11,
    RenewAllLeases: 12,
    LeaseCheckpoint: 13,
    ExpireLeaseIds: 14,
}
_TXN_OP_TAGS = frozenset({1, 2, 3, 4})


def encode_command(envelope: Envelope) -> bytes:
    """The bytes to propose for `envelope`."""
    fields = [
        FORMAT_VERSION,
        envelope.client_id,
        envelope.seq,
        envelope.now_ms,
        _command_fields(envelope.command),
    ]
    if envelope.owner:
        fields.append(envelope.owner)
    return _wire.pack(fields)


def _command_fields(command: Command) -> list[Any]:
    if isinstance(command, Txn):
        compares = [[c.key, int(c.target), int(c.op), c.value] for c in command.compares]
        success = [_command_fields(op) for op in command.success]
        failure = [_command_fields(op) for op in command.failure]
        return [_TAGS[Txn], compares, success, failure]
    values = [getattr(command, name) for name in command.__slots__]
    return [_TAGS[type(command)], *values]


# --- decoding --------------------------------------------------------------------


def decode_command(data: bytes) -> Envelope:
    """Decode what `encode_command()` wrote; anything else raises `BadCommand`."""
    if len(data) > COMMAND_BYTES_MAX:
        raise BadCommand(f"{len(data)} bytes, over the limit of {COMMAND_BYTES_MAX}")
    try:
        fields = _wire.array(_wire.unpack(data), "envelope")
        if len(fields) not in (5, 6):
            raise _wire.WireError(f"envelope: expected 5 or 6 fields, got {len(fields)}")
        version, client_id, seq, now_ms, command = fields[:5]
        if version != FORMAT_VERSION or type(version) is not int:
            raise _wire.WireError(f"unknown format version {version!r:.20}")
        owner = _wire.text(fields[5], "owner") if len(fields) == 6 else ""
        if len(fields) == 6 and not owner:
            raise _wire.WireError("owner: an empty owner is not encoded")
        return Envelope(
            _wire.uint(client_id, "client id", UINT64_MAX),
            _wire.uint(seq, "seq", UINT64_MAX),
            _decode_command(command, nested=False),
            _wire.uint(now_ms, "now_ms"),
            owner,
        )
    except _wire.WireError as exc:
        raise BadCommand(str(exc)) from None


def _key(value: object) -> bytes:
    return _wire.blob(value, "key")


def _int(value: object) -> int:
    return _wire.uint(value, "integer field")


def _bool(value: object) -> bool:
    return _wire.flag(value, "boolean field")


def _bytes(value: object) -> bytes:
    return _wire.blob(value, "bytes field")


def _lease_ids(value: object) -> tuple[int, ...]:
    return tuple(_wire.uint(i, "lease id") for i in _wire.array(value, "lease ids"))


def _lease_deadlines(value: object) -> tuple[tuple[int, int], ...]:
    pairs = []
    for item in _wire.array(value, "lease deadlines"):
        lease_id, deadline_ms = _wire.array(item, "lease deadline", 2)
        pairs.append((_wire.uint(lease_id, "lease id"), _wire.uint(deadline_ms, "deadline")))
    return tuple(pairs)


_FIELD_DECODERS: dict[int, tuple[type[Any], tuple[Callable[[object], Any], ...]]] = {
    1: (Put, (_key, _bytes, _int, _bool)),
    2: (Get, (_key, _int)),
    3: (Range, (_key, _bytes, _int, _int, _bool)),
    4: (DeleteRange, (_key, _bytes, _bool)),
    6: (Compact, (_int,)),
    7: (LeaseGrant, (_int, _int)),
    8: (LeaseRevoke, (_int,)),
    9: (LeaseKeepAlive, (_int,)),
    10: (ExpireLeases, ()),
    11: (ExpireSessions, (_int,)),
    12: (RenewAllLeases, ()),
    13: (LeaseCheckpoint, (_lease_deadlines,)),
    14: (ExpireLeaseIds, (_lease_ids,)),
}


def _decode_command(value: object, *, nested: bool) -> Any:
    fields = _wire.array(value, "command")
    if not fields:
        raise _wire.WireError("empty command")
    tag = fields[0]
    if type(tag) is not int:
        raise _wire.WireError(f"command tag: expected an integer, got {type(tag).__name__}")
    if nested and tag not in _TXN_OP_TAGS:
        raise _wire.WireError(f"command tag {tag} is not allowed inside a transaction")
    if tag == _TAGS[Txn]:
        return _decode_txn(fields)
    spec = _FIELD_DECODERS.get(tag)
    if spec is None:
        raise _wire.WireError(f"unknown command tag {tag}")
    cls, decoders = spec
    if len(fields) != len(decoders) + 1:
        raise _wire.WireError(f"{cls.__name__}: expected {len(decoders)} fields")
    return cls(*[decode(field) for decode, field in zip(decoders, fields[1:], strict=True)])


def _decode_txn(fields: list[Any]) -> Txn:
    _, compares, success, failure = _wire.array(fields, "txn", 4)
    return Txn(
        tuple(_decode_compare(c) for c in _wire.array(compares, "compares")),
        tuple(_decode_command(op, nested=True) for op in _wire.array(success, "success")),
        tuple(_decode_command(op, nested=True) for op in _wire.array(failure, "failure")),
    )


def _decode_compare(value: object) -> Compare:
    key, target, op, operand = _wire.array(value, "compare", 4)
    try:
        compare_target = CompareTarget(_wire.uint(target, "compare target"))
        compare_op = CompareOp(_wire.uint(op, "compare op"))
    except ValueError as exc:  # an int that names no member
        raise _wire.WireError(str(exc)) from None
    if compare_target is CompareTarget.VALUE:
        operand = _wire.blob(operand, "compare value")
    else:
        operand = _wire.uint(operand, "compare value")
    return Compare(_key(key), compare_target, compare_op, operand)
