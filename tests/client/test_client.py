"""Every method of the client against a real 3-node cluster (shared by the module)."""

from __future__ import annotations

import asyncio

import pytest

from accord import (
    AsyncClient,
    Compare,
    DeleteResult,
    EventType,
    FutureRevision,
    GetResult,
    InvalidRequest,
    LeaseNotFound,
    LimitExceeded,
    Op,
    PutResult,
    RangeResult,
    Unavailable,
)
from accord.testing.cluster import LocalCluster

from .helpers import Recorder, dead_url, url, urls

pytestmark = pytest.mark.asyncio


async def test_put_get_delete(cluster: LocalCluster, protocol: str) -> None:
    async with AsyncClient(urls(cluster, protocol)) as client:
        first = await client.put("pgd/a", "one")
        second = await client.put(b"pgd/a", b"two")
        assert second.revision > first.revision
        kv = await client.get("pgd/a")
        assert kv is not None
        assert (kv.key, kv.value, kv.version) == (b"pgd/a", b"two", 2)
        assert (kv.create_revision, kv.mod_revision) == (first.revision, second.revision)
        old = await client.get("pgd/a", revision=first.revision)
        assert old is not None and old.value == b"one"
        local = await client.get("pgd/a", serializable=True)
        assert local is None or local.value in (b"one", b"two")  # possibly stale, never wrong
        assert await client.get("pgd/absent") is None
        deleted = await client.delete("pgd/a")
        assert deleted.deleted == 1 and deleted.revision > second.revision
        assert await client.get("pgd/a") is None
        assert (await client.delete("pgd/a")).deleted == 0


async def test_range_forms(cluster: LocalCluster, protocol: str) -> None:
    async with AsyncClient(urls(cluster, protocol)) as client:
        await client.txn(success=[Op.delete(prefix="rng/")])  # the other protocol's run
        for name in ("a", "b", "c", "d"):
            await client.put(f"rng/{name}", name.upper())
        prefix = await client.range(prefix="rng/")
        assert [kv.key for kv in prefix.kvs] == [b"rng/a", b"rng/b", b"rng/c", b"rng/d"]
        assert prefix.count == 4 and not prefix.more
        span = await client.range("rng/b", "rng/d")
        assert [kv.value for kv in span.kvs] == [b"B", b"C"]
        single = await client.range("rng/c")
        assert [kv.key for kv in single.kvs] == [b"rng/c"]
        limited = await client.range(prefix="rng/", limit=2)
        assert len(limited.kvs) == 2 and limited.more and limited.count == 4
        counted = await client.range(prefix="rng/", count_only=True)
        assert counted.kvs == () and counted.count == 4
        everything = await client.range()
        assert everything.count >= 4
        stale_ok = await client.range(prefix="rng/", serializable=True)
        assert stale_ok.count <= 4
        before = await client.range(prefix="rng/", revision=prefix.revision - 1)
        assert before.count == 3


async def test_keys_that_are_not_url_text(cluster: LocalCluster, protocol: str) -> None:
    keys = [b"bin/\xff\x00", b"..", b".", "bin/a/../b", "bin/%2F?#", "bin/ünï"]
    async with AsyncClient(urls(cluster, protocol)) as client:
        for key in keys:
            await client.put(key, b"\x00\xfe" + (key if isinstance(key, bytes) else key.encode()))
        for key in keys:
            raw = key if isinstance(key, bytes) else key.encode()
            kv = await client.get(key)
            assert kv is not None and kv.key == raw and kv.value == b"\x00\xfe" + raw
            assert (await client.get(key, serializable=True, revision=kv.mod_revision)) == kv
        binary = await client.range(b"bin/\xff", b"bin/\xff\x01")
        assert [kv.key for kv in binary.kvs] == [b"bin/\xff\x00"]
        for key in keys:
            assert (await client.delete(key)).deleted == 1
        if protocol == "http":
            with pytest.raises(InvalidRequest):
                client.watch(b"\xff")  # a URL query carries text only
        else:
            put = await client.put(b"bin/\xff\x01", b"\x00")
            async with client.watch(prefix=b"bin/\xff", start_revision=put.revision) as watch:
                event = await asyncio.wait_for(watch.__anext__(), 10)
                assert (event.kv.key, event.kv.value) == (b"bin/\xff\x01", b"\x00")


