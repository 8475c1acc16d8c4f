"""The error-code table drives the node's answers (HTTP and native), the client's
exceptions and the OpenAPI document: each code one status, one client class."""

from __future__ import annotations

import ast
import http
import re
from pathlib import Path

import pytest

import accord.client.errors as client_errors
from accord.api import http as api_http
from accord.api import native as api_native
from accord.api.openapi import spec
from accord.api.wire import BadRequest, error_answer
from accord.client.errors import error_from_answer
from accord.client.policy import is_retryable
from accord.errorcodes import _ROWS, ERROR_CODES, status_of
from accord.errors import AccordError, DeadlineExceeded, NotLeader, ProposalDropped
from accord.kv import errors as kv_errors
from accord.node import authstore
from accord.raft import ConfChangeError
from accord.security import errors as security_errors
from accord.security import http_limits
from accord.security.openapi import with_auth

STATUSES_BEFORE_THE_TABLE = {
    "bad_request": 400,
    "request_too_large": 413,
    "timeout": 408,
    "http_error": 404,  # aiohttp's own status is answered (404, 405, ...)
    "not_found": 404,
    "internal": 500,
    "not_leader": 503,
    "proposal_dropped": 503,
    "deadline_exceeded": 504,
    "no_leader": 503,
    "catching_up": 503,
    "failed": 503,
    "invalid_membership_change": 400,
    "invalid_request": 400,
    "bad_command": 400,
    "duplicate_key": 400,
    "future_revision": 400,
    "limit_exceeded": 413,  # the auth store's (users, roles, grants) was 400
    "too_many_pending_reads": 503,
    "too_many_leases": 429,
    "too_many_sessions": 429,
    "too_many_watches": 429,
    "response_too_large": 413,
    "quota_exceeded": 507,
    "compacted": 410,
    "lease_not_found": 404,
    "lease_exists": 409,
    "stale_request": 409,
    "session_expired": 409,
    "watch_cancelled": 500,  # a native watch's last frame; HTTP has no status for it
    "rate_limited": 429,
    "unauthenticated": 401,
    "permission_denied": 403,
    "login_locked": 429,
    "auth_error": 400,
    "user_exists": 409,
    "role_exists": 409,
    "user_not_found": 404,
    "role_not_found": 404,
    "grant_not_found": 404,
    "cross_shard": 400,
    "unsupported_on_shards": 501,
    "shard_change_refused": 409,
}
"""What each code was answered with when the statuses lived in several places."""
NOT_ANSWERED = {"bad_snapshot", "watch_not_found"}
"""KV error codes no answer carries: `restore()` raises the first, and the watch hub's
own callers the second."""
SERVER_CLASSES = {"NotLeader": NotLeader, "ProposalDropped": ProposalDropped}
SERVER_CLASSES["DeadlineExceeded"] = DeadlineExceeded


def test_codes_are_unique_and_statuses_are_http_error_statuses() -> None:
    assert len(ERROR_CODES) == len(_ROWS)
    for row in ERROR_CODES.values():
        assert 400 <= row.status <= 599 and http.HTTPStatus(row.status), row
        assert row.description and re.fullmatch(r"[a-z_]+", row.code), row


def test_every_code_keeps_the_status_it_had() -> None:
    assert {code: row.status for code, row in ERROR_CODES.items()} == STATUSES_BEFORE_THE_TABLE


@pytest.mark.parametrize("code", sorted(ERROR_CODES))
def test_every_code_maps_to_its_own_existing_client_exception(code: str) -> None:
    row = ERROR_CODES[code]
    cls = SERVER_CLASSES.get(row.client) or getattr(client_errors, row.client)
    assert isinstance(cls, type) and issubclass(cls, AccordError)
    error = error_from_answer(row.status, {"code": code, "message": "why"})
    assert type(error) is cls and error.code == code and "why" in str(error)
    assert is_retryable(error) == row.retryable


