"""Login rate limits and lockout, free of I/O (the clock is injected).

Theory of operation
-------------------
Each login attempt passes three checks before its password is hashed:

1. lockout of the (user name, source address) pair: after `failures_max` failures in
   a row the pair is locked for `lockout_s`, doubled by every further failure after
   the lock ends, up to `lockout_max_s`; a success clears it, and so does a quiet
   spell of `lockout_max_s` after the lock ends (or after the last failure);
2. a token bucket per source address (`source_rps`, `source_burst`), for every
   attempt: it bounds the hashing work one address can cause and password spraying
   across many names;
3. a token bucket per user name (`user_rps`, `user_burst`), where a success is
   refunded: it bounds guessing one account's password from many addresses at once,
   while many clients of one account may still log in together.

The name is taken as given, whether the user exists or not, so neither the answers
nor their timing tell an existing user from an unknown one.

Why lockout is per (user, source) and not per user: a per-user lock would let anyone
lock `root` out from everywhere, for as long as they keep failing. Here an attacker
locks only their own address; from other addresses they can at most slow a user's
logins to `user_rps` (failures refill it at that rate), never bar them; tokens already
issued and client certificates keep working throughout.

Every table is bounded (`entries_max`, least recently seen forgotten first). A
forgotten source or name starts again with a full bucket, a forgotten pair with no
failures: that errs on the side of the client, and filling a table takes many
attempts, which the source bucket slows down.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from accord.security.errors import LoginLocked, RateLimited
from accord.security.limits import (
    LOGIN_ENTRIES_MAX,
    LOGIN_FAILURES_MAX,
    LOGIN_LOCKOUT_DOUBLINGS_MAX,
    LOGIN_LOCKOUT_S,
    LOGIN_LOCKOUT_S_MAX,
    LOGIN_SOURCE_BURST,
    LOGIN_SOURCE_RPS,
    LOGIN_USER_BURST,
    LOGIN_USER_RPS,
)
from accord.security.ratelimit import RateLimiter


@dataclass(frozen=True, slots=True)
class LoginLimits:
    source_rps: float = LOGIN_SOURCE_RPS
    """Login attempts per second per source address (0: unlimited)."""
    source_burst: int = LOGIN_SOURCE_BURST
    user_rps: float = LOGIN_USER_RPS
    """Failed logins per second per user name (0: unlimited)."""
    user_burst: int = LOGIN_USER_BURST
    failures_max: int = LOGIN_FAILURES_MAX
    """Failures in a row from one address before the (name, address) is locked (0: never)."""
    lockout_s: float = LOGIN_LOCKOUT_S
    lockout_max_s: float = LOGIN_LOCKOUT_S_MAX
    entries_max: int = LOGIN_ENTRIES_MAX
    """Sources, names and (name, source) pairs each table remembers."""


@dataclass(slots=True)
class _Failures:
    count: int
    last_s: float
    locked_until_s: float


class LoginLimiter:
    def __init__(self, limits: LoginLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._sources = _bucket(limits.source_rps, limits.source_burst, limits, clock)
        self._users = _bucket(limits.user_rps, limits.user_burst, limits, clock)
        self._failures: OrderedDict[tuple[str, str], _Failures] = OrderedDict()

    def admit(self, user: str, source: str) -> None:
        """Raise `LoginLocked` or `RateLimited` unless this attempt may go ahead."""
        now = self._clock()
        record = self._failures.get((user, source))
        if record is not None:
            # quiet for lockout_max_s since the lock ended (or the last failure, if none)
            if now - max(record.last_s, record.locked_until_s) > self.limits.lockout_max_s:
                del self._failures[(user, source)]
            elif record.locked_until_s > now:
                raise LoginLocked(record.locked_until_s - now)
        for bucket, client in ((self._sources, source), (self._users, user)):
            wait_s = bucket.acquire(client) if bucket is not None else 0.0
            if wait_s > 0:
                raise RateLimited(wait_s)

    def succeeded(self, user: str, source: str) -> None:
        self._failures.pop((user, source), None)
        if self._users is not None:
            self._users.refund(user)

    def failed(self, user: str, source: str) -> float:
        """Count a failure; the seconds (user, source) is now locked for, or 0."""
        limits = self.limits
        if limits.failures_max == 0:
            return 0.0
        now = self._clock()
        key = (user, source)
        record = self._failures.pop(key, None) or _Failures(0, now, now)
        record.count += 1
        record.last_s = now
        beyond = record.count - limits.failures_max
        lock_s = 0.0
        if beyond >= 0:
            lock_s = limits.lockout_s * 2 ** min(beyond, LOGIN_LOCKOUT_DOUBLINGS_MAX)
            lock_s = min(limits.lockout_max_s, lock_s)
            record.locked_until_s = now + lock_s
        self._failures[key] = record
        while len(self._failures) > limits.entries_max:
            self._failures.popitem(last=False)
        return lock_s


def _bucket(
    rate_per_s: float, burst: int, limits: LoginLimits, clock: Callable[[], float]
) -> RateLimiter | None:
    if rate_per_s == 0:
        return None
    return RateLimiter(rate_per_s, burst, clock=clock, clients_max=limits.entries_max)
