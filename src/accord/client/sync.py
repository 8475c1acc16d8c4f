"""`Client`: the blocking client, the same API as `AsyncClient`.

Theory of operation
-------------------
A `Client` owns a private event loop running in a daemon thread and one
`AsyncClient` living on it. Each method submits the async method's coroutine to that
loop (`asyncio.run_coroutine_threadsafe`) and waits for its result, so all behaviour
— routing, deadlines, retries, breakers, sessions — is the async client's. The loop
is the only place the async client is touched, so a `Client` may be shared by
threads (its writes are still sent one at a time). If the waiting thread is
interrupted (Ctrl-C), the submitted call is cancelled before the interruption
propagates. `close()` (or leaving a `with` block) closes the async client, stops the
loop and joins the thread; a closed client refuses further calls.

`watch()` returns a generator: each `next()` waits for the async watch's next event;
closing the generator (or leaving a `for` loop early and dropping it) closes the
watch.
"""

from __future__ import annotations

import asyncio
import random
import ssl
import threading
from collections.abc import Coroutine, Generator, Sequence
from types import TracebackType
from typing import Any, TypeVar

from accord.client.aio import AsyncClient, Key
from accord.client.limits import (
    ATTEMPT_TIMEOUT_S,
    BREAKER_COOLDOWN_S,
    BREAKER_FAILURES_MAX,
    CALL_TIMEOUT_S,
    RETRIES_MAX,
    RETRY_BACKOFF_S_MAX,
    RETRY_BACKOFF_S_MIN,
    WATCH_PROBE_INTERVAL_S,
    WATCH_RECONNECT_TIMEOUT_S,
)
from accord.client.policy import BreakerState
from accord.client.results import ClusterStatus, Lease, LeaseRevoked, LeaseTTL, Member
from accord.client.txn import Compare, Op
from accord.client.watch import Watch
from accord.kv.results import DeleteResult, PutResult, RangeResult, TxnResult
from accord.kv.types import Event, KeyValue

T = TypeVar("T")


