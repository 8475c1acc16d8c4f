"""The multi-version key index: every version of every key since the compact revision.

Theory of operation
-------------------
The store has one revision counter. It starts at 1 (an empty store, as in etcd) and a
write transaction moves it up by exactly one: every key the transaction changes gets
a new version whose `mod_revision` is the new revision. The caller (the state
machine) opens the transaction by choosing `revision + 1`, writes through `put()` and
`delete()`, and calls `commit()` if anything was written; a transaction that wrote
nothing leaves the counter alone.

Each key has a `_History`: parallel lists of mod revisions (ascending, for bisection)
and versions. A delete appends a tombstone (version 0), so "what was the value at
revision r" is one bisection, and the history doubles as the event log: the event at
a version is PUT or DELETE, and its `prev_kv` is the version before it. Keys live in a
`SortedDict`, so ranges are ordered scans.

Compaction at revision C keeps, for each key, the newest version at or before C
(unless it is a tombstone) and everything after C. Reads at revision >= C therefore
see exactly what they saw before; reads below C raise `Compacted`. Every event after
C keeps its `prev_kv`, so watches may start at any revision > C.

A key is written at most once per revision (the state machine refuses transactions
that would do otherwise), so the events of one revision are naturally ordered by key.

The store charges every stored version `version_bytes()` against a quota the state
machine checks before writing; `size_bytes` is that running total.

A snapshot of a large store is read piece by piece while writes go on
(`SnapshotReader`): it takes the list of keys at once and reads each key's versions
up to its revision later. That is exact because writes only append versions above
the reader's revision, and the one change in place, compaction, first hands the
reader a copy of every history it is about to shorten.
"""

from __future__ import annotations

import heapq
import weakref
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from typing import Any, TypeAlias

from sortedcontainers import SortedDict

from accord.invariant import invariant
from accord.kv import _wire
from accord.kv.budget import ReadBudget
from accord.kv.errors import Compacted, FutureRevision, ResponseTooLarge
from accord.kv.limits import response_kv_bytes, version_bytes
from accord.kv.types import ALL_KEYS_END, Event, EventType, KeyValue, tombstone


class _History:
    __slots__ = ("key", "kvs", "revs")

    def __init__(self, key: bytes) -> None:
        self.key = key
        self.revs: list[int] = []
        self.kvs: list[KeyValue] = []

    def at(self, revision: int) -> KeyValue | None:
        i = bisect_right(self.revs, revision) - 1
        if i < 0:
            return None
        kv = self.kvs[i]
        return None if kv.version == 0 else kv

    def latest(self) -> KeyValue | None:
        kv = self.kvs[-1]
        return None if kv.version == 0 else kv

    def append(self, kv: KeyValue) -> None:
        invariant(not self.revs or self.revs[-1] < kv.mod_revision, "a key written twice")
        self.revs.append(kv.mod_revision)
        self.kvs.append(kv)

    def events_since(self, start: int) -> Iterator[tuple[int, bytes, Event]]:
        """`(revision, key, event)` for each version at or after `start`."""
        kvs = self.kvs
        for i in range(bisect_left(self.revs, start), len(kvs)):
            kv = kvs[i]
            prev = kvs[i - 1] if i > 0 else None
            if prev is not None and prev.version == 0:
                prev = None
            kind = EventType.DELETE if kv.version == 0 else EventType.PUT
            yield kv.mod_revision, self.key, Event(kind, kv, prev)


def event_bytes(event: Event) -> int:
    """What one event costs a watch's catch-up chunk (its key-value and previous one)."""
    kv, prev = event.kv, event.prev_kv
    prev_bytes = 0 if prev is None else response_kv_bytes(prev.key, prev.value)
    return response_kv_bytes(kv.key, kv.value) + prev_bytes


EncodedKey: TypeAlias = list[Any]
"""`[key, [[mod, create, version, lease, value], ...]]`: one key of an encoded store."""


def _encode_versions(key: bytes, kvs: list[KeyValue]) -> EncodedKey:
    return [
        key,
        [[kv.mod_revision, kv.create_revision, kv.version, kv.lease, kv.value] for kv in kvs],
    ]


