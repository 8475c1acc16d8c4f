"""Value types shared by the Raft core, its drivers and storage.

Everything here is an immutable, slotted dataclass or an enum: the core hands these
out in a `Ready` and takes them back in `step()`. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum

NodeId = int
"""A member's id. 0 is reserved for "nobody" (no vote, no known leader)."""

NO_NODE: NodeId = 0


class EntryType(IntEnum):
    NORMAL = 0
    """Opaque application command; `data` is handed to the state machine."""
    CONF_CHANGE = 1
    """Membership change; `data` is an encoded `ConfChange` (see `accord.raft.confchange`)."""


@dataclass(frozen=True, slots=True)
class Entry:
    term: int
    index: int
    type: EntryType = EntryType.NORMAL
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class HardState:
    """What must be durable before a node answers anyone (Raft paper, Figure 2)."""

    term: int = 0
    vote: NodeId = NO_NODE
    commit: int = 0


@dataclass(frozen=True, slots=True)
class ConfState:
    """A membership configuration.

    `voters_outgoing` is non-empty only during joint consensus: then a decision needs a
    majority of `voters` *and* a majority of `voters_outgoing`.
    """

    voters: frozenset[NodeId] = frozenset()
    voters_outgoing: frozenset[NodeId] = frozenset()
    learners: frozenset[NodeId] = frozenset()

    @property
    def joint(self) -> bool:
        return bool(self.voters_outgoing)

    def all_voters(self) -> frozenset[NodeId]:
        return self.voters | self.voters_outgoing

    def members(self) -> frozenset[NodeId]:
        return self.voters | self.voters_outgoing | self.learners


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The state machine's state at `index`, plus the membership in force there."""

    index: int
    term: int
    conf: ConfState
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class SnapshotChunk:
    """One piece of an InstallSnapshot transfer (`data` is `total_bytes` long in all)."""

    index: int
    term: int
    conf: ConfState
    offset: int
    data: bytes
    total_bytes: int

    @property
    def done(self) -> bool:
        return self.offset + len(self.data) >= self.total_bytes


class MessageType(IntEnum):
    APPEND = 1
    APPEND_RESP = 2
    HEARTBEAT = 3
    HEARTBEAT_RESP = 4
    VOTE = 5
    VOTE_RESP = 6
    PRE_VOTE = 7
    PRE_VOTE_RESP = 8
    SNAPSHOT = 9
    SNAPSHOT_RESP = 10
    READ_INDEX = 11
    READ_INDEX_RESP = 12
    TIMEOUT_NOW = 13
    NODE_HEARTBEAT = 14
    """Between hosts, not groups (`group` is 0 and ignored): "this node is alive". A
    host sends it while it has quiet groups, whose own heartbeats have stopped."""


@dataclass(frozen=True, slots=True)
class Message:
    """A Raft message. Which fields matter depends on `type`:

    - APPEND: `log_term`/`index` name the entry before `entries`; `commit` is the leader's.
    - APPEND_RESP: `index` is the follower's last matching index; on `reject`,
      `reject_hint` and `log_term` point the leader at where the logs may agree.
    - HEARTBEAT / HEARTBEAT_RESP: `commit`; `context` carries a ReadIndex round id.
    - VOTE / PRE_VOTE: `index`/`log_term` describe the candidate's last entry;
      `context` is b"transfer" when leadership transfer forced the election.
    - SNAPSHOT: `chunk`; SNAPSHOT_RESP: `index` = snapshot index, `offset` = bytes held.
    - READ_INDEX / READ_INDEX_RESP: `context` identifies the read; `index` is the answer
      (`reject` when the leader could not serve it).
    """

    type: MessageType
    group: int
    src: NodeId
    dst: NodeId
    term: int
    log_term: int = 0
    index: int = 0
    entries: tuple[Entry, ...] = ()
    commit: int = 0
    reject: bool = False
    reject_hint: int = 0
    context: bytes = b""
    chunk: SnapshotChunk | None = None
    offset: int = 0


