"""The watch hub: history replay, then live events exactly once and in order; bounds."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from accord.kv import (
    Compact,
    Compacted,
    DeleteRange,
    Event,
    EventType,
    InvalidRequest,
    KVStateMachine,
    LimitExceeded,
    Put,
    TooManyWatches,
    Txn,
    WatchCancelled,
    WatchHub,
    WatchNotFound,
    WatchUpdate,
    prefix_end,
)
from accord.kv.types import in_range

from .helpers import Driver
from .strategies import deletes, keys, puts, range_ends, txns


class Runtime:
    """Applies commands and feeds every apply's events to the hub, as the node does."""

    def __init__(self, **bounds: int) -> None:
        self.driver = Driver()
        self.machine = self.driver.machine
        self.hub = WatchHub(self.machine, **bounds)
        self.log: list[Event] = []

    def __call__(self, command: object, *, feed: bool = True) -> list[int]:
        _, events = self.driver.send(command)  # type: ignore[arg-type]
        self.log += events
        return self.hub.feed(events) if feed else []

    def drain(self, watch_id: int) -> WatchUpdate:
        """Take until nothing is left (or the watcher ends); all events at once."""
        got: list[Event] = []
        while True:
            update = self.hub.take(watch_id)
            got += update.events
            if update.cancelled is not None or not update.events:
                return WatchUpdate(watch_id, tuple(got), update.cancelled)


def keys_of(update: WatchUpdate) -> list[tuple[int, bytes, EventType]]:
    return [(e.revision, e.kv.key, e.type) for e in update.events]


def test_a_watcher_from_now_sees_only_new_events() -> None:
    rt = Runtime()
    rt(Put(b"a", b"old"))
    watch_id = rt.hub.watch(b"a")
    assert rt.hub.take(watch_id) == WatchUpdate(watch_id, ())
    assert rt(Put(b"a", b"new")) == [watch_id]
    assert rt(Put(b"b", b"other")) == []
    update = rt.hub.take(watch_id)
    assert keys_of(update) == [(3, b"a", EventType.PUT)]
    assert update.events[0].prev_kv.value == b"old"  # type: ignore[union-attr]
    assert rt.hub.take(watch_id).events == ()


def test_history_then_live_events_exactly_once_in_order() -> None:
    rt = Runtime()
    rt(Put(b"p/1", b"x"))  # 2
    rt(Put(b"q", b"x"))  # 3
    rt(Txn(success=(Put(b"p/3", b"x"), Put(b"p/2", b"x"))))  # 4
    rt(DeleteRange(b"p/1"))  # 5
    watch_id = rt.hub.watch(b"p/", prefix_end(b"p/"), start_revision=2)
    assert rt.hub.ready() == [watch_id], "it has history to catch up on"
    # the runtime applies one more entry but feeds it only after the watcher caught up
    rt(Put(b"p/4", b"x"), feed=False)  # 6
    update = rt.drain(watch_id)
    assert keys_of(update) == [
        (2, b"p/1", EventType.PUT),
        (4, b"p/2", EventType.PUT),
        (4, b"p/3", EventType.PUT),
        (5, b"p/1", EventType.DELETE),
        (6, b"p/4", EventType.PUT),
    ]
    assert rt.hub.feed(rt.log[-1:]) == [], "revision 6 came from history: not again"
    rt(Put(b"p/5", b"x"))  # 7
    assert keys_of(rt.hub.take(watch_id)) == [(7, b"p/5", EventType.PUT)]
    assert update.events == tuple(e for e in rt.log[:-1] if e.kv.key.startswith(b"p/"))


def test_a_watcher_from_a_future_revision_waits_for_it() -> None:
    rt = Runtime()
    watch_id = rt.hub.watch(b"k", start_revision=4)
    rt(Put(b"k", b"2"))
    rt(Put(b"k", b"3"))
    rt(Put(b"k", b"4"))
    assert keys_of(rt.hub.take(watch_id)) == [(4, b"k", EventType.PUT)]


