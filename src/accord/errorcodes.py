"""Every error code a node answers with, in one table.

Theory of operation
-------------------
An error travels as its code: a typed exception inside the node (the class's `code`),
an `ErrorResult` in the replicated state (recorded in sessions), the answer
`{"error": {"code", "message", ...}}` over HTTP or the native protocol, and a typed
exception again in the client. `ERROR_CODES` is what every step agrees on. For each
code it gives the HTTP status both protocols answer with, whether the client may send
the request again as it is (`retryable`), the client exception it raises (a class
name in `accord.client.errors`, or `NotLeader` / `ProposalDropped` /
`DeadlineExceeded` from `accord.errors`), and a short description, which the OpenAPI
document serves.

Several codes share a client class (a client catches `InvalidRequest` for every
malformed request) and are told apart by the exception's `code`. A code the table does
not know is answered with status 500; a client raises `InvalidRequest` for an unknown
code with a 4xx status and `ServerError` otherwise, so a newer node's codes still map.

This module is pure data and imports nothing from Accord: the server (`accord.api`,
`accord.security`) and the client (`accord.client`) both read it, and neither has to
import the other.
"""

from __future__ import annotations

from dataclasses import dataclass

UNKNOWN_CODE_STATUS = 500


@dataclass(frozen=True, slots=True)
class ErrorCode:
    code: str
    status: int
    """The HTTP status of an answer with this code (the native protocol's too)."""
    client: str
    """The name of the exception class a client raises for it."""
    description: str
    retryable: bool = False
    """Sending the same request again is safe and may succeed (nothing was applied, or
    a write's retry carries its session, so it takes effect at most once)."""
    auth: bool = False
    """Answered only when auth is on (the OpenAPI document lists it then)."""


