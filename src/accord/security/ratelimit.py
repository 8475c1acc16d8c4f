"""Per-client token buckets: `rate` requests per second on average, bursts of up to
`burst`. Clients are identified by user name when authenticated, else by address.
The table of buckets is bounded; the least recently seen client is forgotten first
(it then starts again with a full bucket, which errs on the side of the client)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from accord.security.limits import RATE_LIMIT_CLIENTS_MAX


class RateLimiter:
    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        clients_max: int = RATE_LIMIT_CLIENTS_MAX,
    ) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate_per_s must be positive and burst at least 1")
        self._rate = rate_per_s
        self._burst = float(burst)
        self._clock = clock
        self._clients_max = clients_max
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def acquire(self, client: str) -> float:
        """0.0 if `client` may send a request now, else the seconds until it may."""
        now = self._clock()
        tokens, last = self._buckets.pop(client, (self._burst, now))
        tokens = min(self._burst, tokens + (now - last) * self._rate)
        wait_s = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait_s = (1.0 - tokens) / self._rate
        self._buckets[client] = (tokens, now)
        while len(self._buckets) > self._clients_max:
            self._buckets.popitem(last=False)
        return wait_s

    def refund(self, client: str) -> None:
        """Give back the request `acquire` took (the login limit counts failures only)."""
        entry = self._buckets.get(client)
        if entry is not None:
            self._buckets[client] = (min(self._burst, entry[0] + 1.0), entry[1])