def test_watching_compacted_history_fails_naming_the_compact_revision() -> None:
    rt = Runtime()
    rt(Put(b"k", b"1"))
    rt(Put(b"k", b"2"))
    rt(Compact(3))
    with pytest.raises(Compacted) as info:
        rt.hub.watch(b"k", start_revision=3)
    assert info.value.compact_revision == 3
    watch_id = rt.hub.watch(b"k", start_revision=4)  # the first revision after it: fine
    rt(Put(b"k", b"4"))
    assert keys_of(rt.hub.take(watch_id)) == [(4, b"k", EventType.PUT)]


def test_compaction_overtaking_a_catching_up_watcher_cancels_it() -> None:
    rt = Runtime(queue_events_max=2)
    for i in range(5):
        rt(Put(b"k", str(i).encode()))  # revisions 2..6
    watch_id = rt.hub.watch(b"k", start_revision=2)
    assert [e.revision for e in rt.hub.take(watch_id).events] == [2, 3]
    rt(Compact(5))
    update = rt.hub.take(watch_id)
    assert update.events == ()
    assert isinstance(update.cancelled, Compacted)
    assert (update.cancelled.revision, update.cancelled.compact_revision) == (4, 5)
    with pytest.raises(WatchNotFound):
        rt.hub.take(watch_id)


def test_long_history_is_replayed_in_bounded_batches() -> None:
    rt = Runtime(queue_events_max=3)
    for i in range(10):
        rt(Put(b"k", str(i).encode()))  # revisions 2..11
    watch_id = rt.hub.watch(b"k", start_revision=2)
    batches = []
    while True:
        update = rt.hub.take(watch_id)
        assert update.cancelled is None and len(update.events) <= 3
        if not update.events:
            break
        batches.append([e.revision for e in update.events])
    assert batches == [[2, 3, 4], [5, 6, 7], [8, 9, 10], [11]]


def test_a_slow_consumer_is_cancelled_with_the_revision_to_resume_from() -> None:
    rt = Runtime(queue_events_max=3)
    watch_id = rt.hub.watch(b"a", b"z")
    rt(Put(b"a", b"1"))  # 2
    rt(Txn(success=(Put(b"b", b"1"), Put(b"c", b"1"))))  # 3
    assert rt(Txn(success=(Put(b"d", b"1"), Put(b"e", b"1")))) == [watch_id]  # 4: overflows
    rt(Put(b"f", b"1"))  # 5: ignored, the watcher has ended
    update = rt.hub.take(watch_id)
    assert [e.revision for e in update.events] == [2, 3, 3], "whole revisions only"
    assert isinstance(update.cancelled, WatchCancelled)
    assert update.cancelled.resume_revision == 4
    assert "fell behind" in str(update.cancelled)
    assert len(rt.hub) == 0
    resumed = rt.hub.watch(b"a", b"z", start_revision=4)
    assert [e.kv.key for e in rt.drain(resumed).events] == [b"d", b"e", b"f"]


def test_a_revision_larger_than_the_queue_cancels_a_catching_up_watcher() -> None:
    rt = Runtime(queue_events_max=1)
    rt(Txn(success=(Put(b"a", b"1"), Put(b"b", b"1"))))
    watch_id = rt.hub.watch(b"a", b"z", start_revision=2)
    update = rt.hub.take(watch_id)
    assert isinstance(update.cancelled, WatchCancelled) and update.events == ()
    assert update.cancelled.resume_revision == 2


def test_the_number_of_watchers_is_bounded() -> None:
    rt = Runtime(watchers_max=2)
    first = rt.hub.watch(b"a")
    rt.hub.watch(b"a")
    with pytest.raises(LimitExceeded):
        rt.hub.watch(b"b")
    assert rt.hub.cancel(first) is True
    assert rt.hub.cancel(first) is False
    rt.hub.watch(b"b")


def test_one_owner_holds_a_bounded_share_of_the_watchers() -> None:
    rt = Runtime(watchers_max=10, watchers_per_user_max=2)
    first = rt.hub.watch(b"a", owner="mallory")
    rt.hub.watch(b"a", b"b", owner="mallory")
    with pytest.raises(TooManyWatches, match="mallory"):
        rt.hub.watch(b"b", owner="mallory")
    rt.hub.watch(b"b", owner="alice")  # the others keep theirs
    rt.hub.cancel(first)
    rt.hub.watch(b"b", owner="mallory")


