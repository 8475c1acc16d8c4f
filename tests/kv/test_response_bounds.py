"""Bounded work per request: response bytes and keys scanned, counted while a range,
a transaction or a watch's catch-up is built; pagination that continues after a refusal."""

from __future__ import annotations

import pytest

from accord.kv import (
    ALL_KEYS_END,
    ErrorResult,
    Get,
    KVLimits,
    KVStateMachine,
    LimitExceeded,
    Put,
    Range,
    RangeResult,
    ResponseTooLarge,
    Txn,
    TxnResult,
    WatchCancelled,
    WatchHub,
    check_command,
)
from accord.kv.limits import (
    MIB,
    RESPONSE_OP_OVERHEAD_BYTES,
    VALUE_BYTES_MAX,
    response_kv_bytes,
)
from accord.kv.mvcc import event_bytes

from .helpers import Driver

VALUE = b"v" * 1000
KV_BYTES = response_kv_bytes(b"k0", VALUE)


def store(limits: KVLimits, count: int = 5, value: bytes = VALUE) -> Driver:
    driver = Driver(limits=limits)
    for i in range(count):
        driver(Put(f"k{i}".encode(), value))
    return driver


def bound_for(kvs: int, ops: int = 1) -> int:
    return ops * RESPONSE_OP_OVERHEAD_BYTES + kvs * KV_BYTES


def everything(limit: int = 0, count_only: bool = False, key: bytes = b"k") -> Range:
    return Range(key, ALL_KEYS_END, limit=limit, count_only=count_only)


def test_a_range_exactly_at_the_bound_is_served_and_one_byte_more_is_refused() -> None:
    fits = store(KVLimits(response_bytes_max=bound_for(5))).machine
    assert len(fits.range(b"k", ALL_KEYS_END).kvs) == 5
    tight = store(KVLimits(response_bytes_max=bound_for(5) - 1)).machine
    with pytest.raises(ResponseTooLarge) as refused:
        tight.range(b"k", ALL_KEYS_END)
    assert (refused.value.keys, refused.value.op) == (4, 0)
    assert refused.value.size_bytes == bound_for(5) > refused.value.limit_bytes
    assert "limit of at most 4" in str(refused.value)


def test_one_megabyte_values_under_the_default_bound() -> None:
    value = b"x" * VALUE_BYTES_MAX
    machine = store(KVLimits(), count=20, value=value).machine
    with pytest.raises(ResponseTooLarge) as refused:
        machine.range(b"k", ALL_KEYS_END)
    fit = (16 * MIB - RESPONSE_OP_OVERHEAD_BYTES) // response_kv_bytes(b"k00", value)
    assert refused.value.keys == fit == 15
    assert len(machine.range(b"k", ALL_KEYS_END, limit=fit).kvs) == fit


def test_pages_from_the_refusal_return_every_key_exactly_once() -> None:
    driver = Driver(limits=KVLimits(response_bytes_max=bound_for(4)))
    keys = [f"k{i:03}".encode() for i in range(37)]
    for i, key in enumerate(keys):
        driver(Put(key, b"v" * (100 + 97 * (i % 11))))  # sizes vary: pages do too
    machine = driver.machine
    seen: list[bytes] = []
    start, limit, pages = b"k", 0, 0
    while True:
        try:
            page = machine.range(start, ALL_KEYS_END, limit=limit)
        except ResponseTooLarge as e:
            assert e.keys >= 1
            limit = e.keys
            continue
        pages += 1
        kv_bytes = sum(response_kv_bytes(kv.key, kv.value) for kv in page.kvs)
        assert RESPONSE_OP_OVERHEAD_BYTES + kv_bytes <= bound_for(4)
        seen += [kv.key for kv in page.kvs]
        if not page.more:
            break
        start, limit = page.kvs[-1].key + b"\0", 0
    assert seen == keys and pages > 1


def test_a_transaction_is_charged_the_sum_of_its_ops() -> None:
    driver = store(KVLimits(response_bytes_max=bound_for(5, ops=2)))
    two = Txn((), (everything(limit=3), everything(limit=2)), ())
    result = driver(two)
    assert isinstance(result, TxnResult) and len(result.responses) == 2
    error = driver.error(Txn((), (everything(limit=3), everything(limit=3)), ()))
    assert error.code == "response_too_large"
    assert error.details[2:] == (1, 2)  # op 1, after 2 of its keys


def test_gets_in_a_transaction_are_charged_too() -> None:
    driver = store(KVLimits(response_bytes_max=bound_for(5, ops=6)))
    error = driver.error(Txn((), tuple(Get(f"k{i % 5}".encode()) for i in range(6)), ()))
    assert error.code == "response_too_large" and error.details[2] == 5


