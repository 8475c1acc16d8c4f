"""The replicated key-value state machine: MVCC store, transactions, leases, watches
and client sessions, with etcd v3's semantics over `bytes` keys and values.

Everything here is pure: no asyncio, sockets, files, clocks or global randomness.
The node runtime drives it through a small surface:

- `encode_command(Envelope(client_id, seq, command, now_ms))` on the leader, and the
  resulting bytes through Raft (a node tags them as kind KV: `accord.node.registry`);
- `KVStateMachine.apply(index, data) -> (result, events)` for every committed entry,
  `refuse(index, error)` for an entry that holds a command of no kind the node knows;
- `WatchHub.feed(events)` with those events, and `WatchHub.take(watch_id)` to stream;
- the read methods (`get`, `range`, `lease_ttl`, `leases`) after ReadIndex;
- `snapshot()` / `restore()` for Raft snapshots (then `WatchHub.resync()`).

Module map: `commands` (commands and their encoding), `results`, `types` (key-values,
events, key ranges), `errors`, `limits`, `budget` (what one request's reads may still
return), `validate` (static checks the API layer can run before proposing), `mvcc`
(the versioned key index), `leases`, `sessions`, `machine` (`KVStateMachine`),
`watch` (`WatchHub`).
"""

from accord.kv.commands import (
    Command,
    Compact,
    Compare,
    CompareOp,
    CompareTarget,
    DeleteRange,
    Envelope,
    ExpireLeaseIds,
    ExpireLeases,
    ExpireSessions,
    Get,
    LeaseCheckpoint,
    LeaseGrant,
    LeaseKeepAlive,
    LeaseRevoke,
    Put,
    Range,
    RenewAllLeases,
    Txn,
    TxnOp,
    decode_command,
    encode_command,
)
from accord.kv.errors import (
    BadCommand,
    BadSnapshot,
    Compacted,
    DuplicateKey,
    FutureRevision,
    InvalidRequest,
    KVError,
    LeaseExists,
    LeaseNotFound,
    LimitExceeded,
    QuotaExceeded,
    ResponseTooLarge,
    SessionExpired,
    StaleRequest,
    TooManyLeases,
    TooManySessions,
    TooManyWatches,
    WatchCancelled,
    WatchNotFound,
)
from accord.kv.limits import KVLimits
from accord.kv.machine import KVStateMachine, SnapshotJob, run_job
from accord.kv.results import (
    CompactResult,
    DeleteResult,
    ErrorResult,
    ExpireLeasesResult,
    ExpireSessionsResult,
    GetResult,
    LeaseGrantResult,
    LeaseInfo,
    LeaseKeepAliveResult,
    LeaseRevokeResult,
    LeasesRenewedResult,
    NoopResult,
    OpResult,
    PutResult,
    RangeResult,
    Result,
    TxnResult,
)
from accord.kv.types import ALL_KEYS_END, Event, EventType, KeyValue, prefix_end
from accord.kv.validate import check_command, check_envelope
from accord.kv.watch import WatchHub, WatchUpdate

__all__ = [
    "ALL_KEYS_END",
    "BadCommand",
    "BadSnapshot",
    "Command",
    "Compact",
    "CompactResult",
    "Compacted",
    "Compare",
    "CompareOp",
    "CompareTarget",
    "DeleteRange",
    "DeleteResult",
    "DuplicateKey",
    "Envelope",
    "ErrorResult",
    "Event",
    "EventType",
    "ExpireLeaseIds",
    "ExpireLeases",
    "ExpireLeasesResult",
    "ExpireSessions",
    "ExpireSessionsResult",
    "FutureRevision",
    "Get",
    "GetResult",
    "InvalidRequest",
    "KVError",
    "KVLimits",
    "KVStateMachine",
    "KeyValue",
    "LeaseCheckpoint",
    "LeaseExists",
    "LeaseGrant",
    "LeaseGrantResult",
    "LeaseInfo",
    "LeaseKeepAlive",
    "LeaseKeepAliveResult",
    "LeaseNotFound",
    "LeaseRevoke",
    "LeaseRevokeResult",
    "LeasesRenewedResult",
    "LimitExceeded",
    "NoopResult",
    "OpResult",
    "Put",
    "PutResult",
    "QuotaExceeded",
    "Range",
    "RangeResult",
    "RenewAllLeases",
    "ResponseTooLarge",
    "Result",
    "SessionExpired",
    "SnapshotJob",
    "StaleRequest",
    "TooManyLeases",
    "TooManySessions",
    "TooManyWatches",
    "Txn",
    "TxnOp",
    "TxnResult",
    "WatchCancelled",
    "WatchHub",
    "WatchNotFound",
    "WatchUpdate",
    "check_command",
    "check_envelope",
    "decode_command",
    "encode_command",
    "prefix_end",
    "run_job",
]
