"""The Raft consensus algorithm, with no I/O: messages and ticks in, `Ready` out.

Theory of operation
-------------------
`RaftCore` is a deterministic state machine in the style of etcd's raft library. Its
driver feeds it four kinds of input:

- `tick()`: one unit of logical time (elections and heartbeats count ticks);
- `step(message)`: a message from a peer of the same group;
- `propose(data)` / `propose_conf_change(change)`: new commands (leader only);
- `read_index(context)`: a request to confirm a linearizable read.

Inputs only change memory. Whenever `has_ready()` is true the driver takes a `Ready`
(see its docstring for the handling order: send, persist, send-after-persist, apply)
and then calls `advance(ready)`. A node's own vote and its own append acknowledgement
are messages to itself delivered by `advance()`, i.e. only once the driver has made
them durable — the rule that lets a leader send AppendEntries before its own fsync.

Randomness (election timeouts) comes from an injected `random.Random`; time is a tick
count; there are no sockets, files or clocks, so a simulator can run many cores in
one thread and replay any run from its seed.

Protocol features: PreVote and CheckQuorum; AppendEntries with batching, a bounded
pipeline per follower and fast backtracking; commit only by counting replicas of
current-term entries; batched ReadIndex (also for followers, through the leader);
snapshots sent in chunks; leadership transfer (TimeoutNow); learners; membership
changes by joint consensus, taking effect when committed.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from accord.errors import NotLeader, ProposalDropped
from accord.invariant import invariant
from accord.raft import quorum
from accord.raft.confchange import ConfChange, ConfChangeError, ConfChangeOp, apply_conf_change
from accord.raft.config import RaftConfig
from accord.raft.log import RaftLog
from accord.raft.progress import Progress, ProgressState
from accord.raft.readindex import PendingRead, ReadIndexQueue
from accord.raft.types import (
    NO_NODE,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    NodeId,
    ReadState,
    Ready,
    RecoveredState,
    Role,
    Snapshot,
    SnapshotChunk,
    SoftState,
)

TRANSFER_CONTEXT = b"transfer"
QUIESCE_CONTEXT = b"quiesce"
"""The context of the heartbeat with which an idle leader tells its group to go quiet
(never 8 bytes long: that is a ReadIndex round id)."""

# Messages that promise something durable: they leave only after the persist.
_AFTER_PERSIST = frozenset({MessageType.APPEND_RESP, MessageType.VOTE_RESP})


@dataclass(frozen=True, slots=True)
class ProgressStatus:
    match: int
    next: int
    state: ProgressState


@dataclass(frozen=True, slots=True)
class Status:
    id: NodeId
    group: int
    role: Role
    leader: NodeId
    term: int
    vote: NodeId
    commit: int
    applied: int
    first_index: int
    last_index: int
    conf: ConfState
    progress: dict[NodeId, ProgressStatus]
    transferring_to: NodeId
    quiescent: bool = False


class RaftCore:
    def __init__(
        self, config: RaftConfig, rng: random.Random, recovered: RecoveredState | None = None
    ) -> None:
        config.validate()
        recovered = recovered or RecoveredState()
        self.config = config
        self.id = config.id
        self.group = config.group
        self._rng = rng
        hard = recovered.hard_state
        self.term = hard.term
        self.vote = NO_NODE if config.debug.forget_vote_on_restart else hard.vote
        self.log = RaftLog(recovered.snapshot, recovered.entries, hard.commit)
        self.role = Role.FOLLOWER
        self.leader: NodeId = NO_NODE
        self.conf = recovered.snapshot.conf if recovered.snapshot else ConfState()
        # (index, configuration) for every change applied after the log's snapshot, so
        # a snapshot taken at any applied index records the membership in force there.
        self._conf_history: list[tuple[int, ConfState]] = []
        self._conf_index = self.log.snapshot_index
        self._prs: dict[NodeId, Progress] = {}
        self._votes: dict[NodeId, bool] = {}
        self._reads = ReadIndexQueue()
        self._reads_before_commit: list[PendingRead] = []
        self._read_states: list[ReadState] = []
        self._msgs: list[Message] = []
        self._msgs_after_persist: list[Message] = []
        self._self_msgs: list[Message] = []
        # Something for the followers since the last Ready — new entries, a window
        # freed by an acknowledgement, a new commit index — is sent when the Ready is
        # built: one AppendEntries per follower carries it all, not one per proposal
        # or per acknowledgement (the messages would leave with that Ready anyway).
        self._append_pending = False
        self._commit_news: set[NodeId] = set()
        """Followers that may not know the commit index: if the Ready sends them no
        entries, an empty AppendEntries carries it."""
        self._incoming_snapshot: tuple[int, int, bytearray] | None = None
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._randomized_election_timeout = 0
        self.quiescent = False
        """The group is quiet: this core's ticks do nothing (see `_quiesce`)."""
        self.on_input: Callable[[int], None] | None = None
        """Called with the group id on every input that may give the core work (not on
        a quiet tick), so a host of many groups asks only those for a Ready."""
        self._idle_ticks = 0
        self._transferee: NodeId = NO_NODE
        self._pending_conf_index = 0
        self._ready_outstanding = False
        self._prev_hard = HardState(self.term, self.vote, self.log.committed)
        self._prev_soft = SoftState(self.leader, self.role)
        if self._is_fresh(recovered) and config.bootstrap_voters:
            self._bootstrap(config.bootstrap_voters)
        self._apply_conf_entries_up_to(self.log.committed)
        self._reset_randomized_election_timeout()

    # ================================================================= public inputs
    def _input(self) -> None:
        if self.on_input is not None:
            self.on_input(self.group)

    def tick(self) -> None:
        if self.quiescent:
            return
        self._input()
        if self.role == Role.LEADER:
            self._tick_leader()
        else:
            self._tick_election()

    def wake(self, leader_lost: bool = False) -> None:
        """End this core's quiet (the host calls it when something outside the group
        happened). `leader_lost`: the host found the leader's node unreachable, so a
        follower also forgets that it heard from the leader recently — it campaigns
        within an election timeout, and grants votes to others who do."""
        if not self.quiescent:
            return
        self._input()
        self._unquiesce()
        if leader_lost and self.role != Role.LEADER:
            self._election_elapsed = self.config.election_ticks

    def propose(self, data: bytes) -> tuple[int, int]:
        """Append a command; returns its (term, index). The command is committed iff
        the entry applied at that index has that term."""
        self._input()
        return self._propose_entry(EntryType.NORMAL, data)

    def propose_conf_change(self, change: ConfChange) -> tuple[int, int]:
        self._input()
        if self.role == Role.LEADER and self._pending_conf_index > self.log.committed:
            raise ProposalDropped("a membership change is already in progress")
        if self.role == Role.LEADER:
            apply_conf_change(self.conf, change)  # validate now; raises ConfChangeError
        term_index = self._propose_entry(EntryType.CONF_CHANGE, change.encode())
        self._pending_conf_index = term_index[1]
        return term_index

    def read_index(self, context: bytes) -> None:
        """Ask for a linearizable read; answered by a `ReadState` in a later Ready."""
        self._input()
        self._unquiesce()
        if self.role == Role.LEADER:
            self._handle_read_request(PendingRead(context, self.id))
        elif self.leader != NO_NODE:
            self._send(MessageType.READ_INDEX, self.leader, context=context)
        else:
            self._read_states.append(ReadState(context, 0, rejected=True))

    def campaign(self) -> None:
        """Start an election now (skipping PreVote), if this node may."""
        self._input()
        self._unquiesce()
        if self._promotable() and self.role != Role.LEADER:
            self._campaign(pre_vote=False, transfer=False)

    def transfer_leadership(self, target: NodeId) -> None:
        self._input()
        if self.role != Role.LEADER:
            raise NotLeader(self.leader)
        if target == self.id:
            return
        if target not in self.conf.all_voters():
            raise ConfChangeError(f"node {target} is not a voter")
        self._unquiesce()
        self._transferee = target
        self._election_elapsed = 0  # the transfer is abandoned after an election timeout
        pr = self._prs[target]
        if pr.match == self.log.last_index():
            self._send(MessageType.TIMEOUT_NOW, target)
        else:
            self._maybe_send_append(target)

    def compact(self, index: int, data: bytes) -> Snapshot:
        """The state machine's snapshot at applied `index`; drops the log up to it
        (minus `compaction_keep_entries`). The driver persists the returned snapshot."""
        invariant(self.log.snapshot_index < index <= self.log.applied, "bad compaction index")
        term = self.log.term(index)
        invariant(term is not None, "compaction index has no term")
        snapshot = Snapshot(index, term or 0, self._conf_at(index), data)
        self.log.compact(snapshot, self.config.compaction_keep_entries)
        self._conf_history = [(i, c) for i, c in self._conf_history if i > index]
        return snapshot

    def step(self, m: Message) -> None:
        invariant(m.group == self.group, f"message for group {m.group} stepped into {self.group}")
        self._input()
        if self.quiescent and not self._keeps_quiet(m):
            self._unquiesce()
        if not self._check_term(m):
            return
        handler, roles = _HANDLERS[m.type]
        if self.role in roles:
            handler(self, m)

    # ================================================================= ready cycle
    def has_ready(self) -> bool:
        if self._ready_outstanding:
            return False
        return bool(
            self._append_pending
            or self._msgs
            or self._msgs_after_persist
            or self._self_msgs
            or self._read_states
            or self.log.pending_snapshot
            or self.log.unstable_from <= self.log.last_index()
            or self.log.committed > self.log.applied
            or self._reads.has_waiting()
            # Field by field: a host asks this of many groups; no objects built.
            or self.term != self._prev_hard.term
            or self.vote != self._prev_hard.vote
            or self.log.committed != self._prev_hard.commit
            or self.leader != self._prev_soft.leader
            or self.role != self._prev_soft.role
        )

    def ready(self) -> Ready:
        invariant(not self._ready_outstanding, "ready() called again before advance()")
        if self._append_pending:
            self._append_pending = False
            if self.role == Role.LEADER:
                self._send_pending_appends()
        if self.role == Role.LEADER and self._reads.has_waiting():
            self._start_read_round()
        hard = self._hard_state()
        soft = SoftState(self.leader, self.role)
        entries = self.log.unstable_entries()
        snapshot = self.log.pending_snapshot
        prev = self._prev_hard
        rd = Ready(
            # A new term or vote must be durable before anyone hears of it; a commit
            # index alone need not: after a crash it is learned again from the leader.
            must_sync=bool(entries)
            or snapshot is not None
            or (hard.term, hard.vote) != (prev.term, prev.vote),
            soft_state=soft if soft != self._prev_soft else None,
            hard_state=hard if hard != self._prev_hard else None,
            entries=entries,
            snapshot=snapshot,
            committed_entries=self.log.next_committed(self.config.apply_entries_max),
            messages=tuple(self._msgs),
            messages_after_persist=tuple(self._msgs_after_persist),
            read_states=tuple(self._read_states),
            self_messages=tuple(self._self_msgs),
        )
        self._prev_hard, self._prev_soft = hard, soft
        self._msgs, self._msgs_after_persist, self._self_msgs = [], [], []
        self._read_states = []
        self.log.unstable_from = self.log.last_index() + 1
        self.log.pending_snapshot = None
        if rd.committed_entries:
            self.log.applied = rd.committed_entries[-1].index
        self._ready_outstanding = True
        return rd

    def advance(self, rd: Ready) -> None:
        """The driver has persisted, sent and applied `rd`."""
        invariant(self._ready_outstanding, "advance() without ready()")
        self._ready_outstanding = False
        for m in rd.self_messages:
            self.step(m)

    def status(self) -> Status:
        progress = {
            node: ProgressStatus(pr.match, pr.next, pr.state) for node, pr in self._prs.items()
        }
        return Status(
            id=self.id,
            group=self.group,
            role=self.role,
            leader=self.leader,
            term=self.term,
            vote=self.vote,
            commit=self.log.committed,
            applied=self.log.applied,
            first_index=self.log.first_index(),
            last_index=self.log.last_index(),
            conf=self.conf,
            progress=progress,
            transferring_to=self._transferee,
            quiescent=self.quiescent,
        )

    # ================================================================= roles
    def _become_follower(self, term: int, leader: NodeId) -> None:
        was_leader = self.role == Role.LEADER
        self._reset(term)
        self.role = Role.FOLLOWER
        self.leader = leader
        if was_leader:
            self._reject_pending_reads()

    def _become_pre_candidate(self) -> None:
        # PreVote does not touch term or vote: a partitioned node that keeps failing
        # its pre-elections cannot inflate its term and disrupt the cluster on return.
        self.role = Role.PRE_CANDIDATE
        self.leader = NO_NODE
        self._votes = {}
        self._reset_randomized_election_timeout()

    def _become_candidate(self) -> None:
        self._reset(self.term + 1)
        self.role = Role.CANDIDATE
        self.vote = self.id

    def _become_leader(self) -> None:
        self._reset(self.term)
        self.role = Role.LEADER
        self.leader = self.id
        self._prs = {
            node: Progress(self.log.last_index() + 1, self.config.inflight_messages_max)
            for node in self.conf.members()
        }
        for pr in self._prs.values():
            pr.recent_active = True
        # An unknown membership change may hide in the uncommitted tail.
        self._pending_conf_index = self.log.last_index()
        # The empty entry of the new term: committing it commits every earlier entry.
        self._append(EntryType.NORMAL, b"")

    def _reset(self, term: int) -> None:
        if term != self.term:
            self.term = term
            self.vote = NO_NODE
        self.leader = NO_NODE
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        self.quiescent = False
        self._idle_ticks = 0
        self._reset_randomized_election_timeout()
        self._votes = {}
        self._transferee = NO_NODE
        self._prs = {}
        self._commit_news = set()

    def _reset_randomized_election_timeout(self) -> None:
        ticks = self.config.election_ticks
        self._randomized_election_timeout = ticks + self._rng.randrange(ticks)

    def _promotable(self) -> bool:
        return self.id in self.conf.all_voters()

    # ================================================================= ticks
    def _tick_election(self) -> None:
        self._election_elapsed += 1
        if self._promotable() and self._election_elapsed >= self._randomized_election_timeout:
            self._election_elapsed = 0
            self._campaign(pre_vote=self.config.pre_vote, transfer=False)

    def _tick_leader(self) -> None:
        if self.config.quiesce_ticks:
            self._idle_ticks = self._idle_ticks + 1 if self._idle() else 0
            if self._idle_ticks >= self.config.quiesce_ticks:
                self._quiesce()
                return
        self._heartbeat_elapsed += 1
        self._election_elapsed += 1
        if self._election_elapsed >= self.config.election_ticks:
            self._election_elapsed = 0
            if self.config.check_quorum and not self._quorum_recently_active():
                self._become_follower(self.term, NO_NODE)
                return
            self._transferee = NO_NODE  # a transfer that has not finished by now failed
        if self._heartbeat_elapsed >= self.config.heartbeat_ticks:
            self._heartbeat_elapsed = 0
            self._broadcast_heartbeat(self._reads.last_round)

    # ================================================================= quiet groups
    # An idle group costs nothing per tick: once a leader has had nothing to do for
    # `quiesce_ticks` (see `_idle`), it sends one last heartbeat, with
    # QUIESCE_CONTEXT and the commit index, and stops ticking; a follower that gets it
    # with its whole log committed stops its election timer too. Anything else
    # wakes a core: a proposal, a read, a transfer, any message but the quiet
    # heartbeat and its responses. Quiet changes no state Raft reasons about — only
    # whether ticks count — so safety is untouched; what a quiet follower no longer
    # notices by itself is a dead leader, which the host tells it (`wake`).
    def _idle(self) -> bool:
        last = self.log.last_index()
        if not (
            self._transferee == NO_NODE
            and not self.conf.joint
            and self._pending_conf_index <= self.log.committed
            and self.log.committed == last
            and self.log.applied == last
            and self._committed_in_current_term()
            and self._reads.idle()
            and not self._reads_before_commit
            and not self._append_pending
            and not self._commit_news
        ):
            return False
        members = self.conf.members()
        if set(self._prs) != members:
            return False
        return all(
            pr.match == last and pr.state == ProgressState.REPLICATE
            for node, pr in self._prs.items()
            if node != self.id
        )

    def _quiesce(self) -> None:
        for node in self._prs:
            if node != self.id:
                self._send(
                    MessageType.HEARTBEAT, node, commit=self.log.committed, context=QUIESCE_CONTEXT
                )
        self.quiescent = True
        self._idle_ticks = 0

    def _keeps_quiet(self, m: Message) -> bool:
        if m.type == MessageType.HEARTBEAT_RESP:
            return True  # the answers to the quiet heartbeat (or late ones)
        return m.type == MessageType.HEARTBEAT and m.context == QUIESCE_CONTEXT

    def _unquiesce(self) -> None:
        if not self.quiescent:
            return
        self.quiescent = False
        self._idle_ticks = 0
        self._election_elapsed = 0
        if self.role == Role.LEADER:
            # Nobody was asked to answer while quiet: count every member as heard
            # from, so CheckQuorum judges the next election timeout afresh.
            for pr in self._prs.values():
                pr.recent_active = True
            self._heartbeat_elapsed = self.config.heartbeat_ticks  # heartbeat next tick

    def _quorum_recently_active(self) -> bool:
        active = {self.id}
        for node, pr in self._prs.items():
            if pr.recent_active:
                active.add(node)
            pr.recent_active = False
        return quorum.has_quorum(self.conf, active)

    # ================================================================= elections
    def _campaign(self, pre_vote: bool, transfer: bool) -> None:
        if pre_vote:
            self._become_pre_candidate()
            vote_type, term = MessageType.PRE_VOTE, self.term + 1
        else:
            self._become_candidate()
            vote_type, term = MessageType.VOTE, self.term
        resp_type = MessageType.PRE_VOTE_RESP if pre_vote else MessageType.VOTE_RESP
        context = TRANSFER_CONTEXT if transfer else b""
        for node in sorted(self.conf.all_voters() - {self.id}):
            self._msgs.append(
                self._message(
                    vote_type,
                    node,
                    term=term,
                    index=self.log.last_index(),
                    log_term=self.log.last_term(),
                    context=context,
                )
            )
        own_vote = self._message(resp_type, self.id, term=term)
        if pre_vote or self.config.debug.ack_before_persist:
            self.step(own_vote)  # a pre-vote promises nothing, so it needs no persist
        else:
            self._self_msgs.append(own_vote)  # counts only once our vote is durable

    def _handle_vote_request(self, m: Message) -> None:
        pre = m.type == MessageType.PRE_VOTE
        can_vote = (
            self.vote == m.src
            or (self.vote == NO_NODE and self.leader == NO_NODE)
            or (pre and m.term > self.term)
        )
        resp_type = MessageType.PRE_VOTE_RESP if pre else MessageType.VOTE_RESP
        if can_vote and self.log.is_up_to_date(m.index, m.log_term):
            # A pre-vote grant answers in the candidate's future term so it counts.
            self._send(resp_type, m.src, term=m.term)
            if not pre:
                self._election_elapsed = 0
                self.vote = m.src
        else:
            self._send(resp_type, m.src, reject=True)

    def _handle_vote_response(self, m: Message) -> None:
        expected = Role.PRE_CANDIDATE if m.type == MessageType.PRE_VOTE_RESP else Role.CANDIDATE
        if self.role != expected:
            return
        if expected == Role.PRE_CANDIDATE and m.term != self.term + 1 and not m.reject:
            return
        self._votes[m.src] = not m.reject
        result = quorum.vote_result(self.conf, self._votes)
        if result == quorum.VoteResult.WON:
            if expected == Role.PRE_CANDIDATE:
                self._campaign(pre_vote=False, transfer=False)
            else:
                self._become_leader()
        elif result == quorum.VoteResult.LOST:
            self._become_follower(self.term, NO_NODE)

    def _handle_timeout_now(self, m: Message) -> None:
        if self._promotable():
            self._campaign(pre_vote=False, transfer=True)

    # ================================================================= term rules
    def _check_term(self, m: Message) -> bool:
        """Apply Raft's term rules; False when the message must be ignored."""
        if m.term > self.term:
            if m.type in (MessageType.VOTE, MessageType.PRE_VOTE):
                # A candidate outside our configuration was most likely removed and
                # never learned it (the leader no longer sends to it): without
                # PreVote or CheckQuorum nothing else stops it deposing the leader
                # again and again (Raft dissertation, 4.2.3), so the lease holds
                # against it whatever the configuration.
                guarded = self.config.check_quorum or m.src not in self.conf.all_voters()
                in_lease = (
                    guarded
                    and self.leader != NO_NODE
                    and self._election_elapsed < self.config.election_ticks
                )
                if in_lease and m.context != TRANSFER_CONTEXT:
                    # We heard from a live leader recently: a candidate is probably a
                    # node that was cut off; do not let it depose a working leader.
                    return False
            if m.type == MessageType.PRE_VOTE or (
                m.type == MessageType.PRE_VOTE_RESP and not m.reject
            ):
                return True  # pre-votes never change the term
            leader_msg = m.type in (MessageType.APPEND, MessageType.HEARTBEAT, MessageType.SNAPSHOT)
            self._become_follower(m.term, m.src if leader_msg else NO_NODE)
            return True
        if m.term < self.term:
            if m.type in (MessageType.APPEND, MessageType.HEARTBEAT):
                # A deposed leader that cannot hear the new one must learn the new term,
                # or with CheckQuorum/PreVote it could stay leader of a minority forever.
                self._send(MessageType.APPEND_RESP, m.src)
            elif m.type == MessageType.PRE_VOTE:
                self._send(MessageType.PRE_VOTE_RESP, m.src, reject=True)
            return False
        return True

    # ================================================================= proposals
    def _propose_entry(self, kind: EntryType, data: bytes) -> tuple[int, int]:
        if self.role != Role.LEADER:
            raise NotLeader(self.leader)
        self._unquiesce()
        if self._transferee != NO_NODE:
            raise ProposalDropped(f"leadership is being transferred to {self._transferee}")
        if self.id not in self.conf.all_voters():
            raise ProposalDropped("this leader was removed from the group and is handing over")
        if len(data) > self.config.entry_bytes_max:
            raise ProposalDropped(
                f"command of {len(data)} bytes exceeds entry_bytes_max="
                f"{self.config.entry_bytes_max}"
            )
        if self.log.last_index() - self.log.committed >= self.config.uncommitted_entries_max:
            raise ProposalDropped("too many uncommitted entries; the cluster is overloaded")
        index = self._append(kind, data)
        return self.term, index

    def _append(self, kind: EntryType, data: bytes) -> int:
        index = self.log.last_index() + 1
        self.log.append([Entry(self.term, index, kind, data)])
        self._self_msgs.append(self._message(MessageType.APPEND_RESP, self.id, index=index))
        if self.config.debug.ack_before_persist:
            self._deliver_self_messages_now()
        self._append_pending = True
        return index

    def _deliver_self_messages_now(self) -> None:
        pending, self._self_msgs = self._self_msgs, []
        for m in pending:
            self.step(m)

    # ================================================================= replication
    def _send_pending_appends(self) -> None:
        """Offer each follower what it has not been sent, as far as its window allows;
        one with nothing new learns a new commit index from an empty AppendEntries."""
        commit_news, self._commit_news = self._commit_news, set()
        for node in self._prs:
            if node == self.id:
                continue
            sent = False
            while self._maybe_send_append(node, send_if_empty=False):
                sent = True
            if node in commit_news and not sent:
                self._maybe_send_append(node)

    def _broadcast_heartbeat(self, read_round: int) -> None:
        context = read_round.to_bytes(8, "big") if read_round else b""
        for node, pr in self._prs.items():
            if node != self.id:
                commit = min(pr.match, self.log.committed)
                self._send(MessageType.HEARTBEAT, node, commit=commit, context=context)

    def _maybe_send_append(self, to: NodeId, send_if_empty: bool = True) -> bool:
        pr = self._prs[to]
        if pr.is_paused():
            return False
        prev_index = pr.next - 1
        prev_term = self.log.term(prev_index)
        if prev_term is None:
            return self._start_snapshot(to, pr)
        entries = self.log.slice(
            pr.next,
            self.log.last_index() + 1,
            self.config.append_entries_max,
            self.config.append_bytes_max,
        )
        if not entries and not send_if_empty:
            return False
        self._send(
            MessageType.APPEND,
            to,
            index=prev_index,
            log_term=prev_term,
            entries=entries,
            commit=self.log.committed,
        )
        pr.sent_entries(len(entries), entries[-1].index if entries else prev_index)
        return True

    def _follow(self, m: Message) -> None:
        """A message from the leader of our term: a candidate of that term lost."""
        if self.role != Role.FOLLOWER:
            self._become_follower(m.term, m.src)
        self._election_elapsed = 0
        self.leader = m.src

    def _handle_append(self, m: Message) -> None:
        self._follow(m)
        if m.index < self.log.committed:
            self._send(MessageType.APPEND_RESP, m.src, index=self.log.committed)
            return
        last_new = self.log.maybe_append(m.index, m.log_term, m.commit, m.entries)
        if last_new is not None:
            self._send(MessageType.APPEND_RESP, m.src, index=last_new)
            self._apply_conf_entries_up_to(self.log.committed)
            return
        # Tell the leader the latest index at which our log could match its own.
        hint_index = self.log.find_conflict_by_term(min(m.index, self.log.last_index()), m.log_term)
        self._send(
            MessageType.APPEND_RESP,
            m.src,
            index=m.index,
            reject=True,
            reject_hint=hint_index,
            log_term=self.log.term(hint_index) or 0,
        )

    def _handle_heartbeat(self, m: Message) -> None:
        self._follow(m)
        if self.log.commit_to(m.commit):
            self._apply_conf_entries_up_to(self.log.committed)
        if m.context == QUIESCE_CONTEXT:
            # Quiet only with nothing left to learn: the leader said it holds nothing
            # past its commit index, so a log longer than that still has to be cut.
            self.quiescent = self.log.committed == self.log.last_index()
            return  # no answer: the leader is not counting
        self._send(MessageType.HEARTBEAT_RESP, m.src, context=m.context)

    def _handle_append_response(self, m: Message) -> None:
        pr = self._prs.get(m.src)
        if pr is None:
            return
        pr.recent_active = True
        if m.reject:
            hint = m.reject_hint
            if m.log_term > 0:
                hint = self.log.find_conflict_by_term(m.reject_hint, m.log_term)
            if pr.maybe_decrease_to(m.index, hint):
                if pr.state == ProgressState.REPLICATE:
                    pr.become_probe()
                self._maybe_send_append(m.src)
            return
        was_paused = pr.is_paused()
        if not pr.maybe_update(m.index):
            return
        if pr.state == ProgressState.PROBE:
            pr.become_replicate()
        elif pr.state == ProgressState.SNAPSHOT and pr.match >= pr.snapshot_index:
            pr.become_probe()
        if self._maybe_commit():
            if self.role != Role.LEADER:
                return  # the commit removed us from the configuration
            self._commit_news.update(self._prs)
            self._append_pending = True
        elif was_paused and m.src != self.id:
            self._commit_news.add(m.src)  # it may have missed the latest commit index
        if m.src == self.id or m.src not in self._prs:
            return
        self._append_pending = True  # what the acknowledgement let through goes next Ready
        if m.src == self._transferee and pr.match == self.log.last_index():
            self._send(MessageType.TIMEOUT_NOW, m.src)
        self._maybe_step_down_after_removal()

    def _handle_heartbeat_response(self, m: Message) -> None:
        pr = self._prs.get(m.src)
        if pr is None:
            return
        pr.recent_active = True
        pr.probe_sent = False
        if pr.state == ProgressState.SNAPSHOT:
            self._send_snapshot_chunk(m.src, pr)
        elif pr.match < self.log.last_index():
            if pr.state == ProgressState.REPLICATE and pr.is_paused():
                pr.free_one_slot()
            self._maybe_send_append(m.src)
        if len(m.context) == 8:
            pr.read_round_acked = max(pr.read_round_acked, int.from_bytes(m.context, "big"))
            self._release_confirmed_reads()

    def _maybe_commit(self) -> bool:
        def acked(node: NodeId) -> int:
            pr = self._prs.get(node)
            return pr.match if pr else 0

        index = quorum.committed_index(self.conf, acked)
        if index <= self.log.committed:
            return False
        # Raft's commit rule: count replicas only for entries of the current term;
        # earlier entries commit with them (Raft paper, section 5.4.2 / Figure 8).
        if self.log.term(index) != self.term and not self.config.debug.commit_previous_term:
            return False
        self.log.commit_to(index)
        self._apply_conf_entries_up_to(index)
        if self.role != Role.LEADER:
            return True
        self._maybe_leave_joint()
        if self._reads_before_commit and self._committed_in_current_term():
            waiting, self._reads_before_commit = self._reads_before_commit, []
            for read in waiting:
                self._handle_read_request(read)
        return True

    # ================================================================= snapshots
    def _start_snapshot(self, to: NodeId, pr: Progress) -> bool:
        snapshot = self.log.snapshot
        if snapshot is None:
            return False
        pr.become_snapshot(snapshot.index)
        self._send_snapshot_chunk(to, pr)
        return True

    def _send_snapshot_chunk(self, to: NodeId, pr: Progress) -> None:
        snapshot = self.log.snapshot
        invariant(snapshot is not None, "snapshot state without a snapshot")
        if snapshot is None:
            return
        if pr.snapshot_index != snapshot.index:
            # We compacted again since the transfer started: send the newer snapshot.
            pr.snapshot_index, pr.snapshot_offset = snapshot.index, 0
        total = len(snapshot.data)
        chunk_bytes = self.config.snapshot_chunk_bytes
        offset = pr.snapshot_offset
        if offset >= total and total:
            offset = ((total - 1) // chunk_bytes) * chunk_bytes  # resend the final chunk
        chunk = SnapshotChunk(
            index=snapshot.index,
            term=snapshot.term,
            conf=snapshot.conf,
            offset=offset,
            data=snapshot.data[offset : offset + chunk_bytes],
            total_bytes=total,
        )
        self._send(MessageType.SNAPSHOT, to, chunk=chunk)

    def _handle_snapshot(self, m: Message) -> None:
        self._follow(m)
        chunk = m.chunk
        invariant(chunk is not None, "SNAPSHOT message without a chunk")
        if chunk is None:
            return
        if chunk.index <= self.log.committed:
            self._incoming_snapshot = None
            self._send(MessageType.APPEND_RESP, m.src, index=self.log.committed)
            return
        incoming = self._incoming_snapshot
        if incoming is None or incoming[0] != chunk.index or incoming[1] != chunk.term:
            incoming = (chunk.index, chunk.term, bytearray())
            self._incoming_snapshot = incoming
        buffer = incoming[2]
        if chunk.offset == len(buffer):
            buffer.extend(chunk.data)
        self._send(MessageType.SNAPSHOT_RESP, m.src, index=chunk.index, offset=len(buffer))
        if chunk.offset + len(chunk.data) == chunk.total_bytes == len(buffer):
            self._incoming_snapshot = None
            self._restore(Snapshot(chunk.index, chunk.term, chunk.conf, bytes(buffer)))
            self._send(MessageType.APPEND_RESP, m.src, index=self.log.committed)

    def _handle_snapshot_response(self, m: Message) -> None:
        pr = self._prs.get(m.src)
        if pr is None or pr.state != ProgressState.SNAPSHOT or m.index != pr.snapshot_index:
            return
        pr.recent_active = True
        if m.offset > pr.snapshot_offset or m.offset == 0:
            pr.snapshot_offset = m.offset
            snapshot = self.log.snapshot
            if snapshot is not None and m.offset < len(snapshot.data):
                self._send_snapshot_chunk(m.src, pr)

    def _restore(self, snapshot: Snapshot) -> None:
        if self.log.match_term(snapshot.index, snapshot.term):
            # Our log already holds what the snapshot covers: just commit up to it.
            self.log.commit_to(snapshot.index)
            self._apply_conf_entries_up_to(snapshot.index)
            return
        self.log.restore(snapshot)
        self.conf = snapshot.conf
        self._conf_history = []
        self._conf_index = snapshot.index

    # ================================================================= reads
    def _committed_in_current_term(self) -> bool:
        return self.log.term(self.log.committed) == self.term

    def _handle_read_request(self, read: PendingRead) -> None:
        if not self._committed_in_current_term():
            # A new leader's commit index may lag entries committed by its predecessor;
            # serve reads only once an entry of our own term has committed.
            self._reads_before_commit.append(read)
            return
        self._reads.add(read)

    def _start_read_round(self) -> None:
        round_id = self._reads.start_round(self.log.committed)
        self._broadcast_heartbeat(round_id)
        self._release_confirmed_reads()

    def _release_confirmed_reads(self) -> None:
        def acked(round_id: int) -> bool:
            members = {n for n, pr in self._prs.items() if pr.read_round_acked >= round_id}
            members.add(self.id)
            return quorum.has_quorum(self.conf, members)

        for read, index in self._reads.confirmed(acked):
            if read.requester == self.id:
                self._read_states.append(ReadState(read.context, index))
            else:
                self._send(
                    MessageType.READ_INDEX_RESP, read.requester, index=index, context=read.context
                )

    def _reject_pending_reads(self) -> None:
        for read in self._reads.drain() + self._reads_before_commit:
            if read.requester == self.id:
                self._read_states.append(ReadState(read.context, 0, rejected=True))
            else:
                self._send(
                    MessageType.READ_INDEX_RESP, read.requester, reject=True, context=read.context
                )
        self._reads_before_commit = []

    def _handle_read_index(self, m: Message) -> None:
        if self.role == Role.LEADER:
            self._handle_read_request(PendingRead(m.context, m.src))
        else:
            self._send(MessageType.READ_INDEX_RESP, m.src, reject=True, context=m.context)

    def _handle_read_index_response(self, m: Message) -> None:
        self._read_states.append(ReadState(m.context, m.index, rejected=m.reject))

    # ================================================================= membership
    def _is_fresh(self, recovered: RecoveredState) -> bool:
        return (
            recovered.snapshot is None
            and not recovered.entries
            and recovered.hard_state == HardState()
        )

    def _bootstrap(self, voters: frozenset[NodeId]) -> None:
        # Every initial member writes this same entry, so their logs agree from index 1
        # and a member added later learns the initial membership from the log.
        change = ConfChange(tuple((ConfChangeOp.ADD_VOTER, v) for v in sorted(voters)))
        self.term = 1
        self.log.append([Entry(1, 1, EntryType.CONF_CHANGE, change.encode())])
        self.log.committed = 1

    def _apply_conf_entries_up_to(self, index: int) -> None:
        """Membership changes take effect when committed, identically everywhere."""
        while self._conf_index < index:
            self._conf_index += 1
            entry = self.log.entry(self._conf_index)
            if entry.type == EntryType.CONF_CHANGE:
                self._apply_conf_change(entry)

    def _apply_conf_change(self, entry: Entry) -> None:
        try:
            self.conf = apply_conf_change(self.conf, ConfChange.decode(entry.data))
        except ConfChangeError:
            return  # invalid when it committed: every member ignores it alike
        self._conf_history.append((entry.index, self.conf))
        if self.role != Role.LEADER:
            return
        for node in self.conf.members():
            if node not in self._prs:
                pr = Progress(self.log.last_index() + 1, self.config.inflight_messages_max)
                pr.recent_active = True
                self._prs[node] = pr
        for node in list(self._prs):
            if node not in self.conf.members():
                del self._prs[node]
        self._maybe_step_down_after_removal()

    def _maybe_leave_joint(self) -> None:
        # Joint consensus is a transit state: leave it as soon as it is in force (also
        # when we were elected while in it).
        if self.conf.joint and self._pending_conf_index <= self.log.committed:
            self._pending_conf_index = self._append(EntryType.CONF_CHANGE, ConfChange().encode())

    def _removed_leader(self) -> bool:
        return self.role == Role.LEADER and self.id not in self.conf.all_voters()

    def _maybe_step_down_after_removal(self) -> None:
        """A leader the committed configuration left out leads on, taking no new
        proposals, until a voter has its whole log; then hands over to it and steps
        down. Stepping down at once could strand the group: the voters may not know
        yet that the change committed, so they still count the old configuration (in a
        joint one, a majority of the outgoing voters, this node among them), and this
        node, whose log is longer than theirs, would refuse them its vote."""
        if not self._removed_leader():
            return
        candidates = [n for n in self.conf.all_voters() if n in self._prs]
        if not candidates:
            return
        best = max(candidates, key=lambda n: (self._prs[n].match, -n))
        if self._prs[best].match == self.log.last_index():
            self._send(MessageType.TIMEOUT_NOW, best)
            self._become_follower(self.term, NO_NODE)

    def _conf_at(self, index: int) -> ConfState:
        conf = self.log.snapshot.conf if self.log.snapshot else ConfState()
        for applied_index, applied_conf in self._conf_history:
            if applied_index > index:
                break
            conf = applied_conf
        return conf

    # ================================================================= plumbing
    def _hard_state(self) -> HardState:
        return HardState(self.term, self.vote, self.log.committed)

    def _message(self, kind: MessageType, to: NodeId, **fields: object) -> Message:
        fields.setdefault("term", self.term)
        return Message(type=kind, group=self.group, src=self.id, dst=to, **fields)  # type: ignore[arg-type]

    def _send(self, kind: MessageType, to: NodeId, **fields: object) -> None:
        m = self._message(kind, to, **fields)
        if kind in _AFTER_PERSIST and not self.config.debug.ack_before_persist:
            self._msgs_after_persist.append(m)
        else:
            self._msgs.append(m)


_FOLLOWER_SIDE = frozenset({Role.FOLLOWER, Role.PRE_CANDIDATE, Role.CANDIDATE})
_LEADER = frozenset({Role.LEADER})
_ANY_ROLE = frozenset(Role)

# Which handler takes each message, and in which roles; in any other role the message
# is stale (e.g. an append response reaching a deposed leader) and is dropped.
_HANDLERS: dict[MessageType, tuple[Callable[[RaftCore, Message], None], frozenset[Role]]] = {
    MessageType.APPEND: (RaftCore._handle_append, _FOLLOWER_SIDE),
    MessageType.HEARTBEAT: (RaftCore._handle_heartbeat, _FOLLOWER_SIDE),
    MessageType.SNAPSHOT: (RaftCore._handle_snapshot, _FOLLOWER_SIDE),
    MessageType.TIMEOUT_NOW: (RaftCore._handle_timeout_now, _FOLLOWER_SIDE),
    MessageType.APPEND_RESP: (RaftCore._handle_append_response, _LEADER),
    MessageType.HEARTBEAT_RESP: (RaftCore._handle_heartbeat_response, _LEADER),
    MessageType.SNAPSHOT_RESP: (RaftCore._handle_snapshot_response, _LEADER),
    MessageType.VOTE: (RaftCore._handle_vote_request, _ANY_ROLE),
    MessageType.PRE_VOTE: (RaftCore._handle_vote_request, _ANY_ROLE),
    MessageType.VOTE_RESP: (RaftCore._handle_vote_response, _ANY_ROLE),
    MessageType.PRE_VOTE_RESP: (RaftCore._handle_vote_response, _ANY_ROLE),
    MessageType.READ_INDEX: (RaftCore._handle_read_index, _ANY_ROLE),
    MessageType.READ_INDEX_RESP: (RaftCore._handle_read_index_response, _ANY_ROLE),
}
