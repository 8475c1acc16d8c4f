"""Retries and circuit breakers: the client's failure policy, free of I/O.

Theory of operation
-------------------
A call has one deadline (`timeout_s`). `Retrier.run()` makes attempts until one
succeeds, a final error comes back, the retries run out or the deadline passes. Each
attempt gets at most `attempt_timeout_s` (and never more than what is left), so a node
that accepts connections but never answers costs one attempt, not the whole call.
Between attempts it sleeps a capped exponential delay with full jitter
(`accord.transport.backoff.backoff_delay_s`).

Retryable (`is_retryable`) are only the failures after which trying again cannot do
harm and may help: the endpoint could not be reached or did not answer
(`EndpointFailure`), and the codes the error-code table (`accord.errorcodes`) marks
retryable: `NotLeader` and `ProposalDropped` (nothing was applied), and
`DeadlineExceeded` (reads have no effect; a write's outcome is unknown, and its retry
carries the same client id and sequence number, so the server applies it at most
once). Every other answer is final, in particular every 4xx.

Giving up raises `Unavailable` if the last failure was an unreachable endpoint,
`DeadlineExceeded` if it was an attempt that timed out or the deadline passed, and
the last error itself (e.g. `NotLeader`) when the retries ran out.

Each endpoint has a `CircuitBreaker`, a small state machine driven by a table:
`BREAKER_FAILURES_MAX` consecutive `EndpointFailure`s open it; an open breaker refuses
requests for `BREAKER_COOLDOWN_S`; then it lets one trial request through
(half-open), whose success closes it and whose failure opens it again. Any answer
from the node, even an error answer, counts as a success: the node is alive.

Clock, sleep and RNG are injected, so tests drive all of it without waiting.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import NoReturn, TypeVar

from accord.client.errors import Unavailable
from accord.client.limits import (
    ATTEMPT_TIMEOUT_S,
    ATTEMPT_TIMEOUT_S_MIN,
    BREAKER_COOLDOWN_S,
    BREAKER_FAILURES_MAX,
    RETRIES_MAX,
    RETRY_BACKOFF_S_MAX,
    RETRY_BACKOFF_S_MIN,
)
from accord.errorcodes import is_retryable_code
from accord.errors import AccordError, DeadlineExceeded
from accord.invariant import invariant
from accord.transport.backoff import backoff_delay_s

T = TypeVar("T")
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class EndpointFailure(Exception):
    """An endpoint could not be reached, broke the connection, or did not answer in
    time (`timed_out`). Internal: callers see `Unavailable` or `DeadlineExceeded`."""

    def __init__(self, url: str, reason: str, *, timed_out: bool = False) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.timed_out = timed_out


class NoEndpoint(Exception):
    """Every endpoint's breaker is open; one may be tried again at `retry_at`."""

    def __init__(self, retry_at: float) -> None:
        super().__init__("every endpoint's circuit breaker is open")
        self.retry_at = retry_at


def is_retryable(error: BaseException) -> bool:
    """An unreachable endpoint, or an error whose code the error-code table marks
    retryable (`not_leader`, `proposal_dropped`, `deadline_exceeded`)."""
    if isinstance(error, EndpointFailure):
        return True
    return isinstance(error, AccordError) and is_retryable_code(error.code)


# --- circuit breaker -----------------------------------------------------------------
class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class BreakerEvent(enum.Enum):
    SUCCESS = "success"
    FAILURE = "failure"
    FAILURE_LIMIT = "failure_limit"
    """A failure that brings the consecutive count to the limit."""
    COOLDOWN_OVER = "cooldown_over"
    """A request is let through once the cooldown has passed: the trial."""


_TRANSITIONS: dict[tuple[BreakerState, BreakerEvent], BreakerState] = {
    (BreakerState.CLOSED, BreakerEvent.SUCCESS): BreakerState.CLOSED,
    (BreakerState.CLOSED, BreakerEvent.FAILURE): BreakerState.CLOSED,
    (BreakerState.CLOSED, BreakerEvent.FAILURE_LIMIT): BreakerState.OPEN,
    (BreakerState.OPEN, BreakerEvent.COOLDOWN_OVER): BreakerState.HALF_OPEN,
    # A request sent before the breaker opened may still report back.
    (BreakerState.OPEN, BreakerEvent.SUCCESS): BreakerState.CLOSED,
    (BreakerState.OPEN, BreakerEvent.FAILURE): BreakerState.OPEN,
    (BreakerState.OPEN, BreakerEvent.FAILURE_LIMIT): BreakerState.OPEN,
    (BreakerState.HALF_OPEN, BreakerEvent.SUCCESS): BreakerState.CLOSED,
    (BreakerState.HALF_OPEN, BreakerEvent.FAILURE): BreakerState.OPEN,
    (BreakerState.HALF_OPEN, BreakerEvent.FAILURE_LIMIT): BreakerState.OPEN,
    (BreakerState.HALF_OPEN, BreakerEvent.COOLDOWN_OVER): BreakerState.HALF_OPEN,
}


