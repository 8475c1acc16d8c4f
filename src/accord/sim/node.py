"""One simulated server: a real `RaftCore`, `MemoryStorage` as its disk, the real
`KVStateMachine` and the request handling a real node runtime does.

A Ready is handled as the driving contract says, with the disk's fsync taking
simulated time: send `messages`, write, apply the committed entries that earlier
Readies persisted (as the runtime does, overlapping its fsync), (time passes) sync,
send `messages_after_persist`, apply the rest, `advance`. A crash in between loses
the write. A Ready that only moves the commit index (`must_sync` false) is written
without a sync, so a crash may lose it too, and (as in the runtime) its committed
entries are applied before its messages are sent.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from accord.errors import NotLeader, ProposalDropped
from accord.kv import (
    Command,
    Envelope,
    KVStateMachine,
    RenewAllLeases,
    SnapshotJob,
    encode_command,
)
from accord.raft import (
    ConfChange,
    ConfChangeError,
    EntryType,
    Message,
    RaftConfig,
    RaftCore,
    ReadState,
    Ready,
    Role,
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
from accord.storage import MemoryStorage

if TYPE_CHECKING:
    from accord.sim.runner import Simulation


@dataclass(slots=True)
class _PendingWrite:
    term: int
    request: ClientRequest


class SimNode:
    def __init__(self, sim: Simulation, node_id: int, make_config: Callable[[], RaftConfig]):
        self.sim = sim
        self.id = node_id
        self.make_config = make_config
        self.disk = MemoryStorage()
        self.alive = False
        self.incarnation = 0
        self.core: RaftCore
        self.machine = KVStateMachine()
        self._syncing = False
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

    # --- lifecycle -----------------------------------------------------------------
    def start(self) -> None:
        self.incarnation += 1
        self.alive = True
        recovered = self.disk.load()
        self.core = RaftCore(self.make_config(), random.Random(self.sim.rng.random()), recovered)
        self.machine = KVStateMachine()
        if recovered.snapshot is not None:
            self.machine.restore(recovered.snapshot.data)
        self._applied_index = self.core.log.applied
        self._renewed_term = 0
        self._syncing = False
        self._snapshot_job = None
        self._pending_writes.clear()
        self._pending_reads.clear()
        self._confirmed_reads.clear()
        self.sim.checker.on_start(self)
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
        self.core.tick()
        self._schedule_tick()
        if self.is_leader:
            self._lease_housekeeping()
        self.pump()

    def _lease_housekeeping(self) -> None:
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

    # --- inputs ----------------------------------------------------------------------
    def receive(self, payload: Any) -> None:
        if isinstance(payload, Message):
            self.core.step(payload)
        elif isinstance(payload, ClientRequest):
            self._handle_request(payload)
        self.pump()

    def _handle_request(self, req: ClientRequest) -> None:
        if req.op == "r":
            self._read_counter += 1
            context = f"{self.id}:{self.incarnation}:{self._read_counter}".encode()
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
        self.pump()
        return True

    def transfer_leadership(self, target: int) -> None:
        try:
            self.core.transfer_leadership(target)
        except (NotLeader, ConfChangeError):
            return
        self.pump()

    def _reply(self, req: ClientRequest, ok: bool, **fields: Any) -> None:
        reply = ClientReply(req.client, req.seq, req.attempt, ok, **fields)
        self.sim.network.send(self.id, req.client, reply)

    # --- the ready cycle ---------------------------------------------------------------
    def pump(self) -> None:
        if not self.alive or self._syncing or not self.core.has_ready():
            return
        rd = self.core.ready()
        self.sim.checker.on_ready(self, rd)
        if rd.persist_needed() and rd.must_sync:
            for m in rd.messages:
                self.sim.network.send(self.id, m.dst, m)
            self.disk.write(rd.hard_state, rd.entries, rd.snapshot)
            self._syncing = True
            early = rd.durable_committed()
            for entry in rd.committed_entries[:early]:  # while the fsync is in flight
                self._apply(entry.index, entry.term, entry.type, entry.data)
            delay = self.sim.fsync_delay()
            self.sim.schedule(delay, self._on_synced, self.incarnation, rd, early)
            return
        if rd.persist_needed():
            self.disk.write(rd.hard_state, rd.entries, rd.snapshot)  # no fsync needed
        # As the runtime does: nothing to sync, so apply first and send afterwards.
        self._finish_ready(rd, send_after_apply=rd.messages)

    def _on_synced(self, incarnation: int, rd: Ready, applied: int) -> None:
        if incarnation != self.incarnation or not self.alive:
            return
        self.disk.sync()
        self.sim.checker.on_synced(self, rd)
        self._syncing = False
        self._finish_ready(rd, applied)

    def _finish_ready(
        self, rd: Ready, applied: int = 0, send_after_apply: tuple[Message, ...] = ()
    ) -> None:
        for m in rd.messages_after_persist:
            self.sim.network.send(self.id, m.dst, m)
        if rd.snapshot is not None:
            self.machine.restore(rd.snapshot.data)
            self._applied_index = rd.snapshot.index
            self.sim.checker.on_state(self, rd.snapshot.index, lease_digest(self.machine))
            self._fail_writes_up_to(rd.snapshot.index)
        for entry in rd.committed_entries[applied:]:
            self._apply(entry.index, entry.term, entry.type, entry.data)
        for m in send_after_apply:
            self.sim.network.send(self.id, m.dst, m)
        self._collect_reads(rd.read_states)
        self.core.advance(rd)
        self.sim.checker.after_advance(self)
        if self.is_leader:
            self.sim.after_leader_ready(self)
            if not self.alive:
                return
        self._serve_reads()
        self._maybe_compact()
        self.pump()

    def _apply(self, index: int, term: int, kind: EntryType, data: bytes) -> None:
        applied, result = True, None
        if kind == EntryType.NORMAL and data:
            outcome = self.machine.apply(index, data)[0]
            applied, result = write_outcome(outcome)
            if result == STALE_REQUEST:
                session, write_seq = outcome.details[:2]
                self.sim.check_abandoned(session, write_seq)
            self.sim.checker.on_state(self, index, lease_digest(self.machine))
        self.sim.checker.on_apply(self, index, term, kind, data)
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

    def _fail_writes_up_to(self, index: int) -> None:
        for pending_index in [i for i in self._pending_writes if i <= index]:
            self._reply(self._pending_writes.pop(pending_index).request, ok=False, error="dropped")

    def _collect_reads(self, read_states: tuple[ReadState, ...]) -> None:
        for rs in read_states:
            req = self._pending_reads.pop(rs.context, None)
            if req is None:
                continue
            if rs.rejected:
                self._reply(req, ok=False, error="read_rejected", leader_hint=self.core.leader)
            else:
                self._confirmed_reads.append((rs.index, req))

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
                self.disk.save_snapshot(snapshot)
                self.disk.compact(snapshot.index)
            return
        every = self.sim.params.compact_every
        log = self.core.log
        last_snapshot = log.snapshot.index if log.snapshot else 0
        if every and log.applied - last_snapshot >= every:
            self._snapshot_job = (log.applied, self.machine.snapshot_job(keys_per_step=1))

    @property
    def is_leader(self) -> bool:
        return self.alive and self.core.role == Role.LEADER
