"""Every bound the KV state machine and the watch hub enforce, named with units last.

A command that exceeds a bound is not applied: `apply()` returns an `ErrorResult`
carrying `LimitExceeded` (or `QuotaExceeded` for the store size), the same on every
replica. The API layer should call `check_command()` before proposing, so most
oversized requests are refused without touching the log.

The state machine's bounds are part of the replicated behaviour: every replica of a
group must run with the same `KVLimits`, or they could disagree about which commands
fail. The defaults below are what production uses; tests pass smaller ones.
"""

from __future__ import annotations

from dataclasses import dataclass

from accord.raft.limits import GIB, KIB, MIB, RAFT_ENTRY_BYTES_MAX, RAFT_SNAPSHOT_DATA_BYTES_MAX

KEY_BYTES_MAX = 4 * KIB
"""Length of one key (etcd has no separate key bound; its request bound is 1.5 MiB)."""

VALUE_BYTES_MAX = 1 * MIB
"""Length of one value."""

TXN_OPS_MAX = 128
"""Operations in one branch (success or failure) of a transaction (etcd's default)."""

TXN_COMPARES_MAX = 128
"""Comparisons in one transaction."""

LEASES_MAX = 1_000_000
"""Leases in the table at once (node setting `leases_max`); one more grant is refused
with `TooManyLeases`."""

LEASES_PER_USER_MAX = LEASES_MAX // 10
"""Leases one owner holds at once (node setting `leases_per_user_max`). The owner is
the authenticated user; with auth off every client is the one anonymous owner `""`."""

LEASE_IDS_PER_COMMAND_MAX = 10_000
"""Leases one `LeaseCheckpoint` or `ExpireLeaseIds` command names; the leader splits
longer lists over several commands."""

LEASE_TTL_MS_MIN = 1
"""Shortest lease TTL a grant names (the API counts in whole seconds)."""
LEASE_TTL_MS_MAX = 10 * 365 * 24 * 3600 * 1000
"""Ten years; a longer lease is a permanent key spelled badly."""

LEASE_ID_MAX = (1 << 63) - 1
"""Lease ids are positive signed 64-bit integers (etcd's); 0 means "no lease"."""

SESSIONS_MAX = 100_000
"""Client sessions remembered at once. A new client beyond this is refused rather than
evicting another client's session, which would silently weaken its exactly-once
guarantee; idle sessions are removed by `ExpireSessions`."""

SESSIONS_PER_USER_MAX = SESSIONS_MAX // 4
"""Client sessions one owner holds at once (a quarter of the table), so one user
cannot lock every other client out; with auth off all clients are one owner."""

SESSION_IDLE_MS_MIN = 1_000
"""Smallest idle time `ExpireSessions` accepts, so a mistaken command cannot drop every
session of clients that are merely between requests."""

VERSION_OVERHEAD_BYTES = 128
"""What one stored version (or tombstone) is charged on top of its key and value: an
estimate of the Python objects that hold it, and more than its snapshot encoding adds
(at most 42 bytes: four 9-byte integers and the framing; the key, written once per key,
takes at most 11 more), so a store's snapshot is never larger than its charge."""

SNAPSHOT_TABLES_BYTES_MAX = 1 * GIB
"""What a snapshot may hold besides the key store: counters, leases, sessions and the
result each one records, members and users. An allowance: `LEASES_MAX` leases take
about 100 MB (at most ~100 bytes each, owner included), which leaves `SESSIONS_MAX`
sessions about 9 KiB each for their recorded results. A session's result is charged
to no quota (a transaction's reads are bounded only by `response_bytes_max`), so this
is the one part of the snapshot bound that is not a proof."""


def snapshot_bytes_max(store_bytes_max: int) -> int:
    """The largest snapshot a store held to `store_bytes_max` makes. Puts keep the
    history at or below the quota; deletes are never refused (so a full store can be
    emptied), and each adds one tombstone charged no more than the live version it ends,
    so the history is at most twice the quota. Its encoding is no larger than its
    charge (`VERSION_OVERHEAD_BYTES`); the other tables get `SNAPSHOT_TABLES_BYTES_MAX`."""
    return 2 * store_bytes_max + SNAPSHOT_TABLES_BYTES_MAX


STORE_BYTES_MAX = (RAFT_SNAPSHOT_DATA_BYTES_MAX - SNAPSHOT_TABLES_BYTES_MAX) // 2
"""Quota on the MVCC history, measured by `version_bytes()`: puts are refused with
`QuotaExceeded` while it is exceeded; deletes and compaction still work (etcd's space
quota). Default and largest value of the node setting `store_bytes_max` (1 GiB): derived
from the largest snapshot the Raft layer stores, `RAFT_SNAPSHOT_DATA_BYTES_MAX` (3 GiB),
so that `snapshot_bytes_max(STORE_BYTES_MAX)` fits it."""

STORE_BYTES_MIN = 4 * MIB
"""Smallest `store_bytes_max` a node accepts: room for a few versions of the largest
key and value."""

