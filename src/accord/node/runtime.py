"""The node runtime: thin asyncio glue that drives one Raft core.

Theory of operation
-------------------
Everything that touches the core runs on the event loop thread, so the core needs no
locks. Inputs (peer messages, ticks, proposals, read requests) step the core and set
a wake-up event. One task, `_ready_loop`, takes each batch from the `accord.host.Host`
that holds the core and executes its steps in the order the host planned them (the
same plan the simulator executes; the ordering rules live only there):

- `Send`: hand messages to the transport;
- `Persist`: `storage.save(...)` — one record, one fsync — in a dedicated disk
  thread, so the loop keeps accepting proposals meanwhile; they all go into the
  *next* batch: that is the group commit (many proposals, one fsync);
- `AWAIT_DURABLE`: wait for that fsync (entries earlier Readies persisted were
  applied while it ran);
- `Apply` / `Advance`: back to the host, which calls this node's handler methods:
  restore a received snapshot, apply committed entries (resolving the futures of the
  proposals they answer), resolve reads whose index is now applied; after
  `advance()`, when enough entries were applied, a snapshot job starts: it takes the
  state as of that moment and encodes it a couple of milliseconds at a time beside
  the loop (which goes on applying), then the loop compacts the log up to it and
  persists it on the disk thread.

Time comes from an injected `Clock` (`monotonic()` and `sleep()`), so tests can run
a node on virtual time (`accord.testing.clock.VirtualClock`).

A proposal is answered when the entry at its index is applied: with the state
machine's result if the entry has the proposal's term, else `ProposalDropped` (a
new leader replaced it; the client retries, and the session table makes the retry
safe). A linearizable read asks the core for a read index (one heartbeat round per
Ready serves every read waiting then) and completes once applied >= that index.
Every wait has a deadline: the ticker fails the waits whose deadline has passed
with `DeadlineExceeded` (one heap for all of them, checked once a tick, so a request
costs no timer of its own; a deadline fires up to one tick late).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import os
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from accord.errors import DeadlineExceeded, NotLeader, ProposalDropped, TooManyPendingReads
from accord.host import AWAIT_DURABLE, Batch, GroupWrite, Host, Persist, Send
from accord.kv import SnapshotJob
from accord.node import gcpolicy
from accord.node.limits import PENDING_READS_MAX, REQUEST_TIMEOUT_S
from accord.raft import (
    ConfChange,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    RaftConfig,
    RaftCore,
    ReadState,
    Ready,
    Role,
    Snapshot,
    SoftState,
)
from accord.raft.confchange import apply_conf_change
from accord.storage import Storage

log = logging.getLogger("accord.node")


class StateMachine(Protocol):
    def apply(self, index: int, data: bytes) -> tuple[Any, list[Any]]: ...

    def apply_conf_change(self, change: ConfChange) -> None: ...

    def snapshot_job(self) -> SnapshotJob: ...

    def restore(self, data: bytes) -> None: ...


class Transport(Protocol):
    async def start(self) -> None: ...

    def send(self, message: Message) -> object: ...

    async def stop(self) -> None: ...


class Clock(Protocol):
    """Where a node's time comes from: the real monotonic clock, or a test's virtual one."""

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class RealClock:
    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class ProposalTrace(Protocol):
    """What the tracer follows of one proposal (see accord.observability.tracing)."""

    def committed(self) -> None: ...

    def applied(self) -> None: ...


SNAPSHOT_STEP_S = 0.002
"""How long a snapshot job encodes before it lets the event loop run again."""
APPEND_TIMES_MAX = 4096
"""Readies whose (last index, time) a leader remembers to tell how long ago a lagging
follower's first missing entry was appended (older gaps report this window's start)."""


@dataclass(slots=True)
class _Proposal:
    term: int
    future: asyncio.Future[Any]
    trace: ProposalTrace | None = None


class RuntimeStats:
    """Plain counters the Ready loop bumps; metrics read them at scrape time, so the
    hot path pays an integer increment and nothing else."""

    __slots__ = (
        "leader_changes",
        "messages_received",
        "messages_sent",
        "proposals_failed",
        "snapshots_installed",
        "snapshots_taken",
    )

    def __init__(self) -> None:
        size = max(MessageType) + 1
        self.messages_sent = [0] * size  # indexed by MessageType
        self.messages_received = [0] * size
        self.leader_changes = 0
        self.proposals_failed = 0
        self.snapshots_taken = 0
        self.snapshots_installed = 0


class Node:
    def __init__(
        self,
        raft_config: RaftConfig,
        storage: Storage,
        transport_factory: Callable[[Callable[[Message], None]], Transport],
        state_machine: StateMachine,
        *,
        tick_ms: int,
        snapshot_entries: int,
        on_events: Callable[[list[Any]], None] | None = None,
        on_restore: Callable[[], None] | None = None,
        on_members_changed: Callable[[], None] | None = None,
        rng: random.Random | None = None,
        write_behind_s: float = 0.0,
        clock: Clock | None = None,
        send_before_persist: bool = False,
        disk_delay_s: float = 0.0,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
        pending_reads_max: int = PENDING_READS_MAX,
    ) -> None:
        self.clock: Clock = clock or RealClock()
        self.storage = storage
        # Fault injection (config `debug_slow_disk_ms`): each synced write waits a random
        # 0..2x `disk_delay_s` first, as on a slow, uneven disk.
        self.disk_delay_s = disk_delay_s
        self.request_timeout_s = request_timeout_s
        """The deadline of a proposal, membership change or read barrier naming none."""
        self.pending_reads_max = pending_reads_max
        """Read barriers that may wait at once; one more raises TooManyPendingReads."""
        # DELIBERATE BUG when > 0 (config `debug_ack_before_fsync`, together with the
        # core's `ack_before_persist`): a Ready's persistent part is queued and written
        # only every `write_behind_s`, so what was acknowledged may exist in memory only.
        self.write_behind_s = write_behind_s
        self._unwritten: list[tuple[HardState | None, tuple[Entry, ...], Snapshot | None]] = []
        self._flush_lock = asyncio.Lock()  # two flushes must not interleave their writes
        self.state_machine = state_machine
        self.tick_ms = tick_ms
        self.snapshot_entries = snapshot_entries
        self.on_events = on_events or (lambda events: None)
        self.on_restore = on_restore or (lambda: None)
        self.on_members_changed = on_members_changed or (lambda: None)
        recovered = storage.load()
        for note in recovered.notes:
            log.warning("storage: %s", note)
        if recovered.snapshot is not None:
            state_machine.restore(recovered.snapshot.data)
        self.core = RaftCore(raft_config, rng or random.Random(), recovered)
        self.host = Host(send_before_persist=send_before_persist)
        self.host.add_group(self.core, self)
        self.transport = transport_factory(self._on_message)
        self._disk = ThreadPoolExecutor(max_workers=1, thread_name_prefix="accord-disk")
        self._wake = asyncio.Event()
        self._proposals: dict[int, _Proposal] = {}
        self._reads: dict[bytes, asyncio.Future[int]] = {}
        self._waiting_reads: list[tuple[int, asyncio.Future[int]]] = []
        self._last_leave_joint_index = 0
        """Index of the last "leave joint" entry applied."""
        self._leave_joint_waiters: list[tuple[int, asyncio.Future[None]]] = []
        """(index of a change that entered the joint configuration, its waiter)."""
        self._read_counter = 0
        self._deadlines: list[tuple[float, int, asyncio.Future[Any], str, float]] = []
        """Heap of (deadline, tie-breaker, future, what it waits for, timeout)."""
        self._deadline_counter = 0
        # Read contexts are unique per process: a leader's answer to a read of an
        # earlier incarnation of this node may still arrive, and must match nothing.
        self._read_nonce = os.urandom(8)
        self.fatal = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopped = asyncio.Event()
        self.applied_index = self.core.log.applied
        self.started_at = self.clock.monotonic()
        self.stats = RuntimeStats()
        self.trace_proposal: Callable[[int, int], ProposalTrace] | None = None
        """Set by tracing when it is on: (term, index) -> a trace of that proposal."""
        self._leader_seen = self.core.leader
        self.append_times: deque[tuple[int, float]] = deque(maxlen=APPEND_TIMES_MAX)
        """Leader only: (last index, monotonic time) of each Ready that appended."""
        self._snapshot_task: asyncio.Task[None] | None = None
        self._encoded_snapshot: tuple[int, bytes] | None = None
        """(index, state machine snapshot) encoded and waiting to be persisted."""

    # --- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        gcpolicy.checkpoint()  # the recovered state is long-lived: out of the GC's way
        await self.transport.start()
        self._tasks = [
            asyncio.create_task(self._ready_loop(), name="accord-ready"),
            asyncio.create_task(self._ticker(), name="accord-ticker"),
        ]
        if self.write_behind_s > 0:
            self._tasks.append(asyncio.create_task(self._write_behind(), name="accord-behind"))
        for task in self._tasks:
            task.add_done_callback(self._on_task_done)
        self._wake.set()

    def _on_task_done(self, task: asyncio.Task[None]) -> None:
        """Fail-stop: if the Ready loop or the ticker dies (a disk error, a bug), the
        core is stuck mid-Ready; the node must stop rather than look healthy."""
        if task.cancelled() or task.exception() is None:
            return
        log.critical("%s failed; stopping the node", task.get_name(), exc_info=task.exception())
        self.fatal.set()

    async def stop(self, transfer_leadership: bool = True, timeout_s: float = 3.0) -> None:
        """Hand leadership to the most up-to-date follower, flush, and stop."""
        if transfer_leadership and self.core.role == Role.LEADER:
            await self._transfer_before_stop(timeout_s)
        if self._snapshot_task is not None:
            self._tasks.append(self._snapshot_task)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self._flush_unwritten()
        await self.transport.stop()
        self._disk.shutdown(wait=True)
        self.storage.close()
        self._fail_all(DeadlineExceeded("outcome unknown: the node is shutting down"))
        self._stopped.set()

    async def _transfer_before_stop(self, timeout_s: float) -> None:
        status = self.core.status()
        followers = [n for n in status.conf.all_voters() if n != self.core.id]
        if not followers:
            return
        best = max(followers, key=lambda n: (status.progress[n].match, -n))
        self.core.transfer_leadership(best)
        self._wake.set()
        deadline = self.clock.monotonic() + timeout_s
        while self.core.role == Role.LEADER and self.clock.monotonic() < deadline:
            await self.clock.sleep(self.tick_ms / 1000)

    async def _ticker(self) -> None:
        interval = self.tick_ms / 1000
        while True:
            await self.clock.sleep(interval)
            self.host.tick()
            self._wake.set()
            self._expire_deadlines(self.clock.monotonic())
            gcpolicy.maybe_checkpoint()

    def _on_message(self, message: Message) -> None:
        if self.host.step(message):
            self.stats.messages_received[message.type] += 1
            self._wake.set()

    # --- requests ------------------------------------------------------------------------
    async def propose(self, data: bytes, timeout_s: float | None = None) -> Any:
        """Replicate and apply a command; returns the state machine's result.
        Raises NotLeader, ProposalDropped or DeadlineExceeded (after `timeout_s`,
        by default `request_timeout_s`)."""
        timeout_s = self.request_timeout_s if timeout_s is None else timeout_s
        try:
            term, index = self.core.propose(data)
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            trace = self.trace_proposal(term, index) if self.trace_proposal else None
            self._track(index, _Proposal(term, future, trace))
            self._wake.set()
            return await self._wait(future, timeout_s, "the write")
        except (NotLeader, ProposalDropped, DeadlineExceeded):
            self.stats.proposals_failed += 1
            raise

    async def propose_conf_change(self, change: ConfChange, timeout_s: float | None = None) -> None:
        """Propose `change` and return once it is fully in effect: a change of the
        voters also waits for the leader's "leave joint" entry, so the next change
        may be proposed right away. Raises ConfChangeError, NotLeader,
        ProposalDropped (another change in progress) or DeadlineExceeded."""
        timeout_s = self.request_timeout_s if timeout_s is None else timeout_s
        deadline = self.clock.monotonic() + timeout_s
        term, index = self.core.propose_conf_change(change)
        # Only a leader gets here, having validated the change against the
        # configuration in force, which stays so until this change commits.
        joint = apply_conf_change(self.core.conf, change).joint
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._track(index, _Proposal(term, future))
        self._wake.set()
        await self._wait(future, timeout_s, "the membership change")
        if joint and self._last_leave_joint_index < index:
            left: asyncio.Future[None] = loop.create_future()
            self._leave_joint_waiters.append((index, left))
            remaining = max(0.0, deadline - self.clock.monotonic())
            await self._wait(left, remaining, "leaving the joint configuration")

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
        `pending_reads_max` barriers already wait, else NotLeader or DeadlineExceeded
        (after `timeout_s`, by default `request_timeout_s`)."""
        if len(self._reads) >= self.pending_reads_max:
            raise TooManyPendingReads(len(self._reads) + 1, self.pending_reads_max)
        timeout_s = self.request_timeout_s if timeout_s is None else timeout_s
        self._read_counter += 1
        context = self._read_nonce + self._read_counter.to_bytes(8, "big")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._reads[context] = future
        self.core.read_index(context)
        self._wake.set()
        try:
            index: int = await self._wait(future, timeout_s, "the linearizable read")
            return index
        finally:
            self._reads.pop(context, None)

    async def transfer_leadership(self, target: int) -> None:
        self.core.transfer_leadership(target)
        self._wake.set()

    async def _wait(self, future: asyncio.Future[Any], timeout_s: float, what: str) -> Any:
        """Await `future`, failing it with DeadlineExceeded after `timeout_s` (the
        outcome of a write is then unknown: it may still be applied)."""
        self._deadline_counter += 1
        deadline = self.clock.monotonic() + timeout_s
        entry = (deadline, self._deadline_counter, future, what, timeout_s)
        heapq.heappush(self._deadlines, entry)
        return await future

    def _expire_deadlines(self, now: float) -> None:
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            _, _, future, what, timeout_s = heapq.heappop(deadlines)
            if not future.done():
                future.set_exception(
                    DeadlineExceeded(f"{what} did not finish within {timeout_s:g}s")
                )
        # Most waits end long before their deadline: drop those, so the heap (and
        # the futures and results it holds) stays about as large as what is pending.
        if len(deadlines) > 2 * (len(self._proposals) + len(self._reads)) + 64:
            self._deadlines = [entry for entry in deadlines if not entry[2].done()]
            heapq.heapify(self._deadlines)

    # --- the ready loop --------------------------------------------------------------------
    async def _ready_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while (batch := self.host.ready()) is not None:
                await self._execute(batch)
            await self._maybe_snapshot()

    async def _execute(self, batch: Batch) -> None:
        """Run the host's steps in order: the I/O ones here, the others in the host."""
        saving: asyncio.Future[None] | None = None
        for step in batch.steps:
            if isinstance(step, Send):
                self._send(step.messages)
            elif isinstance(step, Persist):
                saving = self._persist(step)
            elif step is AWAIT_DURABLE:
                if saving is not None:
                    await saving
            else:
                self.host.run(step)

    def _persist(self, step: Persist) -> asyncio.Future[None] | None:
        """Start the step's write; a synced one runs on the disk thread (the future to
        await), a plain one (only a commit index) is written at once."""
        if self.write_behind_s > 0:
            self._unwritten.extend((w.hard_state, w.entries, w.snapshot) for w in step.writes)
            return None
        if not step.sync:
            self._save(step.writes, sync=False)
            return None
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self._disk, self._save, step.writes, True)

    def _save(self, writes: tuple[GroupWrite, ...], sync: bool) -> None:
        if sync and self.disk_delay_s > 0:
            time.sleep(random.uniform(0, 2 * self.disk_delay_s))
        for write in writes:
            self.storage.save(write.hard_state, write.entries, write.snapshot, sync=sync)

    # --- the host's handler: this node's side of its group's Readies -------------------
    def on_ready(self, ready: Ready) -> None:
        if ready.soft_state is not None:
            self._on_soft_state(ready.soft_state)
        if ready.entries and self.core.role == Role.LEADER:
            self.append_times.append((ready.entries[-1].index, self.clock.monotonic()))

    def restore(self, snapshot: Snapshot) -> None:
        self.state_machine.restore(snapshot.data)
        self.applied_index = snapshot.index
        self.stats.snapshots_installed += 1
        log.info(
            "installed a snapshot from the leader at index %d",
            snapshot.index,
            extra={"event": "snapshot_installed", "index": snapshot.index},
        )
        self._fail_up_to(snapshot.index)
        self.on_restore()
        self.on_members_changed()
        gcpolicy.checkpoint()

    def apply(self, entries: Sequence[Entry]) -> None:
        self._apply_entries(entries)

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

    def _send(self, messages: tuple[Message, ...]) -> None:
        sent = self.stats.messages_sent
        for m in messages:
            sent[m.type] += 1
            self.transport.send(m)

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
                },
            )
        if soft.role == Role.LEADER or soft.role == Role.CANDIDATE:
            log.info(
                "became %s",
                soft.role.name.lower(),
                extra={"event": "role_changed", "role": soft.role.name.lower()},
            )

    def _apply_entries(self, entries: Sequence[Entry]) -> None:
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
                    extra={"event": "membership_changed", "index": entry.index},
                )
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

    async def _write_behind(self) -> None:
        while True:
            await asyncio.sleep(self.write_behind_s)
            await self._flush_unwritten()

    async def _flush_unwritten(self) -> None:
        """Write the queued Ready parts in their order (the write-behind bug mode)."""
        loop = asyncio.get_running_loop()
        async with self._flush_lock:
            batch, self._unwritten = self._unwritten, []
            for hard_state, entries, snapshot in batch:
                await loop.run_in_executor(
                    self._disk, self.storage.save, hard_state, entries, snapshot
                )

    async def _maybe_snapshot(self) -> None:
        """Persist a snapshot encoded meanwhile, or start encoding one when
        `snapshot_entries` entries were applied since the last."""
        if self._encoded_snapshot is not None:
            index, data = self._encoded_snapshot
            self._encoded_snapshot = self._snapshot_task = None
            await self._save_snapshot(index, data)
            return
        raft_log = self.core.log
        last = raft_log.snapshot.index if raft_log.snapshot else 0
        if self._snapshot_task is not None or raft_log.applied - last < self.snapshot_entries:
            return
        # The job takes the state as of now; the Ready loop goes on applying while it
        # encodes (about 0.15 s of CPU per 100,000 keys), a couple of ms at a time.
        job = self.state_machine.snapshot_job()
        self._snapshot_task = asyncio.create_task(
            self._encode_snapshot(raft_log.applied, job), name="accord-snapshot"
        )
        self._snapshot_task.add_done_callback(self._on_task_done)

    async def _encode_snapshot(self, index: int, job: SnapshotJob) -> None:
        try:
            while True:
                step_ends = time.monotonic() + SNAPSHOT_STEP_S  # CPU time, not the clock's
                while time.monotonic() < step_ends:
                    next(job)
                await asyncio.sleep(0)
        except StopIteration as done:
            self._encoded_snapshot = (index, done.value)
            self._wake.set()
        finally:
            job.close()

    async def _save_snapshot(self, index: int, data: bytes) -> None:
        if index <= self.core.log.snapshot_index:
            return  # the leader's snapshot, installed meanwhile, is newer
        await self._flush_unwritten()  # a snapshot must not overtake the log it covers
        snapshot = self.core.compact(index, data)

        def persist() -> None:
            self.storage.save_snapshot(snapshot)
            self.storage.compact(snapshot.index)

        await asyncio.get_running_loop().run_in_executor(self._disk, persist)
        self.stats.snapshots_taken += 1
        gcpolicy.checkpoint()
        log.info(
            "snapshot taken at index %d (%d bytes)",
            snapshot.index,
            len(snapshot.data),
            extra={"event": "snapshot_taken", "index": snapshot.index},
        )

    def _fail_up_to(self, index: int) -> None:
        for pending in [i for i in self._proposals if i <= index]:
            proposal = self._proposals.pop(pending)
            if not proposal.future.done():
                proposal.future.set_exception(
                    DeadlineExceeded("outcome unknown: the log was replaced by a snapshot")
                )

    def _fail_all(self, error: Exception) -> None:
        for proposal in self._proposals.values():
            if not proposal.future.done():
                proposal.future.set_exception(error)
        self._proposals.clear()
        for future in self._reads.values():
            if not future.done():
                future.set_exception(error)

    # --- status --------------------------------------------------------------------------------
    @property
    def is_leader(self) -> bool:
        return self.core.role == Role.LEADER

    @property
    def pending_proposals(self) -> int:
        return len(self._proposals)

    @property
    def leader_id(self) -> int:
        return self.core.leader
