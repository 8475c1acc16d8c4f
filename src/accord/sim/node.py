"""One simulated server process: a `Host` with one `SimReplica` per Raft group, each
a real `RaftCore` and the real `KVStateMachine`, all on one `MemoryHostStorage` (the
node's one log, so a crash tears its unsynced writes at one point across groups).

The process executes the host's batches exactly as the asyncio runtime does — the
steps come from the same `accord.host.plan` — with the fsync taking simulated time:
`AWAIT_DURABLE` schedules the rest of the batch after a random delay, during which
the process takes inputs but no new batch. A crash in between loses what was not
synced. One simulated fsync covers every group, as one WAL fsync does.

BUGGIFY: some seeds turn on rare paths only the simulator takes, each firing now and
then: applying later than the fsync returns (the rest of a batch waits a while), and
snapshots at odd moments (a snapshot job started whatever the schedule says).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from accord.errors import NotLeader, ProposalDropped
from accord.host import AWAIT_DURABLE, Batch, Host, Persist, Send
from accord.kv import (
    Command,
    Envelope,
    KVStateMachine,
    RenewAllLeases,
    SnapshotJob,
    encode_command,
)
from accord.kv.results import ErrorResult
from accord.raft import (
    ConfChange,
    ConfChangeError,
    Entry,
    EntryType,
    Message,
    RaftConfig,
    RaftCore,
    ReadState,
    Ready,
    Role,
    Snapshot,
)
from accord.sim.kvops import (
    LEASE_ROUND_TICKS,
    STALE_REQUEST,
    encode_write,
    lease_digest,
    lease_round,
    read_value,
    write_outcome,
)
from accord.sim.protocol import ClientReply, ClientRequest
from accord.storage import MemoryHostStorage

if TYPE_CHECKING:
    from accord.sim.runner import Simulation
    from accord.sim.safety import SafetyChecker


@dataclass(slots=True)
class _PendingWrite:
    term: int
    request: ClientRequest


class SimReplica:
    """One group's replica on one simulated node: the host's handler for that group,
    its disk, its state machine and its waiting client requests."""

    def __init__(self, node: SimNode, group: int, make_config: Callable[[int], RaftConfig]):
        self.node = node
        self.sim = node.sim
        self.id = node.id
        self.group = group
        self.make_config = make_config
        self.checker: SafetyChecker = node.sim.checkers[group]
        self.core: RaftCore
        self.machine = KVStateMachine()
        self._pending_writes: dict[int, _PendingWrite] = {}
        self._pending_reads: dict[bytes, ClientRequest] = {}
        self._confirmed_reads: list[tuple[int, ClientRequest]] = []
        self._read_counter = 0
        self._snapshot_job: tuple[int, SnapshotJob] | None = None
        self._applied_index = 0
        """What the state machine holds, as the runtime's `applied_index`: the core's
        `log.applied` jumps to a snapshot's index as soon as the core installs it, while
        the machine is restored only when the Ready carrying it is handled."""
        self._renewed_term = 0
        self._leader_ticks = 0

    @property
    def alive(self) -> bool:
        return self.node.alive

    @property
    def is_leader(self) -> bool:
        return self.node.alive and self.core.role == Role.LEADER

    def durable(self, index: int, term: int) -> bool:
        """Whether this group's entry (index, term) would survive a power cut now."""
        return self.node.disk.durable(self.group, index, term)

    def start(self) -> RaftCore:
        recovered = self.node.disk.load(self.group)
        self.core = RaftCore(
            self.make_config(self.group), random.Random(self.sim.rng.random()), recovered
        )
        self.machine = KVStateMachine()
        if recovered.snapshot is not None:
            self.machine.restore(recovered.snapshot.data)
        self._applied_index = self.core.log.applied
        self._renewed_term = 0
        self._snapshot_job = None
        self._pending_writes.clear()
        self._pending_reads.clear()
        self._confirmed_reads.clear()
        self.checker.on_start(self)
        return self.core

    # --- leader housekeeping -------------------------------------------------------
    def lease_housekeeping(self) -> None:
        """As the node service does: a new leader renews every lease in one command;
        then, now and then, lease grants, checkpoints and expiry."""
        if self._renewed_term != self.core.term:
            if self._propose_own(RenewAllLeases()):
                self._renewed_term = self.core.term
            return
        self._leader_ticks += 1
        # Not once healing starts: the liveness phase waits for an idle log, as clients
        # go idle then too.
        if self._leader_ticks % LEASE_ROUND_TICKS == 0 and not self.sim.healing:
            for command in lease_round(self.machine, self.sim.next_lease_id(), self.sim.now):
                self._propose_own(command)

    def _propose_own(self, command: Command) -> bool:
        data = encode_command(Envelope(0, 0, command, self.sim.now))
        try:
            self.core.propose(data)
        except (NotLeader, ProposalDropped):
            return False
        return True

    # --- requests ------------------------------------------------------------------------
    def handle_request(self, req: ClientRequest) -> None:
        if req.op == "r":
            self._read_counter += 1
            context = f"{self.id}:{self.node.incarnation}:{self._read_counter}".encode()
            self._pending_reads[context] = req
            self.core.read_index(context)
            return
        data = encode_write(
            req.session, req.write_seq, req.op, req.key, req.arg1, req.arg2, self.sim.now
        )
        try:
            term, index = self.core.propose(data)
        except NotLeader as e:
            self._reply(req, ok=False, error="not_leader", leader_hint=e.leader_hint)
            return
        except ProposalDropped:
            self._reply(req, ok=False, error="dropped")
            return
        self._pending_writes[index] = _PendingWrite(term, req)

    def propose_conf_change(self, change: ConfChange) -> bool:
        try:
            self.core.propose_conf_change(change)
        except (NotLeader, ProposalDropped, ConfChangeError):
            return False
        return True

    def transfer_leadership(self, target: int) -> None:
        try:
            self.core.transfer_leadership(target)
        except (NotLeader, ConfChangeError):
            return

    def _reply(self, req: ClientRequest, ok: bool, **fields: Any) -> None:
        reply = ClientReply(req.client, req.seq, req.attempt, ok, **fields)
        self.sim.network.send(self.id, req.client, reply)

    # --- the host's handler ----------------------------------------------------------------
    def on_ready(self, ready: Ready) -> None:
        self.checker.on_ready(self, ready)

    def restore(self, snapshot: Snapshot) -> None:
        self.machine.restore(snapshot.data)
        self._applied_index = snapshot.index
        self.checker.on_state(self, snapshot.index, lease_digest(self.machine))
        for pending_index in [i for i in self._pending_writes if i <= snapshot.index]:
            self._reply(self._pending_writes.pop(pending_index).request, ok=False, error="dropped")

    def apply(self, entries: Sequence[Entry]) -> None:
        for entry in entries:
            self._apply(entry.index, entry.term, entry.type, entry.data)

    def _apply(self, index: int, term: int, kind: EntryType, data: bytes) -> None:
        applied, result = True, None
        if kind == EntryType.NORMAL and data:
            outcome = self.machine.apply(index, data)[0]
            if isinstance(outcome, ErrorResult) and outcome.code == STALE_REQUEST:
                session, write_seq = outcome.details[:2]
                self.sim.check_abandoned(int(session), int(write_seq))
            applied, result = write_outcome(outcome)
            self.checker.on_state(self, index, lease_digest(self.machine))
        self.checker.on_apply(self, index, term, kind, data)
        self._applied_index = index
        pending = self._pending_writes.pop(index, None)
        if pending is None:
            return
        if pending.term == term and not applied:
            self._reply(pending.request, ok=False, error=result)
        elif pending.term == term:
            self._reply(pending.request, ok=True, value=result)
        else:
            self._reply(pending.request, ok=False, error="dropped")

    def on_read_states(self, read_states: tuple[ReadState, ...]) -> None:
        for rs in read_states:
            req = self._pending_reads.pop(rs.context, None)
            if req is None:
                continue
            if rs.rejected:
                self._reply(req, ok=False, error="read_rejected", leader_hint=self.core.leader)
            else:
                self._confirmed_reads.append((rs.index, req))

    def on_advanced(self, ready: Ready) -> None:
        self.checker.after_advance(self)
        if self.is_leader:
            self.sim.after_leader_ready(self.node)
            if not self.alive:
                return
        self._serve_reads()
        self._maybe_compact()

    def _serve_reads(self) -> None:
        applied = self._applied_index
        waiting = []
        for index, req in self._confirmed_reads:
            if index <= applied:
                self._reply(req, ok=True, value=read_value(self.machine, req.key))
            else:
                waiting.append((index, req))
        self._confirmed_reads = waiting

    def _maybe_compact(self) -> None:
        """As the runtime does: a snapshot job started when enough entries were
        applied runs one step (one key) per Ready while entries go on being applied,
        then the log is compacted up to where it started."""
        if self._snapshot_job is not None:
            index, job = self._snapshot_job
            try:
                next(job)
                return
            except StopIteration as done:
                self._snapshot_job = None
                data: bytes = done.value
            if index > self.core.log.snapshot_index:  # not overtaken by an installed one
                snapshot = self.core.compact(index, data)
                self.node.disk.save_snapshot(self.group, snapshot)
                self.node.disk.compact(self.group, snapshot.index)
            return
        every = self.sim.params.compact_every
        log = self.core.log
        last_snapshot = log.snapshot.index if log.snapshot else 0
        due = every and log.applied - last_snapshot >= every
        if due or (log.applied > last_snapshot and self.sim.buggify("odd_snapshot")):
            self._snapshot_job = (log.applied, self.machine.snapshot_job(keys_per_step=1))


