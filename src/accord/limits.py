"""Every bound Accord enforces, in one place. Units are last in each name.

A bound that is exceeded is a clear, typed error, never an unbounded wait or an
unbounded queue. Components take these as defaults and may be configured lower.
"""

from __future__ import annotations

# --- Raft core -------------------------------------------------------------------
RAFT_ELECTION_TICKS = 10
"""Ticks without hearing from a leader before a follower starts a (pre-)election;
the actual timeout is drawn uniformly from [ELECTION_TICKS, 2 * ELECTION_TICKS)."""
RAFT_HEARTBEAT_TICKS = 1
RAFT_APPEND_ENTRIES_MAX = 256
"""Entries in one AppendEntries message."""
RAFT_APPEND_BYTES_MAX = 1 << 20
"""Payload bytes in one AppendEntries message (at least one entry is always sent)."""
RAFT_INFLIGHT_MESSAGES_MAX = 64
"""AppendEntries messages in flight to one follower before the leader waits for acks."""
RAFT_UNCOMMITTED_ENTRIES_MAX = 50_000
"""Entries a leader accepts beyond its commit index before refusing proposals."""
RAFT_ENTRY_BYTES_MAX = 4 << 20
"""Size of one proposed command."""
RAFT_APPLY_ENTRIES_MAX = 4096
"""Committed entries handed out in one Ready."""
RAFT_SNAPSHOT_CHUNK_BYTES = 1 << 20
"""Bytes of snapshot data in one InstallSnapshot message."""

# --- Raft numbers on the wire and on disk ------------------------------------------
RAFT_TERM_MAX = 1 << 62
"""Highest term a node accepts from a peer or from its own disk. Far below 2^63, so a
node at this term can still campaign (term + 1) about 2^62 more times before any
64-bit encoding overflows; a peer message with a higher term is a protocol error, and
a hard state beyond it refuses to load."""
RAFT_INDEX_MAX = 1 << 62
"""Highest log index (and commit index, reject hint) accepted, for the same reason."""
RAFT_NODE_ID_MAX = 1 << 62
"""Highest node id (and Raft group id) a peer message may name."""
RAFT_SNAPSHOT_BYTES_MAX = 1 << 62
"""Highest snapshot offset or total size a snapshot chunk may announce (the storage
limit on snapshot data is far lower; this only keeps arithmetic on them bounded)."""