def test_a_class_several_codes_share_is_named_by_its_own_code() -> None:
    for row in ERROR_CODES.values():
        cls = SERVER_CLASSES.get(row.client) or getattr(client_errors, row.client)
        if cls.code in ERROR_CODES:  # e.g. InvalidRequest for invalid_request
            assert ERROR_CODES[cls.code].client == row.client, row


def test_only_unapplied_or_safely_repeated_failures_are_retryable() -> None:
    retryable = {code for code, row in ERROR_CODES.items() if row.retryable}
    assert retryable == {"not_leader", "proposal_dropped", "deadline_exceeded"}
    assert {ERROR_CODES[code].client for code in retryable} == set(SERVER_CLASSES)


def test_every_error_the_kv_state_machine_records_is_in_the_table() -> None:
    recorded = set(kv_errors.ERROR_CLASSES) - NOT_ANSWERED
    assert recorded <= set(ERROR_CODES), recorded - set(ERROR_CODES)
    assert set(STATUSES_BEFORE_THE_TABLE) >= recorded


def test_every_code_the_node_raises_or_the_auth_store_returns_is_in_the_table() -> None:
    raised: set[str] = {
        cls.code
        for cls in (
            NotLeader,
            ProposalDropped,
            DeadlineExceeded,
            BadRequest,
            api_http.RequestTooLarge,
            ConfChangeError,
            security_errors.Unauthenticated,
            security_errors.PermissionDenied,
            security_errors.RateLimited,
            security_errors.LoginLocked,
            security_errors.AuthRequestError,
            security_errors.LeaseNotOwned,
        )
    }
    source = Path(authstore.__file__).read_text()
    raised |= set(re.findall(r'_fail\(.*, "([a-z_]+)"\)$', source, re.MULTILINE))
    assert {"user_exists", "grant_not_found", "bad_command"} <= raised
    assert raised <= set(ERROR_CODES), raised - set(ERROR_CODES)


def _literal_codes(module: object, functions: set[str]) -> set[str]:
    """The string codes `module` passes literally to one of `functions`."""
    tree = ast.parse(Path(module.__file__).read_text())  # type: ignore[attr-defined]
    codes = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) in functions:
            first = node.args[0] if node.args else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                codes.add(first.value)
    return codes


def test_every_code_an_answer_spells_out_is_in_the_table() -> None:
    spelt = _literal_codes(api_http, {"error_response"})
    spelt |= _literal_codes(api_native, {"error_doc", "NotReady"})
    spelt |= _literal_codes(http_limits, {"_closing"})
    assert {"not_found", "http_error", "internal", "timeout", "request_too_large"} <= spelt
    assert spelt <= set(ERROR_CODES), spelt - set(ERROR_CODES)
    assert {"no_leader", "catching_up", "failed"} <= set(ERROR_CODES)  # /ready's reasons


def test_answers_take_the_status_and_fields_from_the_table() -> None:
    too_large = kv_errors.ResponseTooLarge(10, 5, 1, 3)
    assert error_answer(too_large) == (
        413,
        {
            "error": {
                "code": "response_too_large",
                "message": str(too_large),
                "limit_bytes": 5,
                "op": 1,
                "keys": 3,
            }
        },
    )
    refused = security_errors.AuthRequestError("no user 'x'", "user_not_found")
    assert error_answer(refused)[0] == 404 == status_of("user_not_found")
    assert status_of("no_such_code") == 500


def test_the_openapi_document_lists_exactly_the_codes_of_the_table() -> None:
    def codes(document: dict[str, object]) -> list[str]:
        error = document["components"]["schemas"]["Error"]["properties"]["error"]  # type: ignore[index]
        schema = error["properties"]["code"]
        for code in schema["enum"]:
            assert f"- {code} ({ERROR_CODES[code].status}" in schema["description"]
        return list(schema["enum"])

    plain = codes(spec())
    assert plain == [code for code, row in ERROR_CODES.items() if not row.auth]
    assert codes(with_auth(spec())) == list(ERROR_CODES)
