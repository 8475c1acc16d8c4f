"""Typed results of the client's calls (frozen dataclasses), and their JSON decoding.

The key-value results are the state machine's own types (`accord.kv.results` and
`accord.kv.types`), so a `KeyValue` or a `TxnResult` means the same thing on both
sides of the wire; the fields the HTTP API does not carry (`prev_kv`, `prev_kvs`) keep
their defaults. Leases and cluster status have types of their own here.

Keys and values are always `bytes` in results. On the wire they are JSON strings
(`key`, `value`) when they are UTF-8 and base64 (`key_b64`, `value_b64`) otherwise.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from accord.client.errors import ServerError
from accord.kv.results import DeleteResult, GetResult, PutResult, RangeResult, TxnResult
from accord.kv.types import Event, EventType, KeyValue


@dataclass(frozen=True, slots=True)
class Lease:
    """A lease as `lease_grant` and `lease_keepalive` return it."""

    id: int
    ttl_s: int
    """Seconds the lease lives without another keepalive."""


@dataclass(frozen=True, slots=True)
class LeaseTTL:
    """A lease as `lease_ttl` reports it."""

    id: int
    ttl_s: int
    """Seconds left (by the state machine's clock, i.e. the leader's)."""
    granted_ttl_s: int
    keys: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class LeaseRevoked:
    revision: int
    """The revision at which the lease's keys were deleted."""


@dataclass(frozen=True, slots=True)
class Member:
    id: int
    name: str | None
    url: str | None
    """The member's client URL (its HTTP API)."""
    peer: str | None
    """host:port of its Raft transport."""
    role: str
    """"voter", "learner" or "removed"."""
    match: int | None = None
    """The highest log index known replicated on it (only the leader knows)."""
    native_url: str | None = None
    """`accord://host:port` of its native protocol, if it serves one."""


@dataclass(frozen=True, slots=True)
class ClusterStatus:
    """One node's view of the cluster (`GET /v1/cluster/status`)."""

    id: int
    """The node that answered."""
    role: str
    """Its Raft role: "leader", "follower", "candidate", "pre_candidate"..."""
    leader: int
    """The leader's id as this node knows it; 0 if it knows none."""
    term: int
    commit: int
    applied: int
    revision: int
    members: tuple[Member, ...]

    @property
    def leader_url(self) -> str | None:
        return next((m.url for m in self.members if m.id == self.leader and self.leader), None)

    @property
    def leader_native_url(self) -> str | None:
        leader = next((m for m in self.members if m.id == self.leader and self.leader), None)
        return leader.native_url if leader else None


class BadAnswer(ServerError):
    """A node's answer was not what API v1 specifies (a bug or a foreign server)."""

    code = "bad_answer"


# --- decoding ------------------------------------------------------------------------
def _int(obj: Mapping[str, Any], name: str, default: int | None = None) -> int:
    value = obj.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadAnswer(f"field {name!r} is not an integer: {value!r}")
    return value


def text_or_b64(name: str, data: bytes) -> dict[str, str]:
    """`{name: text}` if `data` is UTF-8, else `{name_b64: base64}`."""
    try:
        return {name: data.decode("utf-8")}
    except UnicodeDecodeError:
        return {f"{name}_b64": base64.b64encode(data).decode()}


def bytes_field(obj: Mapping[str, Any], name: str) -> bytes:
    if f"{name}_b64" in obj:
        return base64.b64decode(str(obj[f"{name}_b64"]))
    value = obj.get(name, "")
    if isinstance(value, bytes):  # the native protocol's form
        return value
    if not isinstance(value, str):
        raise BadAnswer(f"field {name!r} is not a string")
    return value.encode()


def decode_kv(obj: Any) -> KeyValue:
    if not isinstance(obj, dict):
        raise BadAnswer(f"a key-value is not an object: {obj!r}")
    return KeyValue(
        bytes_field(obj, "key"),
        bytes_field(obj, "value"),
        _int(obj, "create_revision"),
        _int(obj, "mod_revision"),
        _int(obj, "version"),
        _int(obj, "lease", 0),
    )


