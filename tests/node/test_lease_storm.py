"""Leases on a real 3-node cluster: keepalives answered without log writes, expiry
soon after the last keepalive, and a leader change that renews thousands of leases
with one log entry instead of one per lease."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Iterator

import pytest

from accord import AsyncClient
from accord.testing.cluster import LocalCluster, http, running_cluster, wait_for

LEASES = 3_000
LONG_TTL_S = 600
RENEWAL_ENTRIES_MAX = 20
"""Log entries a failover may add besides nothing per lease: the new leader's no-op,
its one RenewAllLeases, housekeeping (session expiry), a write of the test's own."""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    yield from running_cluster(tmp_path_factory.mktemp("lease-storm"))


def status(cluster: LocalCluster, node: int) -> dict[str, object]:
    code, body, _ = http("GET", f"{cluster.url(node)}/v1/cluster/status", timeout=2)
    assert code == 200, body
    return dict(json.loads(body))


def commit(cluster: LocalCluster, node: int) -> int:
    return int(status(cluster, node)["commit"])  # type: ignore[call-overload]


def lease_ttl_s(cluster: LocalCluster, node: int, lease: int) -> int | None:
    code, body, _ = http("GET", f"{cluster.url(node)}/v1/lease/{lease}", timeout=2)
    return int(json.loads(body)["ttl"]) if code == 200 else None


def keepalive(cluster: LocalCluster, node: int, lease: int) -> int:
    return http("POST", f"{cluster.url(node)}/v1/lease/{lease}/keepalive", timeout=2)[0]


def test_keepalives_do_not_write_to_the_log(cluster: LocalCluster) -> None:
    leader = cluster.leader()
    code, body, _ = http("POST", f"{cluster.url(leader)}/v1/lease/grant", b'{"ttl": 600}')
    assert code == 200, body
    lease = json.loads(body)["id"]
    before = commit(cluster, leader)
    follower = next(n for n in (1, 2, 3) if n != leader)
    for i in range(100):  # through a follower too: it forwards to the leader
        assert keepalive(cluster, leader if i % 2 else follower, lease) == 200
    assert commit(cluster, leader) - before <= 1, "at most one housekeeping entry"


def test_a_lease_kept_alive_lives_and_expires_soon_after_the_last_keepalive(
    cluster: LocalCluster,
) -> None:
    leader = cluster.leader()
    url = cluster.url(leader)
    code, body, _ = http("POST", f"{url}/v1/lease/grant", b'{"ttl": 2}')
    assert code == 200, body
    lease = json.loads(body)["id"]
    assert http("PUT", f"{url}/v1/kv/held?lease={lease}", b"v")[0] == 200
    started = time.monotonic()
    while time.monotonic() - started < 6:  # three TTLs, kept alive from memory only
        assert keepalive(cluster, leader, lease) == 200
        last = time.monotonic()  # the lease's deadline is now + TTL, by the leader's clock
        assert http("GET", f"{url}/v1/kv/held")[0] == 200
        # A put attaching a key still works: checkpoints keep the replicated deadline on.
        assert http("PUT", f"{url}/v1/kv/held2?lease={lease}", b"v")[0] == 200
        time.sleep(0.4)  # the client's keepalive period, not a wait for a condition
    wait_for(lambda: http("GET", f"{url}/v1/kv/held")[0] == 404, "the lease to expire")
    elapsed_s = time.monotonic() - last
    assert 1.5 <= elapsed_s <= 2 + 1 + 1.5, f"expired {elapsed_s:.2f}s after the last keepalive"


async def _grant_leases(cluster: LocalCluster, count: int) -> list[int]:
    async with AsyncClient([cluster.native_url(n) for n in (1, 2, 3)]) as client:
        leases: list[int] = []
        for start in range(0, count, 200):
            batch = [client.lease_grant(LONG_TTL_S) for _ in range(min(200, count - start))]
            leases += [lease.id for lease in await asyncio.gather(*batch)]
        return leases


def test_a_failover_renews_thousands_of_leases_with_one_entry(cluster: LocalCluster) -> None:
    leases = asyncio.run(_grant_leases(cluster, LEASES))
    old = cluster.leader()
    first = leases[0]
    wait_for(
        lambda: (lease_ttl_s(cluster, old, first) or LONG_TTL_S) <= LONG_TTL_S - 3,
        "the first lease to age a few seconds",
    )
    before = commit(cluster, old)
    os.kill(cluster.pids()[old], signal.SIGKILL)
    new = cluster.leader(exclude=old)
    wait_for(
        lambda: (lease_ttl_s(cluster, new, first) or 0) >= LONG_TTL_S - 1,
        "the new leader to renew every lease",
    )
    assert (lease_ttl_s(cluster, new, leases[-1]) or 0) >= LONG_TTL_S - 1
    grown = commit(cluster, new) - before
    assert grown <= RENEWAL_ENTRIES_MAX, f"the log grew by {grown} entries for {LEASES} leases"
    # And it stays that way: the next housekeeping rounds write nothing per lease.
    settled = commit(cluster, new)
    wait_for(
        lambda: http("PUT", f"{cluster.url(new)}/v1/kv/after", b"y")[0] == 200,
        "a write after the failover",
    )
    assert commit(cluster, new) - settled <= 3