COMMAND_BYTES_MAX = RAFT_ENTRY_BYTES_MAX
"""Largest encoded command the decoder accepts (the Raft core bounds proposals too)."""

RESTORE_BYTES_MAX = RAFT_SNAPSHOT_DATA_BYTES_MAX
"""Largest snapshot `restore()` accepts: what storage accepts, no more."""

INT64_MAX = (1 << 63) - 1
"""Revisions, times and counters in commands are non-negative signed 64-bit integers."""

UINT64_MAX = (1 << 64) - 1
"""Client ids and sequence numbers are unsigned 64-bit integers."""

RESPONSE_BYTES_MAX = 16 * MIB
"""What the reads of one request may return: a range, a transaction (summed over all
its ops) or one catch-up chunk of a watch. Counted while the response is built, as
`response_kv_bytes()` per key-value plus `RESPONSE_OP_OVERHEAD_BYTES` per op; a read
that would go over is refused with `ResponseTooLarge` (HTTP 413). Default of the node
setting `response_bytes_max`. 16 MiB is four times the request limit and holds fifteen
values of the largest size, so one page of a range always fits; the native form is at
most this (the charges cover its encoding), the JSON form at most
`api.limits.JSON_EXPANSION_MAX` times it."""

RESPONSE_BYTES_MIN = 2 * MIB
"""Smallest `response_bytes_max` a node accepts: one key-value of the largest sizes
must always fit, or some keys could never be read."""

RESPONSE_BYTES_CEILING = 32 * MIB
"""Largest `response_bytes_max` a node accepts: the client protocols' answer bounds
(`api.limits.NATIVE_ANSWER_FRAME_BYTES_MAX`, the HTTP watch line) are sized for it."""

RESPONSE_KV_OVERHEAD_BYTES = 128
"""What one key-value in a response is charged on top of its key and value: at least
what encoding it adds, so an answer is never larger than its charge. Its native form
(a map of key, value, two revisions, version and lease, each integer up to 9 bytes)
adds at most 98 bytes, a watch event's type and map at most 25 more."""

RESPONSE_OP_OVERHEAD_BYTES = 64
"""What one op's result in a response is charged, whatever it returns: at least its
native encoding besides its key-values (at most 45 bytes, a range's)."""

TXN_RANGE_OPS_MAX = 32
"""Range ops in one branch of a transaction (gets are not counted): each may scan a
large part of the store on every replica."""

READ_KEYS_SCANNED_MAX = 100_000
"""Keys the reads of one request (a range, or every read of a transaction) may visit,
counted or returned; one more is refused with `LimitExceeded`. Bounds the time the
state machine (on every replica, for a transaction) spends in one request: about
50 ms per 100,000 keys, well inside an election timeout. It applies to `count_only`
ranges and to ranges with a small `limit` too, since `count` visits every key; count
a larger range in pieces."""

WATCHERS_MAX = 10_000
"""Watchers one `WatchHub` holds; registering one more raises `LimitExceeded`."""

WATCHERS_PER_USER_MAX = WATCHERS_MAX // 10
"""Watchers one owner holds on one node (a tenth of `WATCHERS_MAX`)."""

WATCH_QUEUE_EVENTS_MAX = 1_000
"""Events queued for one watcher that its consumer has not taken yet. A watcher that
falls further behind is cancelled (with the revision to resume from); a revision
with more matching events than this can never be delivered whole and also cancels."""


def response_kv_bytes(key: bytes, value: bytes) -> int:
    """What one key-value in a response is charged against `response_bytes_max`."""
    return len(key) + len(value) + RESPONSE_KV_OVERHEAD_BYTES


def version_bytes(key: bytes, value: bytes) -> int:
    """What one stored version is charged against `KVLimits.store_bytes_max`."""
    return len(key) + len(value) + VERSION_OVERHEAD_BYTES


@dataclass(frozen=True, slots=True)
class KVLimits:
    """The bounds one state machine enforces; identical on every replica of a group."""

    key_bytes_max: int = KEY_BYTES_MAX
    value_bytes_max: int = VALUE_BYTES_MAX
    txn_ops_max: int = TXN_OPS_MAX
    txn_compares_max: int = TXN_COMPARES_MAX
    leases_max: int = LEASES_MAX
    leases_per_user_max: int = LEASES_PER_USER_MAX
    lease_ttl_ms_min: int = LEASE_TTL_MS_MIN
    lease_ttl_ms_max: int = LEASE_TTL_MS_MAX
    sessions_max: int = SESSIONS_MAX
    sessions_per_user_max: int = SESSIONS_PER_USER_MAX
    session_idle_ms_min: int = SESSION_IDLE_MS_MIN
    store_bytes_max: int = STORE_BYTES_MAX
    response_bytes_max: int = RESPONSE_BYTES_MAX
    txn_range_ops_max: int = TXN_RANGE_OPS_MAX
    read_keys_scanned_max: int = READ_KEYS_SCANNED_MAX