def test_cancel_and_bad_arguments() -> None:
    rt = Runtime()
    watch_id = rt.hub.watch(b"a")
    rt.hub.cancel(watch_id)
    assert rt(Put(b"a", b"1")) == []
    with pytest.raises(WatchNotFound):
        rt.hub.take(watch_id)
    with pytest.raises(InvalidRequest):
        rt.hub.watch(b"")
    with pytest.raises(InvalidRequest):
        rt.hub.watch(b"a", start_revision=-1)


def test_resync_after_restore_catches_up_from_history() -> None:
    rt = Runtime()
    watch_id = rt.hub.watch(b"k")
    rt(Put(b"k", b"1"))  # 2, delivered live
    leader = Driver(KVStateMachine())
    leader(Put(b"k", b"1"))
    leader(Put(b"k", b"2"))  # 3
    leader(Put(b"k", b"3"))  # 4
    rt.machine.restore(leader.machine.snapshot())
    rt.hub.resync()
    assert [e.kv.value for e in rt.drain(watch_id).events] == [b"1", b"2", b"3"]


# --- property: every watcher gets exactly the log's matching events, in order --------

WATCHED = st.one_of(
    st.sampled_from([(b"", b"\x00"), (b"a", b"b"), (b"b", b"\x00"), (b"", b"")]),
    st.tuples(keys, range_ends),
)
KINDS = ["put"] * 8 + ["delete", "txn", "compact", "watch", "watch", "take", "take", "restore"]


@st.composite
def watch_steps(draw: st.DrawFn) -> tuple[Any, ...]:
    kind = draw(st.sampled_from(KINDS))
    if kind == "put":
        return ("apply", draw(puts()))
    if kind == "delete":
        return ("apply", draw(deletes))
    if kind == "txn":
        return ("apply", draw(txns))
    if kind == "compact":
        return ("apply", Compact(draw(st.integers(1, 30))))
    if kind == "watch":
        return ("watch", draw(WATCHED), draw(st.integers(0, 20)))
    if kind == "take":
        return ("take", draw(st.integers(0, 5)))
    return ("restore",)


@given(st.lists(watch_steps(), min_size=10, max_size=80), st.integers(1, 6))
@settings(max_examples=150, deadline=None)
def test_watchers_see_exactly_the_log(steps: list[tuple[Any, ...]], queue_max: int) -> None:
    rt = Runtime(queue_events_max=queue_max)
    watchers: dict[int, tuple[bytes, bytes, int]] = {}
    delivered: dict[int, list[Event]] = {}
    ended: dict[int, object] = {}

    def take(watch_id: int) -> None:
        if watch_id in ended:
            return
        update = rt.hub.take(watch_id)
        delivered[watch_id] += update.events
        if update.cancelled is not None:
            ended[watch_id] = update.cancelled

    for step in steps:
        if step[0] == "apply":
            rt(step[1])
        elif step[0] == "watch":
            _, (key, end), back = step
            start = max(1, rt.machine.revision + 1 - back) if back else 0
            try:
                watch_id = rt.hub.watch(key, end, start)
            except (Compacted, InvalidRequest):
                continue
            watchers[watch_id] = (key, end, start or rt.machine.revision + 1)
            delivered[watch_id] = []
        elif step[0] == "restore":
            rt.machine.restore(rt.machine.snapshot())
            rt.hub.resync()
        elif watchers:
            take(sorted(watchers)[step[1] % len(watchers)])
    for watch_id in watchers:
        while watch_id not in ended and watch_id in rt.hub.ready():
            take(watch_id)
    event("some watcher ended" if ended else "no watcher ended")
    event(f"{sum(map(len, delivered.values())) // 5 * 5}+ events delivered")
    for watch_id, (key, end, start) in watchers.items():
        expected = [e for e in rt.log if e.revision >= start and in_range(e.kv.key, key, end)]
        cause = ended.get(watch_id)
        if isinstance(cause, WatchCancelled):
            expected = [e for e in expected if e.revision < cause.resume_revision]
        elif isinstance(cause, Compacted):
            expected = [e for e in expected if e.revision < cause.revision]
        assert delivered[watch_id] == expected
