"""The key-value service of one node: KV commands through Raft, reads after ReadIndex,
watches fed from the apply stream, and the leader's housekeeping.

Writes are wrapped in an `Envelope(client_id, seq, command, now_ms)`: the client's
session makes a retried write take effect once (client id 0: no session), and
`now_ms` is the leader's clock, the only clock the state machine ever sees. The
envelope's owner is `REQUEST_OWNER`, which the security layer sets for the request
being served (the authenticated user; `""` when auth is off).

Leases (`lessor.py`): a client keepalive is answered by the leader from memory after
a read barrier, never with a Raft write of its own. Each housekeeping round the
leader proposes `ExpireLeaseIds` for the leases whose deadline passed and one
`LeaseCheckpoint` for the deadlines keepalives moved that the replicated state needs;
every replica then deletes the same keys at the same log index. A new leader first
renews every lease to its full time to live in one `RenewAllLeases` command (as etcd
does on promotion): while there was no leader, clients could not send keepalives,
and their leases must not expire for that. A lease therefore expires at most
`LEASE_EXPIRY_SLACK_MS` after its TTL ran out since the last keepalive, unless a
leader change renewed it meanwhile (then up to one more TTL).

A follower answers a lease's remaining time from the replicated deadline, which is
a lower bound of the real one (keepalives move it forward on the leader first).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncGenerator
from contextvars import ContextVar
from typing import Any, Protocol

from accord.errors import AccordError, NotLeader
from accord.kv import (
    Command,
    Envelope,
    ExpireLeaseIds,
    ExpireSessions,
    KVStateMachine,
    LeaseCheckpoint,
    LeaseGrant,
    RenewAllLeases,
    WatchHub,
)
from accord.kv.errors import KVError, LeaseNotFound
from accord.kv.limits import LEASE_IDS_PER_COMMAND_MAX
from accord.kv.results import ErrorResult, GetResult, LeaseInfo, RangeResult
from accord.kv.types import Event
from accord.kv.validate import check_command
from accord.node.lessor import Lessor
from accord.node.limits import HOUSEKEEPING_INTERVAL_S, LEASE_EXPIRY_SLACK_MS, SESSION_IDLE_MS
from accord.node.registry import KVCommand, encode
from accord.node.runtime import Node
from accord.observability.tracing import Tracing
from accord.raft import ConfChange, RaftCore

CHECKPOINT_MARGIN_MS = 2 * int(HOUSEKEEPING_INTERVAL_S * 1000) + LEASE_EXPIRY_SLACK_MS
"""A kept-alive lease's replicated deadline is written again once it is this close
(or half a TTL, if longer), so it cannot lapse between two rounds even for a short TTL."""


REQUEST_OWNER: ContextVar[str] = ContextVar("accord_request_owner", default="")
"""Who the request being served is from: set by the security layer once it knows the
user (each request runs in a task of its own, which has its own copy)."""


class RaftGroup(Protocol):
    """The group a service's commands go through: the node's primary group (`Node`)
    or one of its shard groups (`Replica`)."""

    @property
    def core(self) -> RaftCore: ...

    @property
    def is_leader(self) -> bool: ...

    @property
    def leader_id(self) -> int: ...

    async def propose(self, data: bytes, timeout_s: float | None = None) -> Any: ...

    async def read_barrier(self, timeout_s: float | None = None) -> int: ...

    async def propose_conf_change(
        self, change: ConfChange, timeout_s: float | None = None
    ) -> None: ...

    async def transfer_leadership(self, target: int) -> None: ...


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
        group: RaftGroup | None = None,
    ) -> None:
        self.node = node
        self.group: RaftGroup = group if group is not None else node
        """Where this service's commands go: the primary group unless told otherwise."""
        # DELIBERATE BUG when True (config `debug_unsafe_local_reads`): linearizable
        # reads skip ReadIndex, so a deposed or partitioned leader serves stale data.
        self.unsafe_local_reads = unsafe_local_reads
        self.machine = machine
        self.tracing = tracing
        self.watches = WatchHub(machine)
        self.lessor = Lessor()
        self._renewed_term = 0
        """The term whose `RenewAllLeases` committed: until then a lease's replicated
        deadline may have passed during the election, yet the renewal will extend it."""
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
        self, command: Command, client_id: int = 0, seq: int = 0, timeout_s: float | None = None
    ) -> Any:
        """Propose `command` and return its result; a failing command raises its typed
        KV error (e.g. Compacted, LeaseNotFound). `timeout_s` None: the node's
        `request_timeout_s`."""
        check_command(command, self.machine.limits)
        envelope = Envelope(client_id, seq, command, now_ms(), REQUEST_OWNER.get())
        data = encode(KVCommand(envelope))
        if self.tracing is None:
            result = await self.group.propose(data, timeout_s)
        else:
            attributes = {"accord.command": type(command).__name__, "accord.bytes": len(data)}
            with self.tracing.span("raft.propose", attributes):
                result = await self.group.propose(data, timeout_s)
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

    async def lease_keepalive(self, lease_id: int) -> LeaseInfo:
        """Keep the lease alive for another TTL, answered by the leader from memory (no
        Raft write); NotLeader on a follower, LeaseNotFound for a lease that is gone
        or past its deadline."""
        if not self.group.is_leader:
            raise NotLeader(self.group.leader_id)
        # Stamped before the barrier: a leader elected after the barrier confirmed
        # this one renews every lease later than `now`, so it covers this keepalive.
        now = now_ms()
        await self.group.read_barrier()  # still the leader, and every grant applied
        if not self.group.is_leader:
            raise NotLeader(self.group.leader_id)
        info = self.machine.lease_ttl(lease_id)
        # Before this term's renewal commits, a lease still in the table is alive: the
        # renewal, stamped later than `now`, gives it a full TTL.
        renewing = self._renewed_term != self.group.core.term
        if info is None or (not renewing and self.lease_deadline_ms(info) <= now):
            raise LeaseNotFound(lease_id)
        self.lessor.keepalive(lease_id, info.ttl_ms, now)
        return info

    def lease_deadline_ms(self, info: LeaseInfo) -> int:
        """The lease's deadline as this node knows it: exact on the leader, a lower
        bound on a follower (which has only the replicated one)."""
        if not self.group.is_leader:
            return info.deadline_ms
        return self.lessor.deadline_ms(info.lease_id, info.deadline_ms)

    # --- reads ----------------------------------------------------------------------------
    async def _barrier(self, linearizable: bool) -> None:
        if linearizable and not self.unsafe_local_reads:
            await self.group.read_barrier()

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
        watch_id = self.watches.watch(key, range_end, start_revision, REQUEST_OWNER.get())
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
        while True:
            await asyncio.sleep(HOUSEKEEPING_INTERVAL_S)
            if not self.group.is_leader:
                continue
            rounds += 1
            term = self.group.core.term
            if self._renewed_term != term:
                if await self._renew_leases():
                    self._renewed_term = term
                continue
            with contextlib.suppress(AccordError):
                await self._expire_and_checkpoint()
                if rounds % 120 == 0 and self.machine.sessions_count:
                    await self.execute(ExpireSessions(SESSION_IDLE_MS))

    async def _renew_leases(self) -> bool:
        """Renew every lease to its full TTL, in one command (a new leader's first
        duty); True when committed."""
        self.lessor.reset()
        try:
            await self.execute(RenewAllLeases())
        except AccordError:
            return False
        return True

    async def _expire_and_checkpoint(self) -> None:
        # The leader's clock decides: the state machine's only moves with commands.
        now = now_ms()
        machine = self.machine
        plan = self.lessor.plan(
            machine.leases_due(now), machine.lease_deadline, now, CHECKPOINT_MARGIN_MS
        )
        step = LEASE_IDS_PER_COMMAND_MAX
        for start in range(0, len(plan.checkpoints), step):
            await self.execute(LeaseCheckpoint(tuple(plan.checkpoints[start : start + step])))
        for start in range(0, len(plan.expired), step):
            await self.execute(ExpireLeaseIds(tuple(plan.expired[start : start + step])))


__all__ = ["KVError", "KVService"]