class MVCCStore:
    """Versions of every key; see the module docstring."""

    def __init__(self) -> None:
        self._keys: SortedDict[bytes, _History] = SortedDict()
        # Weak: a reader dropped unfinished (a job never run) stops costing copies.
        self._readers: weakref.WeakSet[SnapshotReader] = weakref.WeakSet()
        self.revision = 1
        self.compact_revision = 0
        self.size_bytes = 0
        self.live_keys = 0
        """Keys whose latest version is not a tombstone (kept for metrics, O(1))."""

    # --- reads ---------------------------------------------------------------------
    def resolve(self, revision: int) -> int:
        """The concrete revision a read of `revision` (0: latest) is served at."""
        if revision == 0:
            return self.revision
        if revision < self.compact_revision:
            raise Compacted(revision, self.compact_revision)
        if revision > self.revision:
            raise FutureRevision(revision, self.revision)
        return revision

    def get(self, key: bytes, at: int) -> KeyValue | None:
        history = self._keys.get(key)
        return None if history is None else history.at(at)

    def latest(self, key: bytes) -> KeyValue | None:
        history = self._keys.get(key)
        return None if history is None else history.latest()

    def range(
        self,
        key: bytes,
        range_end: bytes,
        at: int,
        limit: int,
        count_only: bool,
        budget: ReadBudget,
    ) -> tuple[list[KeyValue], int]:
        """The live versions at `at` in the range (at most `limit`, 0: all; none if
        `count_only`) and how many there are in all; each key visited and each
        version returned is charged to `budget` first, which raises when it is spent."""
        kvs: list[KeyValue] = []
        count = 0
        for history in self._histories(key, range_end):
            budget.scan()
            kv = history.at(at)
            if kv is None:
                continue
            count += 1
            if not count_only and (limit == 0 or len(kvs) < limit):
                budget.take(kv.key, kv.value, len(kvs))
                kvs.append(kv)
        return kvs, count

    def history(
        self, key: bytes, range_end: bytes, start: int, events_max: int, bytes_max: int
    ) -> tuple[list[Event], int]:
        """Events in the range from revision `start` on, in revision order (by key
        within a revision), whole revisions only, at most `events_max` of them and at
        most `bytes_max` of them as `event_bytes()` counts. Reading stops at the first
        revision that would go over either bound, so no more is ever held.

        Returns the events and the first revision not returned: `revision + 1` when
        everything was returned. No events with a next revision `<= revision` means
        the first revision alone has more than `events_max` matching events; one
        alone over `bytes_max` raises `ResponseTooLarge`.
        """
        if start <= self.compact_revision:
            raise Compacted(start, self.compact_revision)
        streams = [h.events_since(start) for h in self._histories(key, range_end)]
        events: list[Event] = []
        batch: list[Event] = []
        batch_revision = 0
        size_bytes = 0
        for revision, _, event in heapq.merge(*streams):
            if revision != batch_revision:
                if len(events) + len(batch) > events_max:
                    return events, batch_revision
                events += batch
                batch = []
                batch_revision = revision
            size_bytes += event_bytes(event)
            if size_bytes > bytes_max:
                if not events:
                    raise ResponseTooLarge(size_bytes, bytes_max, 0, len(batch))
                return events, batch_revision
            batch.append(event)
        if len(events) + len(batch) > events_max:
            return events, batch_revision
        return events + batch, self.revision + 1

    def _histories(self, key: bytes, range_end: bytes) -> Iterator[_History]:
        keys = self._keys
        if not range_end:
            history = keys.get(key)
            if history is not None:
                yield history
            return
        if range_end == ALL_KEYS_END:
            selected = keys.irange(minimum=key)
        elif range_end <= key:
            return
        else:
            selected = keys.irange(key, range_end, inclusive=(True, False))
        for k in selected:
            yield keys[k]

    # --- writes --------------------------------------------------------------------
    def put(self, key: bytes, value: bytes, lease: int, revision: int) -> Event:
        """Write a new version of `key` at `revision` (the open transaction's)."""
        invariant(revision == self.revision + 1, "put outside the open revision")
        history = self._keys.get(key)
        if history is None:
            history = self._keys[key] = _History(key)
            prev = None
        else:
            prev = history.latest()
        if prev is None:
            self.live_keys += 1
            kv = KeyValue(history.key, value, revision, revision, 1, lease)
        else:
            kv = KeyValue(
                history.key, value, prev.create_revision, revision, prev.version + 1, lease
            )
        history.append(kv)
        self.size_bytes += version_bytes(key, value)
        return Event(EventType.PUT, kv, prev)

    def delete(self, key: bytes, range_end: bytes, revision: int) -> list[Event]:
        """Delete every live key in the range at `revision`; one event per key."""
        invariant(revision == self.revision + 1, "delete outside the open revision")
        events: list[Event] = []
        for history in list(self._histories(key, range_end)):
            prev = history.latest()
            if prev is None:
                continue
            dead = tombstone(history.key, revision)
            history.append(dead)
            self.size_bytes += version_bytes(history.key, b"")
            self.live_keys -= 1
            events.append(Event(EventType.DELETE, dead, prev))
        return events

    def commit(self, revision: int) -> None:
        invariant(revision == self.revision + 1, "commit of a revision not opened")
        self.revision = revision

    def compact(self, revision: int) -> None:
        """Forget what no read at `revision` or later can see (see the module doc)."""
        invariant(self.compact_revision < revision <= self.revision, "bad compact revision")
        emptied: list[bytes] = []
        for key, history in self._keys.items():
            keep_from = bisect_right(history.revs, revision) - 1
            if keep_from < 0:
                continue
            if history.kvs[keep_from].version == 0:
                keep_from += 1
            if keep_from == 0:
                continue
            for reader in self._readers:
                reader.preserve(key, history)
            for kv in history.kvs[:keep_from]:
                self.size_bytes -= version_bytes(kv.key, kv.value)
            del history.revs[:keep_from]
            del history.kvs[:keep_from]
            if not history.revs:
                emptied.append(key)
        for key in emptied:
            del self._keys[key]
        self.compact_revision = revision

    def live_leased_keys(self) -> Iterator[tuple[bytes, int]]:
        """`(key, lease)` for every live key attached to a lease."""
        for key, history in self._keys.items():
            kv = history.latest()
            if kv is not None and kv.lease:
                yield key, kv.lease

    # --- snapshot ------------------------------------------------------------------
    def encode(self) -> list[EncodedKey]:
        """`[[key, [[mod, create, version, lease, value], ...]], ...]` in key order."""
        return [_encode_versions(key, h.kvs) for key, h in self._keys.items()]

    def reader(self) -> SnapshotReader:
        """A reader of the store as it is now, to encode while writes go on."""
        return SnapshotReader(self)

    @classmethod
    def decode(cls, value: object, revision: int, compact_revision: int) -> MVCCStore:
        """Rebuild a store from `encode()`; raises `_wire.WireError` when the data is
        not a store this version could have written."""
        if revision < 1 or not 0 <= compact_revision <= revision:
            raise _wire.WireError("revision counters out of order")
        store = cls()
        store.revision = revision
        store.compact_revision = compact_revision
        last_key: bytes | None = None
        for item in _wire.array(value, "keys"):
            key_field, versions = _wire.array(item, "key history", 2)
            key = _wire.blob(key_field, "key")
            if last_key is not None and key <= last_key:
                raise _wire.WireError("keys out of order")
            last_key = key
            history = _decode_history(key, _wire.array(versions, "versions"), revision)
            store._keys[key] = history
            store.live_keys += history.latest() is not None
            store.size_bytes += sum(version_bytes(key, kv.value) for kv in history.kvs)
        return store


