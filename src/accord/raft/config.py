"""Configuration of one Raft core, and the debug switches that break it on purpose."""

from __future__ import annotations

from dataclasses import dataclass, field

from accord.invariant import invariant
from accord.raft import limits
from accord.raft.types import NodeId


@dataclass(frozen=True, slots=True)
class DebugFlags:
    """Deliberate protocol bugs, used only to prove the simulator can catch them."""

    commit_previous_term: bool = False
    """Commit entries of earlier terms by counting replicas (Raft paper, Figure 8)."""
    forget_vote_on_restart: bool = False
    """Drop the persisted vote when restarting."""
    ack_before_persist: bool = False
    """Send vote grants and append acks before the state they promise is durable."""
    send_before_persist: bool = False
    """The host's executor (not the core) sends every message before the fsync; see
    `accord.host.plan`."""


@dataclass(frozen=True, slots=True)
class RaftConfig:
    id: NodeId
    group: int = 0
    bootstrap_voters: frozenset[NodeId] = frozenset()
    """The cluster's initial voters. Used only when storage is empty: every initial
    member writes the same first entry from it. Empty for a node that joins later."""
    election_ticks: int = limits.RAFT_ELECTION_TICKS
    heartbeat_ticks: int = limits.RAFT_HEARTBEAT_TICKS
    pre_vote: bool = True
    check_quorum: bool = True
    append_entries_max: int = limits.RAFT_APPEND_ENTRIES_MAX
    append_bytes_max: int = limits.RAFT_APPEND_BYTES_MAX
    inflight_messages_max: int = limits.RAFT_INFLIGHT_MESSAGES_MAX
    uncommitted_entries_max: int = limits.RAFT_UNCOMMITTED_ENTRIES_MAX
    entry_bytes_max: int = limits.RAFT_ENTRY_BYTES_MAX
    apply_entries_max: int = limits.RAFT_APPLY_ENTRIES_MAX
    snapshot_chunk_bytes: int = limits.RAFT_SNAPSHOT_CHUNK_BYTES
    quiesce_ticks: int = 0
    """Ticks a leader stays idle (everything committed, applied and acknowledged by
    every member, nothing waiting) before its group goes quiet: no heartbeats, no
    election timers, until something happens. 0: never. A quiet group relies on the
    host's per-node liveness to notice a dead leader (see `RaftCore.wake`)."""
    compaction_keep_entries: int = 0
    """Entries kept behind a local snapshot, so slightly lagging followers catch up
    from the log instead of needing the snapshot."""
    debug: DebugFlags = field(default_factory=DebugFlags)

    def validate(self) -> None:
        invariant(self.id > 0, "node id must be positive")
        invariant(self.heartbeat_ticks >= 1, "heartbeat_ticks must be >= 1")
        invariant(
            self.election_ticks > self.heartbeat_ticks, "election_ticks must exceed heartbeat"
        )
        invariant(self.append_entries_max >= 1 and self.append_bytes_max >= 1, "bad batch limits")
        invariant(self.inflight_messages_max >= 1, "inflight_messages_max must be >= 1")
        invariant(self.apply_entries_max >= 1, "apply_entries_max must be >= 1")
        invariant(self.snapshot_chunk_bytes >= 1, "snapshot_chunk_bytes must be >= 1")
        invariant(self.quiesce_ticks >= 0, "quiesce_ticks must be >= 0")
