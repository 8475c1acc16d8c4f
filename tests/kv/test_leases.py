"""Leases: grant, keepalive, revoke, expiry decided by the leader's stamped time."""

from __future__ import annotations

from accord.kv import (
    DeleteRange,
    EventType,
    ExpireLeases,
    ExpireLeasesResult,
    KVLimits,
    LeaseGrant,
    LeaseGrantResult,
    LeaseInfo,
    LeaseKeepAlive,
    LeaseKeepAliveResult,
    LeaseNotFound,
    LeaseRevoke,
    LeaseRevokeResult,
    Put,
    PutResult,
    Txn,
)

from .helpers import Driver


def test_grant_uses_the_stamped_time() -> None:
    d = Driver()
    assert d(LeaseGrant(7, 1000), now_ms=5000) == LeaseGrantResult(7, 1000, 6000)
    assert d.machine.lease_ttl(7) == LeaseInfo(7, 1000, 6000, 1000)
    assert d.machine.lease_ttl(8) is None
    assert d.machine.revision == 1, "granting a lease writes no key"


def test_grant_errors() -> None:
    d = Driver(limits=KVLimits(leases_max=2))
    d(LeaseGrant(1, 100))
    assert d.error(LeaseGrant(1, 100)).code == "lease_exists"
    d(LeaseGrant(2, 100))
    assert d.error(LeaseGrant(3, 100)).details == ("leases", 3, 2)
    assert d.error(LeaseGrant(0, 100)).code == "invalid_request"


def test_put_attaches_and_later_writes_detach() -> None:
    d = Driver()
    d(LeaseGrant(1, 1000))
    d(LeaseGrant(2, 1000))
    d(Put(b"a", b"v", lease=1))
    d(Put(b"b", b"v", lease=1))
    d(Put(b"c", b"v", lease=1))
    assert d.machine.lease_ttl(1, keys=True).keys == (b"a", b"b", b"c")  # type: ignore[union-attr]
    d(Put(b"a", b"v"))  # no lease: detached
    d(Put(b"b", b"v", lease=2))  # moved to lease 2
    d(DeleteRange(b"c"))
    assert d.machine.lease_ttl(1, keys=True).keys == ()  # type: ignore[union-attr]
    assert d.machine.lease_ttl(2, keys=True).keys == (b"b",)  # type: ignore[union-attr]
    assert d.machine.get(b"b").kv.lease == 2  # type: ignore[union-attr]


def test_put_to_a_missing_lease_is_an_error_result() -> None:
    d = Driver()
    result, events = d.send(Put(b"a", b"v", lease=42))
    assert result.code == "lease_not_found" and events == []  # type: ignore[union-attr]
    assert result.exception().lease_id == 42  # type: ignore[union-attr]
    assert isinstance(result.exception(), LeaseNotFound)  # type: ignore[union-attr]
    assert d.machine.revision == 1


def test_revoke_deletes_the_attached_keys_at_one_revision() -> None:
    d = Driver()
    d(LeaseGrant(1, 1000))
    d(Put(b"b", b"v", lease=1))
    d(Put(b"a", b"v", lease=1))
    d(Put(b"other", b"v"))
    result, events = d.send(LeaseRevoke(1))
    assert result == LeaseRevokeResult(5, 2)
    assert [(e.type, e.kv.key, e.revision) for e in events] == [
        (EventType.DELETE, b"a", 5),
        (EventType.DELETE, b"b", 5),
    ]
    assert d.machine.lease_ttl(1) is None
    assert d.machine.range(b"", b"\x00").count == 1
    assert d.error(LeaseRevoke(1)).code == "lease_not_found"


def test_revoking_an_empty_lease_keeps_the_revision() -> None:
    d = Driver()
    d(LeaseGrant(1, 1000))
    assert d.send(LeaseRevoke(1)) == (LeaseRevokeResult(1, 0), [])


def test_keepalive_moves_the_deadline_from_the_stamped_time() -> None:
    d = Driver()
    d(LeaseGrant(1, 1000), now_ms=0)
    assert d(LeaseKeepAlive(1), now_ms=900) == LeaseKeepAliveResult(1, 1000, 1900)
    assert d.machine.lease_ttl(1) == LeaseInfo(1, 1000, 1900, 1000)
    assert d.error(LeaseKeepAlive(2)).code == "lease_not_found"


def test_a_lease_past_its_deadline_cannot_be_refreshed_or_used() -> None:
    d = Driver()
    d(LeaseGrant(1, 1000), now_ms=0)
    assert d.error(LeaseKeepAlive(1), now_ms=1000).code == "lease_not_found"
    assert d.error(Put(b"a", b"v", lease=1)).code == "lease_not_found"
    assert d.machine.lease_ttl(1) == LeaseInfo(1, 1000, 1000, 0), "present until expired"


def test_expire_leases_revokes_exactly_the_due_ones() -> None:
    d = Driver()
    d(LeaseGrant(3, 100), now_ms=0)
    d(LeaseGrant(1, 100))
    d(LeaseGrant(2, 500))
    d(Put(b"x", b"v", lease=3))
    d(Put(b"y", b"v", lease=1))
    d(Put(b"z", b"v", lease=2))
    assert d.send(ExpireLeases(), now_ms=99) == (ExpireLeasesResult(4, (), 0), [])
    result, events = d.send(ExpireLeases(), now_ms=100)
    assert result == ExpireLeasesResult(5, (1, 3), 2)
    assert [(e.type, e.kv.key) for e in events] == [
        (EventType.DELETE, b"x"),
        (EventType.DELETE, b"y"),
    ]
    assert [info.lease_id for info in d.machine.leases()] == [2]
    assert d.machine.get(b"z").kv is not None
    assert d(ExpireLeases(), now_ms=10_000) == ExpireLeasesResult(6, (2,), 1)
    assert d.machine.range(b"", b"\x00").count == 0


def test_the_clock_never_runs_backwards() -> None:
    d = Driver()
    d(LeaseGrant(1, 100), now_ms=1000)
    d(ExpireLeases(), now_ms=2000)
    assert d.machine.clock_ms == 2000
    # a new leader whose clock is behind: time stands still rather than going back
    assert d(LeaseGrant(2, 100), now_ms=500) == LeaseGrantResult(2, 100, 2100)
    assert d.machine.clock_ms == 2000


def test_deadlines_are_capped_to_the_encodable_range() -> None:
    d = Driver()
    far = 2**63 - 10
    assert d(LeaseGrant(1, 1000), now_ms=far) == LeaseGrantResult(1, 1000, 2**63 - 1)


def test_lease_put_inside_a_transaction() -> None:
    d = Driver()
    d(LeaseGrant(1, 100))
    d(Txn(success=(Put(b"a", b"v", lease=1), Put(b"b", b"v", lease=1))))
    assert d(ExpireLeases(), now_ms=100) == ExpireLeasesResult(3, (1,), 2)
    assert d(Put(b"a", b"v")) == PutResult(4)
