"""The leader's memory of client keepalives, and what it proposes from it.

Theory of operation
-------------------
A client keepalive is answered by the leader without a Raft write: the leader
confirms it still leads (a read barrier, one heartbeat round shared by every request
waiting then) and notes the lease's new deadline here, `now + ttl`. The replicated
deadline in the state machine lags behind; a lease's real deadline is the later of the
two (`deadline_ms()`). Each housekeeping round `plan()` looks at the leases whose
replicated deadline passed (the state machine's deadline index finds them without a
scan) and at the leases kept alive since the last round, and says

- which leases expired (real deadline passed): the leader proposes `ExpireLeaseIds`
  naming them, so no replica decides expiry by a deadline it may not know is stale;
- which deadlines to write (`LeaseCheckpoint`, many leases per command): those a
  keepalive moved and whose replicated deadline is less than half a TTL away, so the
  replicated state stays a useful lower bound (a follower's answer, a put attaching a
  key) while a lease kept alive costs one log entry per half TTL at most, shared
  with every other lease checkpointed in that round.

A new leader starts empty and first renews every lease to its full TTL in one
command (`RenewAllLeases`): a keepalive the old leader answered happened before the
new leader was elected, so the renewal covers it, and a leader change never expires a
lease a client kept alive. Everything here is plain data, free of I/O and clocks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from accord.kv.leases import deadline as lease_deadline

Lookup = Callable[[int], tuple[int, int] | None]


@dataclass(frozen=True, slots=True)
class LeasePlan:
    expired: list[int]
    """Leases whose real deadline has passed, ascending."""
    checkpoints: list[tuple[int, int]]
    """`(lease_id, deadline_ms)` to write into the replicated state, by id."""


class Lessor:
    def __init__(self) -> None:
        self._kept: dict[int, int] = {}  # lease id → deadline from the latest keepalive

    def __len__(self) -> int:
        return len(self._kept)

    def reset(self) -> None:
        """Forget every keepalive (a new term: `RenewAllLeases` covers them)."""
        self._kept.clear()

    def keepalive(self, lease_id: int, ttl_ms: int, now_ms: int) -> int:
        """Note a keepalive at `now_ms`; returns the lease's new deadline."""
        deadline = lease_deadline(now_ms, ttl_ms)
        self._kept[lease_id] = max(deadline, self._kept.get(lease_id, 0))
        return self._kept[lease_id]

    def deadline_ms(self, lease_id: int, replicated_ms: int) -> int:
        """The lease's real deadline, given its replicated one."""
        return max(replicated_ms, self._kept.get(lease_id, 0))

    def plan(
        self, due: Iterable[int], lookup: Lookup, now_ms: int, margin_ms: int = 0
    ) -> LeasePlan:
        """What to expire and what to checkpoint. `due`: the ids whose replicated
        deadline is `<= now_ms`; `lookup(id)`: a lease's `(ttl_ms, deadline_ms)`, or
        `None` once it is gone; a kept-alive lease is checkpointed once its replicated
        deadline is less than half a TTL or `margin_ms` away. Keepalives the
        replicated state has caught up with, or of leases that are gone, are forgotten."""
        expired = sorted(i for i in set(due) if self._kept.get(i, 0) <= now_ms)
        checkpoints: list[tuple[int, int]] = []
        still_ahead: dict[int, int] = {}
        for lease_id, kept in self._kept.items():
            lease = lookup(lease_id)
            if lease is None or kept <= lease[1] or kept <= now_ms:
                continue  # gone, caught up, or expired (then it is due, above)
            ttl_ms, replicated_ms = lease
            still_ahead[lease_id] = kept
            if replicated_ms - now_ms < max(ttl_ms // 2, margin_ms):
                checkpoints.append((lease_id, kept))
        self._kept = still_ahead
        checkpoints.sort()
        return LeasePlan(expired, checkpoints)
