"""`WatchHub`: watchers on keys and ranges, fed from history and from `apply()`.

Theory of operation
-------------------
The hub is local to one node (watchers are not replicated) and as pure as the state
machine: the runtime registers watchers, feeds it the events each `apply()` returns,
and takes each watcher's queued events to stream them to its client.

Each watcher has a cursor, `next_revision`: every matching event below it has been
queued exactly once, none at or above it. A watcher is in one of two modes:

- *catching up* (its cursor is at or below the machine's revision): `take()` reads
  the next events from the MVCC history (`KVStateMachine.history`), whole revisions
  at a time and at most `queue_events_max` of them, and moves the cursor past them.
  Live events fed meanwhile are ignored: the history already holds them.
- *synced* (its cursor is past the machine's revision): `feed()` queues the events
  of each new revision at or above its cursor and moves the cursor past it. Events
  below the cursor are skipped, so a revision read from history and later fed live
  is still delivered once.

A watcher registered without a start revision is synced from the start (it sees
only what is applied after it). So the runtime's only duties are to feed every
`apply()`'s events in log order and to call `resync()` after `restore()` (a
snapshot jumps the state without events; every watcher then catches up from
history).

Bounds: at most `watchers_max` watchers, and `watchers_per_user_max` of one owner
(the user who opened them; `""` for every anonymous client), one more raises
`TooManyWatches`; and at most `queue_events_max` untaken events, `response_bytes_max`
worth (the machine's limit, as `event_bytes()` counts), per watcher; a catch-up reads
no more than that from history at once. A revision whose matching events alone are
over the byte bound ends the watcher with `ResponseTooLarge`, live or from history. A
synced watcher whose next revision would overflow its queue is cancelled (the consumer
fell behind, as etcd cancels slow watchers); so is one whose next revision alone has
more matching events than a queue holds, and one whose cursor falls behind a
compaction (`Compacted`). A cancelled watcher's `take()` returns the events still
queued together with the reason (`WatchUpdate.cancelled`), after which the watcher is
gone; the reason names the revision a new watcher should resume from.

Events of one revision arrive in key order, in both modes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from accord.invariant import invariant
from accord.kv.commands import Range
from accord.kv.errors import (
    Compacted,
    InvalidRequest,
    KVError,
    ResponseTooLarge,
    TooManyWatches,
    WatchCancelled,
    WatchNotFound,
)
from accord.kv.limits import WATCH_QUEUE_EVENTS_MAX, WATCHERS_MAX, WATCHERS_PER_USER_MAX
from accord.kv.machine import KVStateMachine
from accord.kv.mvcc import event_bytes
from accord.kv.types import Event, in_range
from accord.kv.validate import check_command


@dataclass(frozen=True, slots=True)
class WatchUpdate:
    """What `take()` hands out for one watcher."""

    watch_id: int
    events: tuple[Event, ...]
    cancelled: KVError | None = None
    """Set on a watcher's last update: why it ended (`Compacted` or `WatchCancelled`)."""


class _Watcher:
    __slots__ = (
        "error",
        "key",
        "next_revision",
        "queue",
        "queue_bytes",
        "range_end",
        "synced",
        "watch_id",
    )

    def __init__(
        self, watch_id: int, key: bytes, range_end: bytes, next_revision: int, synced: bool
    ) -> None:
        self.watch_id = watch_id
        self.key = key
        self.range_end = range_end
        self.next_revision = next_revision
        self.synced = synced
        self.queue: list[Event] = []
        self.queue_bytes = 0
        """What the queued events cost, as `event_bytes()` counts (catch-up chunks and
        live events alike stay within `queue_bytes_max`)."""
        self.error: KVError | None = None


