"""Sans-I/O Raft: see `accord.raft.core` for the theory of operation and the driving
contract (`tick`, `step`, `propose`, `read_index`, `ready`/`advance`)."""

from accord.raft.confchange import ConfChange, ConfChangeError, ConfChangeOp
from accord.raft.config import DebugFlags, RaftConfig
from accord.raft.core import RaftCore, Status
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

__all__ = [
    "NO_NODE",
    "ConfChange",
    "ConfChangeError",
    "ConfChangeOp",
    "ConfState",
    "DebugFlags",
    "Entry",
    "EntryType",
    "HardState",
    "Message",
    "MessageType",
    "NodeId",
    "RaftConfig",
    "RaftCore",
    "ReadState",
    "Ready",
    "RecoveredState",
    "Role",
    "Snapshot",
    "SnapshotChunk",
    "SoftState",
    "Status",
]
