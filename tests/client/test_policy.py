"""The client's failure policy without a network: circuit breakers, retries and
backoff, routing, error mapping — driven by a fake clock and seeded RNGs."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable

import pytest

from accord.client.endpoints import Endpoints, normalize_url
from accord.client.errors import (
    Compacted,
    FutureRevision,
    InvalidRequest,
    LeaseNotFound,
    LimitExceeded,
    ResponseTooLarge,
    ServerError,
    SessionExpired,
    Unavailable,
    error_from_answer,
)
from accord.client.policy import (
    BreakerState,
    CircuitBreaker,
    EndpointFailure,
    NoEndpoint,
    Retrier,
    RetryPolicy,
    is_retryable,
)
from accord.errors import DeadlineExceeded, NotLeader, ProposalDropped
from accord.invariant import InvariantError


class FakeClock:
    """Time that moves only when a test (or the fake sleep) moves it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class CeilingRng(random.Random):
    """Draws the top of every range, so tests see the backoff ceilings themselves."""

    def uniform(self, a: float, b: float) -> float:
        return b


# --- circuit breaker --------------------------------------------------------------------
def test_breaker_opens_after_consecutive_failures_only() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(clock, failures_max=3, cooldown_s=2.0)
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()  # resets the count
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state == BreakerState.CLOSED and breaker.allow()
    breaker.record_failure()
    assert breaker.state == BreakerState.OPEN
    assert not breaker.allow()
    assert breaker.retry_at() == clock.now + 2.0


def test_breaker_half_open_lets_one_trial_through_then_closes() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(clock, failures_max=1, cooldown_s=2.0)
    breaker.record_failure()
    clock.now += 1.999
    assert not breaker.allow()
    clock.now += 0.001
    assert breaker.allow()  # the trial
    assert breaker.state == BreakerState.HALF_OPEN
    assert not breaker.allow()  # only one trial at a time
    breaker.record_success()
    assert breaker.state == BreakerState.CLOSED and breaker.allow()


def test_a_failed_trial_opens_the_breaker_for_another_cooldown() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(clock, failures_max=5, cooldown_s=1.0)
    for _ in range(5):
        breaker.record_failure()
    clock.now += 1.0
    assert breaker.allow()
    breaker.record_failure()  # one failed trial is enough, whatever failures_max is
    assert breaker.state == BreakerState.OPEN
    assert not breaker.allow()
    assert breaker.retry_at() == clock.now + 1.0


def test_a_trial_that_never_reports_back_is_replaced_after_a_cooldown() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(clock, failures_max=1, cooldown_s=1.0)
    breaker.record_failure()
    clock.now += 1.0
    assert breaker.allow()
    clock.now += 0.5
    assert not breaker.allow()
    clock.now += 0.5
    assert breaker.allow()  # the first trial was abandoned (e.g. its call was cancelled)
    assert breaker.state == BreakerState.HALF_OPEN


def test_a_late_success_closes_an_open_breaker() -> None:
    breaker = CircuitBreaker(FakeClock(), failures_max=1, cooldown_s=10.0)
    breaker.record_failure()
    breaker.record_success()  # a request sent before it opened answered after all
    assert breaker.state == BreakerState.CLOSED


def test_breaker_settings_are_checked() -> None:
    with pytest.raises(InvariantError):
        CircuitBreaker(FakeClock(), failures_max=0)


# --- retries --------------------------------------------------------------------------------
def make_retrier(clock: FakeClock, rng: random.Random | None = None, **policy: float) -> Retrier:
    settings = RetryPolicy(
        retries_max=int(policy.get("retries_max", 10)),
        backoff_base_s=policy.get("backoff_base_s", 0.05),
        backoff_cap_s=policy.get("backoff_cap_s", 1.0),
        attempt_timeout_s=policy.get("attempt_timeout_s", 2.0),
    )
    return Retrier(settings, clock, clock.sleep, rng or CeilingRng())


