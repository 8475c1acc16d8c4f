"""Every bound of the Raft core, named with units last; the lowest layer's bounds.

A bound that is exceeded is a clear, typed error, never an unbounded wait or an
unbounded queue. `RaftConfig` takes these as defaults and may be configured lower.
The layers above derive their own bounds from these (storage's snapshot size, the
state machine's store quota and command size, the transport's frame size); this module
imports nothing. `accord.limits` is the table of every layer's bounds.
"""

from __future__ import annotations

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
"""Units of sizes (not bounds), shared by every limits module."""

# --- Raft core -------------------------------------------------------------------
RAFT_ELECTION_TICKS = 10
"""Ticks without hearing from a leader before a follower starts a (pre-)election;
the actual timeout is drawn uniformly from [ELECTION_TICKS, 2 * ELECTION_TICKS)."""
RAFT_HEARTBEAT_TICKS = 1
"""Ticks between a leader's heartbeats."""
RAFT_APPEND_ENTRIES_MAX = 256
"""Entries in one AppendEntries message."""
RAFT_APPEND_BYTES_MAX = 1 * MIB
"""Payload bytes in one AppendEntries message (at least one entry is always sent)."""
RAFT_INFLIGHT_MESSAGES_MAX = 64
"""AppendEntries messages in flight to one follower before the leader waits for acks."""
RAFT_UNCOMMITTED_ENTRIES_MAX = 50_000
"""Entries a leader accepts beyond its commit index before refusing proposals."""
RAFT_ENTRY_BYTES_MAX = 4 * MIB
"""Size of one proposed command."""
RAFT_APPLY_ENTRIES_MAX = 4096
"""Committed entries handed out in one Ready."""
RAFT_SNAPSHOT_CHUNK_BYTES = 1 * MIB
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
RAFT_MEMBERS_MAX = 10_000
"""Most node ids one membership list may name, in a peer message or on disk (a sanity
bound for the decoders; a cluster has a handful of members)."""
RAFT_SNAPSHOT_BYTES_MAX = 1 << 62
"""Highest snapshot offset or total size a snapshot chunk may announce (the limit on
snapshot data, `RAFT_SNAPSHOT_DATA_BYTES_MAX`, is far lower; this only keeps arithmetic
on them bounded)."""

# --- What a snapshot may hold ---------------------------------------------------------
RAFT_SNAPSHOT_DATA_BYTES_MAX = 3 * GIB
"""Largest state machine snapshot (`Snapshot.data`): what storage writes and loads and
what the state machine restores. The one bound both sides of a snapshot derive from:
storage accepts exactly this much (`storage.limits.SNAPSHOT_DATA_BYTES_MAX`), and the
key-value store's quota is chosen so that its snapshot always fits
(`kv.limits.STORE_BYTES_MAX`). Below 4 GiB, since a snapshot file's body is one record
with a 32-bit length, holding the data as one msgpack binary (32-bit length too)."""