class SimNode:
    """A simulated node process: its groups, its ticks, and the batch executor."""

    def __init__(
        self, sim: Simulation, node_id: int, make_config: Callable[[int], RaftConfig]
    ) -> None:
        self.sim = sim
        self.id = node_id
        self.alive = False
        self.incarnation = 0
        self.disk = MemoryHostStorage(range(sim.params.groups))
        self.host = Host()
        self.replicas = {
            group: SimReplica(self, group, make_config) for group in range(sim.params.groups)
        }
        self._syncing = False

    def replica(self, group: int) -> SimReplica:
        return self.replicas[group]

    # --- lifecycle -----------------------------------------------------------------
    def start(self) -> None:
        self.incarnation += 1
        self.alive = True
        self._syncing = False
        params = self.sim.params
        self.host = Host(
            node_id=self.id,
            liveness_ticks=params.election_ticks,
            send_before_persist=params.debug.send_before_persist,
        )
        for replica in self.replicas.values():
            self.host.add_group(replica.start(), replica)
        self._schedule_tick()
        self.pump()

    def crash(self) -> None:
        self.alive = False
        self.disk.crash(self.sim.rng)

    def _schedule_tick(self) -> None:
        self.sim.schedule(self.sim.tick_interval[self.id], self._on_tick, self.incarnation)

    def _on_tick(self, incarnation: int) -> None:
        if incarnation != self.incarnation or not self.alive:
            return
        self.host.tick()
        self._schedule_tick()
        for replica in self.replicas.values():
            if replica.is_leader:
                replica.lease_housekeeping()
        self.pump()

    # --- inputs ----------------------------------------------------------------------
    def receive(self, payload: Any) -> None:
        if isinstance(payload, ClientRequest):
            self.replicas[payload.group].handle_request(payload)
        else:
            self.host.step(payload)
        self.pump()

    def propose_conf_change(self, group: int, change: ConfChange) -> bool:
        proposed = self.replicas[group].propose_conf_change(change)
        self.pump()
        return proposed

    def transfer_leadership(self, group: int, target: int) -> None:
        self.replicas[group].transfer_leadership(target)
        self.pump()

    # --- the batch executor ------------------------------------------------------------
    def pump(self) -> None:
        if not self.alive or self._syncing:
            return
        tiny = self.sim.buggify("tiny_batch")
        batch = self.host.ready(groups_max=1 if tiny else None)
        if batch is not None:
            self._run(batch, 0)

    def _run(self, batch: Batch, position: int) -> None:
        """Execute `batch.steps[position:]`; an fsync (or a buggified delay before
        the applies) suspends it, to go on at `_resume`."""
        steps = batch.steps
        while position < len(steps):
            step = steps[position]
            position += 1
            if isinstance(step, Send):
                self._send(step.messages)
            elif isinstance(step, Persist):
                self.disk.write(step.writes)
            elif step is AWAIT_DURABLE:
                self._suspend(batch, position)
                return
            else:
                self.host.run(step)
                if not self.alive:
                    return  # crashed by a fault hook mid-batch
        self.pump()

    def _send(self, messages: tuple[Message, ...]) -> None:
        cut: dict[int, int] = {}
        """Peer -> how many of this send's messages to it get through (split_frames)."""
        if self.sim.buggify("split_frames"):
            for peer in {m.dst for m in messages}:
                total = sum(1 for m in messages if m.dst == peer)
                cut[peer] = self.sim.rng.randrange(total)
        sent: dict[int, int] = {}
        for m in messages:
            sent[m.dst] = sent.get(m.dst, 0) + 1
            if m.dst in cut and sent[m.dst] > cut[m.dst]:
                continue  # the connection broke: this and the rest to that peer are lost
            self.sim.network.send(self.id, m.dst, m)

    def _suspend(self, batch: Batch, position: int) -> None:
        self._syncing = True
        self.sim.schedule(
            self.sim.fsync_delay(), self._on_synced, self.incarnation, batch, position
        )

    def _on_synced(self, incarnation: int, batch: Batch, position: int) -> None:
        if incarnation != self.incarnation or not self.alive:
            return
        self.disk.sync()  # one fsync: the whole log, every group
        for group, rd in batch.readies:
            self.replicas[group].checker.on_synced(self.replicas[group], rd)
        if self.sim.buggify("late_apply"):
            delay = 1 + self.sim.rng.randrange(3 * self.sim.params.tick_base)
            self.sim.schedule(delay, self._go_on, self.incarnation, batch, position)
        else:
            self._go_on(incarnation, batch, position)

    def _go_on(self, incarnation: int, batch: Batch, position: int) -> None:
        if incarnation != self.incarnation or not self.alive:
            return
        self._syncing = False
        self._run(batch, position)

    @property
    def is_leader(self) -> bool:
        """Leads group 0 (the group the runner's node-level faults aim at first)."""
        return self.replicas[0].is_leader