async def test_transactions(cluster: LocalCluster, protocol: str) -> None:
    async with AsyncClient(urls(cluster, protocol)) as client:
        await client.put("txn/k", "v1")
        result = await client.txn(
            compare=[Compare.value("txn/k") == "v1", Compare.version("txn/k") > 0],
            success=[Op.put("txn/k", "v2"), Op.get("txn/k"), Op.range(prefix="txn/")],
            failure=[Op.get("txn/k")],
        )
        assert result.succeeded
        put, got, ranged = result.responses
        assert isinstance(put, PutResult) and put.revision == result.revision
        assert isinstance(got, GetResult) and got.kv is not None and got.kv.value == b"v2"
        assert isinstance(ranged, RangeResult) and ranged.count == 1
        failed = await client.txn(
            [Compare.value("txn/k") == "v1"],
            [Op.delete("txn/k")],
            [Op.get("txn/k"), Op.delete(prefix="txn/")],
        )
        assert not failed.succeeded
        got, deleted = failed.responses
        assert isinstance(got, GetResult) and got.kv is not None and got.kv.value == b"v2"
        assert isinstance(deleted, DeleteResult) and deleted.deleted == 1


async def test_leases(cluster: LocalCluster, protocol: str) -> None:
    async with AsyncClient(urls(cluster, protocol)) as client:
        lease = await client.lease_grant(30)
        assert lease.id > 0 and lease.ttl_s == 30
        await client.put("lease/k", "v", lease=lease.id)
        kv = await client.get("lease/k")
        assert kv is not None and kv.lease == lease.id
        info = await client.lease_ttl(lease.id)
        assert info.keys == (b"lease/k",) and info.granted_ttl_s == 30 and 0 < info.ttl_s <= 30
        assert (await client.lease_keepalive(lease.id)).ttl_s == 30
        revoked = await client.lease_revoke(lease.id)
        assert revoked.revision > kv.mod_revision
        assert await client.get("lease/k") is None
        with pytest.raises(LeaseNotFound):
            await client.lease_ttl(lease.id)
        with pytest.raises(LeaseNotFound):
            await client.lease_keepalive(lease.id)
        with pytest.raises(LeaseNotFound):
            await client.put("lease/late", "v", lease=lease.id)


async def test_errors_are_typed_and_never_retried(cluster: LocalCluster, protocol: str) -> None:
    async with AsyncClient(urls(cluster, protocol)) as client:
        recorder = Recorder(client)
        cases = [
            (lambda: client.put("k" * 5000, "v"), LimitExceeded),
            (lambda: client.put("big", b"v" * ((1 << 20) + 1)), LimitExceeded),
            (lambda: client.get("k", revision=10**9), FutureRevision),
            (lambda: client.txn(success=[Op.put("d", "1"), Op.put("d", "2")]), InvalidRequest),
            (lambda: client.put("k", "v", lease=12345), LeaseNotFound),
        ]
        # A session opened and the leader found: every request below is the call's own.
        await client.put("errors/ok", "v")
        for call, expected in cases:
            before = len(recorder.sent)
            with pytest.raises(expected) as info:
                await call()
            assert info.value.code and str(info.value)
            assert len(recorder.sent) - before == 1, f"{expected.__name__} was retried"
        with pytest.raises(InvalidRequest):
            await client.lease_grant(0)


async def test_writes_go_to_the_leader_and_reads_spread(
    cluster: LocalCluster, protocol: str
) -> None:
    leader_url = url(cluster, cluster.leader(), protocol)
    follower = next(u for u in urls(cluster, protocol) if u != leader_url)
    async with AsyncClient([follower]) as client:  # the others are discovered
        recorder = Recorder(client)
        for i in range(5):
            await client.put(f"route/{i}", "v")
        await client.delete("route/0")
        await client.txn(success=[Op.put("route/t", "v")])
        await client.lease_revoke((await client.lease_grant(5)).id)
        assert {s.url for s in recorder.writes()} == {leader_url}
        assert client.leader_url == leader_url
        for _ in range(3):
            await client.get("route/1")
        assert {s.url for s in recorder.reads("/v1/kv/")} == {leader_url}
        for _ in range(6):
            await client.get("route/1", serializable=True)
        spread = {s.url for s in recorder.reads("/v1/kv/") if "serializable" in s.target}
        assert spread == set(urls(cluster, protocol))


