"""Client sessions: retries answered from the record, stale and expired requests."""

from __future__ import annotations

from accord.kv import (
    ExpireSessions,
    ExpireSessionsResult,
    Get,
    KVLimits,
    Put,
    PutResult,
    SessionExpired,
    StaleRequest,
)

from .helpers import Driver, state


def test_a_retry_is_answered_from_the_record_and_not_applied_again() -> None:
    d = Driver()
    first, events = d.send(Put(b"k", b"v", prev_kv=True), client=7, seq=1)
    assert first == PutResult(2) and len(events) == 1
    before = state(d.machine)
    again, events = d.send(Put(b"k", b"v", prev_kv=True), client=7, seq=1)
    assert again == first and events == [], "the same answer, no new event"
    assert d.machine.revision == 2
    assert state(d.machine) == before
    assert d(Put(b"k", b"w"), client=7, seq=2) == PutResult(3)


def test_error_results_are_recorded_too() -> None:
    d = Driver()
    error = d.error(Put(b"k", b"v", lease=5), client=1, seq=1)
    assert d(Put(b"k", b"v", lease=5), client=1, seq=1) == error


def test_an_older_seq_is_stale() -> None:
    d = Driver()
    d(Put(b"k", b"1"), client=3, seq=1)
    d(Put(b"k", b"2"), client=3, seq=2)
    result, events = d.send(Put(b"k", b"1"), client=3, seq=1)
    assert events == []
    error = result.exception()  # type: ignore[union-attr]
    assert isinstance(error, StaleRequest) and (error.seq, error.last_seq) == (1, 2)
    assert d.machine.get(b"k").kv.value == b"2"  # type: ignore[union-attr]
    assert d(Get(b"k"), client=3, seq=5).kv.value == b"2", "gaps are fine"  # type: ignore[union-attr]


def test_clients_are_independent() -> None:
    d = Driver()
    assert d(Put(b"a", b"1"), client=1, seq=1) == PutResult(2)
    assert d(Put(b"a", b"2"), client=2, seq=1) == PutResult(3)
    assert d(Put(b"a", b"1"), client=1, seq=1) == PutResult(2)


def test_sessionless_requests_are_always_applied() -> None:
    d = Driver()
    assert d(Put(b"a", b"1")) == PutResult(2)
    assert d(Put(b"a", b"1")) == PutResult(3)
    assert d.machine.sessions_count == 0


def test_a_session_opens_with_seq_1_only() -> None:
    d = Driver()
    result = d.error(Put(b"a", b"1"), client=9, seq=4)
    error = result.exception()
    assert isinstance(error, SessionExpired) and (error.client_id, error.seq) == (9, 4)
    assert d.machine.revision == 1 and d.machine.sessions_count == 0


def test_expiry_forgets_idle_sessions_and_refuses_their_retries() -> None:
    d = Driver()
    d(Put(b"a", b"1"), client=1, seq=1, now_ms=1_000)
    d(Put(b"a", b"2"), client=2, seq=1, now_ms=2_000)
    d(Put(b"a", b"3"), client=1, seq=1, now_ms=2_500)  # a retry counts as activity
    d(Put(b"a", b"4"), client=3, seq=1, now_ms=4_000)
    assert d(ExpireSessions(2_000), now_ms=4_499) == ExpireSessionsResult(1)  # client 2
    assert d.machine.sessions_count == 2
    assert d.error(Put(b"a", b"5"), client=2, seq=2).code == "session_expired"
    assert d(ExpireSessions(2_000), now_ms=4_500) == ExpireSessionsResult(1)  # client 1
    assert d.error(Put(b"a", b"1"), client=1, seq=2).code == "session_expired"
    assert d.machine.get(b"a").kv.value == b"4"  # type: ignore[union-attr]
    assert d.error(ExpireSessions(10)).code == "invalid_request"


def test_the_session_table_is_bounded_without_evicting_anyone() -> None:
    d = Driver(limits=KVLimits(sessions_max=2))
    d(Put(b"a", b"1"), client=1, seq=1)
    d(Put(b"a", b"2"), client=2, seq=1)
    error = d.error(Put(b"a", b"3"), client=3, seq=1)
    assert error.details == ("sessions", 3, 2)
    assert d(Put(b"a", b"1"), client=1, seq=1) == PutResult(2), "client 1 still remembered"
    d(ExpireSessions(1_000), now_ms=1_000)
    assert d(Put(b"a", b"3"), client=3, seq=1) == PutResult(4)


def test_request_ids_must_be_consistent() -> None:
    d = Driver()
    assert d.error(Put(b"a", b"1"), client=0, seq=3).code == "invalid_request"
    assert d.error(Put(b"a", b"1"), client=3, seq=0).code == "invalid_request"
    assert d.machine.revision == 1