class WatchHub:
    """Watchers over one `KVStateMachine`; see the module docstring."""

    def __init__(
        self,
        machine: KVStateMachine,
        *,
        watchers_max: int = WATCHERS_MAX,
        watchers_per_user_max: int = WATCHERS_PER_USER_MAX,
        queue_events_max: int = WATCH_QUEUE_EVENTS_MAX,
    ) -> None:
        invariant(watchers_max >= 1 and queue_events_max >= 1, "watch bounds must be positive")
        self._machine = machine
        self._watchers_max = watchers_max
        self._per_user_max = watchers_per_user_max
        self._owner_of: dict[int, str] = {}
        self._per_owner: dict[str, int] = {}
        self._queue_events_max = queue_events_max
        self._queue_bytes_max = machine.limits.response_bytes_max
        self._watchers: dict[int, _Watcher] = {}
        self._by_key: dict[bytes, dict[int, _Watcher]] = {}  # single-key watchers
        self._by_range: dict[int, _Watcher] = {}  # range watchers
        self._next_id = 1

    def __len__(self) -> int:
        return len(self._watchers)

    def watch(
        self, key: bytes, range_end: bytes = b"", start_revision: int = 0, owner: str = ""
    ) -> int:
        """Register a watcher on the key or range (etcd conventions, see `types`) from
        `start_revision` (0: from the next revision applied). Returns its id.

        Raises `Compacted` if `start_revision <= compact_revision` (those events are
        gone), `TooManyWatches` if the hub or the owner's share is full, and
        `InvalidRequest` / `LimitExceeded` for a bad key.
        """
        check_command(Range(key, range_end), self._machine.limits)
        if len(self._watchers) >= self._watchers_max:
            raise TooManyWatches("watchers", len(self._watchers) + 1, self._watchers_max)
        owned = self._per_owner.get(owner, 0)
        if owned >= self._per_user_max:
            raise TooManyWatches(f"watchers of user {owner!r}", owned + 1, self._per_user_max)
        machine = self._machine
        if start_revision < 0:
            raise InvalidRequest(f"start revision {start_revision} is negative")
        if start_revision == 0:
            start_revision = machine.revision + 1
        elif start_revision <= machine.compact_revision:
            raise Compacted(start_revision, machine.compact_revision)
        watch_id = self._next_id
        self._next_id += 1
        watcher = _Watcher(
            watch_id, key, range_end, start_revision, start_revision > machine.revision
        )
        self._watchers[watch_id] = watcher
        self._owner_of[watch_id] = owner
        self._per_owner[owner] = owned + 1
        if range_end:
            self._by_range[watch_id] = watcher
        else:
            self._by_key.setdefault(key, {})[watch_id] = watcher
        return watch_id

    def cancel(self, watch_id: int) -> bool:
        """Remove the watcher; whether it existed."""
        watcher = self._watchers.get(watch_id)
        if watcher is None:
            return False
        self._remove(watcher)
        return True

    def _remove(self, watcher: _Watcher) -> None:
        del self._watchers[watcher.watch_id]
        owner = self._owner_of.pop(watcher.watch_id)
        left = self._per_owner[owner] - 1
        if left:
            self._per_owner[owner] = left
        else:
            del self._per_owner[owner]
        if watcher.range_end:
            del self._by_range[watcher.watch_id]
            return
        same_key = self._by_key[watcher.key]
        del same_key[watcher.watch_id]
        if not same_key:
            del self._by_key[watcher.key]

    def resync(self) -> None:
        """After `KVStateMachine.restore()`: every watcher catches up from history."""
        for watcher in self._watchers.values():
            watcher.synced = False

    def ready(self) -> list[int]:
        """Ids of the watchers `take()` has something for (events, history to catch
        up on, or an end), ascending."""
        return sorted(
            w.watch_id for w in self._watchers.values() if w.queue or w.error or not w.synced
        )

    def pending(self, watch_id: int) -> bool:
        """Whether `take(watch_id)` has something (cheap: looks at that watcher only)."""
        w = self._watchers.get(watch_id)
        return w is not None and bool(w.queue or w.error or not w.synced)

    # --- live events -----------------------------------------------------------------
    def feed(self, events: Sequence[Event]) -> list[int]:
        """Queue the events an `apply()` returned (or several, concatenated in log
        order) for the synced watchers they match. Returns the ids of the watchers
        that got events or were cancelled, ascending."""
        touched: set[int] = set()
        start = 0
        while start < len(events):
            revision = events[start].revision
            end = start + 1
            while end < len(events) and events[end].revision == revision:
                end += 1
            invariant(end == len(events) or events[end].revision > revision, "events out of order")
            self._feed_revision(revision, events[start:end], touched)
            start = end
        return sorted(touched)

    def _feed_revision(self, revision: int, events: Sequence[Event], touched: set[int]) -> None:
        matches: dict[int, list[Event]] = {}
        for event in events:
            key = event.kv.key
            for watcher in self._by_key.get(key, {}).values():
                matches.setdefault(watcher.watch_id, []).append(event)
            for watcher in self._by_range.values():
                if in_range(key, watcher.key, watcher.range_end):
                    matches.setdefault(watcher.watch_id, []).append(event)
        for watch_id, matched in matches.items():
            watcher = self._watchers[watch_id]
            if not watcher.synced or watcher.error or revision < watcher.next_revision:
                continue  # catching up (history has it), ended, or already delivered
            touched.add(watch_id)
            matched_bytes = sum(event_bytes(e) for e in matched)
            queued_bytes = watcher.queue_bytes + matched_bytes
            if len(watcher.queue) + len(matched) > self._queue_events_max:
                reason = (
                    f"the consumer fell behind: {len(watcher.queue)} events queued and "
                    f"{len(matched)} more at revision {revision}, over the limit of "
                    f"{self._queue_events_max}"
                )
                watcher.error = WatchCancelled(watch_id, reason, revision)
                continue
            if matched_bytes > self._queue_bytes_max:  # no reader could take it whole
                watcher.error = ResponseTooLarge(matched_bytes, self._queue_bytes_max, 0, 0)
                continue
            if queued_bytes > self._queue_bytes_max:
                reason = (
                    f"the consumer fell behind: {queued_bytes} bytes of events queued at "
                    f"revision {revision}, over the limit of {self._queue_bytes_max}"
                )
                watcher.error = WatchCancelled(watch_id, reason, revision)
                continue
            watcher.queue += matched
            watcher.queue_bytes = queued_bytes
            watcher.next_revision = revision + 1

    # --- handing events out ------------------------------------------------------------
    def take(self, watch_id: int) -> WatchUpdate:
        """The watcher's queued events (reading more from history first if it is
        catching up and has none queued). An update with `cancelled` set is the
        watcher's last. Raises `WatchNotFound` for an unknown id."""
        watcher = self._watchers.get(watch_id)
        if watcher is None:
            raise WatchNotFound(watch_id)
        if not watcher.queue and watcher.error is None and not watcher.synced:
            self._catch_up(watcher)
        events = tuple(watcher.queue)
        watcher.queue.clear()
        watcher.queue_bytes = 0
        if watcher.error is not None:
            self._remove(watcher)
        return WatchUpdate(watch_id, events, watcher.error)

    def _catch_up(self, watcher: _Watcher) -> None:
        machine = self._machine
        if watcher.next_revision > machine.revision:
            watcher.synced = True
            return
        try:
            events, next_revision = machine.history(
                watcher.key, watcher.range_end, watcher.next_revision, self._queue_events_max
            )
        except (Compacted, ResponseTooLarge) as exc:
            watcher.error = exc
            return
        if not events and next_revision <= machine.revision:
            reason = (
                f"revision {next_revision} has more events for this watcher than the "
                f"limit of {self._queue_events_max}"
            )
            watcher.error = WatchCancelled(watcher.watch_id, reason, next_revision)
            return
        watcher.queue += events
        watcher.queue_bytes = sum(event_bytes(e) for e in events)
        watcher.next_revision = next_revision
        watcher.synced = next_revision > machine.revision
