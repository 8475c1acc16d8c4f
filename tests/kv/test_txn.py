"""Transactions: compares, branches, one revision, atomicity, etcd's duplicate rule."""

from __future__ import annotations

import pytest

from accord.kv import (
    Compact,
    Compare,
    CompareOp,
    CompareTarget,
    DeleteRange,
    DeleteResult,
    EventType,
    Get,
    GetResult,
    KeyValue,
    LeaseGrant,
    Put,
    PutResult,
    Range,
    RangeResult,
    Txn,
    TxnResult,
)

from .helpers import Driver, state

EQ, NE, LT, GT = CompareOp.EQUAL, CompareOp.NOT_EQUAL, CompareOp.LESS, CompareOp.GREATER
VALUE, VERSION = CompareTarget.VALUE, CompareTarget.VERSION
CREATE, MOD = CompareTarget.CREATE_REVISION, CompareTarget.MOD_REVISION


@pytest.fixture
def d() -> Driver:
    driver = Driver()
    driver(Put(b"k", b"m"))  # revision 2
    driver(Put(b"k", b"m"))  # revision 3: version 2, create 2, mod 3
    return driver


def holds(d: Driver, compare: Compare) -> bool:
    result = d(Txn((compare,)))
    assert isinstance(result, TxnResult)
    return result.succeeded


@pytest.mark.parametrize(
    ("target", "op", "operand", "expected"),
    [
        (VALUE, EQ, b"m", True),
        (VALUE, EQ, b"x", False),
        (VALUE, NE, b"x", True),
        (VALUE, LT, b"n", True),
        (VALUE, LT, b"m", False),
        (VALUE, GT, b"l", True),
        (VALUE, GT, b"m\x00", False),
        (VERSION, EQ, 2, True),
        (VERSION, GT, 1, True),
        (VERSION, LT, 2, False),
        (CREATE, EQ, 2, True),
        (CREATE, NE, 2, False),
        (MOD, EQ, 3, True),
        (MOD, LT, 4, True),
        (MOD, GT, 3, False),
    ],
)
def test_compare_on_an_existing_key(
    d: Driver, target: CompareTarget, op: CompareOp, operand: bytes | int, expected: bool
) -> None:
    assert holds(d, Compare(b"k", target, op, operand)) is expected


@pytest.mark.parametrize(
    ("target", "op", "operand", "expected"),
    [
        (VALUE, EQ, b"", False),
        (VALUE, NE, b"x", False),  # a value compare on a missing key always fails
        (VERSION, EQ, 0, True),
        (CREATE, EQ, 0, True),
        (MOD, LT, 1, True),
        (VERSION, GT, 0, False),
    ],
)
def test_compare_on_a_missing_key(
    d: Driver, target: CompareTarget, op: CompareOp, operand: bytes | int, expected: bool
) -> None:
    assert holds(d, Compare(b"nope", target, op, operand)) is expected


def test_all_compares_must_hold(d: Driver) -> None:
    yes = Compare(b"k", VERSION, EQ, 2)
    no = Compare(b"k", VERSION, EQ, 3)
    assert d(Txn((yes, yes))).succeeded  # type: ignore[union-attr]
    assert not d(Txn((yes, no))).succeeded  # type: ignore[union-attr]
    assert d(Txn()).succeeded, "no compares: success"  # type: ignore[union-attr]


def test_branches_apply_at_one_revision_with_events_in_key_order(d: Driver) -> None:
    txn = Txn(
        (Compare(b"k", VALUE, EQ, b"m"),),
        (Put(b"z", b"1"), Put(b"a", b"2"), DeleteRange(b"k", prev_kv=True)),
        (Put(b"failed", b"1"),),
    )
    result, events = d.send(txn)
    assert result == TxnResult(
        4,
        True,
        (PutResult(4), PutResult(4), DeleteResult(4, 1, (KeyValue(b"k", b"m", 2, 3, 2),))),
    )
    assert [(e.kv.key, e.type) for e in events] == [
        (b"a", EventType.PUT),
        (b"k", EventType.DELETE),
        (b"z", EventType.PUT),
    ]
    assert {e.revision for e in events} == {4}
    failed = d(Txn((Compare(b"k", VALUE, EQ, b"m"),), (), (Put(b"f", b"1"),)))
    assert failed == TxnResult(5, False, (PutResult(5),))


def test_ops_see_the_writes_before_them_and_reads_carry_the_final_revision(d: Driver) -> None:
    result = d(
        Txn(
            success=(
                Get(b"x"),
                Put(b"x", b"1"),
                Get(b"x"),
                Range(b"a", b"z", count_only=True),
                DeleteRange(b"k"),
                Get(b"k"),
                Get(b"k", revision=2),
            )
        )
    )
    new = KeyValue(b"x", b"1", 4, 4, 1)
    assert result == TxnResult(
        4,
        True,
        (
            GetResult(4, None),
            PutResult(4),
            GetResult(4, new),
            RangeResult(4, (), 2, False),
            DeleteResult(4, 1),
            GetResult(4, None),
            GetResult(4, KeyValue(b"k", b"m", 2, 2, 1)),
        ),
    )


def test_a_read_only_transaction_keeps_the_revision(d: Driver) -> None:
    result, events = d.send(Txn(success=(Get(b"k"), DeleteRange(b"nothing"))))
    assert result == TxnResult(
        3, True, (GetResult(3, KeyValue(b"k", b"m", 2, 3, 2)), DeleteResult(3, 0))
    )
    assert events == [] and d.machine.revision == 3


@pytest.mark.parametrize(
    ("ops", "code"),
    [
        ((Put(b"a", b"1"), Put(b"b", b"1", lease=9)), "lease_not_found"),
        ((Put(b"a", b"1"), Get(b"k", revision=99)), "future_revision"),
        ((Put(b"a", b"1"), Range(b"a", b"z", revision=2)), "compacted"),
        ((Put(b"a", b"1"), Put(b"a", b"2")), "duplicate_key"),
        ((DeleteRange(b"a", b"c"), Put(b"b", b"1")), "duplicate_key"),
    ],
)
def test_a_failing_branch_applies_nothing(d: Driver, ops: tuple[Put, ...], code: str) -> None:
    d(Put(b"c", b"1"))  # 4
    d(Compact(3))
    before = state(d.machine)
    result, events = d.send(Txn(success=ops))
    assert result.code == code and events == []  # type: ignore[union-attr]
    assert state(d.machine) == before


def test_only_the_branch_that_runs_is_checked_against_the_store(d: Driver) -> None:
    d(LeaseGrant(1, 1000))
    txn = Txn(
        (Compare(b"k", VERSION, EQ, 2),), (Put(b"a", b"1", lease=1),), (Put(b"b", b"1", lease=77),)
    )
    assert d(txn) == TxnResult(4, True, (PutResult(4),))
    assert d.machine.lease_ttl(1, keys=True).keys == (b"a",)  # type: ignore[union-attr]


def test_overlapping_deletes_are_allowed(d: Driver) -> None:
    d(Put(b"b", b"1"))
    result = d(Txn(success=(DeleteRange(b"a", b"c"), DeleteRange(b"b"))))
    assert result == TxnResult(5, True, (DeleteResult(5, 1), DeleteResult(5, 0)))
