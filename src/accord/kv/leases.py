"""Leases: TTLs whose expiry is decided by the leader and replicated.

Theory of operation
-------------------
A lease has an id (chosen by the leader, carried in `LeaseGrant`), a TTL and a
deadline in the state machine's clock: the `now_ms` the leader stamped on the command
that granted or last refreshed it. No replica ever reads a clock; a lease whose
deadline has passed is still in the table until the leader proposes `ExpireLeases`,
which revokes it (and deletes its keys) on every replica at the same log index.

Between its deadline and that command the lease is *expired but present*: it can no
longer be refreshed or have keys attached (`alive()` is false), but it is still
revoked by the next `ExpireLeases` or `LeaseRevoke`.

The table also knows which keys each lease holds: a put with a lease attaches the
key, and a later put without it, a delete, or a put with another lease detaches it.
That set is derived from the store (the latest version of each live key names its
lease), so snapshots store only ids, TTLs and deadlines.

Every iteration that can affect replicated results goes in ascending id order, never
in dict order, so a replica restored from a snapshot behaves exactly like one that
applied the whole log.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from accord.invariant import invariant
from accord.kv import _wire
from accord.kv.limits import INT64_MAX, LEASE_ID_MAX
from accord.kv.results import LeaseInfo


def deadline(now_ms: int, ttl_ms: int) -> int:
    """`now_ms + ttl_ms`, capped so it always fits the encoding's signed 64 bits."""
    return min(now_ms + ttl_ms, INT64_MAX)


class Lease:
    __slots__ = ("deadline_ms", "keys", "lease_id", "ttl_ms")

    def __init__(self, lease_id: int, ttl_ms: int, deadline_ms: int) -> None:
        self.lease_id = lease_id
        self.ttl_ms = ttl_ms
        self.deadline_ms = deadline_ms
        self.keys: set[bytes] = set()


class LeaseTable:
    def __init__(self) -> None:
        self._leases: dict[int, Lease] = {}

    def __len__(self) -> int:
        return len(self._leases)

    def get(self, lease_id: int) -> Lease | None:
        return self._leases.get(lease_id)

    def alive(self, lease_id: int, now_ms: int) -> Lease | None:
        """The lease, if it exists and its deadline is still ahead of `now_ms`."""
        lease = self._leases.get(lease_id)
        return lease if lease is not None and lease.deadline_ms > now_ms else None

    def grant(self, lease_id: int, ttl_ms: int, now_ms: int) -> Lease:
        invariant(lease_id not in self._leases, "lease granted twice")
        lease = self._leases[lease_id] = Lease(lease_id, ttl_ms, deadline(now_ms, ttl_ms))
        return lease

    def refresh(self, lease: Lease, now_ms: int) -> None:
        lease.deadline_ms = deadline(now_ms, lease.ttl_ms)

    def remove(self, lease_id: int) -> Lease:
        return self._leases.pop(lease_id)

    def attach(self, key: bytes, lease_id: int) -> None:
        self._leases[lease_id].keys.add(key)

    def detach(self, key: bytes, lease_id: int) -> None:
        lease = self._leases.get(lease_id)
        invariant(lease is not None, f"key {key!r} attached to missing lease {lease_id}")
        assert lease is not None
        lease.keys.discard(key)

    def expired(self, now_ms: int) -> list[int]:
        """Ids of the leases whose deadline is `<= now_ms`, ascending."""
        return sorted(i for i, lease in self._leases.items() if lease.deadline_ms <= now_ms)

    def info(self, lease: Lease, now_ms: int, *, keys: bool) -> LeaseInfo:
        return LeaseInfo(
            lease.lease_id,
            lease.ttl_ms,
            lease.deadline_ms,
            max(0, lease.deadline_ms - now_ms),
            tuple(sorted(lease.keys)) if keys else (),
        )

    def ids(self) -> list[int]:
        return sorted(self._leases)

    # --- snapshot ------------------------------------------------------------------
    def encode(self) -> list[Any]:
        """`[[id, ttl_ms, deadline_ms], ...]` by id; the keys come from the store."""
        return [[i, self._leases[i].ttl_ms, self._leases[i].deadline_ms] for i in self.ids()]

    @classmethod
    def decode(cls, value: object, leased_keys: Iterable[tuple[bytes, int]]) -> LeaseTable:
        table = cls()
        for item in _wire.array(value, "leases"):
            lease_id, ttl_ms, deadline_ms = _wire.array(item, "lease", 3)
            lease_id = _wire.uint(lease_id, "lease id", LEASE_ID_MAX)
            if lease_id == 0 or lease_id in table._leases:
                raise _wire.WireError(f"lease id {lease_id} is 0 or repeated")
            table._leases[lease_id] = Lease(
                lease_id, _wire.uint(ttl_ms, "ttl"), _wire.uint(deadline_ms, "deadline")
            )
        for key, lease_id in leased_keys:
            lease = table._leases.get(lease_id)
            if lease is None:
                raise _wire.WireError(f"key {key!r} is attached to missing lease {lease_id}")
            lease.keys.add(key)
        return table