class Role(IntEnum):
    FOLLOWER = 0
    PRE_CANDIDATE = 1
    CANDIDATE = 2
    LEADER = 3


@dataclass(frozen=True, slots=True)
class SoftState:
    """Volatile facts worth reporting; not persisted."""

    leader: NodeId
    role: Role


@dataclass(frozen=True, slots=True)
class ReadState:
    """A confirmed linearizable read: serve `context` once applied >= `index`.

    `index` is 0 and `rejected` is True when the read could not be confirmed (no
    leader, leadership lost); the caller should retry or report an error.
    """

    context: bytes
    index: int
    rejected: bool = False


@dataclass(frozen=True, slots=True)
class Ready:
    """One batch of work for the driver. Handle it in exactly this order:

    1. send `messages` (they may leave before anything is persisted; e.g. a leader's
       AppendEntries, so followers write in parallel with the leader's own fsync);
    2. persist: if `snapshot` is set, install it (save it durably and replace the log
       with an empty log starting after it); then append `entries` to the log (an
       entry at an index already in the log replaces it and everything after it);
       then persist `hard_state` if set; one fsync covers all of it (none is needed
       when `must_sync` is false);
    3. send `messages_after_persist` (vote grants, append acks: they promise that
       something is durable);
    4. if `snapshot` is set, restore the state machine from it; then apply
       `committed_entries` in order and resolve `read_states` whose index is applied;
    5. call `advance(ready)`.

    One overlap is allowed: the first `durable_committed()` committed entries were
    persisted by earlier Readies, so they may be applied while step 2 is still in
    progress (before its fsync returns), which saves a committed write the wait for
    an unrelated fsync. The rest wait for step 2.
    """

    soft_state: SoftState | None = None
    hard_state: HardState | None = None
    entries: tuple[Entry, ...] = ()
    snapshot: Snapshot | None = None
    committed_entries: tuple[Entry, ...] = ()
    messages: tuple[Message, ...] = ()
    messages_after_persist: tuple[Message, ...] = ()
    read_states: tuple[ReadState, ...] = ()
    must_sync: bool = True
    """False when the only thing to persist is a new commit index: Raft can recover
    that, so the driver may write it without an fsync (`Storage.save(sync=False)`)."""
    # Messages a node sends to itself (its own vote, its own append ack); they count
    # only once durable, so `advance()` delivers them. Not for the driver.
    self_messages: tuple[Message, ...] = field(default=(), repr=False)

    def persist_needed(self) -> bool:
        return bool(self.entries) or self.hard_state is not None or self.snapshot is not None

    def durable_committed(self) -> int:
        """How many of `committed_entries` (a prefix) are already persisted: those
        below this Ready's first new entry, none if a snapshot is being installed."""
        if self.snapshot is not None:
            return 0
        if not self.entries or not self.committed_entries:
            return len(self.committed_entries)
        first_new = self.entries[0].index
        return max(0, min(len(self.committed_entries), first_new - self.committed_entries[0].index))


@dataclass(frozen=True, slots=True)
class RecoveredState:
    """What storage found at start: the state to restart a Raft core from.

    `entries` are exactly the entries after `snapshot` (or from index 1 without one),
    contiguous. `hard_state.commit` is at least the snapshot's index. `notes` describe
    repairs storage made while loading (a torn tail truncated, a corrupt snapshot
    skipped), for the runtime to log.
    """

    hard_state: HardState = field(default_factory=HardState)
    snapshot: Snapshot | None = None
    entries: Sequence[Entry] = ()
    notes: tuple[str, ...] = ()

    @property
    def first_index(self) -> int:
        """Index of the first entry after the snapshot (whether or not it exists)."""
        return (self.snapshot.index if self.snapshot is not None else 0) + 1

    @property
    def last_index(self) -> int:
        """Index of the last entry, or of the snapshot when there are no entries."""
        return self.first_index - 1 + len(self.entries)
