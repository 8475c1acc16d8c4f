"""The client side of the harness, behind one small interface.

Workloads talk to the cluster only through `ChaosClient`, so another client kind
can be plugged in by adding a factory to `CLIENT_KINDS`; nothing else changes. The
two kinds today are `accord.AsyncClient` over the HTTP API (`http`) and over the
native protocol (`native`): the endpoints it is given choose the protocol. The
interface is the handful of KV calls the workloads need, with the `accord.client.txn`
builders and `accord.kv` result types, which any client kind can produce.

Each workload client gets its own `ChaosClient` (its own session, so a retried
write takes effect once) with a short deadline: an operation that cannot finish in
`OP_TIMEOUT_S` becomes an unknown outcome and the client moves on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Protocol

from accord.client import AsyncClient
from accord.client.txn import Compare, Op
from accord.kv.results import RangeResult, TxnResult
from accord.kv.types import Event, KeyValue

OP_TIMEOUT_S = 3.0
"""Deadline of one operation, retries included."""


class EventStream(Protocol):
    def __aiter__(self) -> AsyncIterator[Event]: ...

    async def aclose(self) -> None: ...


class ChaosClient(Protocol):
    async def put(self, key: str, value: str) -> int:
        """Write; returns the revision of the write."""
        ...

    async def get(self, key: str) -> KeyValue | None:
        """Linearizable read; None when absent."""
        ...

    async def range_prefix(self, prefix: str) -> RangeResult:
        """Linearizable read of every key under `prefix`."""
        ...

    async def txn(
        self, compare: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op] = ()
    ) -> TxnResult: ...

    async def lease_grant(self, ttl_s: int) -> int:
        """A new lease's id."""
        ...

    async def lease_keepalive(self, lease_id: int) -> None: ...

    async def lease_revoke(self, lease_id: int) -> None: ...

    def watch_prefix(self, prefix: str, start_revision: int) -> EventStream:
        """Every event under `prefix` from `start_revision` on, once and in order,
        across node failures."""
        ...

    async def close(self) -> None: ...


class AccordChaosClient:
    """`ChaosClient` with `accord.AsyncClient`, over HTTP or the native protocol (by
    the scheme of its endpoints)."""

    def __init__(self, endpoints: Sequence[str], timeout_s: float = OP_TIMEOUT_S) -> None:
        self._client = AsyncClient(list(endpoints), timeout_s=timeout_s, attempt_timeout_s=1.0)

    async def put(self, key: str, value: str) -> int:
        return (await self._client.put(key, value)).revision

    async def get(self, key: str) -> KeyValue | None:
        return await self._client.get(key)

    async def range_prefix(self, prefix: str) -> RangeResult:
        return await self._client.range(prefix=prefix)

    async def txn(
        self, compare: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op] = ()
    ) -> TxnResult:
        return await self._client.txn(compare, success, failure)

    async def lease_grant(self, ttl_s: int) -> int:
        return (await self._client.lease_grant(ttl_s)).id

    async def lease_keepalive(self, lease_id: int) -> None:
        await self._client.lease_keepalive(lease_id)

    async def lease_revoke(self, lease_id: int) -> None:
        await self._client.lease_revoke(lease_id)

    def watch_prefix(self, prefix: str, start_revision: int) -> EventStream:
        return self._client.watch(prefix=prefix, start_revision=start_revision)

    async def close(self) -> None:
        await self._client.aclose()


ClientFactory = Callable[[Sequence[str]], ChaosClient]

CLIENT_KINDS: dict[str, ClientFactory] = {"http": AccordChaosClient, "native": AccordChaosClient}
"""Client kinds by name (`accord chaos run --client NAME`); the cluster hands each kind
the endpoints of its protocol (`ProcessCluster.endpoints`)."""