async def test_every_write_carries_the_session_and_a_retry_takes_effect_once(
    cluster: LocalCluster, protocol: str
) -> None:
    async with AsyncClient(urls(cluster, protocol)) as client:
        recorder = Recorder(client)
        await client.put(f"{protocol}/once/k", "1")
        await client.get(f"{protocol}/once/k")
        await client.range(prefix=f"{protocol}/once/")
        recorder.lose_replies = 2  # applied twice over? the session says no
        await client.put(f"{protocol}/once/k", "2")
        await client.delete(f"{protocol}/once/other")
        writes = recorder.writes()
        ids = {w.headers["X-Accord-Client-Id"] for w in writes}
        seqs = [int(w.headers["X-Accord-Seq"]) for w in writes]
        [session] = client._conn.idle_sessions  # one write at a time: one session
        assert ids == {str(session.client_id)} and 0 < int(ids.pop()) < 1 << 63
        assert seqs == [1, 2, 2, 2, 3]  # reads took no numbers; retries kept theirs
        kv = await client.get(f"{protocol}/once/k")
        assert kv is not None and kv.value == b"2" and kv.version == 2


async def test_a_lost_session_is_reopened(cluster: LocalCluster, protocol: str) -> None:
    async with AsyncClient(urls(cluster, protocol)) as client:
        await client.put(f"{protocol}/renew/k", "v0")
        [session] = client._conn.idle_sessions
        # As if the server had forgotten this session after 41 writes:
        old_id = session.client_id = session.client_id ^ 1
        session.seq = 41
        await client.put(f"{protocol}/renew/k", "v")
        assert session.client_id != old_id and session.seq == 1
        kv = await client.get(f"{protocol}/renew/k")
        assert kv is not None and kv.value == b"v" and kv.version == 2


async def test_concurrent_writes_from_one_client_take_a_session_each(
    cluster: LocalCluster, protocol: str
) -> None:
    async with AsyncClient(urls(cluster, protocol)) as client:
        recorder = Recorder(client)
        results = await asyncio.gather(
            *(client.put(f"{protocol}/conc/k", str(i)) for i in range(20))
        )
        assert len({r.revision for r in results}) == 20
        kv = await client.get(f"{protocol}/conc/k")
        assert kv is not None and kv.version == 20
        sessions = client._conn.idle_sessions
        assert 1 < len(sessions) <= 20  # the writes overlapped
        pairs = {
            (w.headers["X-Accord-Client-Id"], w.headers["X-Accord-Seq"]) for w in recorder.writes()
        }
        assert len(pairs) == 20  # no two writes shared a (client id, seq)
        assert sum(s.seq for s in sessions) == 20


async def test_status_and_members(cluster: LocalCluster, protocol: str) -> None:
    async with AsyncClient([url(cluster, 1, protocol)]) as client:
        status = await client.status()
        assert status.leader == cluster.leader()
        assert status.leader_url == cluster.url(status.leader)
        assert status.leader_native_url == cluster.native_url(status.leader)
        members = await client.members()
        assert [m.url for m in members] == urls(cluster)
        assert [m.native_url for m in members] == urls(cluster, "native")
        own = await client.status(endpoint=url(cluster, 3, protocol))
        assert own.id == 3 and own.role in ("leader", "follower")
        assert set(client.endpoint_states()) == set(urls(cluster, protocol))


async def test_watch_replays_history_then_follows(cluster: LocalCluster, protocol: str) -> None:
    async with AsyncClient(urls(cluster, protocol)) as client:
        first = await client.put("wb/a", "1")
        await client.delete("wb/a")
        async with client.watch(prefix="wb/", start_revision=first.revision) as watch:
            replay = [await watch.__anext__() for _ in range(2)]
            assert [e.type for e in replay] == [EventType.PUT, EventType.DELETE]
            await client.put("wb/b", "2")
            live = await watch.__anext__()
            assert (live.kv.key, live.kv.value) == (b"wb/b", b"2")
            assert watch.next_revision == live.revision + 1
        async with client.watch("wb/c") as from_now:
            waiter = asyncio.ensure_future(from_now.__anext__())
            await asyncio.sleep(0)  # let it pin its start revision
            await client.put("wb/b", "ignored")
            await client.put("wb/c", "seen")
            event = await asyncio.wait_for(waiter, 10)
            assert event.kv.key == b"wb/c"


async def test_no_reachable_endpoint_is_unavailable(protocol: str) -> None:
    async with AsyncClient([dead_url(protocol), dead_url(protocol)], timeout_s=2.0) as client:
        with pytest.raises(Unavailable):
            await client.put("k", "v")
        with pytest.raises(Unavailable):
            await client.get("k")
