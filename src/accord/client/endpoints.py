"""The endpoints a client knows, their circuit breakers, and where each request goes.

Theory of operation
-------------------
The list starts with the URLs the caller gave and grows with the members that
`/v1/cluster/status` reports (discovery is done by the client; this class only
records what it learned). Every endpoint has its own `CircuitBreaker`.

Routing: a request that needs the leader (writes, linearizable reads) goes to the
leader when it is known and its breaker lets it through, which saves followers the
hop of forwarding (writes) or of asking the leader for a read index (reads).
Everything else, and leader-bound requests while the leader is unknown, goes round
robin over the endpoints whose breakers let a request through, so serializable reads
and watches spread over the cluster and a retry lands on the next endpoint. A
failure on the leader's endpoint forgets the leader until the next discovery.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from accord.client.policy import BreakerState, CircuitBreaker, Clock, NoEndpoint
from accord.invariant import invariant


def normalize_url(url: str) -> str:
    """`host:port` or `http(s)://host:port[/]` → `scheme://host:port`."""
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = "http://" + url
    return url


class Endpoints:
    def __init__(
        self,
        urls: Sequence[str],
        clock: Clock,
        breaker_failures_max: int,
        breaker_cooldown_s: float,
    ) -> None:
        invariant(bool(urls), "at least one endpoint is needed")
        self._clock = clock
        self._failures_max = breaker_failures_max
        self._cooldown_s = breaker_cooldown_s
        self._breakers: dict[str, CircuitBreaker] = {}
        self._cursor = 0
        self.leader_url: str | None = None
        self.leader_id = 0
        self.add(urls)

    @property
    def urls(self) -> list[str]:
        return list(self._breakers)

    def add(self, urls: Iterable[str]) -> None:
        for url in urls:
            url = normalize_url(url)
            if url not in self._breakers:
                self._breakers[url] = CircuitBreaker(
                    self._clock, self._failures_max, self._cooldown_s
                )

    def set_leader(self, leader_id: int, url: str | None) -> None:
        self.leader_id = leader_id
        self.leader_url = normalize_url(url) if url else None
        if self.leader_url:
            self.add([self.leader_url])

    def forget_leader(self) -> None:
        self.set_leader(0, None)

    def states(self) -> dict[str, BreakerState]:
        return {url: breaker.state for url, breaker in self._breakers.items()}

    def pick(self, *, leader: bool, avoid: str | None = None) -> str:
        """The endpoint for the next request; raises `NoEndpoint` if every breaker is
        open. `avoid` is skipped if any other endpoint can take the request."""
        wanted = self.leader_url if leader and self.leader_url != avoid else None
        if wanted and self._breakers[wanted].allow():
            return wanted
        urls = self.urls
        order = [urls[(self._cursor + i) % len(urls)] for i in range(len(urls))]
        if avoid in order and len(order) > 1:
            order.remove(avoid)
            order.append(avoid)
        for url in order:
            if self._breakers[url].allow():
                self._cursor = (urls.index(url) + 1) % len(urls)
                return url
        raise NoEndpoint(min(b.retry_at() for b in self._breakers.values()))

    def succeeded(self, url: str) -> None:
        self._breakers[url].record_success()

    def failed(self, url: str) -> None:
        self._breakers[url].record_failure()
        if url == self.leader_url:
            self.forget_leader()
