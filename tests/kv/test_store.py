"""Puts, gets, ranges, deletes, revisions and compaction through `apply()`."""

from __future__ import annotations

import pytest

from accord.invariant import InvariantError
from accord.kv import (
    Compact,
    Compacted,
    CompactResult,
    DeleteRange,
    DeleteResult,
    ErrorResult,
    EventType,
    FutureRevision,
    Get,
    GetResult,
    InvalidRequest,
    KeyValue,
    KVLimits,
    KVStateMachine,
    LimitExceeded,
    NoopResult,
    Put,
    PutResult,
    QuotaExceeded,
    Range,
    RangeResult,
    prefix_end,
)
from accord.kv.limits import version_bytes

from .helpers import Driver


def kv(key: bytes, value: bytes, create: int, mod: int, version: int, lease: int = 0) -> KeyValue:
    return KeyValue(key, value, create, mod, version, lease)


def test_an_empty_store_is_at_revision_1() -> None:
    machine = KVStateMachine()
    assert (machine.revision, machine.compact_revision, machine.applied_index) == (1, 0, 0)
    assert machine.get(b"k") == GetResult(1, None)
    assert machine.range(b"", b"\x00") == RangeResult(1, (), 0, False)


def test_put_creates_and_updates_versions() -> None:
    d = Driver()
    result, events = d.send(Put(b"k", b"v1"))
    assert result == PutResult(2, None)
    assert [e.type for e in events] == [EventType.PUT]
    assert events[0].kv == kv(b"k", b"v1", 2, 2, 1) and events[0].prev_kv is None
    assert d(Put(b"k", b"v2", prev_kv=True)) == PutResult(3, kv(b"k", b"v1", 2, 2, 1))
    assert d(Put(b"k", b"v3")) == PutResult(4, None), "prev_kv only when asked"
    assert d.machine.get(b"k") == GetResult(4, kv(b"k", b"v3", 2, 4, 3))
    assert d.machine.revision == 4 and d.machine.applied_index == 3


def test_get_at_a_revision_sees_history_including_deletions() -> None:
    d = Driver()
    d(Put(b"k", b"v1"))  # 2
    d(Put(b"k", b"v2"))  # 3
    d(DeleteRange(b"k"))  # 4
    d(Put(b"k", b"v3"))  # 5: recreated, version restarts
    m = d.machine
    assert m.get(b"k", 1).kv is None
    assert m.get(b"k", 2).kv == kv(b"k", b"v1", 2, 2, 1)
    assert m.get(b"k", 3).kv == kv(b"k", b"v2", 2, 3, 2)
    assert m.get(b"k", 4) == GetResult(5, None)
    assert m.get(b"k", 5).kv == kv(b"k", b"v3", 5, 5, 1)
    assert d(Get(b"k", 3)) == GetResult(5, kv(b"k", b"v2", 2, 3, 2))


def test_reads_of_future_revisions_fail() -> None:
    d = Driver()
    d(Put(b"k", b"v"))
    with pytest.raises(FutureRevision) as info:
        d.machine.get(b"k", 3)
    assert (info.value.revision, info.value.current_revision) == (3, 2)
    error = d.error(Range(b"a", b"z", revision=9))
    assert error.code == "future_revision" and error.details == (9, 2)
    assert isinstance(error.exception(), FutureRevision)


def test_range_conventions() -> None:
    d = Driver()
    for key in [b"a", b"ab", b"abc", b"b", b"\xff", b"\xff\xff"]:
        d(Put(key, key.upper()))
    m = d.machine

    def keys(key: bytes, end: bytes = b"", **kw: int) -> list[bytes]:
        return [item.key for item in m.range(key, end, **kw).kvs]  # type: ignore[arg-type]

    assert keys(b"ab") == [b"ab"], "an empty range end is a single key"
    assert keys(b"a", b"b") == [b"a", b"ab", b"abc"]
    assert keys(b"ab", b"\x00") == [b"ab", b"abc", b"b", b"\xff", b"\xff\xff"]
    assert keys(b"", b"\x00") == [b"a", b"ab", b"abc", b"b", b"\xff", b"\xff\xff"]
    assert keys(b"b", b"a") == [], "an end before the key is an empty range"
    assert keys(b"a", prefix_end(b"a")) == [b"a", b"ab", b"abc"]
    assert keys(b"\xff", prefix_end(b"\xff")) == [b"\xff", b"\xff\xff"]
    assert keys(b"zz") == []


def test_prefix_end() -> None:
    assert prefix_end(b"a") == b"b"
    assert prefix_end(b"a\xff") == b"b"
    assert prefix_end(b"ab") == b"ac"
    assert prefix_end(b"\xff\xff") == b"\x00"
    assert prefix_end(b"") == b"\x00"


def test_range_limit_count_and_more() -> None:
    d = Driver()
    for key in [b"a", b"b", b"c", b"d"]:
        d(Put(key, b"v"))
    d(DeleteRange(b"b"))
    m = d.machine
    limited = m.range(b"a", b"\x00", limit=2)
    assert [item.key for item in limited.kvs] == [b"a", b"c"]
    assert (limited.count, limited.more) == (3, True)
    assert m.range(b"a", b"\x00", limit=3).more is False
    assert m.range(b"a", b"\x00", count_only=True) == RangeResult(6, (), 3, False)
    assert m.range(b"a", b"\x00", revision=3).count == 2
    assert d(Range(b"a", b"\x00", limit=1)) == RangeResult(6, (m.get(b"a").kv,), 3, True)  # type: ignore[arg-type]


