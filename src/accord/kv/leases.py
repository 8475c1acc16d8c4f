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
lease), so snapshots store only ids, TTLs, deadlines and owners.

Each lease records its owner (the user whose grant created it, `""` for an anonymous
client); the table counts leases per owner for `leases_per_user_max`.

Keepalives from clients are not commands: the leader keeps each lease's latest
keepalive in memory (`accord.node.service`) and writes deadlines into the table in
batches (`checkpoint()`), and a new leader renews the whole table in one command
(`renew_all()`).

To find the leases that are due without scanning the table, it keeps a min-heap of
`(deadline_ms, lease_id)` pushed whenever a deadline is set; entries a later deadline
or a removal made stale are skipped, and the heap is rebuilt once it holds more stale
entries than leases. It is an index derived from the table, not replicated state.

Every iteration that can affect replicated results goes in ascending id order, never
in dict order, so a replica restored from a snapshot behaves exactly like one that
applied the whole log.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from typing import Any

from accord.invariant import invariant
from accord.kv import _wire
from accord.kv.limits import INT64_MAX, LEASE_ID_MAX
from accord.kv.results import LeaseInfo

STALE_ENTRIES_MIN = 64
"""Stale deadline-heap entries tolerated beyond one per lease before a rebuild."""


def deadline(now_ms: int, ttl_ms: int) -> int:
    """`now_ms + ttl_ms`, capped so it always fits the encoding's signed 64 bits."""
    return min(now_ms + ttl_ms, INT64_MAX)


class Lease:
    __slots__ = ("deadline_ms", "keys", "lease_id", "owner", "ttl_ms")

    def __init__(self, lease_id: int, ttl_ms: int, deadline_ms: int, owner: str = "") -> None:
        self.lease_id = lease_id
        self.ttl_ms = ttl_ms
        self.deadline_ms = deadline_ms
        self.owner = owner
        self.keys: set[bytes] = set()