class Client:
    """Blocking Accord client; takes the same arguments as `AsyncClient`. Use
    `with Client([...]) as client:` or call `close()` when done."""

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        timeout_s: float = CALL_TIMEOUT_S,
        retries: int = RETRIES_MAX,
        attempt_timeout_s: float = ATTEMPT_TIMEOUT_S,
        backoff_base_s: float = RETRY_BACKOFF_S_MIN,
        backoff_cap_s: float = RETRY_BACKOFF_S_MAX,
        breaker_failures_max: int = BREAKER_FAILURES_MAX,
        breaker_cooldown_s: float = BREAKER_COOLDOWN_S,
        watch_probe_interval_s: float = WATCH_PROBE_INTERVAL_S,
        watch_reconnect_timeout_s: float = WATCH_RECONNECT_TIMEOUT_S,
        rng: random.Random | None = None,
        tls: ssl.SSLContext | None = None,
        user: str | None = None,
        password: str | None = None,
        token: str | None = None,
    ) -> None:
        self._async = AsyncClient(
            endpoints,
            timeout_s=timeout_s,
            retries=retries,
            attempt_timeout_s=attempt_timeout_s,
            backoff_base_s=backoff_base_s,
            backoff_cap_s=backoff_cap_s,
            breaker_failures_max=breaker_failures_max,
            breaker_cooldown_s=breaker_cooldown_s,
            watch_probe_interval_s=watch_probe_interval_s,
            watch_reconnect_timeout_s=watch_reconnect_timeout_s,
            rng=rng,
            tls=tls,
            user=user,
            password=password,
            token=token,
        )
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="accord-client", daemon=True
        )
        self._thread.start()
        self._closed = False

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if self._closed:
            coroutine.close()
            raise RuntimeError("the client is closed")
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # a no-op if the call itself failed; stops it if we were interrupted
            raise

    def close(self) -> None:
        if self._closed:
            return

        async def shutdown() -> None:
            await self._async.aclose()
            await self._loop.shutdown_asyncgens()  # open watches end here

        try:
            self._run(shutdown())
        finally:
            self._closed = True
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def timeout_s(self) -> float:
        return self._async.timeout_s

    # --- the API, one blocking method per async one ------------------------------------
    def put(
        self, key: Key, value: Key, *, lease: int = 0, timeout_s: float | None = None
    ) -> PutResult:
        return self._run(self._async.put(key, value, lease=lease, timeout_s=timeout_s))

    def get(
        self,
        key: Key,
        *,
        revision: int = 0,
        serializable: bool = False,
        timeout_s: float | None = None,
    ) -> KeyValue | None:
        return self._run(
            self._async.get(key, revision=revision, serializable=serializable, timeout_s=timeout_s)
        )

    def delete(self, key: Key, *, timeout_s: float | None = None) -> DeleteResult:
        return self._run(self._async.delete(key, timeout_s=timeout_s))

    def range(
        self,
        key: Key | None = None,
        range_end: Key | None = None,
        *,
        prefix: Key | None = None,
        limit: int = 0,
        revision: int = 0,
        count_only: bool = False,
        serializable: bool = False,
        timeout_s: float | None = None,
    ) -> RangeResult:
        return self._run(
            self._async.range(
                key,
                range_end,
                prefix=prefix,
                limit=limit,
                revision=revision,
                count_only=count_only,
                serializable=serializable,
                timeout_s=timeout_s,
            )
        )

    def txn(
        self,
        compare: Sequence[Compare] = (),
        success: Sequence[Op] = (),
        failure: Sequence[Op] = (),
        *,
        timeout_s: float | None = None,
    ) -> TxnResult:
        return self._run(self._async.txn(compare, success, failure, timeout_s=timeout_s))

    def lease_grant(self, ttl_s: int, *, timeout_s: float | None = None) -> Lease:
        return self._run(self._async.lease_grant(ttl_s, timeout_s=timeout_s))

    def lease_keepalive(self, lease_id: int, *, timeout_s: float | None = None) -> Lease:
        return self._run(self._async.lease_keepalive(lease_id, timeout_s=timeout_s))

    def lease_revoke(self, lease_id: int, *, timeout_s: float | None = None) -> LeaseRevoked:
        return self._run(self._async.lease_revoke(lease_id, timeout_s=timeout_s))

    def lease_ttl(self, lease_id: int, *, timeout_s: float | None = None) -> LeaseTTL:
        return self._run(self._async.lease_ttl(lease_id, timeout_s=timeout_s))

    def status(
        self, *, endpoint: str | None = None, timeout_s: float | None = None
    ) -> ClusterStatus:
        return self._run(self._async.status(endpoint=endpoint, timeout_s=timeout_s))

    def members(self, *, timeout_s: float | None = None) -> tuple[Member, ...]:
        return self._run(self._async.members(timeout_s=timeout_s))

    def endpoint_states(self) -> dict[str, BreakerState]:
        async def states() -> dict[str, BreakerState]:
            return self._async.endpoint_states()

        return self._run(states())

    @property
    def leader_url(self) -> str | None:
        return self._async.leader_url

    def watch(
        self,
        key: Key | None = None,
        *,
        prefix: Key | None = None,
        range_end: Key | None = None,
        start_revision: int = 0,
    ) -> Generator[Event, None, None]:
        """Events as `AsyncClient.watch` delivers them; close the generator to stop."""
        watch = self._async.watch(
            key, prefix=prefix, range_end=range_end, start_revision=start_revision
        )
        return self._events(watch)

    def _events(self, watch: Watch) -> Generator[Event, None, None]:
        async def next_event() -> Event | None:
            try:
                return await watch.__anext__()
            except StopAsyncIteration:
                return None

        try:
            while (event := self._run(next_event())) is not None:
                yield event
        finally:
            if not self._closed:
                self._run(watch.aclose())
