"""Bounds and defaults of the node process: its requests' deadlines, what may wait in
it, and its housekeeping; named with units last.

The settings among them (`request_timeout_s`, `pending_reads_max`, `tick_ms`,
`snapshot_entries`) are keys of `NodeConfig` (TOML < ACCORD_* < flags), validated
against the ranges below; the rest are fixed. The replicated auth store's bounds
(`accord.node.authstore`) are part of the replicated behaviour (every member applies
the same admin commands) and fixed.
"""

from __future__ import annotations

from accord.kv.limits import KEY_BYTES_MAX

REQUEST_TIMEOUT_S = 5.0
"""Deadline of a request that names none: a write's proposal, a membership change, a
linearizable read's barrier (node setting `request_timeout_s`). A wait still pending
then fails with `DeadlineExceeded` (504; a write's outcome is then unknown)."""

REQUEST_TIMEOUT_S_MIN = 0.1
"""Shortest `request_timeout_s`: deadlines are checked once a tick, so a shorter one
would mostly measure the tick."""

REQUEST_TIMEOUT_S_MAX = 600.0
"""Longest `request_timeout_s`: a wait holds its request's memory until it ends."""

PENDING_READS_MAX = 10_000
"""Linearizable reads (and lease keepalives, which take a read barrier too) waiting in
one node at once for their read index or its apply (node setting `pending_reads_max`).
One more fails at once with `TooManyPendingReads` (503 `too_many_pending_reads`)
instead of queueing behind a leader that cannot keep up or is not there."""

PENDING_READS_CEILING = 1_000_000
"""Largest `pending_reads_max` a node accepts."""

TICK_MS = 50
"""Length of one Raft tick (node setting `tick_ms`): an election timeout is
`election_ticks` of them, and deadlines fire up to one tick late."""

SNAPSHOT_ENTRIES = 10_000
"""Applied entries between two snapshots, then the log is compacted (node setting
`snapshot_entries`): what a restart replays at most, beyond the snapshot."""

SLOW_REQUEST_MS = 1000
"""Requests slower than this are logged (node setting `slow_request_ms`)."""

SLOW_FSYNC_MS = 100
"""WAL syncs slower than this are logged (node setting `slow_fsync_ms`)."""

HOUSEKEEPING_INTERVAL_S = 0.5
"""How often the leader expires leases and writes lease checkpoints."""

LEASE_EXPIRY_SLACK_MS = 1_000
"""How late a lease may expire after its deadline: one housekeeping round, plus the
time `ExpireLeaseIds` takes to commit (documented; not enforced by a timer)."""

SESSION_IDLE_MS = 10 * 60 * 1000
"""A client session unused this long is forgotten (clients stop retrying far sooner:
a call's deadline is `CALL_TIMEOUT_S`)."""

READY_APPLY_LAG_MAX = 100
"""A member whose applied index trails the commit index it knows by more than this
many entries is catching up, not ready (`/ready` answers 503)."""

# --- The replicated auth store -----------------------------------------------------------
NAME_CHARS_MAX = 64
"""Longest user or role name."""

USERS_MAX = 10_000
"""Users in the auth store."""

ROLES_MAX = 10_000
"""Roles in the auth store."""

GRANTS_PER_ROLE_MAX = 1_000
"""Prefix grants one role holds."""

PREFIX_BYTES_MAX = KEY_BYTES_MAX
"""Longest key prefix a grant names: a key's length (a longer prefix covers no key)."""
