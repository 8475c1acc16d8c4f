"""`Replica`: this node's side of one Raft group — its core, its state machine and the
requests waiting on it.

Theory of operation
-------------------
A replica is the `GroupHandler` the host calls for its group (see `accord.host`): it
applies committed entries to its state machine, resolving the futures of the
proposals they answer; restores received snapshots; resolves linearizable reads
once applied >= their read index; and takes its own snapshots. Everything a group
shares with the other groups of the process — the host, the storage, the disk
thread, the clock, the deadlines and the wake-up of the Ready loop — belongs to the
`accord.node.runtime.Node` that created it (`self._node`).

A proposal is answered when the entry at its index is applied: with the state
machine's result if the entry has the proposal's term, else `ProposalDropped` (a
new leader replaced it; the client retries, and the session table makes the retry
safe). A linearizable read asks the core for a read index (one heartbeat round per
Ready serves every read waiting then) and completes once applied >= that index. A
membership change that alters the voters returns once the joint configuration it
entered is left, so the next change can follow at once.

Snapshots: after `advance()`, when `snapshot_entries` entries were applied since the
last snapshot, a job takes the state as of that moment and encodes it a couple of
milliseconds at a time beside the loop (which goes on applying), then the log is
compacted up to it and the snapshot persisted on the disk thread.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from accord.errors import DeadlineExceeded, NotLeader, ProposalDropped, TooManyPendingReads
from accord.kv import SnapshotJob
from accord.node import gcpolicy
from accord.raft import (
    ConfChange,
    Entry,
    EntryType,
    RaftCore,
    ReadState,
    Ready,
    Role,
    Snapshot,
    SoftState,
)
from accord.raft.confchange import apply_conf_change

if TYPE_CHECKING:
    from accord.node.runtime import Node

log = logging.getLogger("accord.node")

SNAPSHOT_STEP_S = 0.002
"""How long a snapshot job encodes before it lets the event loop run again."""
APPEND_TIMES_MAX = 4096
"""Readies whose (last index, time) a leader remembers to tell how long ago a lagging
follower's first missing entry was appended (older gaps report this window's start)."""


class StateMachine(Protocol):
    def apply(self, index: int, data: bytes) -> tuple[Any, list[Any]]: ...

    def apply_conf_change(self, change: ConfChange) -> None: ...

    def snapshot_job(self) -> SnapshotJob: ...

    def restore(self, data: bytes) -> None: ...


class ProposalTrace(Protocol):
    """What the tracer follows of one proposal (see accord.observability.tracing)."""

    def committed(self) -> None: ...

    def applied(self) -> None: ...


@dataclass(slots=True)
class _Proposal:
    term: int
    future: asyncio.Future[Any]
    trace: ProposalTrace | None = None


class RuntimeStats:
    """Plain counters the Ready loop bumps; metrics read them at scrape time, so the
    hot path pays an integer increment and nothing else. One per node, shared by its
    replicas."""

    __slots__ = (
        "leader_changes",
        "messages_received",
        "messages_sent",
        "proposals_failed",
        "snapshots_installed",
        "snapshots_taken",
    )

    def __init__(self, message_types: int) -> None:
        self.messages_sent = [0] * message_types  # indexed by MessageType
        self.messages_received = [0] * message_types
        self.leader_changes = 0
        self.proposals_failed = 0
        self.snapshots_taken = 0
        self.snapshots_installed = 0


class Replica:
    """One Raft group on this node. Created by `Node` (its primary group, or
    `Node.create_group`), never directly."""

    def __init__(
        self,
        node: Node,
        core: RaftCore,
        state_machine: StateMachine,
        *,
        snapshot_entries: int,
        on_events: Callable[[list[Any]], None] | None = None,
        on_restore: Callable[[], None] | None = None,
        on_members_changed: Callable[[], None] | None = None,
    ) -> None:
        self._node = node
        self.core = core
        self.group = core.group
        self.state_machine = state_machine
        self.snapshot_entries = snapshot_entries
        self.on_events = on_events or (lambda events: None)
        self.on_restore = on_restore or (lambda: None)
        self.on_members_changed = on_members_changed or (lambda: None)
        self.stats = node.stats
        self._proposals: dict[int, _Proposal] = {}
        self._reads: dict[bytes, asyncio.Future[int]] = {}
        self._waiting_reads: list[tuple[int, asyncio.Future[int]]] = []
        self._read_counter = 0
        # Read contexts are unique per process: a leader's answer to a read of an
        # earlier incarnation of this node may still arrive, and must match nothing.
        self._read_nonce = os.urandom(8)
        self._last_leave_joint_index = 0
        """Index of the last "leave joint" entry applied."""
        self._leave_joint_waiters: list[tuple[int, asyncio.Future[None]]] = []
        """(index of a change that entered the joint configuration, its waiter)."""
        self.applied_index = core.log.applied
        self.trace_proposal: Callable[[int, int], ProposalTrace] | None = None
        """Set by tracing when it is on: (term, index) -> a trace of that proposal."""
        self._leader_seen = core.leader
        self.append_times: deque[tuple[int, float]] = deque(maxlen=APPEND_TIMES_MAX)
        """Leader only: (last index, monotonic time) of each Ready that appended."""
        self.snapshot_task: asyncio.Task[None] | None = None
        self._encoded_snapshot: tuple[int, bytes] | None = None
        """(index, state machine snapshot) encoded and waiting to be persisted."""

    # --- requests ------------------------------------------------------------------------
    async def propose(self, data: bytes, timeout_s: float | None = None) -> Any:
        """Replicate and apply a command; returns the state machine's result.
        Raises NotLeader, ProposalDropped or DeadlineExceeded (after `timeout_s`,
        by default the node's `request_timeout_s`)."""
        node = self._node
        timeout_s = node.request_timeout_s if timeout_s is None else timeout_s
        try:
            term, index = self.core.propose(data)
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            trace = self.trace_proposal(term, index) if self.trace_proposal else None
            self._track(index, _Proposal(term, future, trace))
            node.wake()
            return await node.wait(future, timeout_s, "the write")
        except (NotLeader, ProposalDropped, DeadlineExceeded):
            self.stats.proposals_failed += 1
            raise

    async def propose_conf_change(self, change: ConfChange, timeout_s: float | None = None) -> None:
        """Propose `change` and return once it is fully in effect: a change of the
        voters also waits for the leader's "leave joint" entry, so the next change
        may be proposed right away. Raises ConfChangeError, NotLeader,
        ProposalDropped (another change in progress) or DeadlineExceeded."""
        node = self._node
        timeout_s = node.request_timeout_s if timeout_s is None else timeout_s
        deadline = node.clock.monotonic() + timeout_s
        term, index = self.core.propose_conf_change(change)
        # Only a leader gets here, having validated the change against the
        # configuration in force, which stays so until this change commits.
        joint = apply_conf_change(self.core.conf, change).joint
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._track(index, _Proposal(term, future))
        node.wake()
        await node.wait(future, timeout_s, "the membership change")
        if joint and self._last_leave_joint_index < index:
            left: asyncio.Future[None] = loop.create_future()
            self._leave_joint_waiters.append((index, left))
            remaining = max(0.0, deadline - node.clock.monotonic())
            await node.wait(left, remaining, "leaving the joint configuration")

    def _track(self, index: int, proposal: _Proposal) -> None:
        # An older proposal at this index lost its entry (the log was cut back and we
        # lead again): its entry can never be applied now.
        replaced = self._proposals.get(index)
        if replaced is not None and not replaced.future.done():
            replaced.future.set_exception(ProposalDropped("a new leader replaced the entry"))
        self._proposals[index] = proposal

    async def read_barrier(self, timeout_s: float | None = None) -> int:
        """Wait until local state reflects every write committed before this call
        (ReadIndex); returns the read index. Raises TooManyPendingReads at once when
        the node's `pending_reads_max` barriers already wait in this group, else
        NotLeader or DeadlineExceeded (after `timeout_s`, by default the node's
        `request_timeout_s`)."""
        node = self._node
        if len(self._reads) >= node.pending_reads_max:
            raise TooManyPendingReads(len(self._reads) + 1, node.pending_reads_max)
        timeout_s = node.request_timeout_s if timeout_s is None else timeout_s
        self._read_counter += 1
        context = self._read_nonce + self._read_counter.to_bytes(8, "big")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._reads[context] = future
        self.core.read_index(context)
        node.wake()
        try:
            index: int = await node.wait(future, timeout_s, "the linearizable read")
            return index
        finally:
            self._reads.pop(context, None)

    async def transfer_leadership(self, target: int) -> None:
        self.core.transfer_leadership(target)
        self._node.wake()

    # --- the host's handler: this node's side of the group's Readies -------------------
    def on_ready(self, ready: Ready) -> None:
        if ready.soft_state is not None:
            self._on_soft_state(ready.soft_state)
        if ready.entries and self.core.role == Role.LEADER:
            self.append_times.append((ready.entries[-1].index, self._node.clock.monotonic()))

    def restore(self, snapshot: Snapshot) -> None:
        self.state_machine.restore(snapshot.data)
        self.applied_index = snapshot.index
        self.stats.snapshots_installed += 1
        log.info(
            "installed a snapshot from the leader at index %d",
            snapshot.index,
            extra={"event": "snapshot_installed", "index": snapshot.index, "group": self.group},
        )
        self._fail_up_to(snapshot.index)
        self.on_restore()
        self.on_members_changed()
        gcpolicy.checkpoint()

    def apply(self, entries: Sequence[Entry]) -> None:
        events: list[Any] = []
        for entry in entries:
            result: Any = None
            proposal = self._proposals.pop(entry.index, None)
            trace = proposal.trace if proposal is not None else None
            if trace is not None:
                trace.committed()
            if entry.type == EntryType.NORMAL and entry.data:
                result, entry_events = self.state_machine.apply(entry.index, entry.data)
                events.extend(entry_events)
            elif entry.type == EntryType.CONF_CHANGE:
                self._apply_conf_change(entry)
            self.applied_index = entry.index
            if trace is not None:
                trace.applied()
            if proposal is not None and not proposal.future.done():
                if proposal.term == entry.term:
                    proposal.future.set_result(result)
                else:
                    proposal.future.set_exception(
                        ProposalDropped("a new leader replaced the entry; retry")
                    )
        if events:
            self.on_events(events)

    def _apply_conf_change(self, entry: Entry) -> None:
        change = ConfChange.decode(entry.data)
        self.state_machine.apply_conf_change(change)
        if not change.changes:
            self._left_joint(entry.index)
        self.on_members_changed()
        described = ", ".join(f"{op.name.lower()} {n}" for op, n in change.changes)
        log.info(
            "membership change applied at index %d: %s",
            entry.index,
            described or "leave joint configuration",
            extra={"event": "membership_changed", "index": entry.index, "group": self.group},
        )

    def _left_joint(self, index: int) -> None:
        self._last_leave_joint_index = index
        waiting = []
        for entered, future in self._leave_joint_waiters:
            if future.done():
                continue
            if entered < index:
                future.set_result(None)
            else:
                waiting.append((entered, future))
        self._leave_joint_waiters = waiting

    def on_read_states(self, read_states: tuple[ReadState, ...]) -> None:
        for rs in read_states:
            future = self._reads.get(rs.context)
            if future is None or future.done():
                continue
            if rs.rejected:
                future.set_exception(NotLeader(self.core.leader))
            else:
                self._waiting_reads.append((rs.index, future))

    def on_advanced(self, ready: Ready) -> None:
        if self._waiting_reads:
            self._resolve_reads()
        if self.snapshot_entries_due():
            self._node.snapshot_due(self)

    def _resolve_reads(self) -> None:
        still_waiting = []
        for index, future in self._waiting_reads:
            if future.done():
                continue
            if index <= self.applied_index:
                future.set_result(index)
            else:
                still_waiting.append((index, future))
        self._waiting_reads = still_waiting

    def _on_soft_state(self, soft: SoftState) -> None:
        """Leadership news (rare: only Readies whose soft state changed get here)."""
        if soft.leader != self._leader_seen:
            self._leader_seen = soft.leader
            self.append_times.clear()  # indexes of another leader's term may be reused
            if soft.leader:
                self.stats.leader_changes += 1
            log.info(
                "leader is now %s",
                soft.leader or "unknown",
                extra={
                    "event": "leader_changed",
                    "leader": soft.leader,
                    "role": soft.role.name.lower(),
                    "group": self.group,
                },
            )
        if soft.role == Role.LEADER or soft.role == Role.CANDIDATE:
            log.info(
                "became %s",
                soft.role.name.lower(),
                extra={
                    "event": "role_changed",
                    "role": soft.role.name.lower(),
                    "group": self.group,
                },
            )

    # --- snapshots -------------------------------------------------------------------------
    def snapshot_entries_due(self) -> bool:
        """A snapshot is encoded meanwhile, or `snapshot_entries` entries were applied
        since the last one and none is being encoded."""
        if self._encoded_snapshot is not None:
            return True
        raft_log = self.core.log
        last = raft_log.snapshot.index if raft_log.snapshot else 0
        return self.snapshot_task is None and raft_log.applied - last >= self.snapshot_entries

    async def maybe_snapshot(self) -> None:
        """Persist a snapshot encoded meanwhile, or start encoding one when due."""
        if self._encoded_snapshot is not None:
            index, data = self._encoded_snapshot
            self._encoded_snapshot = self.snapshot_task = None
            await self._save_snapshot(index, data)
            return
        if not self.snapshot_entries_due():
            return
        # The job takes the state as of now; the Ready loop goes on applying while it
        # encodes (about 0.15 s of CPU per 100,000 keys), a couple of ms at a time.
        applied = self.core.log.applied
        job = self.state_machine.snapshot_job()
        self.snapshot_task = asyncio.create_task(
            self._encode_snapshot(applied, job), name=f"accord-snapshot-{self.group}"
        )
        self._node.watch_task(self.snapshot_task)

    async def _encode_snapshot(self, index: int, job: SnapshotJob) -> None:
        try:
            while True:
                step_ends = time.monotonic() + SNAPSHOT_STEP_S  # CPU time, not the clock's
                while time.monotonic() < step_ends:
                    next(job)
                await asyncio.sleep(0)
        except StopIteration as done:
            self._encoded_snapshot = (index, done.value)
            self._node.snapshot_due(self)
        finally:
            job.close()

    async def _save_snapshot(self, index: int, data: bytes) -> None:
        if index <= self.core.log.snapshot_index:
            return  # the leader's snapshot, installed meanwhile, is newer
        node = self._node
        await node.flush_unwritten()  # a snapshot must not overtake the log it covers
        snapshot = self.core.compact(index, data)
        await node.persist_snapshot(self.group, snapshot)
        self.stats.snapshots_taken += 1
        gcpolicy.checkpoint()
        log.info(
            "snapshot taken at index %d (%d bytes)",
            snapshot.index,
            len(snapshot.data),
            extra={"event": "snapshot_taken", "index": snapshot.index, "group": self.group},
        )

    # --- failing what waits ----------------------------------------------------------------
    def _fail_up_to(self, index: int) -> None:
        for pending in [i for i in self._proposals if i <= index]:
            proposal = self._proposals.pop(pending)
            if not proposal.future.done():
                proposal.future.set_exception(
                    DeadlineExceeded("outcome unknown: the log was replaced by a snapshot")
                )

    def fail_all(self, error: Exception) -> None:
        for proposal in self._proposals.values():
            if not proposal.future.done():
                proposal.future.set_exception(error)
        self._proposals.clear()
        waiting: list[asyncio.Future[Any]] = [*self._reads.values()]
        waiting += [future for _, future in self._leave_joint_waiters]
        for future in waiting:
            if not future.done():
                future.set_exception(error)
        self._leave_joint_waiters = []

    # --- status --------------------------------------------------------------------------------
    @property
    def is_leader(self) -> bool:
        return self.core.role == Role.LEADER

    @property
    def pending_proposals(self) -> int:
        return len(self._proposals)

    @property
    def pending_reads(self) -> int:
        return len(self._reads)

    @property
    def leader_id(self) -> int:
        return self.core.leader