def test_a_refused_writing_transaction_writes_nothing() -> None:
    driver = store(KVLimits(response_bytes_max=bound_for(5, ops=2)))
    revision = driver.machine.revision
    grow = Txn((), (Put(b"k9", VALUE), everything()), ())
    error = driver.error(grow)  # the range would see six keys with the put
    assert error.code == "response_too_large"
    assert driver.machine.revision == revision and driver.machine.get(b"k9").kv is None
    ok = driver(Txn((), (Put(b"k9", VALUE), everything(limit=4)), ()))
    assert isinstance(ok, ErrorResult) is False and driver.machine.get(b"k9").kv is not None


def test_count_only_ranges_cost_no_value_bytes() -> None:
    machine = store(KVLimits(response_bytes_max=RESPONSE_OP_OVERHEAD_BYTES)).machine
    assert machine.range(b"k", ALL_KEYS_END, count_only=True).count == 5


def test_keys_scanned_are_bounded_even_for_counts_and_small_limits() -> None:
    machine = store(KVLimits(read_keys_scanned_max=5)).machine
    assert machine.range(b"k", ALL_KEYS_END, count_only=True).count == 5
    bigger = store(KVLimits(read_keys_scanned_max=4)).machine
    for op in (everything(count_only=True), everything(limit=1)):
        with pytest.raises(LimitExceeded, match="keys scanned"):
            bigger.range(op.key, op.range_end, limit=op.limit, count_only=op.count_only)


def test_keys_scanned_are_summed_over_a_transaction() -> None:
    driver = store(KVLimits(read_keys_scanned_max=9))
    error = driver.error(Txn((), (everything(count_only=True), everything(limit=1)), ()))
    assert error.code == "limit_exceeded" and "keys scanned" in error.message


def test_range_ops_per_transaction_are_bounded() -> None:
    limits = KVLimits(txn_range_ops_max=2)
    check_command(Txn((), (everything(), everything(), Get(b"k")), ()), limits)
    with pytest.raises(LimitExceeded, match="range ops"):
        check_command(Txn((), (everything(),) * 3, ()), limits)


def test_a_watch_catches_up_in_chunks_within_the_bound() -> None:
    bound = 3 * event_bytes_of_put()
    driver = store(KVLimits(response_bytes_max=bound), count=10)
    hub = WatchHub(driver.machine)
    watch_id = hub.watch(b"k", ALL_KEYS_END, start_revision=2)
    keys: list[bytes] = []
    while hub.pending(watch_id):
        update = hub.take(watch_id)
        assert update.cancelled is None
        assert sum(event_bytes(e) for e in update.events) <= bound
        keys += [e.kv.key for e in update.events]
    assert keys == [f"k{i}".encode() for i in range(10)]


def test_a_revision_over_the_bound_ends_a_catching_up_watch_with_the_code() -> None:
    driver = Driver(limits=KVLimits(response_bytes_max=2 * event_bytes_of_put()))
    driver(Txn((), tuple(Put(f"k{i}".encode(), VALUE) for i in range(3)), ()))
    hub = WatchHub(driver.machine)
    watch_id = hub.watch(b"k", ALL_KEYS_END, start_revision=2)
    update = hub.take(watch_id)
    assert update.events == () and isinstance(update.cancelled, ResponseTooLarge)


def test_a_slow_watcher_is_cancelled_when_its_queued_bytes_pass_the_bound() -> None:
    driver = Driver(limits=KVLimits(response_bytes_max=3 * event_bytes_of_put()))
    hub = WatchHub(driver.machine)
    watch_id = hub.watch(b"k", ALL_KEYS_END)
    for i in range(4):
        hub.feed(driver.send(Put(f"k{i}".encode(), VALUE))[1])
    update = hub.take(watch_id)
    assert len(update.events) == 3
    assert isinstance(update.cancelled, WatchCancelled) and "bytes" in str(update.cancelled)
    assert update.cancelled.resume_revision == 5


def event_bytes_of_put() -> int:
    machine = KVStateMachine()
    driver = Driver(machine)
    _, events = driver.send(Put(b"k0", VALUE))
    return event_bytes(events[0])


def test_a_range_result_is_what_the_budget_allowed() -> None:
    machine = store(KVLimits(response_bytes_max=bound_for(2))).machine
    page = machine.range(b"k", ALL_KEYS_END, limit=2)
    assert isinstance(page, RangeResult) and page.more and page.count == 5


def test_a_live_revision_over_the_bound_ends_a_watch_with_the_code() -> None:
    driver = Driver(limits=KVLimits(response_bytes_max=2 * event_bytes_of_put()))
    hub = WatchHub(driver.machine)
    watch_id = hub.watch(b"k", ALL_KEYS_END)
    many = Txn((), tuple(Put(f"k{i}".encode(), VALUE) for i in range(3)), ())
    hub.feed(driver.send(many)[1])
    update = hub.take(watch_id)
    assert update.events == () and isinstance(update.cancelled, ResponseTooLarge)
    assert not hub.pending(watch_id)
