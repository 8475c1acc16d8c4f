"""Typed errors of the KV state machine, as callers see them.

A command that fails inside `apply()` does not raise: the failure becomes an
`ErrorResult` (code, message, details) that is recorded in the client's session,
replicated identically and snapshotted. `ErrorResult.exception()` rebuilds the typed
exception from it, so the API layer and the client raise the same class.

Each class lists its constructor arguments in `fields`; `details()` returns their
values in that order and `error_from_parts()` calls the constructor with them again.
Details are ints, strings or bytes only, so they travel in msgpack unchanged.
"""

from __future__ import annotations

from typing import ClassVar

from accord.errors import AccordError

Detail = int | str | bytes


class KVError(AccordError):
    """Base class of the state machine's errors."""

    code = "kv_error"
    fields: ClassVar[tuple[str, ...]] = ()

    def details(self) -> tuple[Detail, ...]:
        values: tuple[Detail, ...] = tuple(getattr(self, name) for name in self.fields)
        return values


class BadCommand(KVError):
    """The bytes of a command (or of a snapshot's part) are not a valid encoding."""

    code = "bad_command"
    fields = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"malformed command: {reason}")


class BadSnapshot(KVError):
    """`restore()` was given data that is not a snapshot this version can read."""

    code = "bad_snapshot"
    fields = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"invalid state machine snapshot: {reason}")


class InvalidRequest(KVError):
    """A well-formed command asks for something that is not allowed (an empty key, a
    lease id of 0, a negative limit...)."""

    code = "invalid_request"
    fields = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class DuplicateKey(KVError):
    """A transaction branch writes one key twice (two puts, or a put inside a deleted
    range): etcd refuses this, because the result would depend on op order."""

    code = "duplicate_key"
    fields = ("key",)

    def __init__(self, key: bytes) -> None:
        self.key = key
        super().__init__(f"key {key!r} is written more than once in one transaction")


class LimitExceeded(KVError):
    """A bound from `accord.kv.limits` was exceeded; nothing was applied."""

    code = "limit_exceeded"
    fields = ("what", "size", "limit")

    def __init__(self, what: str, size: int, limit: int) -> None:
        self.what = what
        self.size = size
        self.limit = limit
        super().__init__(f"{what} is {size}; the limit is {limit}")


class TooManyLeases(LimitExceeded):
    """A grant would exceed `leases_max` (all leases) or `leases_per_user_max` (the
    leases one owner holds)."""

    code = "too_many_leases"


class TooManySessions(LimitExceeded):
    """A new client would exceed `sessions_max` (all sessions) or
    `sessions_per_user_max` (the sessions one owner holds)."""

    code = "too_many_sessions"


class TooManyWatches(LimitExceeded):
    """A new watcher would exceed a node's `watchers_max` or `watchers_per_user_max`."""

    code = "too_many_watches"


class ResponseTooLarge(KVError):
    """The reads of one request would return more than `response_bytes_max`; nothing
    was applied. Counting stopped at op `op` (0-based; 0 for a lone range) after `keys`
    of its key-values fit: ask that range for at most `keys` keys (`limit`), or split
    the request, and continue after the last key returned while `more` is true. A watch
    ends with it when one revision's events for it alone are over the bound."""

    code = "response_too_large"
    fields = ("size_bytes", "limit_bytes", "op", "keys")

    def __init__(self, size_bytes: int, limit_bytes: int, op: int, keys: int) -> None:
        self.size_bytes = size_bytes
        self.limit_bytes = limit_bytes
        self.op = op
        self.keys = keys
        super().__init__(
            f"the response would exceed {limit_bytes} bytes (at least {size_bytes}) at op "
            f"{op}, after {keys} of its keys; read fewer keys per request: give the range a "
            f"limit of at most {max(keys, 1)} and continue from the key after the last one "
            "returned while the answer says more: true (a watch cannot deliver a revision "
            "this large: raise response_bytes_max)"
        )


class QuotaExceeded(KVError):
    """The store's history is over its byte quota: puts are refused until keys are
    deleted and old revisions compacted."""

    code = "quota_exceeded"
    fields = ("size_bytes", "quota_bytes")

    def __init__(self, size_bytes: int, quota_bytes: int) -> None:
        self.size_bytes = size_bytes
        self.quota_bytes = quota_bytes
        super().__init__(
            f"the store would hold {size_bytes} bytes, over its quota of {quota_bytes} bytes; "
            "delete keys and compact to free space"
        )