def kv_from_headers(key: bytes, value: bytes, headers: Mapping[str, str]) -> KeyValue:
    """The key-value of a `GET /v1/kv/{key}` answer: the body and X-Accord-* headers."""
    try:
        return KeyValue(
            key,
            value,
            int(headers["X-Accord-Create-Revision"]),
            int(headers["X-Accord-Mod-Revision"]),
            int(headers["X-Accord-Version"]),
            int(headers.get("X-Accord-Lease", "0")),
        )
    except (KeyError, ValueError) as e:
        raise BadAnswer(f"missing or bad X-Accord-* header: {e}") from e


def decode_put(obj: Mapping[str, Any]) -> PutResult:
    return PutResult(_int(obj, "revision"))


def decode_delete(obj: Mapping[str, Any]) -> DeleteResult:
    return DeleteResult(_int(obj, "revision"), _int(obj, "deleted"))


def decode_get(obj: Mapping[str, Any]) -> GetResult:
    kv = obj.get("kv")
    return GetResult(_int(obj, "revision"), decode_kv(kv) if kv is not None else None)


def decode_range(obj: Mapping[str, Any]) -> RangeResult:
    kvs = obj.get("kvs", [])
    if not isinstance(kvs, list):
        raise BadAnswer("kvs is not a list")
    return RangeResult(
        _int(obj, "revision"),
        tuple(decode_kv(kv) for kv in kvs),
        _int(obj, "count"),
        bool(obj.get("more", False)),
    )


def decode_revisions(obj: Mapping[str, Any]) -> dict[int, int]:
    """Each shard's revision of a range over shards (`revisions`); {} for one."""
    raw = obj.get("revisions") or {}
    if not isinstance(raw, dict):
        raise BadAnswer("revisions is not an object")
    try:
        return {int(shard): int(rev) for shard, rev in raw.items()}
    except (TypeError, ValueError) as e:
        raise BadAnswer(f"revisions: {e}") from e


def decode_event(obj: Any) -> Event:
    if not isinstance(obj, dict) or obj.get("type") not in ("put", "delete"):
        raise BadAnswer(f"not a watch event: {obj!r}")
    prev = obj.get("prev_kv")
    kind = EventType.PUT if obj["type"] == "put" else EventType.DELETE
    return Event(kind, decode_kv(obj.get("kv")), decode_kv(prev) if prev else None)


def decode_lease(obj: Mapping[str, Any]) -> Lease:
    return Lease(_int(obj, "id"), _int(obj, "ttl"))


def decode_lease_ttl(obj: Mapping[str, Any]) -> LeaseTTL:
    keys = obj.get("keys", [])
    if not isinstance(keys, list):
        raise BadAnswer("keys is not a list")
    return LeaseTTL(
        _int(obj, "id"),
        _int(obj, "ttl"),
        _int(obj, "granted_ttl"),
        tuple(bytes_field(k, "key") for k in keys),
    )


def decode_status(obj: Mapping[str, Any]) -> ClusterStatus:
    rows = obj.get("members", [])
    if not isinstance(rows, list):
        raise BadAnswer("members is not a list")
    members = tuple(
        Member(
            _int(row, "id"),
            row.get("name"),
            row.get("url"),
            row.get("peer"),
            str(row.get("role", "")),
            row.get("match") if isinstance(row.get("match"), int) else None,
            row.get("native_url") if isinstance(row.get("native_url"), str) else None,
        )
        for row in rows
    )
    return ClusterStatus(
        _int(obj, "id"),
        str(obj.get("role", "")),
        _int(obj, "leader", 0),
        _int(obj, "term"),
        _int(obj, "commit"),
        _int(obj, "applied"),
        _int(obj, "revision", 0),
        members,
    )


__all__ = [
    "ClusterStatus",
    "DeleteResult",
    "Event",
    "EventType",
    "GetResult",
    "KeyValue",
    "Lease",
    "LeaseRevoked",
    "LeaseTTL",
    "Member",
    "PutResult",
    "RangeResult",
    "TxnResult",
]