def test_delete_single_key_and_range() -> None:
    d = Driver()
    for key in [b"a", b"b", b"c"]:
        d(Put(key, b"v"))
    result, events = d.send(DeleteRange(b"a", b"c", prev_kv=True))
    assert result == DeleteResult(5, 2, (kv(b"a", b"v", 2, 2, 1), kv(b"b", b"v", 3, 3, 1)))
    assert [(e.type, e.kv.key, e.kv.version, e.kv.mod_revision) for e in events] == [
        (EventType.DELETE, b"a", 0, 5),
        (EventType.DELETE, b"b", 0, 5),
    ]
    assert events[0].prev_kv == kv(b"a", b"v", 2, 2, 1)
    assert d(DeleteRange(b"c")) == DeleteResult(6, 1, ())


def test_deleting_nothing_does_not_move_the_revision() -> None:
    d = Driver()
    d(Put(b"a", b"v"))
    result, events = d.send(DeleteRange(b"x"))
    assert result == DeleteResult(2, 0, ()) and events == []
    d(DeleteRange(b"a"))
    assert d(DeleteRange(b"a")) == DeleteResult(3, 0, ()), "deleting a tombstone is nothing"
    assert d.machine.revision == 3


def test_reads_through_the_log_do_not_move_the_revision() -> None:
    d = Driver()
    d(Put(b"a", b"v"))
    assert d.send(Get(b"a")) == (GetResult(2, kv(b"a", b"v", 2, 2, 1)), [])
    assert d.machine.revision == 2


def test_compaction_keeps_what_reads_at_or_after_it_see() -> None:
    d = Driver()
    d(Put(b"a", b"1"))  # 2
    d(Put(b"a", b"2"))  # 3
    d(Put(b"b", b"1"))  # 4
    d(DeleteRange(b"b"))  # 5
    d(Put(b"a", b"3"))  # 6
    m = d.machine
    before = {rev: m.range(b"", b"\x00", revision=rev) for rev in range(5, 7)}
    size_before = m.size_bytes
    assert d(Compact(5)) == CompactResult(6, 5)
    assert m.compact_revision == 5
    for rev, result in before.items():
        assert m.range(b"", b"\x00", revision=rev) == result
    dropped = 2 * version_bytes(b"a", b"1") + version_bytes(b"b", b"")  # a@2, b@4, b@5
    assert m.size_bytes == size_before - dropped
    with pytest.raises(Compacted) as info:
        m.get(b"a", 4)
    assert (info.value.revision, info.value.compact_revision) == (4, 5)
    assert d.error(Get(b"a", 2)).details == (2, 5)


def test_compaction_errors() -> None:
    d = Driver()
    d(Put(b"a", b"1"))
    d(Put(b"a", b"2"))
    assert d.error(Compact(4)).code == "future_revision"
    assert d(Compact(3)) == CompactResult(3, 3)
    assert d.error(Compact(3)).code == "compacted"
    assert d.error(Compact(2)).details == (2, 3)


def test_compacting_a_deleted_key_forgets_it_entirely() -> None:
    d = Driver()
    d(Put(b"a", b"1"))
    d(DeleteRange(b"a"))
    d(Compact(3))
    assert d.machine.size_bytes == 0, "no version (not even the tombstone) is kept"
    assert d.machine.range(b"", b"\x00", revision=3).count == 0


def test_store_quota_refuses_puts_but_not_deletes_or_compaction() -> None:
    quota = 3 * version_bytes(b"k", b"vv")
    d = Driver(limits=KVLimits(store_bytes_max=quota))
    d(Put(b"k", b"vv"))
    d(Put(b"k", b"vv"))
    d(Put(b"k", b"vv"))
    error = d.error(Put(b"k", b"vv"))
    assert error.code == "quota_exceeded"
    assert isinstance(error.exception(), QuotaExceeded)
    assert d.machine.revision == 4, "nothing applied"
    assert isinstance(d(DeleteRange(b"k")), DeleteResult)
    assert isinstance(d(Compact(5)), CompactResult)
    assert d.machine.size_bytes == 0
    assert d(Put(b"k", b"vv")) == PutResult(6, None)


def test_limits_become_error_results() -> None:
    d = Driver(limits=KVLimits(key_bytes_max=2, value_bytes_max=2))
    error = d.error(Put(b"abc", b""))
    assert (error.code, error.details) == ("limit_exceeded", ("key bytes", 3, 2))
    assert isinstance(error.exception(), LimitExceeded)
    assert d.error(Put(b"a", b"abc")).details == ("value bytes", 3, 2)
    assert d.error(Put(b"", b"")).code == "invalid_request"
    assert d.machine.revision == 1
    with pytest.raises(InvalidRequest):
        d.machine.get(b"")
    with pytest.raises(LimitExceeded):
        d.machine.range(b"abc")


def test_empty_entries_and_garbage_are_answered_not_raised() -> None:
    d = Driver()
    assert d.raw(b"") == (NoopResult(), [])
    result, events = d.raw(b"\x93garbage")
    assert isinstance(result, ErrorResult) and result.code == "bad_command" and events == []
    assert d.machine.applied_index == 2 and d.machine.revision == 1


def test_applying_an_index_twice_is_a_bug() -> None:
    d = Driver()
    d(Put(b"a", b"1"))
    with pytest.raises(InvariantError):
        d.machine.apply(1, b"")
