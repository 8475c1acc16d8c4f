"""The node runtime: thin asyncio glue that drives every Raft group of one process.

Theory of operation
-------------------
A `Node` is the process side: one `accord.host.Host` holding every group, one
`HostStorage` (one WAL for all groups), one peer transport, one disk thread, one
clock, one heap of deadlines. Each group's own side — its core, state machine and
waiting requests — is a `Replica` (`accord.node.replica`). The node starts with its
primary group (`raft_config.group`, group 0 for the KV store); `create_group` and
`destroy_group` add and remove others while it runs.

Everything that touches a core runs on the event loop thread, so the cores need no
locks. Inputs (peer messages, ticks, proposals, read requests) step a core and set
a wake-up event. One task, `_ready_loop`, takes each batch from the host — the
Readys of every group that has one — and executes its steps in the order the host
planned them (the same plan the simulator executes; the ordering rules live only
there):

- `Send`: hand messages to the transport;
- `Persist`: `storage.save(writes)` — one WAL record and one fsync for the writes of
  every group in the batch — in a dedicated disk thread, so the loop keeps accepting
  proposals meanwhile; they all go into the *next* batch: that is the group commit
  (many proposals of many groups, one fsync);
- `AWAIT_DURABLE`: wait for that fsync (entries earlier Readies persisted were
  applied while it ran);
- `Apply` / `Advance`: back to the host, which calls the group's replica.

Between batches the loop runs what must not interleave with a save: creating and
destroying groups (durably, on the disk thread) and the replicas' snapshots.

Time comes from an injected `Clock` (`monotonic()` and `sleep()`), so tests can run
a node on virtual time (`accord.testing.clock.VirtualClock`). Every wait has a
deadline: the ticker fails the waits whose deadline has passed with
`DeadlineExceeded` (one heap for all groups, checked once a tick, so a request costs
no timer of its own; a deadline fires up to one tick late).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import random
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from accord.errors import DeadlineExceeded
from accord.host import AWAIT_DURABLE, Batch, GroupWrite, Host, Persist, Send
from accord.invariant import invariant
from accord.node import gcpolicy
from accord.node.limits import PENDING_READS_MAX, REQUEST_TIMEOUT_S
from accord.node.replica import (
    ProposalTrace,
    Replica,
    RuntimeStats,
    StateMachine,
)
from accord.raft import ConfChange, Message, MessageType, RaftConfig, RaftCore, Role, Snapshot
from accord.storage import HostStorage

log = logging.getLogger("accord.node")

__all__ = ["Clock", "Node", "ProposalTrace", "RealClock", "Replica", "StateMachine", "Transport"]


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


class Node:
    def __init__(
        self,
        raft_config: RaftConfig,
        storage: HostStorage,
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
        self._rng = rng or random.Random()
        # Fault injection (config `debug_slow_disk_ms`): each synced write waits a random
        # 0..2x `disk_delay_s` first, as on a slow, uneven disk.
        self.disk_delay_s = disk_delay_s
        self.request_timeout_s = request_timeout_s
        """The deadline of a proposal, membership change or read barrier naming none."""
        self.pending_reads_max = pending_reads_max
        """Read barriers that may wait at once, per group; one more raises
        TooManyPendingReads."""
        # DELIBERATE BUG when > 0 (config `debug_ack_before_fsync`, together with the
        # core's `ack_before_persist`): a Ready's persistent part is queued and written
        # only every `write_behind_s`, so what was acknowledged may exist in memory only.
        self.write_behind_s = write_behind_s
        self._unwritten: list[GroupWrite] = []
        self._flush_lock = asyncio.Lock()  # two flushes must not interleave their writes
        self.tick_ms = tick_ms
        self.stats = RuntimeStats(max(MessageType) + 1)
        self.host = Host(
            node_id=raft_config.id,
            liveness_ticks=raft_config.election_ticks,
            send_before_persist=send_before_persist,
        )
        self.replicas: dict[int, Replica] = {}
        """Every group this node hosts, by group id."""
        self.replica = self._open_replica(
            raft_config,
            state_machine,
            snapshot_entries=snapshot_entries,
            on_events=on_events,
            on_restore=on_restore,
            on_members_changed=on_members_changed,
        )
        """The primary group (the KV store's)."""
        self.transport = transport_factory(self._on_message)
        self._disk = ThreadPoolExecutor(max_workers=1, thread_name_prefix="accord-disk")
        self._wake = asyncio.Event()
        self._between_batches: list[tuple[Callable[[], Awaitable[Any]], asyncio.Future[Any]]] = []
        """Work that must not interleave with a save (group creation and destruction),
        run by the Ready loop between batches, with the future of its result."""
        self._snapshots_due: dict[int, Replica] = {}
        self._deadlines: list[tuple[float, int, asyncio.Future[Any], str, float]] = []
        """Heap of (deadline, tie-breaker, future, what it waits for, timeout)."""
        self._deadline_counter = 0
        self._waiting = 0
        """Waits not finished yet (of every group)."""
        self.fatal = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopped = asyncio.Event()
        self.started_at = self.clock.monotonic()

    def _open_replica(
        self, raft_config: RaftConfig, state_machine: StateMachine, **options: Any
    ) -> Replica:
        """Recover (or create, empty) the group's durable state and host it."""
        group = raft_config.group
        invariant(group not in self.replicas, f"group {group} is already hosted")
        invariant(raft_config.id == self.host.node_id, "every group's node id is this node's")
        if group not in self.storage.groups():
            self.storage.create_group(group)
        recovered = self.storage.load(group)
        for note in recovered.notes:
            log.warning("storage: group %d: %s", group, note)
        if recovered.snapshot is not None:
            state_machine.restore(recovered.snapshot.data)
        core = RaftCore(raft_config, self._rng, recovered)
        replica = Replica(self, core, state_machine, **options)
        self.replicas[group] = replica
        self.host.add_group(core, replica)
        return replica

    # --- groups at run time ------------------------------------------------------------
    async def create_group(
        self,
        raft_config: RaftConfig,
        state_machine: StateMachine,
        *,
        snapshot_entries: int,
        on_events: Callable[[list[Any]], None] | None = None,
        on_restore: Callable[[], None] | None = None,
        on_members_changed: Callable[[], None] | None = None,
    ) -> Replica:
        """Host group `raft_config.group`: durably create it (or recover it, if the
        storage has it) and start it. Raises `InvariantError` if it is hosted already
        and `LimitExceeded` when the storage holds `GROUPS_MAX` groups."""

        async def create() -> Replica:
            group = raft_config.group
            invariant(group not in self.replicas, f"group {group} is already hosted")
            # The durable part on the disk thread; recovering it is in memory by then.
            if group not in self.storage.groups():
                await self._on_disk(self.storage.create_group, group)
            return self._open_replica(
                raft_config,
                state_machine,
                snapshot_entries=snapshot_entries,
                on_events=on_events,
                on_restore=on_restore,
                on_members_changed=on_members_changed,
            )

        replica: Replica = await self._run_between_batches(create)
        return replica

    async def destroy_group(self, group: int) -> None:
        """Stop hosting `group` and durably delete its state; its waiting requests
        fail with `DeadlineExceeded` (outcome unknown). The primary group stays."""
        invariant(group != self.replica.group, "the primary group cannot be destroyed")

        async def destroy() -> None:
            replica = self.replicas.pop(group, None)
            if replica is None:
                return
            self.host.remove_group(group)
            self._snapshots_due.pop(group, None)
            if replica.snapshot_task is not None:
                replica.snapshot_task.cancel()
            replica.fail_all(DeadlineExceeded("outcome unknown: the group was destroyed"))
            await self._on_disk(self.storage.destroy_group, group)

        await self._run_between_batches(destroy)

    async def _run_between_batches(self, work: Callable[[], Awaitable[Any]]) -> Any:
        if not self._tasks:  # not started (or stopped): no batch can be in flight
            return await work()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._between_batches.append((work, future))
        self._wake.set()
        return await future

    def group(self, group: int) -> Replica:
        """The replica of a hosted group; `KeyError` if this node does not host it."""
        return self.replicas[group]

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

    def watch_task(self, task: asyncio.Task[None]) -> None:
        """Stop the node if `task` fails (see `_on_task_done`)."""
        task.add_done_callback(self._on_task_done)

    def _on_task_done(self, task: asyncio.Task[None]) -> None:
        """Fail-stop: if the Ready loop or the ticker dies (a disk error, a bug), the
        cores are stuck mid-Ready; the node must stop rather than look healthy."""
        if task.cancelled() or task.exception() is None:
            return
        log.critical("%s failed; stopping the node", task.get_name(), exc_info=task.exception())
        self.fatal.set()

    async def stop(self, transfer_leadership: bool = True, timeout_s: float = 3.0) -> None:
        """Hand the leadership of every group led here to its most up-to-date
        follower, flush, and stop."""
        if transfer_leadership:
            await self._transfer_before_stop(timeout_s)
        tasks = self._tasks + [
            r.snapshot_task for r in self.replicas.values() if r.snapshot_task is not None
        ]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks = []
        await self.flush_unwritten()
        await self.transport.stop()
        self._disk.shutdown(wait=True)
        self.storage.close()
        error = DeadlineExceeded("outcome unknown: the node is shutting down")
        for replica in self.replicas.values():
            replica.fail_all(error)
        for _, future in self._between_batches:
            if not future.done():
                future.set_exception(error)
        self._between_batches = []
        self._stopped.set()

    async def _transfer_before_stop(self, timeout_s: float) -> None:
        leading = []
        for replica in self.replicas.values():
            status = replica.core.status()
            if status.role != Role.LEADER:
                continue
            followers = [n for n in status.conf.all_voters() if n != replica.core.id]
            if followers:
                best = max(followers, key=lambda n: (status.progress[n].match, -n))
                replica.core.transfer_leadership(best)
                leading.append(replica)
        if not leading:
            return
        self._wake.set()
        deadline = self.clock.monotonic() + timeout_s
        while any(r.is_leader for r in leading) and self.clock.monotonic() < deadline:
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

    # --- what replicas share -------------------------------------------------------------
    def wake(self) -> None:
        """A core has news: run the Ready loop."""
        self._wake.set()

    async def wait(self, future: asyncio.Future[Any], timeout_s: float, what: str) -> Any:
        """Await `future`, failing it with DeadlineExceeded after `timeout_s` (the
        outcome of a write is then unknown: it may still be applied)."""
        self._deadline_counter += 1
        deadline = self.clock.monotonic() + timeout_s
        entry = (deadline, self._deadline_counter, future, what, timeout_s)
        heapq.heappush(self._deadlines, entry)
        self._waiting += 1
        future.add_done_callback(self._wait_done)
        return await future

    def _wait_done(self, _: asyncio.Future[Any]) -> None:
        self._waiting -= 1

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
        if len(deadlines) > 2 * self._waiting + 64:
            self._deadlines = [entry for entry in deadlines if not entry[2].done()]
            heapq.heapify(self._deadlines)

    def snapshot_due(self, replica: Replica) -> None:
        """`replica` has a snapshot to start or to persist, between batches."""
        self._snapshots_due[replica.group] = replica
        self._wake.set()

    async def persist_snapshot(self, group: int, snapshot: Snapshot) -> None:
        def persist() -> None:
            self.storage.save_snapshot(group, snapshot)
            self.storage.compact(group, snapshot.index)

        await self._on_disk(persist)

    async def _on_disk(self, work: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._disk, work, *args)

    # --- the ready loop --------------------------------------------------------------------
    async def _ready_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while (batch := self.host.ready()) is not None:
                await self._execute(batch)
            await self._run_pending_work()

    async def _run_pending_work(self) -> None:
        while self._between_batches:
            work, future = self._between_batches.pop(0)
            try:
                result = await work()
            except Exception as error:  # the caller's to handle
                if not future.done():
                    future.set_exception(error)
            else:
                if not future.done():
                    future.set_result(result)
        while self._snapshots_due:
            _, replica = self._snapshots_due.popitem()
            if self.replicas.get(replica.group) is replica:
                await replica.maybe_snapshot()

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
        await), a plain one (only commit indexes) is written at once."""
        if self.write_behind_s > 0:
            self._unwritten.extend(step.writes)
            return None
        if not step.sync:
            self.storage.save(step.writes, sync=False)
            return None
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self._disk, self._save_synced, step.writes)

    def _save_synced(self, writes: tuple[GroupWrite, ...]) -> None:
        if self.disk_delay_s > 0:
            time.sleep(random.uniform(0, 2 * self.disk_delay_s))
        self.storage.save(writes, sync=True)

    def _send(self, messages: tuple[Message, ...]) -> None:
        sent = self.stats.messages_sent
        for m in messages:
            sent[m.type] += 1
            self.transport.send(m)

    async def _write_behind(self) -> None:
        while True:
            await asyncio.sleep(self.write_behind_s)
            await self.flush_unwritten()

    async def flush_unwritten(self) -> None:
        """Write the queued Ready parts in their order (the write-behind bug mode)."""
        async with self._flush_lock:
            batch, self._unwritten = self._unwritten, []
            for write in batch:
                await self._on_disk(self.storage.save, (write,))

    # --- the primary group, for the callers that know one group ----------------------------
    @property
    def core(self) -> RaftCore:
        return self.replica.core

    @property
    def state_machine(self) -> StateMachine:
        return self.replica.state_machine

    @property
    def applied_index(self) -> int:
        return self.replica.applied_index

    @property
    def append_times(self) -> Any:
        return self.replica.append_times

    @property
    def trace_proposal(self) -> Callable[[int, int], ProposalTrace] | None:
        return self.replica.trace_proposal

    @trace_proposal.setter
    def trace_proposal(self, trace: Callable[[int, int], ProposalTrace] | None) -> None:
        self.replica.trace_proposal = trace

    @property
    def on_members_changed(self) -> Callable[[], None]:
        return self.replica.on_members_changed

    async def propose(self, data: bytes, timeout_s: float | None = None) -> Any:
        return await self.replica.propose(data, timeout_s)

    async def propose_conf_change(self, change: ConfChange, timeout_s: float | None = None) -> None:
        await self.replica.propose_conf_change(change, timeout_s)

    async def read_barrier(self, timeout_s: float | None = None) -> int:
        return await self.replica.read_barrier(timeout_s)

    async def transfer_leadership(self, target: int) -> None:
        await self.replica.transfer_leadership(target)

    @property
    def is_leader(self) -> bool:
        return self.replica.is_leader

    @property
    def pending_proposals(self) -> int:
        return self.replica.pending_proposals

    @property
    def leader_id(self) -> int:
        return self.replica.leader_id