_ROWS = (
    # --- the request itself ---------------------------------------------------------
    ErrorCode(
        "bad_request",
        400,
        "InvalidRequest",
        "malformed request: not JSON or msgpack, unknown fields or query parameters, "
        "a value of the wrong type or out of range",
    ),
    ErrorCode(
        "request_too_large",
        413,
        "LimitExceeded",
        "the request body is over the request limit; the connection is closed",
    ),
    ErrorCode(
        "timeout",
        408,
        "InvalidRequest",
        "the request body (HTTP) or a frame (native) did not arrive within read_timeout_s",
    ),
    ErrorCode(
        "http_error",
        404,
        "InvalidRequest",
        "refused before a handler ran, with the HTTP status that says why: no such "
        "route (404), or not its method (405, with Allow)",
    ),
    ErrorCode(
        "not_found",
        404,
        "InvalidRequest",
        "no such key (the answer carries the revision read), or metrics are off",
    ),
    ErrorCode("internal", 500, "ServerError", "a bug in the node, which logged it"),
    # --- the node and the cluster -----------------------------------------------------
    ErrorCode(
        "not_leader",
        503,
        "NotLeader",
        "this node is not the leader and did not forward the request; leader names "
        "the leader's id and URL when known",
        retryable=True,
    ),
    ErrorCode(
        "proposal_dropped",
        503,
        "ProposalDropped",
        "the proposal was refused or lost (leadership changed, overload): not applied",
        retryable=True,
    ),
    ErrorCode(
        "deadline_exceeded",
        504,
        "DeadlineExceeded",
        "no outcome before the deadline: a write may have been applied (its retry with "
        "the same client id and seq takes effect at most once)",
        retryable=True,
    ),
    ErrorCode("no_leader", 503, "ServerError", "not ready: this member knows no leader"),
    ErrorCode(
        "catching_up",
        503,
        "ServerError",
        "not ready: the applied index trails the commit index",
    ),
    ErrorCode("failed", 503, "ServerError", "the node failed and is stopping"),
    ErrorCode(
        "invalid_membership_change",
        400,
        "InvalidRequest",
        "a membership change that does not fit the current configuration",
    ),
    # --- the KV state machine ---------------------------------------------------------
    ErrorCode(
        "invalid_request",
        400,
        "InvalidRequest",
        "a well-formed request that asks for something not allowed (an empty key, lease id 0, ...)",
    ),
    ErrorCode(
        "bad_command",
        400,
        "InvalidRequest",
        "a command whose encoding is invalid, or of a kind this node does not know",
    ),
    ErrorCode(
        "duplicate_key",
        400,
        "InvalidRequest",
        "a transaction branch writes one key twice",
    ),
    ErrorCode(
        "future_revision",
        400,
        "FutureRevision",
        "the revision asked for is newer than the store's",
    ),
    ErrorCode(
        "limit_exceeded",
        413,
        "LimitExceeded",
        "a documented bound was exceeded (key, value or transaction size, keys scanned, "
        "users, roles, grants, ...): nothing was applied",
    ),
    ErrorCode(
        "too_many_pending_reads",
        503,
        "TooManyPendingReads",
        "pending_reads_max linearizable reads already wait on this node; try again "
        "shortly or another node",
    ),
    ErrorCode(
        "too_many_leases",
        429,
        "TooManyLeases",
        "a grant would exceed leases_max or the user's leases_per_user_max",
    ),
    ErrorCode(
        "too_many_sessions",
        429,
        "TooManySessions",
        "a new client id would exceed sessions_max or the user's sessions_per_user_max",
    ),
    ErrorCode(
        "too_many_watches",
        429,
        "TooManyWatches",
        "a watch would exceed watchers_max or the user's watchers_per_user_max",
    ),
    ErrorCode(
        "response_too_large",
        413,
        "ResponseTooLarge",
        "the answer would exceed response_bytes_max: nothing was applied; op, keys and "
        "limit_bytes say how much fits",
    ),
    ErrorCode(
        "quota_exceeded",
        507,
        "QuotaExceeded",
        "the store is over its space quota: delete keys and compact",
    ),
    ErrorCode("compacted", 410, "Compacted", "the revision asked for was compacted away"),
    ErrorCode(
        "cross_shard",
        400,
        "InvalidRequest",
        "the request's keys live on several shards: a write, a range delete or a "
        "transaction names keys of one shard (keys sharing a {hash tag} always are)",
    ),
    ErrorCode(
        "shard_change_refused",
        409,
        "InvalidRequest",
        "the metadata group refused the change of the shard map: decided against an "
        "older map version, a move of the shard already under way, a target that "
        "already holds a replica, ... (the message says which)",
    ),
    ErrorCode(
        "unsupported_on_shards",
        501,
        "InvalidRequest",
        "a sharded cluster does not serve this yet (compaction: revisions are per shard)",
    ),
    ErrorCode(
        "lease_not_found",
        404,
        "LeaseNotFound",
        "no live lease has this id (never granted, revoked, expired, or another user's)",
    ),
    ErrorCode("lease_exists", 409, "LeaseExists", "a lease with this id already exists"),
    ErrorCode(
        "stale_request",
        409,
        "StaleRequest",
        "this client's session already applied a later write",
    ),
    ErrorCode(
        "session_expired",
        409,
        "SessionExpired",
        "the client id has no session (expired while idle): not applied",
    ),
    ErrorCode(
        "watch_cancelled",
        500,
        "ServerError",
        "the node ended the watch (it fell behind, or its history was compacted); a new "
        "watch resumes from the revision the message names",
    ),
    # --- security -----------------------------------------------------------------------
    ErrorCode(
        "rate_limited",
        429,
        "RateLimited",
        "the client exceeded its request rate; retry after Retry-After (HTTP) or "
        "retry_after_s (native)",
    ),
    ErrorCode(
        "unauthenticated",
        401,
        "Unauthenticated",
        "no valid credentials: missing, a wrong password, an expired or revoked token",
        auth=True,
    ),
    ErrorCode(
        "permission_denied",
        403,
        "PermissionDenied",
        "the user's roles do not grant what the request needs",
        auth=True,
    ),
    ErrorCode(
        "login_locked",
        429,
        "RateLimited",
        "too many failed logins for this user from this address; retry after the lock",
        auth=True,
    ),
    ErrorCode(
        "auth_error",
        400,
        "InvalidRequest",
        "an administration request that cannot be carried out (a bad name, deleting root)",
        auth=True,
    ),
    ErrorCode("user_exists", 409, "InvalidRequest", "a user of this name exists", auth=True),
    ErrorCode("role_exists", 409, "InvalidRequest", "a role of this name exists", auth=True),
    ErrorCode("user_not_found", 404, "InvalidRequest", "no user of this name", auth=True),
    ErrorCode(
        "role_not_found",
        404,
        "InvalidRequest",
        "no role of this name (or the user does not have it)",
        auth=True,
    ),
    ErrorCode(
        "grant_not_found",
        404,
        "InvalidRequest",
        "the role has no grant on this prefix",
        auth=True,
    ),
)

ERROR_CODES: dict[str, ErrorCode] = {row.code: row for row in _ROWS}


def status_of(code: str) -> int:
    """The HTTP status of an answer with `code` (500 for a code not in the table)."""
    row = ERROR_CODES.get(code)
    return row.status if row is not None else UNKNOWN_CODE_STATUS


def is_retryable_code(code: str) -> bool:
    row = ERROR_CODES.get(code)
    return row is not None and row.retryable
