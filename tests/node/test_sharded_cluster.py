"""A cluster of three real node processes with three shards (`accord up --shards 3`):
every request reaches the shard owning its keys, from any node."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
from collections import Counter
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import accord
from accord.cli.main import cli
from accord.shard import ShardMap
from accord.shard.limits import SLOT_COUNT
from accord.testing.cluster import LocalCluster, WatchReader, http, running_cluster, wait_for

SHARDS = 3


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    yield from running_cluster(tmp_path_factory.mktemp("sharded") / "cluster", shards=SHARDS)


def shards_doc(cluster: LocalCluster, node: int) -> dict[str, Any]:
    code, body, _ = http("GET", f"{cluster.url(node)}/v1/cluster/shards")
    assert code == 200, body
    doc: dict[str, Any] = json.loads(body)
    return doc


def owner_map(doc: dict[str, Any]) -> ShardMap:
    """The map as a client would rebuild it from the answer (names for node ids)."""
    names = sorted({name for shard in doc["shards"] for name in shard["replicas"]})
    ids = {name: i + 1 for i, name in enumerate(names)}
    return ShardMap.from_doc(
        {
            "version": doc["version"],
            "shards": [
                {
                    "id": s["id"],
                    "slots": s["slots"],
                    "replicas": [ids[n] for n in s["replicas"]],
                    "learners": [],
                }
                for s in doc["shards"]
            ],
        }
    )


def call(method: str, url: str, body: bytes | None = None) -> tuple[int, bytes, dict[str, str]]:
    """A request, sent again while the answer is a 503 (nothing applied: a shard's
    leader is changing, as it does while leaders settle on their preferred nodes),
    as a client does."""

    def attempt() -> tuple[int, bytes, dict[str, str]] | None:
        answer = http(method, url, body)
        return None if answer[0] == 503 else answer

    answer: tuple[int, bytes, dict[str, str]] = wait_for(attempt, f"{method} {url} not 503")
    return answer


def put(cluster: LocalCluster, node: int, key: str, value: str) -> dict[str, str]:
    code, body, headers = call("PUT", f"{cluster.url(node)}/v1/kv/{key}", value.encode())
    assert code == 200, body
    return headers


def test_every_node_reports_one_map_of_three_led_shards(cluster: LocalCluster) -> None:
    docs = [shards_doc(cluster, node) for node in (1, 2, 3)]
    assert {d["version"] for d in docs} == {1}
    shards = docs[0]["shards"]
    assert [s["id"] for s in shards] == [1, 2, 3]
    covered = sorted(tuple(r) for s in shards for r in s["slots"])
    assert covered[0][0] == 0 and covered[-1][1] == SLOT_COUNT
    assert all(a[1] == b[0] for a, b in pairwise(covered))
    for doc in docs:  # every node hosts every shard (3 replicas on 3 nodes)
        for shard in doc["shards"]:
            assert sorted(shard["replicas"]) == ["n1", "n2", "n3"]
            assert shard["leader"] in ("n1", "n2", "n3")


def test_writes_through_any_node_land_on_the_owning_shard(cluster: LocalCluster) -> None:
    shard_map = owner_map(shards_doc(cluster, 1))
    for i in range(30):
        key = f"owned{i}"
        headers = put(cluster, i % 3 + 1, key, f"v{i}")
        assert headers["X-Accord-Shard"] == str(shard_map.shard_for_key(key.encode()).id)
    assert len({shard_map.shard_for_key(f"owned{i}".encode()).id for i in range(30)}) == SHARDS
    for node in (1, 2, 3):
        for consistency in ("linearizable", "serializable"):
            for i in range(30):
                url = f"{cluster.url(node)}/v1/kv/owned{i}?consistency={consistency}"
                _, body, _ = wait_for(
                    lambda url=url: (r := http("GET", url))[0] == 200 and r, "the key"
                )
                assert body == f"v{i}".encode()
    counts = {s["id"]: s["keys"] for s in shards_doc(cluster, 2)["shards"]}
    assert sum(counts.values()) >= 30


def test_a_range_over_shards_is_merged_in_key_order_with_limits(cluster: LocalCluster) -> None:
    keys = sorted(f"r/{i:03d}" for i in range(40))
    for i, key in enumerate(keys):
        put(cluster, i % 3 + 1, key, key)
    code, body, headers = http("GET", f"{cluster.url(2)}/v1/range?prefix=r/")
    doc = json.loads(body)
    assert code == 200 and doc["count"] == 40 and not doc["more"]
    assert [kv["key"] for kv in doc["kvs"]] == keys
    assert set(doc["revisions"]) == {"1", "2", "3"}
    assert "X-Accord-Shard" not in headers  # several shards answered
    code, body, _ = http("GET", f"{cluster.url(3)}/v1/range?prefix=r/&limit=7")
    doc = json.loads(body)
    assert [kv["key"] for kv in doc["kvs"]] == keys[:7] and doc["more"] and doc["count"] == 40
    code, body, _ = http("GET", f"{cluster.url(1)}/v1/range?prefix=r/&revision=3")
    assert code == 400 and b"per shard" in body


def test_keys_of_one_hash_tag_share_a_shard_and_a_transaction(cluster: LocalCluster) -> None:
    txn = {
        "success": [
            {"put": {"key": "{user7}:name", "value": "ada"}},
            {"put": {"key": "{user7}:mail", "value": "ada@example"}},
        ]
    }
    code, body, headers = call("POST", f"{cluster.url(1)}/v1/txn", json.dumps(txn).encode())
    assert code == 200 and json.loads(body)["succeeded"], body
    shard = headers["X-Accord-Shard"]
    code, body, headers = http("GET", f"{cluster.url(3)}/v1/range?prefix={{user7}}:")
    assert code == 200 and json.loads(body)["count"] == 2
    assert headers["X-Accord-Shard"] == shard and "revisions" not in json.loads(body)

    shard_map = owner_map(shards_doc(cluster, 1))
    a, b = next(
        (f"x{i}", f"x{j}")
        for i in range(100)
        for j in range(100)
        if shard_map.shard_for_key(f"x{i}".encode()) != shard_map.shard_for_key(f"x{j}".encode())
    )
    spread = {"success": [{"put": {"key": a, "value": "1"}}, {"put": {"key": b, "value": "2"}}]}
    code, body, _ = call("POST", f"{cluster.url(2)}/v1/txn", json.dumps(spread).encode())
    assert code == 400 and json.loads(body)["error"]["code"] == "cross_shard"
    for key in (a, b):  # nothing of it was applied
        assert http("GET", f"{cluster.url(2)}/v1/kv/{key}")[0] == 404


def keys_on_every_shard(cluster: LocalCluster, prefix: str) -> list[str]:
    shard_map = owner_map(shards_doc(cluster, 1))
    chosen: dict[int, str] = {}
    for i in range(200):
        chosen.setdefault(shard_map.shard_for_key(f"{prefix}{i}".encode()).id, f"{prefix}{i}")
    assert len(chosen) == SHARDS
    return sorted(chosen.values())


def test_a_lease_holds_keys_on_every_shard_until_revoked(cluster: LocalCluster) -> None:
    code, body, _ = call("POST", f"{cluster.url(2)}/v1/lease/grant", b'{"ttl": 30}')
    assert code == 200, body
    lease = json.loads(body)["id"]
    keys = keys_on_every_shard(cluster, "leased/")
    for node, key in enumerate(keys, start=1):
        code, body, _ = call("PUT", f"{cluster.url(node)}/v1/kv/{key}?lease={lease}", b"x")
        assert code == 200, body
    for node in (1, 2, 3):
        code, body, _ = call("GET", f"{cluster.url(node)}/v1/lease/{lease}")
        doc = json.loads(body)
        assert code == 200 and sorted(k["key"] for k in doc["keys"]) == keys, body
        assert 0 < doc["ttl"] <= 30 and doc["granted_ttl"] == 30
    code, body, _ = call("POST", f"{cluster.url(3)}/v1/lease/{lease}/keepalive")
    assert code == 200 and json.loads(body)["ttl"] == 30, body
    code, body, _ = call("DELETE", f"{cluster.url(1)}/v1/lease/{lease}")
    assert code == 200 and json.loads(body)["deleted"] == SHARDS, body
    for key in keys:
        assert call("GET", f"{cluster.url(2)}/v1/kv/{key}")[0] == 404
    assert call("GET", f"{cluster.url(2)}/v1/lease/{lease}")[0] == 404
    code, body, _ = call("PUT", f"{cluster.url(1)}/v1/kv/{keys[0]}?lease={lease}", b"x")
    assert code == 404 and json.loads(body)["error"]["code"] == "lease_not_found"


def test_an_expired_lease_takes_its_keys_on_every_shard(cluster: LocalCluster) -> None:
    with accord.Client([cluster.native_url(3)]) as client:
        lease = client.lease_grant(1)
        keys = keys_on_every_shard(cluster, "expiring/")
        for key in keys:
            client.put(key, "x", lease=lease.id)
        assert sorted(k.decode() for k in client.lease_ttl(lease.id).keys) == keys
        wait_for(
            lambda: all(client.get(key) is None for key in keys),
            "every key of the expired lease to go",
        )


def test_a_watch_over_shards_merges_their_streams_and_resumes_per_shard(
    cluster: LocalCluster,
) -> None:
    reader = WatchReader(cluster.url(3), "/v1/watch?prefix=w/")
    try:
        for i in range(12):
            put(cluster, i % 3 + 1, f"w/{i}", str(i))
        wait_for(lambda: len(reader.events) >= 12, "every event")
    finally:
        reader.close()
    assert sorted(e["kv"]["key"] for e in reader.events) == sorted(f"w/{i}" for i in range(12))
    by_shard: dict[int, list[int]] = {}
    for event in reader.events:
        by_shard.setdefault(event["shard"], []).append(event["kv"]["mod_revision"])
    assert len(by_shard) == SHARDS
    assert all(revs == sorted(revs) for revs in by_shard.values())  # each shard in order

    # Resume each shard after its last event seen: only what came later arrives.
    starts = ",".join(f"{shard}:{revs[-1] + 1}" for shard, revs in by_shard.items())
    reader = WatchReader(cluster.url(1), f"/v1/watch?prefix=w/&start_revisions={starts}")
    try:
        put(cluster, 2, "w/late", "x")
        wait_for(lambda: reader.events, "the later event")
    finally:
        reader.close()
    assert [e["kv"]["key"] for e in reader.events] == ["w/late"]


def test_restarting_every_node_keeps_every_shard(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path / "cluster", shards=SHARDS)
    cluster.start()
    try:
        for i in range(15):
            put(cluster, 1, f"p{i}", str(i))
        before = {s["id"]: s["keys"] for s in shards_doc(cluster, 1)["shards"]}
        assert "stopped" in cluster.stop()
        cluster.start()
        for i in range(15):
            code, body, _ = http("GET", f"{cluster.url(2)}/v1/kv/p{i}")
            assert (code, body) == (200, str(i).encode())
        assert {s["id"]: s["keys"] for s in shards_doc(cluster, 1)["shards"]} == before
    finally:
        if cluster.up is not None and cluster.up.poll() is None:
            cluster.stop()


def test_leaders_spread_evenly_over_the_nodes(tmp_path: Path) -> None:
    """3 nodes x 12 shards: each shard's leader is its preferred (first) voter once
    caught up, and the placement spreads those over the nodes."""
    for cluster in running_cluster(tmp_path / "cluster", shards=12):

        def balanced(cluster: LocalCluster = cluster) -> bool:
            counts = Counter(s["leader"] for s in shards_doc(cluster, 1)["shards"])
            return sorted(counts.values()) == [4, 4, 4]

        wait_for(balanced, "4 shard leaders on each node")


def request_counts(cluster: LocalCluster, protocol: str, operation: str) -> Counter[str]:
    """Requests of `operation` served by the three nodes, by status."""
    pattern = re.compile(
        rf'accord_{protocol}_requests_total{{operation="{operation}",status="(\d+)"}} (\S+)'
    )
    counts: Counter[str] = Counter()
    for node in (1, 2, 3):
        text = http("GET", f"{cluster.url(node)}/metrics")[1].decode()
        for status, value in pattern.findall(text):
            counts[status] += int(float(value))
    return counts


@pytest.mark.parametrize("protocol", ["http", "native"])
def test_the_client_sends_each_request_straight_to_its_shard_leader(
    cluster: LocalCluster, protocol: str
) -> None:
    url = cluster.url(1) if protocol == "http" else cluster.native_url(1)
    operation = "kv_put" if protocol == "http" else "put"
    before = request_counts(cluster, protocol, operation)
    with accord.Client([url]) as client:
        client.put("warm-up", "x")  # the first write learns the map
        warm = request_counts(cluster, protocol, operation)
        for i in range(60):
            client.put(f"direct/{protocol}/{i}", str(i))
        assert client.range(prefix=f"direct/{protocol}/").count == 60
    after = request_counts(cluster, protocol, operation)
    # Each put was answered once, by its shard's leader: nothing forwarded (a forwarded
    # request counts on two nodes), refused (not_leader) or renewed (a session unknown
    # to a shard).
    assert after - warm == Counter({"200": 60}), (before, warm, after)


def test_accord_shard_list_prints_every_shard(cluster: LocalCluster) -> None:
    # Nodes register themselves in the metadata in their first placement round.
    wait_for(lambda: len(shards_doc(cluster, 3)["nodes"]) == 3, "every node registered")
    result = CliRunner().invoke(cli, ["shard", "list", "--endpoints", cluster.url(3)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "shard map version 1"
    rows = {line.split()[0]: line.split() for line in lines[2:] if not line.startswith("node")}
    nodes = [line.split() for line in lines if line.startswith("node")]
    assert [(n[1], n[2], n[3]) for n in nodes] == [(str(i), f"n{i}", "up") for i in (1, 2, 3)]
    doc = shards_doc(cluster, 3)
    assert sorted(rows) == [str(s["id"]) for s in doc["shards"]]
    for shard in doc["shards"]:
        assert rows[str(shard["id"])][1] == f"{shard['slots'][0][0]}-{shard['slots'][0][1] - 1}"


async def follow_through_a_kill(cluster: LocalCluster, keys: list[str]) -> list[tuple[str, str]]:
    """Two rounds of puts, one per key, watched; the watch's node is killed between."""
    urls = [cluster.native_url(n) for n in (1, 2, 3)]
    seen: list[tuple[str, str]] = []
    async with accord.AsyncClient(urls) as writer, accord.AsyncClient(urls) as watcher:
        watch = watcher.watch(prefix="resume/")
        events = aiter(watch)
        first: asyncio.Future[Any] | None = asyncio.ensure_future(anext(events))  # reads now
        async with asyncio.timeout(30):
            while watch.endpoint is None:
                await asyncio.sleep(0.05)
        for round_no in range(2):
            if round_no == 1:
                assert watch.next_revisions.keys() == {1, 2, 3}
                node = urls.index(str(watch.endpoint)) + 1
                os.kill(cluster.pids()[node], signal.SIGKILL)
            for key in keys:
                await writer.put(key, str(round_no))
            for _ in keys:
                event = await asyncio.wait_for(first if first else anext(events), 30)
                first = None
                seen.append((event.kv.key.decode(), event.kv.value.decode()))
        await watch.aclose()
    return seen


def test_a_client_watch_over_shards_resumes_each_shard_after_its_node_dies(
    tmp_path: Path,
) -> None:
    """The watch goes on from another node with each shard's own cursor and sees
    every put once."""
    for cluster in running_cluster(tmp_path / "cluster", shards=SHARDS):
        keys = keys_on_every_shard(cluster, "resume/")
        seen = asyncio.run(follow_through_a_kill(cluster, keys))
        assert sorted(seen) == sorted((k, str(r)) for r in range(2) for k in keys)
