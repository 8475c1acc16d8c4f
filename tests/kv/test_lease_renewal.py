"""Leases renewed in bulk, owned by users, bounded per owner; and compatible with the
snapshots and logs of the version before owners existed."""

from __future__ import annotations

from pathlib import Path

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.kv import (
    Envelope,
    ExpireLeaseIds,
    ExpireLeasesResult,
    ExpireSessions,
    KVLimits,
    KVStateMachine,
    LeaseCheckpoint,
    LeaseGrant,
    LeaseGrantResult,
    LeasesRenewedResult,
    Put,
    PutResult,
    RenewAllLeases,
    decode_command,
    encode_command,
)
from accord.kv.errors import BadCommand, BadSnapshot
from accord.kv.leases import LeaseTable
from accord.kv.limits import LEASE_IDS_PER_COMMAND_MAX

from .helpers import Driver, state

V1_LOG = Path(__file__).parent / "data" / "v1_lease_log.msgpack"
"""A log and snapshots written by the version before lease owners (its code ran to make
them): the grants, keepalives, expiry and sessions of three clients."""


def deadline(d: Driver, lease_id: int) -> int:
    info = d.machine.lease_ttl(lease_id)
    assert info is not None
    return info.deadline_ms


def test_renew_all_moves_every_lease_to_a_full_ttl_in_one_entry() -> None:
    d = Driver()
    d(LeaseGrant(1, 1_000), now_ms=0)
    d(LeaseGrant(2, 5_000))
    # Lease 1's replicated deadline has passed, but only the leader decides expiry:
    # the previous leader may have kept it alive in memory.
    assert d(RenewAllLeases(), now_ms=3_000) == LeasesRenewedResult(2)
    assert (deadline(d, 1), deadline(d, 2)) == (4_000, 8_000)
    assert d.machine.applied_index == 3


def test_a_checkpoint_only_moves_deadlines_forward_and_at_most_a_full_ttl() -> None:
    d = Driver()
    d(LeaseGrant(1, 1_000), now_ms=0)
    d(LeaseGrant(2, 1_000))
    d(LeaseGrant(3, 1_000))
    result = d(LeaseCheckpoint(((1, 1_600), (2, 500), (3, 99_999), (4, 2_000))), now_ms=700)
    assert result == LeasesRenewedResult(2), "2 is behind, 4 does not exist"
    assert (deadline(d, 1), deadline(d, 2), deadline(d, 3)) == (1_600, 1_000, 1_700)


def test_expire_lease_ids_revokes_only_the_listed_leases_that_are_due() -> None:
    d = Driver()
    d(LeaseGrant(1, 1_000), now_ms=0)
    d(LeaseGrant(2, 1_000))
    d(LeaseGrant(3, 5_000))
    d(Put(b"k1", b"v", lease=1))
    d(Put(b"k2", b"v", lease=2))
    d(LeaseCheckpoint(((2, 1_900),)), now_ms=900)
    result = d(ExpireLeaseIds((3, 2, 1, 1, 99)), now_ms=1_500)
    assert isinstance(result, ExpireLeasesResult)
    assert result.expired == (1,), "2 was checkpointed past now, 3 is not due"
    assert d.machine.get(b"k1").kv is None
    assert d.machine.get(b"k2").kv is not None
    assert d.machine.lease_ttl(1) is None and d.machine.lease_ttl(3) is not None


def test_lease_lists_in_one_command_are_bounded() -> None:
    d = Driver()
    too_many = tuple(range(1, LEASE_IDS_PER_COMMAND_MAX + 2))
    assert d.error(ExpireLeaseIds(too_many)).code == "limit_exceeded"
    assert d.error(ExpireLeaseIds((0,))).code == "invalid_request"


def test_a_grant_records_its_owner() -> None:
    d = Driver()
    d(LeaseGrant(1, 1_000), owner="alice")
    d(LeaseGrant(2, 1_000))
    assert d.machine.lease_ttl(1).owner == "alice"  # type: ignore[union-attr]
    assert d.machine.lease_ttl(2).owner == ""  # type: ignore[union-attr]


def test_leases_are_bounded_per_owner_and_in_total() -> None:
    d = Driver(limits=KVLimits(leases_max=5, leases_per_user_max=2))
    d(LeaseGrant(1, 1_000), owner="alice")
    d(LeaseGrant(2, 1_000), owner="alice")
    error = d.error(LeaseGrant(3, 1_000), owner="alice")
    assert (error.code, error.details) == ("too_many_leases", ("leases of user 'alice'", 3, 2))
    d(LeaseGrant(3, 1_000), owner="bob")
    d(LeaseGrant(4, 1_000), owner="bob")
    d(LeaseGrant(5, 1_000))
    error = d.error(LeaseGrant(6, 1_000), owner="carol")
    assert (error.code, error.details) == ("too_many_leases", ("leases", 6, 5))
    d(ExpireLeaseIds((1,)), now_ms=1_000)
    assert d(LeaseGrant(6, 1_000), owner="alice") == LeaseGrantResult(6, 1_000, 2_000)


def test_an_expired_lease_frees_its_owners_share() -> None:
    d = Driver(limits=KVLimits(leases_per_user_max=1))
    d(LeaseGrant(1, 1_000), owner="alice", now_ms=0)
    assert d.error(LeaseGrant(2, 1_000), owner="alice").code == "too_many_leases"
    d(ExpireLeaseIds((1,)), now_ms=1_000)
    assert d(LeaseGrant(2, 1_000), owner="alice").lease_id == 2  # type: ignore[union-attr]