class SnapshotReader:
    """The store as of one revision, encoded a few keys at a time (see the module
    docstring). `close()` it when done; until then compaction copies what it cuts."""

    def __init__(self, store: MVCCStore) -> None:
        self.revision = store.revision
        self.compact_revision = store.compact_revision
        self.keys: list[bytes] = list(store._keys.keys())
        self._store = store
        self._preserved: dict[bytes, list[KeyValue]] = {}
        store._readers.add(self)

    def preserve(self, key: bytes, history: _History) -> None:
        """Called by compaction before it shortens `history` in place."""
        if key not in self._preserved:
            self._preserved[key] = list(history.kvs)

    def encode(self, start: int, stop: int) -> list[EncodedKey]:
        """The encoded keys `keys[start:stop]`, each with its versions up to the
        reader's revision, exactly as `MVCCStore.encode()` gave them then."""
        histories = self._store._keys
        encoded = []
        for key in self.keys[start:stop]:
            kvs = self._preserved.get(key)
            if kvs is None:
                kvs = histories[key].kvs
            end = len(kvs)
            while kvs[end - 1].mod_revision > self.revision:
                end -= 1
            encoded.append(_encode_versions(key, kvs[:end]))
        return encoded

    def close(self) -> None:
        self._store._readers.discard(self)
        self._preserved.clear()


def _decode_history(key: bytes, versions: list[Any], revision: int) -> _History:
    if not versions:
        raise _wire.WireError("a key without versions")
    history = _History(key)
    for item in versions:
        mod, create, version, lease, value = _wire.array(item, "version", 5)
        kv = KeyValue(
            key,
            _wire.blob(value, "value"),
            _wire.uint(create, "create revision"),
            _wire.uint(mod, "mod revision"),
            _wire.uint(version, "version"),
            _wire.uint(lease, "lease"),
        )
        if not 1 < kv.mod_revision <= revision:
            raise _wire.WireError(f"mod revision {kv.mod_revision} outside (1, {revision}]")
        if history.revs and history.revs[-1] >= kv.mod_revision:
            raise _wire.WireError("versions out of order")
        if kv.version == 0 and (kv.value or kv.lease or kv.create_revision):
            raise _wire.WireError("a tombstone with a value, lease or create revision")
        if kv.version != 0 and not 1 < kv.create_revision <= kv.mod_revision:
            raise _wire.WireError("create revision after mod revision")
        history.revs.append(kv.mod_revision)
        history.kvs.append(kv)
    return history
