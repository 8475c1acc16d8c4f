"""Typed errors of the client, mapped from the API's `{"error": {"code", "message"}}`.

Every class derives from `accord.errors.AccordError`. Three conditions reuse the
classes the server itself raises: `NotLeader` (503 `not_leader`), `ProposalDropped`
(503 `proposal_dropped`) and `DeadlineExceeded` (504, or the call's own deadline
passed). The client retries those and connection failures; when it gives up it
raises the last of them, or `Unavailable` when no endpoint could be reached at all.
Everything else a node answers is final and never retried: it is raised as the
class the error-code table (`accord.errorcodes`) names for its code (the code itself
is kept in `.code`, the HTTP status in `.status`); a code the table does not know is
`InvalidRequest` with a 4xx status and `ServerError` otherwise.
"""

from __future__ import annotations

import json
from typing import Any

from accord.errorcodes import ERROR_CODES
from accord.errors import AccordError, DeadlineExceeded, NotLeader, ProposalDropped


class ServerError(AccordError):
    """A node refused the request; `code`, `message` and `status` are its answer."""

    code = "server_error"

    def __init__(self, message: str, *, code: str = "", status: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        if code:
            self.code = code


class InvalidRequest(ServerError):
    """Malformed or disallowed request (400): bad JSON, unknown fields, an empty key,
    a key written twice in one transaction..."""

    code = "invalid_request"


class FutureRevision(InvalidRequest):
    """A read asked for a revision newer than the store's current one."""

    code = "future_revision"


class LimitExceeded(ServerError):
    """A documented bound was exceeded (413): key, value, transaction or request size."""

    code = "limit_exceeded"


class TooManyLeases(LimitExceeded):
    """A lease grant would exceed `leases_max` or the user's `leases_per_user_max` (429)."""

    code = "too_many_leases"


class TooManySessions(LimitExceeded):
    """A new client session would exceed `sessions_max` or the user's
    `sessions_per_user_max` (429): wait for idle sessions to expire."""

    code = "too_many_sessions"


class TooManyWatches(LimitExceeded):
    """A watch would exceed the node's `watchers_max` or `watchers_per_user_max` (429)."""

    code = "too_many_watches"


class TooManyPendingReads(LimitExceeded):
    """A linearizable read (or lease keepalive) would exceed the node's
    `pending_reads_max` reads waiting at once (503): the node refused it at once,
    nothing was read. Retry later, or read from another node."""

    code = "too_many_pending_reads"


class ResponseTooLarge(LimitExceeded):
    """The answer would exceed the node's `response_bytes_max` (413): nothing was
    applied. `keys` key-values of op `op` (0 for a lone range) fit; ask for at most
    that many (`limit`) and continue after the last key returned. `AsyncClient.range`
    does this by itself."""

    code = "response_too_large"

    def __init__(
        self,
        message: str,
        *,
        code: str = "",
        status: int = 0,
        op: int = 0,
        keys: int = 0,
        limit_bytes: int = 0,
    ) -> None:
        super().__init__(message, code=code, status=status)
        self.op = op
        self.keys = keys
        self.limit_bytes = limit_bytes


class QuotaExceeded(LimitExceeded):
    """The store is over its space quota (507): delete keys and compact."""

    code = "quota_exceeded"


class Compacted(ServerError):
    """The revision asked for has been compacted away (410)."""

    code = "compacted"


class LeaseNotFound(ServerError):
    """No live lease has this id: never granted, revoked or expired (404)."""

    code = "lease_not_found"


class LeaseExists(ServerError):
    """A lease with this id already exists (409)."""

    code = "lease_exists"


class StaleRequest(ServerError):
    """The server already answered a later write of this client (409); a sign of a
    bug or of two clients sharing one client id."""

    code = "stale_request"


class SessionExpired(ServerError):
    """The client's session was forgotten (409). The client opens a new session and
    resends by itself when that is safe; this is raised only when it is not."""

    code = "session_expired"


class Unauthenticated(ServerError):
    """401: no valid credentials (wrong password, expired or revoked token)."""

    code = "unauthenticated"


class PermissionDenied(ServerError):
    """403: the user's roles do not grant what the request needs."""

    code = "permission_denied"


class RateLimited(ServerError):
    """429: the client exceeded its request rate; slow down and retry."""

    code = "rate_limited"


class Unavailable(AccordError):
    """No endpoint could serve the request: every one was unreachable (or its circuit
    breaker open) until the retries or the deadline ran out. The last failure is the
    exception's `__cause__`."""

    code = "unavailable"


_CLASSES: dict[str, type[AccordError]] = {
    cls.__name__: cls
    for cls in (
        NotLeader,
        ProposalDropped,
        DeadlineExceeded,
        ServerError,
        InvalidRequest,
        FutureRevision,
        LimitExceeded,
        TooManyLeases,
        TooManySessions,
        TooManyWatches,
        TooManyPendingReads,
        ResponseTooLarge,
        QuotaExceeded,
        Compacted,
        LeaseNotFound,
        LeaseExists,
        StaleRequest,
        SessionExpired,
        Unauthenticated,
        PermissionDenied,
        RateLimited,
    )
}
_BY_CODE: dict[str, type[AccordError]] = {
    code: _CLASSES[row.client] for code, row in ERROR_CODES.items()
}
"""The exception class of every code in the error-code table (`accord.errorcodes`)."""


def exception_class(code: str, status: int) -> type[AccordError]:
    """The class raised for an answer with `code`: the table's, else by the status
    (a code from a newer node)."""
    cls = _BY_CODE.get(code)
    if cls is not None:
        return cls
    return InvalidRequest if 400 <= status < 500 else ServerError


def parse_error_body(body: bytes) -> dict[str, Any]:
    """The `error` object of an error answer; `{}` if the body is not one."""
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return {}
    error = parsed.get("error") if isinstance(parsed, dict) else None
    return error if isinstance(error, dict) else {}


def error_from_answer(status: int, error: dict[str, Any]) -> AccordError:
    """The exception for an error answer (`error` as `parse_error_body` returns it)."""
    code = str(error.get("code") or f"http_{status}")
    message = str(error.get("message") or f"HTTP status {status}")
    cls = exception_class(code, status)
    if status == 504 and cls is not NotLeader and cls is not ProposalDropped:
        cls = DeadlineExceeded  # the outcome is unknown, whatever the code (a proxy's 504)
    if cls is NotLeader:
        leader = error.get("leader")
        hint = leader.get("id") if isinstance(leader, dict) else 0
        return NotLeader(hint if isinstance(hint, int) else 0, message)
    if cls is ProposalDropped or cls is DeadlineExceeded:
        return cls(message)
    if cls is ResponseTooLarge:
        fields = {name: _count(error.get(name)) for name in ("op", "keys", "limit_bytes")}
        return ResponseTooLarge(message, code=code, status=status, **fields)
    assert issubclass(cls, ServerError)
    return cls(message, code=code, status=status)


def leader_url_of(error: dict[str, Any]) -> str | None:
    """The leader's URL a `not_leader` answer names, if any."""
    leader = error.get("leader")
    url = leader.get("url") if isinstance(leader, dict) else None
    return url if isinstance(url, str) and url else None


__all__ = [
    "AccordError",
    "Compacted",
    "DeadlineExceeded",
    "FutureRevision",
    "InvalidRequest",
    "LeaseExists",
    "LeaseNotFound",
    "LimitExceeded",
    "NotLeader",
    "ProposalDropped",
    "QuotaExceeded",
    "ServerError",
    "SessionExpired",
    "StaleRequest",
    "TooManyLeases",
    "TooManyPendingReads",
    "TooManySessions",
    "TooManyWatches",
    "Unavailable",
]


def _count(value: Any) -> int:
    """A non-negative integer field of an error answer (0 if missing or malformed)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