class LeaseTable:
    def __init__(self) -> None:
        self._leases: dict[int, Lease] = {}
        self._per_owner: dict[str, int] = {}
        self._by_deadline: list[tuple[int, int]] = []  # heap; may hold stale entries

    def __len__(self) -> int:
        return len(self._leases)

    def get(self, lease_id: int) -> Lease | None:
        return self._leases.get(lease_id)

    def alive(self, lease_id: int, now_ms: int) -> Lease | None:
        """The lease, if it exists and its deadline is still ahead of `now_ms`."""
        lease = self._leases.get(lease_id)
        return lease if lease is not None and lease.deadline_ms > now_ms else None

    def owned_by(self, owner: str) -> int:
        """How many leases `owner` holds."""
        return self._per_owner.get(owner, 0)

    def grant(self, lease_id: int, ttl_ms: int, now_ms: int, owner: str = "") -> Lease:
        invariant(lease_id not in self._leases, "lease granted twice")
        lease = Lease(lease_id, ttl_ms, deadline(now_ms, ttl_ms), owner)
        self._add(lease)
        return lease

    def _add(self, lease: Lease) -> None:
        self._leases[lease.lease_id] = lease
        self._per_owner[lease.owner] = self._per_owner.get(lease.owner, 0) + 1
        self._index(lease)

    def _index(self, lease: Lease) -> None:
        """Note the lease's (new) deadline in the heap."""
        heapq.heappush(self._by_deadline, (lease.deadline_ms, lease.lease_id))
        if len(self._by_deadline) > 2 * len(self._leases) + STALE_ENTRIES_MIN:
            self._reindex()

    def _reindex(self) -> None:
        self._by_deadline = [(lease.deadline_ms, i) for i, lease in self._leases.items()]
        heapq.heapify(self._by_deadline)

    def refresh(self, lease: Lease, now_ms: int) -> None:
        lease.deadline_ms = deadline(now_ms, lease.ttl_ms)
        self._index(lease)

    def renew_all(self, now_ms: int) -> int:
        """Refresh every lease in the table to its full TTL, expired-but-present ones
        too: only the leader decides expiry, and one whose replicated deadline passed
        may have been kept alive in the previous leader's memory. Returns how many."""
        for lease in self._leases.values():  # each lease independently: order is moot
            lease.deadline_ms = deadline(now_ms, lease.ttl_ms)
        self._reindex()
        return len(self._leases)

    def checkpoint(self, deadlines: Iterable[tuple[int, int]], now_ms: int) -> int:
        """Move leases' deadlines forward to the given ones (the leader's, from
        keepalives), never past a full TTL from `now_ms`; missing leases are skipped.
        Returns how many moved."""
        moved = 0
        for lease_id, deadline_ms in deadlines:
            lease = self._leases.get(lease_id)
            if lease is None:
                continue
            target = min(deadline_ms, deadline(now_ms, lease.ttl_ms))
            if target > lease.deadline_ms:
                lease.deadline_ms = target
                self._index(lease)
                moved += 1
        return moved

    def remove(self, lease_id: int) -> Lease:
        lease = self._leases.pop(lease_id)
        left = self._per_owner[lease.owner] - 1
        if left:
            self._per_owner[lease.owner] = left
        else:
            del self._per_owner[lease.owner]
        return lease

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

    def due(self, now_ms: int) -> list[int]:
        """The same ids as `expired()`, from the heap: only its entries `<= now_ms` are
        visited (a heap's children are never smaller than their parent), so a table
        of long leases costs nothing. Reads only; changes nothing."""
        heap, found, todo = self._by_deadline, set(), [0] if self._by_deadline else []
        while todo:
            at = todo.pop()
            deadline_ms, lease_id = heap[at]
            if deadline_ms > now_ms:
                continue
            lease = self._leases.get(lease_id)
            if lease is not None and lease.deadline_ms == deadline_ms:
                found.add(lease_id)
            todo += [child for child in (2 * at + 1, 2 * at + 2) if child < len(heap)]
        return sorted(found)

    def info(self, lease: Lease, now_ms: int, *, keys: bool) -> LeaseInfo:
        return LeaseInfo(
            lease.lease_id,
            lease.ttl_ms,
            lease.deadline_ms,
            max(0, lease.deadline_ms - now_ms),
            tuple(sorted(lease.keys)) if keys else (),
            lease.owner,
        )

    def ids(self) -> list[int]:
        return sorted(self._leases)

    def deadlines(self) -> Iterator[tuple[int, int, int]]:
        """`(lease_id, ttl_ms, deadline_ms)` of every lease, in no particular order."""
        for lease in self._leases.values():
            yield lease.lease_id, lease.ttl_ms, lease.deadline_ms

    # --- snapshot ------------------------------------------------------------------
    def encode(self) -> list[Any]:
        """`[[id, ttl_ms, deadline_ms, owner?], ...]` by id (the owner only when it is
        not `""`, as earlier versions wrote it); the keys come from the store."""
        items: list[Any] = []
        for i in self.ids():
            lease = self._leases[i]
            item: list[Any] = [i, lease.ttl_ms, lease.deadline_ms]
            if lease.owner:
                item.append(lease.owner)
            items.append(item)
        return items

    @classmethod
    def decode(cls, value: object, leased_keys: Iterable[tuple[bytes, int]]) -> LeaseTable:
        table = cls()
        for item in _wire.array(value, "leases"):
            fields = _wire.array(item, "lease")
            if len(fields) not in (3, 4):
                raise _wire.WireError(f"lease: expected 3 or 4 fields, got {len(fields)}")
            lease_id = _wire.uint(fields[0], "lease id", LEASE_ID_MAX)
            if lease_id == 0 or lease_id in table._leases:
                raise _wire.WireError(f"lease id {lease_id} is 0 or repeated")
            owner = _wire.text(fields[3], "lease owner") if len(fields) == 4 else ""
            if len(fields) == 4 and not owner:
                raise _wire.WireError("lease owner: an empty owner is not encoded")
            ttl_ms = _wire.uint(fields[1], "ttl")
            table._add(Lease(lease_id, ttl_ms, _wire.uint(fields[2], "deadline"), owner))
        for key, lease_id in leased_keys:
            lease = table._leases.get(lease_id)
            if lease is None:
                raise _wire.WireError(f"key {key!r} is attached to missing lease {lease_id}")
            lease.keys.add(key)
        return table