class CircuitBreaker:
    def __init__(
        self,
        clock: Clock,
        failures_max: int = BREAKER_FAILURES_MAX,
        cooldown_s: float = BREAKER_COOLDOWN_S,
    ) -> None:
        invariant(failures_max >= 1 and cooldown_s >= 0, "bad circuit breaker settings")
        self._clock = clock
        self.failures_max = failures_max
        self.cooldown_s = cooldown_s
        self.state = BreakerState.CLOSED
        self.failures = 0
        self._since = 0.0
        """When the breaker last opened, or when its trial request started."""

    def _step(self, event: BreakerEvent) -> None:
        state = _TRANSITIONS.get((self.state, event))
        invariant(state is not None, f"breaker: no transition for {self.state} on {event}")
        assert state is not None
        if state != self.state or event == BreakerEvent.COOLDOWN_OVER:
            self._since = self._clock()
        self.state = state

    def retry_at(self) -> float:
        """When `allow()` will next say yes (now, if it would already)."""
        if self.state == BreakerState.CLOSED:
            return self._clock()
        return self._since + self.cooldown_s

    def allow(self) -> bool:
        """Whether a request may go to this endpoint now; a yes from an open breaker
        makes that request the half-open trial."""
        if self.state == BreakerState.CLOSED:
            return True
        if self._clock() < self._since + self.cooldown_s:
            return False  # open and cooling down, or a trial still in flight
        self._step(BreakerEvent.COOLDOWN_OVER)
        return True

    def record_success(self) -> None:
        self.failures = 0
        self._step(BreakerEvent.SUCCESS)

    def record_failure(self) -> None:
        self.failures += 1
        limit = self.failures >= self.failures_max or self.state == BreakerState.HALF_OPEN
        self._step(BreakerEvent.FAILURE_LIMIT if limit else BreakerEvent.FAILURE)


# --- retries -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RetryPolicy:
    retries_max: int = RETRIES_MAX
    backoff_base_s: float = RETRY_BACKOFF_S_MIN
    backoff_cap_s: float = RETRY_BACKOFF_S_MAX
    attempt_timeout_s: float = ATTEMPT_TIMEOUT_S

    def __post_init__(self) -> None:
        invariant(self.retries_max >= 0, "retries_max must be >= 0")
        invariant(0 < self.backoff_base_s <= self.backoff_cap_s, "bad backoff settings")
        invariant(self.attempt_timeout_s > 0, "attempt_timeout_s must be positive")


def give_up(error: BaseException, deadline_passed: bool) -> BaseException:
    """The exception a call raises when it stops retrying after `error`."""
    if isinstance(error, EndpointFailure):
        if error.timed_out:
            return DeadlineExceeded(f"no answer in time ({error})")
        return Unavailable(f"no endpoint could be reached (last: {error})")
    if isinstance(error, NoEndpoint):
        return Unavailable(f"no endpoint could be reached ({error})")
    if deadline_passed and not isinstance(error, DeadlineExceeded):
        return DeadlineExceeded(f"deadline passed while retrying (last: {error})")
    return error


class Retrier:
    def __init__(self, policy: RetryPolicy, clock: Clock, sleep: Sleep, rng: random.Random) -> None:
        self.policy = policy
        self._clock = clock
        self._sleep = sleep
        self._rng = rng

    def delay_s(self, retry: int) -> float:
        """The pause before retry number `retry` (0 for the first retry)."""
        p = self.policy
        return backoff_delay_s(retry, self._rng, p.backoff_base_s, p.backoff_cap_s)

    async def run(self, attempt: Callable[[float], Awaitable[T]], timeout_s: float) -> T:
        """`attempt(attempt_timeout_s)` until it succeeds or fails for good."""
        invariant(timeout_s > 0, "timeout_s must be positive")
        deadline = self._clock() + timeout_s
        retries = 0
        last: Exception | None = None
        while True:
            remaining_s = deadline - self._clock()
            if remaining_s <= 0 or (last is not None and remaining_s < ATTEMPT_TIMEOUT_S_MIN):
                assert last is not None
                _raise(give_up(last, deadline_passed=True), last)
            try:
                return await attempt(min(remaining_s, self.policy.attempt_timeout_s))
            except NoEndpoint as e:
                # Every breaker is open: wait for the first trial, if the deadline allows.
                last = e
                wait_s = max(e.retry_at - self._clock(), 0.0)
                if self._clock() + wait_s >= deadline:
                    _raise(give_up(e, deadline_passed=True), e)
                await self._sleep(wait_s)
            except Exception as e:
                if not is_retryable(e):
                    raise
                last = e
                if retries >= self.policy.retries_max:
                    _raise(give_up(e, deadline_passed=False), e)
                delay_s = self.delay_s(retries)
                if self._clock() + delay_s >= deadline:
                    _raise(give_up(e, deadline_passed=True), e)
                retries += 1
                await self._sleep(delay_s)


def _raise(error: BaseException, cause: BaseException) -> NoReturn:
    if error is cause:
        raise error
    raise error from cause
