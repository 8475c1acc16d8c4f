"""The login limits on a fake clock: lockout per (user, source) growing exponentially,
buckets per source and per name, bounded tables."""

from __future__ import annotations

import pytest

from accord.security.config import SecurityConfig, parse_security
from accord.security.errors import LoginLocked, RateLimited, SecurityError
from accord.security.loginlimit import LoginLimiter, LoginLimits

NO_BUCKETS = {"source_rps": 0.0, "user_rps": 0.0}


class Clock:
    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


def limiter(**limits: object) -> tuple[LoginLimiter, Clock]:
    clock = Clock()
    return LoginLimiter(LoginLimits(**limits), clock=clock), clock  # type: ignore[arg-type]


def fail(limiter: LoginLimiter, user: str = "root", source: str = "10.0.0.1") -> float:
    limiter.admit(user, source)
    return limiter.failed(user, source)


def test_k_failures_lock_the_pair_and_each_later_failure_doubles_the_lock() -> None:
    limits, clock = limiter(failures_max=3, lockout_s=2.0, lockout_max_s=10.0, **NO_BUCKETS)
    assert [fail(limits) for _ in range(2)] == [0.0, 0.0]
    assert fail(limits) == 2.0
    with pytest.raises(LoginLocked) as locked:
        limits.admit("root", "10.0.0.1")
    assert locked.value.retry_after_s == 2.0 and locked.value.code == "login_locked"
    locks = []
    for _ in range(3):
        clock.now_s += locks[-1] if locks else 2.0  # the lock has just ended
        locks.append(fail(limits))
    assert locks == [4.0, 8.0, 10.0]  # doubled, then capped at lockout_max_s
    clock.now_s += 10.5  # just after the longest lock: not a quiet spell yet
    assert fail(limits) == 10.0


def test_the_lock_is_per_source_and_a_success_clears_it() -> None:
    limits, clock = limiter(failures_max=2, lockout_s=5.0, **NO_BUCKETS)
    fail(limits)
    fail(limits)
    with pytest.raises(LoginLocked):
        limits.admit("root", "10.0.0.1")
    limits.admit("root", "10.0.0.2")  # root from elsewhere is not locked out
    limits.admit("alice", "10.0.0.1")
    clock.now_s += 5.0
    limits.admit("root", "10.0.0.1")
    limits.succeeded("root", "10.0.0.1")
    assert fail(limits) == 0.0  # counting starts again


def test_a_quiet_spell_forgets_the_failures() -> None:
    limits, clock = limiter(failures_max=2, lockout_s=1.0, lockout_max_s=60.0, **NO_BUCKETS)
    fail(limits)
    clock.now_s += 61.0
    assert fail(limits) == 0.0
    assert fail(limits) == 1.0
    clock.now_s += 1.0 + 61.0  # the lock's end, then a quiet spell
    assert fail(limits) == 0.0


def test_the_source_bucket_counts_every_attempt() -> None:
    limits, clock = limiter(source_rps=2.0, source_burst=3, user_rps=0.0, failures_max=0)
    for name in ("a", "b", "c"):
        limits.admit(name, "10.0.0.1")
        limits.succeeded(name, "10.0.0.1")
    with pytest.raises(RateLimited) as limited:
        limits.admit("d", "10.0.0.1")
    assert limited.value.retry_after_s == pytest.approx(0.5)
    limits.admit("d", "10.0.0.2")
    clock.now_s += 0.5
    limits.admit("d", "10.0.0.1")


def test_the_user_bucket_counts_failures_from_every_source_known_name_or_not() -> None:
    limits, _ = limiter(source_rps=0.0, user_rps=1.0, user_burst=3, failures_max=0)
    for i in range(10):  # successes are refunded
        limits.admit("app", f"10.0.0.{i}")
        limits.succeeded("app", f"10.0.0.{i}")
    for name in ("root", "nobody-at-all"):
        for i in range(3):
            fail(limits, name, f"10.0.1.{i}")
        with pytest.raises(RateLimited):
            limits.admit(name, "10.0.2.1")


def test_tables_are_bounded() -> None:
    limits, _ = limiter(failures_max=1, lockout_s=5.0, entries_max=10, source_burst=1)
    for i in range(1000):
        fail(limits, f"user{i}", f"10.0.{i // 250}.{i % 250}")
    assert len(limits._failures) == 10
    assert len(limits._sources._buckets) <= 10  # type: ignore[union-attr]
    assert len(limits._users._buckets) <= 10  # type: ignore[union-attr]


def test_settings_come_from_the_security_table() -> None:
    config = parse_security({"login_failures_max": 2, "login_lockout_s": 0.5}, env={})
    assert config.login_limits == LoginLimits(failures_max=2, lockout_s=0.5)
    assert SecurityConfig().login_limits == LoginLimits()
    for bad in ({"login_lockout_s": 0}, {"login_lockout_s": 2000}, {"login_user_burst": 0}):
        with pytest.raises(SecurityError):
            parse_security(bad, env={})
