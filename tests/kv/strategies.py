"""Hypothesis strategies for commands over a small key space (so operations collide)."""

from __future__ import annotations

from hypothesis import strategies as st

from accord.kv import (
    Command,
    Compact,
    Compare,
    CompareOp,
    CompareTarget,
    DeleteRange,
    Envelope,
    ExpireLeases,
    ExpireSessions,
    Get,
    LeaseGrant,
    LeaseKeepAlive,
    LeaseRevoke,
    Put,
    Range,
    Txn,
    TxnOp,
)

KEYS = [b"a", b"ab", b"abc", b"b", b"ba", b"c", b"\x00", b"\xff", b"\xff\xff"]

keys = st.sampled_from(KEYS)
values = st.binary(max_size=6)
range_ends = st.sampled_from([b"", b"\x00", b"b", b"c", b"ab\x00", b"a"])
revisions = st.integers(min_value=0, max_value=30)


NO_LEASE = st.just(0)


def puts(leases: st.SearchStrategy[int] = NO_LEASE) -> st.SearchStrategy[Put]:
    return st.builds(Put, keys, values, leases, st.booleans())


gets = st.builds(Get, keys, revisions)
ranges = st.builds(Range, keys, range_ends, revisions, st.integers(0, 3), st.booleans())
deletes = st.builds(DeleteRange, keys, range_ends, st.booleans())
txn_ops: st.SearchStrategy[TxnOp] = st.one_of(puts(), gets, ranges, deletes)


@st.composite
def compares(draw: st.DrawFn) -> Compare:
    target = draw(st.sampled_from(CompareTarget))
    operand = draw(values) if target is CompareTarget.VALUE else draw(st.integers(0, 12))
    return Compare(draw(keys), target, draw(st.sampled_from(CompareOp)), operand)


txns = st.builds(
    Txn,
    st.lists(compares(), max_size=3).map(tuple),
    st.lists(txn_ops, max_size=4).map(tuple),
    st.lists(txn_ops, max_size=4).map(tuple),
)

commands: st.SearchStrategy[Command] = st.one_of(
    puts(st.sampled_from([0, 0, 1, 2])),
    gets,
    ranges,
    deletes,
    txns,
    st.builds(Compact, revisions),
    st.builds(LeaseGrant, st.integers(1, 3), st.integers(1, 50)),
    st.builds(LeaseRevoke, st.integers(1, 3)),
    st.builds(LeaseKeepAlive, st.integers(1, 3)),
    st.just(ExpireLeases()),
    st.builds(ExpireSessions, st.integers(1_000, 2_000)),
)

envelopes = st.builds(
    Envelope,
    st.integers(0, 2**64 - 1),
    st.integers(0, 2**64 - 1),
    commands,
    st.integers(0, 2**63 - 1),
)
