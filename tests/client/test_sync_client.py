"""The blocking client: the same API, on a private event loop."""

from __future__ import annotations

import contextlib
import threading

import pytest

from accord import Client, Compare, EventType, Op
from accord.testing.cluster import LocalCluster

from .helpers import urls


def test_the_blocking_client(cluster: LocalCluster) -> None:
    with Client(urls(cluster)) as client:
        written = client.put("sync/k", "v")
        kv = client.get("sync/k")
        assert kv is not None and kv.mod_revision == written.revision
        assert client.range(prefix="sync/").count == 1
        assert client.txn([Compare.version("sync/k") == 1], [Op.delete("sync/k")]).succeeded
        lease = client.lease_grant(10)
        assert client.lease_ttl(lease.id).granted_ttl_s == 10
        assert client.lease_keepalive(lease.id).id == lease.id
        client.lease_revoke(lease.id)
        assert client.status().leader and client.members()
        events = client.watch("sync/k", start_revision=written.revision)
        with contextlib.closing(events):
            assert [e.type for e in (next(events), next(events))] == [
                EventType.PUT,
                EventType.DELETE,
            ]
        assert client.delete("sync/k").deleted == 0
    with pytest.raises(RuntimeError):
        client.get("sync/k")


def test_one_blocking_client_shared_by_threads(cluster: LocalCluster) -> None:
    with Client(urls(cluster)) as client:
        errors: list[BaseException] = []

        def writer(n: int) -> None:
            try:
                for i in range(5):
                    client.put(f"threads/{n}", str(i))
            except BaseException as e:  # pragma: no cover - reported below
                errors.append(e)

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert client.range(prefix="threads/").count == 4
        kv = client.get("threads/0")
        assert kv is not None and kv.version == 5
