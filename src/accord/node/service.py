"""The key-value service of one node: KV commands through Raft, reads after ReadIndex,
watches fed from the apply stream, and the leader's housekeeping.

Writes are wrapped in an `Envelope(client_id, seq, command, now_ms)`: the client's
session makes a retried write take effect once (client id 0: no session), and
`now_ms` is the leader's clock, the only clock the state machine ever sees. Lease
expiry is decided by the leader, which proposes `ExpireLeases` periodically; every
replica then deletes the same keys at the same log index. A new leader first renews
every lease to its full time to live (as etcd does on promotion): while there was no
leader, clients could not send keepalives, and their leases must not expire for that.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncGenerator
from typing import Any

from accord.errors import AccordError
from accord.kv import (
    Command,
    Envelope,
    ExpireLeases,
    ExpireSessions,
    KVStateMachine,
    LeaseGrant,
    LeaseKeepAlive,
    WatchHub,
    encode_command,
)
from accord.kv.errors import KVError, LeaseNotFound
from accord.kv.results import ErrorResult, GetResult, RangeResult
from accord.kv.types import Event
from accord.kv.validate import check_command
from accord.node.runtime import Node
from accord.observability.tracing import Tracing

HOUSEKEEPING_INTERVAL_S = 0.5
SESSION_IDLE_MS = 10 * 60 * 1000
"""A client session unused this long is forgotten (clients stop retrying far sooner)."""


def now_ms() -> int:
    return int(time.time() * 1000)


class KVService:
    def __init__(
        self,
        node: Node,
        machine: KVStateMachine,
        *,
        tracing: Tracing | None = None,
        unsafe_local_reads: bool = False,
    ) -> None:
        self.node = node
        # DELIBERATE BUG when True (config `debug_unsafe_local_reads`): linearizable
        # reads skip ReadIndex, so a deposed or partitioned leader serves stale data.
        self.unsafe_local_reads = unsafe_local_reads
        self.machine = machine
        self.tracing = tracing
        self.watches = WatchHub(machine)
        self._watch_signals: dict[int, asyncio.Event] = {}
        self._housekeeping: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        self._housekeeping = asyncio.create_task(self._housekeep(), name="accord-housekeeping")

    async def stop(self) -> None:
        """Stop housekeeping and end every watch stream (so the HTTP server can close
        its connections at once)."""
        self._closing = True
        for signal in self._watch_signals.values():
            signal.set()
        if self._housekeeping is not None:
            self._housekeeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._housekeeping

    # --- writes -----------------------------------------------------------------------
    async def execute(
        self, command: Command, client_id: int = 0, seq: int = 0, timeout_s: float = 5.0
    ) -> Any:
        """Propose `command` and return its result; a failing command raises its typed
        KV error (e.g. Compacted, LeaseNotFound)."""
        check_command(command, self.machine.limits)
        data = encode_command(Envelope(client_id, seq, command, now_ms()))
        if self.tracing is None:
            result = await self.node.propose(data, timeout_s)
        else:
            attributes = {"accord.command": type(command).__name__, "accord.bytes": len(data)}
            with self.tracing.span("raft.propose", attributes):
                result = await self.node.propose(data, timeout_s)
        if isinstance(result, ErrorResult):
            raise result.exception()
        return result

    @staticmethod
    def _new_lease_id() -> int:
        # Random below 2**53 (JSON parsers that read numbers as doubles keep it exact);
        # a collision, about 1 in 10**15 per pair, is refused with LeaseExists.
        return secrets.randbits(53) or 1

    async def lease_grant(self, ttl_s: int, client_id: int = 0, seq: int = 0) -> Any:
        return await self.execute(LeaseGrant(self._new_lease_id(), ttl_s * 1000), client_id, seq)

    # --- reads ----------------------------------------------------------------------------
    async def _barrier(self, linearizable: bool) -> None:
        if linearizable and not self.unsafe_local_reads:
            await self.node.read_barrier()

    async def get(self, key: bytes, revision: int = 0, linearizable: bool = True) -> GetResult:
        await self._barrier(linearizable)
        return self.machine.get(key, revision)

    async def range(
        self,
        key: bytes,
        range_end: bytes,
        *,
        revision: int = 0,
        limit: int = 0,
        count_only: bool = False,
        linearizable: bool = True,
    ) -> RangeResult:
        await self._barrier(linearizable)
        return self.machine.range(
            key, range_end, revision=revision, limit=limit, count_only=count_only
        )

    # --- watches ----------------------------------------------------------------------------
    def on_events(self, events: list[Event]) -> None:
        for watch_id in self.watches.feed(events):
            signal = self._watch_signals.get(watch_id)
            if signal is not None:
                signal.set()

    def open_watch(self, key: bytes, range_end: bytes = b"", start_revision: int = 0) -> int:
        """Register a watcher (raises Compacted, LimitExceeded, InvalidRequest now);
        then read it with `stream()`."""
        watch_id = self.watches.watch(key, range_end, start_revision)
        self._watch_signals[watch_id] = asyncio.Event()
        self._watch_signals[watch_id].set()
        return watch_id

    async def stream(self, watch_id: int) -> AsyncGenerator[list[Event], None]:
        """Every event of the watch, exactly once and in revision order, in batches;
        raises the reason if the watch is cancelled. Closing it cancels the watch."""
        signal = self._watch_signals[watch_id]
        try:
            while True:
                await signal.wait()
                signal.clear()
                if self._closing:
                    return
                update = self.watches.take(watch_id)
                if update.events:
                    yield list(update.events)
                if update.cancelled is not None:
                    raise update.cancelled
                if self.watches.pending(watch_id):
                    signal.set()
        finally:
            self.close_watch(watch_id)

    def close_watch(self, watch_id: int) -> None:
        self._watch_signals.pop(watch_id, None)
        self.watches.cancel(watch_id)

    def resync_watches(self) -> None:
        """After the state machine was restored from a snapshot."""
        self.watches.resync()
        for signal in self._watch_signals.values():
            signal.set()

    # --- the leader's housekeeping ----------------------------------------------------------
    async def _housekeep(self) -> None:
        rounds = 0
        renewed_in_term = 0
        while True:
            await asyncio.sleep(HOUSEKEEPING_INTERVAL_S)
            if not self.node.is_leader:
                continue
            rounds += 1
            term = self.node.core.term
            if renewed_in_term != term:
                if await self._renew_leases():
                    renewed_in_term = term
                continue
            with contextlib.suppress(AccordError):
                # The leader's clock decides: the state machine's only moves with commands.
                now = now_ms()
                if any(lease.deadline_ms <= now for lease in self.machine.leases()):
                    await self.execute(ExpireLeases())
                if rounds % 120 == 0 and self.machine.sessions_count:
                    await self.execute(ExpireSessions(SESSION_IDLE_MS))

    async def _renew_leases(self) -> bool:
        """Keep every lease alive once (a new leader's first duty); True when done."""
        try:
            await self.node.read_barrier()  # applied up to this term: every lease known
            leases = [lease.lease_id for lease in self.machine.leases()]
            results = await asyncio.gather(
                *(self.execute(LeaseKeepAlive(lease_id)) for lease_id in leases),
                return_exceptions=True,
            )
        except AccordError:
            return False
        # A lease revoked meanwhile is fine; anything else: try again next round.
        return all(
            not isinstance(r, BaseException) or isinstance(r, LeaseNotFound) for r in results
        )


__all__ = ["KVError", "KVService"]