class Failing:
    """An attempt that raises `errors` one per call, then returns "ok"; it records
    the timeout each call was given."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.timeouts: list[float] = []

    async def __call__(self, timeout_s: float) -> str:
        self.timeouts.append(timeout_s)
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def run(coroutine: Awaitable[str]) -> str:
    async def main() -> str:
        return await coroutine

    return asyncio.run(main())


def test_retryable_failures_are_retried_with_doubling_capped_backoff() -> None:
    clock = FakeClock()
    errors = [
        EndpointFailure("http://a", "refused"),
        NotLeader(2),
        ProposalDropped("busy"),
        DeadlineExceeded("slow"),
        EndpointFailure("http://b", "reset"),
        NotLeader(0),
        NotLeader(0),
    ]
    attempt = Failing(*errors)
    assert run(make_retrier(clock).run(attempt, timeout_s=30.0)) == "ok"
    assert clock.sleeps == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


def test_backoff_has_full_jitter() -> None:
    clock = FakeClock()
    retrier = make_retrier(clock, random.Random(11))
    delays = [retrier.delay_s(4) for _ in range(100)]
    assert all(0.0 <= d <= 0.8 for d in delays)
    assert min(delays) < 0.2 and max(delays) > 0.6
    replay = make_retrier(clock, random.Random(11))
    assert [replay.delay_s(4) for _ in range(100)] == delays


@pytest.mark.parametrize(
    "error",
    [
        InvalidRequest("bad", code="bad_request", status=400),
        LimitExceeded("too big", status=413),
        LeaseNotFound("gone", status=404),
        SessionExpired("no session", status=409),
        ServerError("boom", status=500),
    ],
)
def test_final_errors_are_never_retried(error: Exception) -> None:
    clock = FakeClock()
    attempt = Failing(error)
    with pytest.raises(type(error)):
        run(make_retrier(clock).run(attempt, timeout_s=5.0))
    assert clock.sleeps == []
    assert not is_retryable(error)


def test_unreachable_endpoints_end_in_unavailable_when_retries_run_out() -> None:
    clock = FakeClock()
    attempt = Failing(*[EndpointFailure("http://a", "refused")] * 4)
    with pytest.raises(Unavailable) as info:
        run(make_retrier(clock, retries_max=3).run(attempt, timeout_s=60.0))
    assert isinstance(info.value.__cause__, EndpointFailure)
    assert len(clock.sleeps) == 3


def test_the_last_error_is_raised_when_retries_run_out() -> None:
    attempt = Failing(*[NotLeader(3)] * 3)
    with pytest.raises(NotLeader):
        run(make_retrier(FakeClock(), retries_max=2).run(attempt, timeout_s=60.0))


def test_the_deadline_ends_the_retries() -> None:
    clock = FakeClock()
    attempt = Failing(*[ProposalDropped("busy")] * 100)
    with pytest.raises(DeadlineExceeded) as info:
        run(make_retrier(clock, retries_max=100).run(attempt, timeout_s=3.0))
    assert isinstance(info.value.__cause__, ProposalDropped)
    assert sum(clock.sleeps) < 3.0


def test_each_attempt_gets_at_most_the_attempt_timeout_and_what_is_left() -> None:
    clock = FakeClock()
    timeouts: list[float] = []

    async def attempt(timeout_s: float) -> str:
        timeouts.append(timeout_s)
        if len(timeouts) == 1:
            clock.now += timeout_s  # the first attempt uses up its time
            raise EndpointFailure("http://a", "slow", timed_out=True)
        return "ok"

    run(make_retrier(clock, attempt_timeout_s=2.0).run(attempt, timeout_s=2.5))
    assert timeouts == pytest.approx([2.0, 0.5 - 0.05])


def test_a_timed_out_attempt_at_the_deadline_is_deadline_exceeded() -> None:
    clock = FakeClock()

    async def attempt(timeout_s: float) -> str:
        clock.now += timeout_s
        raise EndpointFailure("http://a", "no answer", timed_out=True)

    with pytest.raises(DeadlineExceeded):
        run(make_retrier(clock).run(attempt, timeout_s=5.0))


def test_no_retry_starts_with_almost_nothing_left_of_the_deadline() -> None:
    clock = FakeClock()
    calls: list[float] = []

    async def attempt(timeout_s: float) -> str:
        calls.append(timeout_s)
        if timeout_s < 0.005:  # too short to dial: times out, as a real attempt would
            raise EndpointFailure("http://a", "no answer", timed_out=True)
        clock.now += 0.99  # refused, leaving 10 ms, of which the backoff takes half
        raise EndpointFailure("http://a", "refused")

    with pytest.raises(Unavailable):  # why it failed, not a timeout of a stillborn retry
        run(make_retrier(clock, backoff_base_s=0.005, backoff_cap_s=0.005).run(attempt, 1.0))
    assert len(calls) == 1


def test_when_every_breaker_is_open_the_call_waits_for_the_first_trial() -> None:
    clock = FakeClock()
    attempt = Failing(NoEndpoint(retry_at=clock.now + 1.5))
    assert run(make_retrier(clock).run(attempt, timeout_s=5.0)) == "ok"
    assert clock.sleeps == [1.5]
    too_late = Failing(NoEndpoint(retry_at=clock.now + 10.0))
    with pytest.raises(Unavailable):
        run(make_retrier(clock).run(too_late, timeout_s=5.0))


# --- routing --------------------------------------------------------------------------------
def endpoints(clock: FakeClock, *urls: str, failures_max: int = 2) -> Endpoints:
    return Endpoints(list(urls), clock, failures_max, 5.0)


def test_urls_are_normalized() -> None:
    assert normalize_url("127.0.0.1:7001/") == "http://127.0.0.1:7001"
    assert normalize_url(" https://h:1 ") == "https://h:1"


def test_reads_go_round_robin_and_leader_requests_to_the_leader() -> None:
    e = endpoints(FakeClock(), "a:1", "b:1", "c:1")
    assert [e.pick(leader=False) for _ in range(4)] == [
        "http://a:1",
        "http://b:1",
        "http://c:1",
        "http://a:1",
    ]
    assert e.pick(leader=True) == "http://b:1"  # leader unknown: round robin
    e.set_leader(3, "http://c:1")
    assert {e.pick(leader=True) for _ in range(5)} == {"http://c:1"}
    assert e.pick(leader=True, avoid="http://c:1") != "http://c:1"


def test_open_breakers_are_skipped_and_a_failed_leader_is_forgotten() -> None:
    clock = FakeClock()
    e = endpoints(clock, "a:1", "b:1")
    e.set_leader(1, "http://a:1")
    e.failed("http://a:1")
    assert e.leader_url is None
    e.failed("http://a:1")
    assert e.states()["http://a:1"] == BreakerState.OPEN
    assert {e.pick(leader=True) for _ in range(4)} == {"http://b:1"}
    e.failed("http://b:1")
    e.failed("http://b:1")
    with pytest.raises(NoEndpoint) as info:
        e.pick(leader=False)
    assert info.value.retry_at == clock.now + 5.0
    clock.now += 5.0
    assert e.pick(leader=False) in ("http://a:1", "http://b:1")  # a half-open trial


def test_discovered_members_join_the_rotation_once() -> None:
    e = endpoints(FakeClock(), "a:1")
    e.add(["http://a:1", "http://b:1"])
    e.set_leader(2, "http://b:1/")
    assert e.urls == ["http://a:1", "http://b:1"]
    assert e.leader_url == "http://b:1"


# --- errors -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (503, "not_leader", NotLeader),
        (503, "proposal_dropped", ProposalDropped),
        (504, "deadline_exceeded", DeadlineExceeded),
        (400, "bad_request", InvalidRequest),
        (400, "duplicate_key", InvalidRequest),
        (400, "future_revision", FutureRevision),
        (413, "limit_exceeded", LimitExceeded),
        (413, "request_too_large", LimitExceeded),
        (410, "compacted", Compacted),
        (404, "lease_not_found", LeaseNotFound),
        (409, "session_expired", SessionExpired),
        (418, "something_new", InvalidRequest),
        (500, "internal", ServerError),
    ],
)
def test_error_codes_map_to_typed_exceptions(status: int, code: str, expected: type) -> None:
    error = error_from_answer(status, {"code": code, "message": "why"})
    assert type(error) is expected
    assert error.code == code or expected in (NotLeader, ProposalDropped, DeadlineExceeded)
    assert "why" in str(error)


def test_not_leader_keeps_the_leader_hint() -> None:
    error = error_from_answer(503, {"code": "not_leader", "message": "m", "leader": {"id": 3}})
    assert isinstance(error, NotLeader) and error.leader_hint == 3


def test_response_too_large_says_how_many_keys_fit() -> None:
    body = {"code": "response_too_large", "message": "m", "op": 2, "keys": 7, "limit_bytes": 99}
    error = error_from_answer(413, body)
    assert isinstance(error, ResponseTooLarge) and isinstance(error, LimitExceeded)
    assert (error.op, error.keys, error.limit_bytes, error.status) == (2, 7, 99, 413)
    malformed = error_from_answer(413, {"code": "response_too_large", "keys": "many"})
    assert isinstance(malformed, ResponseTooLarge) and malformed.keys == 0
