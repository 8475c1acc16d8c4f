"""Bounds and defaults of the node process and its housekeeping; named with units last.

The settings among them (`tick_ms`, `snapshot_entries`, `slow_*_ms`) are keys of
`NodeConfig` (TOML < ACCORD_* < flags); the rest are fixed.
"""

from __future__ import annotations

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