def test_sessions_are_bounded_per_owner_without_evicting_anyone() -> None:
    d = Driver(limits=KVLimits(sessions_max=10, sessions_per_user_max=2))
    d(Put(b"a", b"1"), client=1, seq=1, owner="mallory")
    d(Put(b"a", b"2"), client=2, seq=1, owner="mallory")
    error = d.error(Put(b"a", b"3"), client=3, seq=1, owner="mallory")
    assert error.code == "too_many_sessions"
    assert error.details == ("sessions of user 'mallory'", 3, 2)
    assert d(Put(b"a", b"4"), client=4, seq=1, owner="alice") == PutResult(4), "others open theirs"
    d(ExpireSessions(1_000), now_ms=1_000)
    assert d(Put(b"a", b"5"), client=3, seq=1, owner="mallory") == PutResult(5)


def test_owners_survive_a_snapshot_and_bounds_count_them_after_restore() -> None:
    d = Driver(limits=KVLimits(leases_per_user_max=1, sessions_per_user_max=1))
    d(LeaseGrant(1, 1_000), owner="alice")
    d(Put(b"k", b"v", lease=1), client=5, seq=1, owner="alice")
    restored = KVStateMachine(KVLimits(leases_per_user_max=1, sessions_per_user_max=1))
    restored.restore(d.machine.snapshot())
    assert restored.snapshot() == d.machine.snapshot()
    assert restored.lease_ttl(1).owner == "alice"  # type: ignore[union-attr]
    r = Driver(restored)
    assert r.error(LeaseGrant(2, 1_000), owner="alice").code == "too_many_leases"
    assert r.error(Put(b"x", b"v"), client=6, seq=1, owner="alice").code == "too_many_sessions"


def test_an_empty_owner_is_not_encoded() -> None:
    plain = encode_command(Envelope(1, 1, Put(b"k", b"v"), 5))
    assert len(msgpack.unpackb(plain)) == 5, "an anonymous request encodes as before"
    owned = encode_command(Envelope(1, 1, Put(b"k", b"v"), 5, "alice"))
    assert decode_command(owned).owner == "alice"
    fields = msgpack.unpackb(owned)
    fields[5] = ""
    with pytest.raises(BadCommand, match="empty owner"):
        decode_command(msgpack.packb(fields))


def test_a_snapshot_with_an_empty_encoded_owner_is_refused() -> None:
    d = Driver()
    d(LeaseGrant(1, 1_000), owner="alice")
    fields = msgpack.unpackb(d.machine.snapshot())
    fields[6][0][3] = ""
    with pytest.raises(BadSnapshot, match="empty owner"):
        KVStateMachine().restore(msgpack.packb(fields))


def test_the_previous_versions_snapshot_and_log_give_the_same_state() -> None:
    """Replaying what the earlier version wrote gives, byte for byte, the snapshot the
    earlier version made of the result."""
    fixture = msgpack.unpackb(V1_LOG.read_bytes())
    log, split = fixture["log"], fixture["split"]
    from_snapshot = KVStateMachine()
    from_snapshot.restore(fixture["snapshot"])
    for index, data in enumerate(log[split:], split + 1):
        from_snapshot.apply(index, data)
    assert from_snapshot.snapshot() == fixture["final"]
    from_log = KVStateMachine()
    for index, data in enumerate(log, 1):
        from_log.apply(index, data)
    assert from_log.snapshot() == fixture["final"]


def test_replicas_compute_the_same_deadlines_whatever_their_history() -> None:
    """A replica that restored a snapshot midway and one that applied everything end
    with the same state, deadlines included (a replica computing its own deadlines, by
    a clock or in dict order, would differ here)."""
    entries = [
        (LeaseGrant(3, 2_000), 0, "alice"),
        (LeaseGrant(1, 1_000), 10, "bob"),
        (LeaseGrant(2, 9_000), 20, ""),
        (Put(b"k", b"v", lease=1), 30, "bob"),
        (LeaseCheckpoint(((1, 1_500), (3, 2_500))), 400, ""),
        (RenewAllLeases(), 800, ""),
        (LeaseCheckpoint(((2, 9_900),)), 900, ""),
        (ExpireLeaseIds((1, 3)), 2_000, ""),
        (ExpireLeaseIds((1, 3)), 2_900, ""),
    ]
    whole, partial = Driver(), Driver()
    for i, (command, now_ms, owner) in enumerate(entries):
        whole(command, now_ms=now_ms, owner=owner)
        if i == 4:  # the other replica is sent a snapshot (InstallSnapshot)
            restored = KVStateMachine()
            restored.restore(whole.machine.snapshot())
            partial = Driver(restored)
            continue
        partial(command, now_ms=now_ms, owner=owner)
    assert state(whole.machine) == state(partial.machine)
    assert whole.machine.lease_ttl(2).deadline_ms == 9_900  # type: ignore[union-attr]
    assert whole.machine.lease_ttl(1) is None and whole.machine.lease_ttl(3) is None


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["grant", "refresh", "renew", "checkpoint", "remove"]),
            st.integers(1, 12),
            st.integers(0, 3_000),
        ),
        max_size=120,
    )
)
def test_the_deadline_index_finds_exactly_the_due_leases(steps: list[tuple[str, int, int]]) -> None:
    table, now = LeaseTable(), 0
    for action, lease_id, amount in steps:
        now += amount // 10
        lease = table.get(lease_id)
        if action == "grant" and lease is None:
            table.grant(lease_id, amount + 1, now)
        elif action == "refresh" and lease is not None:
            table.refresh(lease, now)
        elif action == "renew":
            table.renew_all(now)
        elif action == "checkpoint":
            table.checkpoint([(lease_id, now + amount)], now)
        elif action == "remove" and lease is not None:
            table.remove(lease_id)
        for at in (now, now + amount, now + 10 * amount):
            assert table.due(at) == table.expired(at)