class Compacted(KVError):
    """The revision asked for is older than the compacted revision; its history is gone."""

    code = "compacted"
    fields = ("revision", "compact_revision")

    def __init__(self, revision: int, compact_revision: int) -> None:
        self.revision = revision
        self.compact_revision = compact_revision
        super().__init__(
            f"revision {revision} has been compacted (the compact revision is {compact_revision})"
        )


class FutureRevision(KVError):
    """The revision asked for is newer than the store's current revision."""

    code = "future_revision"
    fields = ("revision", "current_revision")

    def __init__(self, revision: int, current_revision: int) -> None:
        self.revision = revision
        self.current_revision = current_revision
        super().__init__(
            f"revision {revision} is in the future; the current revision is {current_revision}"
        )


class LeaseNotFound(KVError):
    """No live lease has this id (never granted, revoked, or past its deadline)."""

    code = "lease_not_found"
    fields = ("lease_id",)

    def __init__(self, lease_id: int) -> None:
        self.lease_id = lease_id
        super().__init__(f"lease {lease_id} not found")


class LeaseExists(KVError):
    """A lease with this id is already granted."""

    code = "lease_exists"
    fields = ("lease_id",)

    def __init__(self, lease_id: int) -> None:
        self.lease_id = lease_id
        super().__init__(f"lease {lease_id} already exists")


class StaleRequest(KVError):
    """A request older than the latest one this client's session has seen: its answer
    is no longer kept, and applying it now could undo a later write."""

    code = "stale_request"
    fields = ("client_id", "seq", "last_seq")

    def __init__(self, client_id: int, seq: int, last_seq: int) -> None:
        self.client_id = client_id
        self.seq = seq
        self.last_seq = last_seq
        super().__init__(
            f"request {seq} of client {client_id} is stale: request {last_seq} already applied"
        )


class SessionExpired(KVError):
    """The client has no session (it expired while idle, or the client never opened one
    with seq 1). The request was not applied; the client must start a new session (a
    new client id, seq 1) and decide for itself whether to send the request again."""

    code = "session_expired"
    fields = ("client_id", "seq")

    def __init__(self, client_id: int, seq: int) -> None:
        self.client_id = client_id
        self.seq = seq
        super().__init__(
            f"client {client_id} has no session (request {seq}); open a new one with seq 1"
        )


class WatchCancelled(KVError):
    """The watch hub ended a watcher; `resume_revision` is the first revision it did not
    deliver, from which a new watcher can continue."""

    code = "watch_cancelled"
    fields = ("watch_id", "reason", "resume_revision")

    def __init__(self, watch_id: int, reason: str, resume_revision: int) -> None:
        self.watch_id = watch_id
        self.reason = reason
        self.resume_revision = resume_revision
        super().__init__(
            f"watch {watch_id} cancelled: {reason}; resume from revision {resume_revision}"
        )


class WatchNotFound(KVError):
    """No watcher has this id (never registered, cancelled, or already ended)."""

    code = "watch_not_found"
    fields = ("watch_id",)

    def __init__(self, watch_id: int) -> None:
        self.watch_id = watch_id
        super().__init__(f"watch {watch_id} not found")


ERROR_CLASSES: dict[str, type[KVError]] = {
    cls.code: cls
    for cls in (
        BadCommand,
        BadSnapshot,
        InvalidRequest,
        DuplicateKey,
        LimitExceeded,
        TooManyLeases,
        TooManySessions,
        TooManyWatches,
        ResponseTooLarge,
        QuotaExceeded,
        Compacted,
        FutureRevision,
        LeaseNotFound,
        LeaseExists,
        StaleRequest,
        SessionExpired,
        WatchCancelled,
        WatchNotFound,
    )
}


def error_from_parts(code: str, details: tuple[Detail, ...]) -> KVError:
    """Rebuild the typed error `details()` came from; an unknown code or arguments that
    do not fit its class raise `BadCommand`."""
    cls = ERROR_CLASSES.get(code)
    if cls is None:
        raise BadCommand(f"unknown error code {code!r}")
    if len(details) != len(cls.fields):
        raise BadCommand(f"error {code!r} takes {len(cls.fields)} details, got {len(details)}")
    try:
        return cls(*details)
    except TypeError as exc:  # pragma: no cover - constructors take positional values only
        raise BadCommand(f"error {code!r}: {exc}") from exc
