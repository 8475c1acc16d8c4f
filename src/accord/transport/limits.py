"""Every bound the transport enforces, in one place, named with units last.

The queue, frame, connection, timeout and backoff bounds are defaults of
`PeerTransport` arguments (the frame bytes bound also of `FrameDecoder`) and may be
configured lower; the frame bounds apply to sending and receiving alike, so every
node of a cluster must use the same ones. The handshake, cluster id, entry, context,
membership and integer bounds are part of the wire protocol and fixed. A peer that
exceeds a receive bound has broken the protocol: its connection is closed
(`ProtocolError`). A local send that exceeds a send bound is dropped and counted:
Raft retransmits what it still needs, so losing a message is always safe, while an
unbounded queue is not.
"""

from __future__ import annotations

from accord.invariant import invariant
from accord.raft import limits as _raft_limits
from accord.raft.limits import KIB, MIB

FRAME_HEADER_BYTES = 4
"""A frame is a 4-byte big-endian payload length, then the payload."""

FRAME_BYTES_MAX = 8 * MIB
"""Largest frame payload accepted (and sent). It must hold the largest Raft message
alone in a frame: an AppendEntries of `RAFT_APPEND_BYTES_MAX` that ends with one entry
of up to `RAFT_ENTRY_BYTES_MAX`, plus per-entry framing and the batch's 1-byte header.
A header announcing more closes the connection before any of the payload is
buffered."""

FRAME_MESSAGES_MAX = 1024
"""Most messages one frame carries (sent and accepted). A link packs the messages
queued for its peer, of any groups, into as few frames as this and the frame's byte
bound allow, so a heartbeat round of a thousand groups to one peer is one frame. It
bounds the `Message` objects one frame of tiny messages makes the receiver build at
once; a frame announcing more is refused from its first bytes, before any message in
it is decoded."""

HANDSHAKE_BYTES_MAX = 1 * KIB
"""Largest handshake frame. Until a connection has shaken hands it may make us buffer
no more than this."""

CLUSTER_ID_BYTES_MAX = 255
"""Longest cluster id (UTF-8 bytes)."""

MESSAGE_ENTRIES_MAX = 65_536
"""Most entries one decoded message may carry. The frame limit already bounds the
bytes; this bounds the Python objects a small frame of tiny entries could expand to."""

CONTEXT_BYTES_MAX = 64 * KIB
"""Longest `Message.context` (ReadIndex request ids, heartbeat round ids)."""

CONF_MEMBERS_MAX = _raft_limits.RAFT_MEMBERS_MAX
"""Most node ids one membership list in a snapshot chunk may name."""

# Every integer a peer sends is checked against one of these (they are Raft's own
# bounds, `accord.raft.limits`): a term, index, id or byte count beyond them is a
# `ProtocolError`, so no peer can hand the core a number it could not increment,
# persist or encode again.
TERM_MAX = _raft_limits.RAFT_TERM_MAX
"""Highest term (message, entry, snapshot chunk, log_term)."""
INDEX_MAX = _raft_limits.RAFT_INDEX_MAX
"""Highest log index (index, commit, reject_hint, entry and chunk indexes)."""
NODE_ID_MAX = _raft_limits.RAFT_NODE_ID_MAX
"""Highest node id (src, dst, members, hello ids)."""
GROUP_ID_MAX = _raft_limits.RAFT_NODE_ID_MAX
"""Highest Raft group id."""
SNAPSHOT_BYTES_MAX = _raft_limits.RAFT_SNAPSHOT_BYTES_MAX
"""Highest snapshot byte offset or total size (chunk offset, total_bytes, offset)."""

QUEUE_MESSAGES_MAX = 4096
"""Messages waiting for one peer's connection. Beyond it, new messages to that peer
are dropped and counted (etcd's rafthttp uses the same depth)."""

QUEUE_BYTES_MAX = _raft_limits.RAFT_INFLIGHT_MESSAGES_MAX * _raft_limits.RAFT_APPEND_BYTES_MAX
"""Encoded bytes waiting for one peer's connection: a full pipeline window of
`RAFT_INFLIGHT_MESSAGES_MAX` AppendEntries of `RAFT_APPEND_BYTES_MAX` each. Beyond it,
new messages to that peer are dropped and counted."""

CONNECTIONS_INBOUND_MAX = 1024
"""Inbound connections served at once; more are closed as soon as they are accepted."""

CONNECT_TIMEOUT_S = 2.0
"""Time allowed to open a TCP (and TLS) connection to a peer."""

HANDSHAKE_TIMEOUT_S = 2.0
"""Time allowed for the handshake, on either side, once the connection is open."""

RECONNECT_BACKOFF_S_MIN = 0.05
"""Ceiling of the first reconnect delay; each failure doubles the ceiling."""

RECONNECT_BACKOFF_S_MAX = 2.0
"""Highest ceiling of a reconnect delay (below a Raft election timeout's multiple, so
a restarted peer is reached again within a couple of seconds)."""

CLOSE_TIMEOUT_S = 1.0
"""Time `stop()` allows a connection to close cleanly before aborting it."""

_LARGEST_MESSAGE_BYTES = (
    _raft_limits.RAFT_APPEND_BYTES_MAX
    + _raft_limits.RAFT_ENTRY_BYTES_MAX
    + 32 * _raft_limits.RAFT_APPEND_ENTRIES_MAX
    + CONTEXT_BYTES_MAX
)
_BATCH_OF_ONE_HEADER_BYTES = 1  # the msgpack array header of a frame of one message
invariant(
    FRAME_BYTES_MAX >= _BATCH_OF_ONE_HEADER_BYTES + _LARGEST_MESSAGE_BYTES,
    "FRAME_BYTES_MAX below the largest message",
)
invariant(0 < FRAME_MESSAGES_MAX < 1 << 16, "a frame's message count must fit an array16")
invariant(QUEUE_BYTES_MAX >= FRAME_BYTES_MAX, "a peer's queue must hold the largest frame")
