"""Replica moves on a sharded cluster of real processes: a node that joins gets its
share of the replicas while writes go on, an operator moves one by hand, and a dead
node's replicas are rebuilt on the others. No acknowledged write is lost."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import accord
from accord.cli.main import cli
from accord.testing.cluster import (
    DEADLINE_S,
    LocalCluster,
    WatchReader,
    http,
    running_cluster,
    wait_for,
)

MOVE_DEADLINE_S = 90.0
"""Moves go one at a time per node (a snapshot each): two or three of them, plus the
placement rounds between, on a loaded two-core machine."""


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    env = {"ACCORD_NODE_DOWN_AFTER_S": "3"}
    yield from running_cluster(tmp_path / "cluster", shards=3, env=env)


def shards(cluster: LocalCluster, node: int) -> dict[str, Any]:
    code, body, _ = http("GET", f"{cluster.url(node)}/v1/cluster/shards")
    return json.loads(body) if code == 200 else {}


def replica_counts(doc: dict[str, Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for shard in doc.get("shards", []):
        for name in shard["replicas"]:
            counts[name] = counts.get(name, 0) + 1
    return counts


def balanced(cluster: LocalCluster, names: set[str]) -> dict[str, Any] | None:
    """The map once it places 3 replicas of every shard over exactly `names`, no two
    nodes' counts more than one apart, and no move under way; else None."""
    doc = shards(cluster, 1)
    rows = doc.get("shards", [])
    counts = replica_counts(doc)
    done = (
        rows
        and set(counts) == names
        and max(counts.values()) - min(counts.values()) <= 1
        and all(len(s["replicas"]) == 3 and not s["learners"] and not s["move"] for s in rows)
    )
    return doc if done else None


def wait_for_share_of_node_4(cluster: LocalCluster) -> dict[str, Any]:
    """The map once node 4, just added, holds its share of the replicas."""
    return wait_for(  # type: ignore[no-any-return]
        lambda: balanced(cluster, {"n1", "n2", "n3", "n4"}),
        "node 4 to hold its share of the replicas",
        MOVE_DEADLINE_S,
    )


def hosts_exactly_its_shards(cluster: LocalCluster, node: int) -> bool:
    """The node holds a replica (reports keys) of the shards it is a member of, and
    of no other: a replica moved away is deleted."""
    doc = shards(cluster, node)
    name = f"n{node}"
    return bool(doc) and all(
        (s["keys"] is not None) == (name in s["replicas"]) for s in doc["shards"]
    )


class Writer:
    """Puts distinct keys through the given nodes until stopped; keeps the acked."""

    def __init__(self, cluster: LocalCluster, nodes: list[int]) -> None:
        self.cluster = cluster
        self.nodes = nodes
        self.acked: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            i += 1
            node = self.nodes[i % len(self.nodes)]
            try:
                code = http("PUT", f"{self.cluster.url(node)}/v1/kv/w{i}", str(i).encode())[0]
            except OSError:
                continue  # outcome unknown: not counted
            if code == 200:
                self.acked.append(f"w{i}")

    def more(self, count: int) -> None:
        seen = len(self.acked)
        wait_for(lambda: len(self.acked) >= seen + count, f"{count} more acknowledged writes")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=DEADLINE_S)


def check_every_write(cluster: LocalCluster, node: int, acked: list[str]) -> None:
    for key in acked:
        code, value, _ = http("GET", f"{cluster.url(node)}/v1/kv/{key}")
        assert (code, value) == (200, key[1:].encode()), key


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=DEADLINE_S)


def test_a_joining_node_gets_its_share_of_replicas_while_writes_go_on(
    cluster: LocalCluster,
) -> None:
    writer = Writer(cluster, [1, 2, 3])
    writer.more(20)
    node4 = cluster.add_node(4)
    try:
        doc = wait_for_share_of_node_4(cluster)
        assert replica_counts(doc)["n4"] == 2  # 9 replicas over 4 nodes: 3, 2, 2, 2

        def leaders_spread() -> bool:
            preferred = {s["id"]: s["replicas"][0] for s in shards(cluster, 1)["shards"]}
            # A node knows the leader of the shards it holds a replica of.
            leaders = {
                s["id"]: s["leader"]
                for node in (1, 2, 3, 4)
                for s in shards(cluster, node).get("shards", [])
                if s["keys"] is not None
            }
            return len(set(preferred.values())) == 3 and leaders == preferred

        # A node that takes a source's place takes its preferred leaderships too; the
        # driver spreads them again (one shard each), and the leaders follow.
        wait_for(leaders_spread, "the leaders spread over the nodes again", MOVE_DEADLINE_S)
        states = {n["name"]: n["state"] for n in doc["nodes"]}
        assert states == {"n1": "up", "n2": "up", "n3": "up", "n4": "up"}
        writer.more(20)
        writer.stop()
        for node in (1, 2, 3, 4):
            wait_for(lambda n=node: hosts_exactly_its_shards(cluster, n), f"n{node}'s replicas")
        # Every acknowledged write, read through the new node (linearizable reads
        # of its shards go through their leaders, wherever they are now).
        check_every_write(cluster, 4, writer.acked)
        mine = [s for s in shards(cluster, 4)["shards"] if "n4" in s["replicas"]]
        assert all(s["leader"] and s["keys"] > 0 for s in mine)
    finally:
        writer.stop()
        stop_process(node4)


def test_an_operator_moves_a_replica_and_bad_moves_are_refused(cluster: LocalCluster) -> None:
    node4 = cluster.add_node(4)
    try:
        doc = wait_for_share_of_node_4(cluster)
        shard = next(s for s in doc["shards"] if "n4" not in s["replicas"])
        source = int(shard["replicas"][-1][1:])

        def move(body: dict[str, Any], shard_id: int = shard["id"]) -> tuple[int, Any]:
            url = f"{cluster.url(2)}/v1/cluster/shards/{shard_id}/move"  # any node
            code, answer, _ = http("POST", url, json.dumps(body).encode())
            return code, json.loads(answer)

        member = int(shard["replicas"][0][1:])
        code, answer = move({"source": source, "target": member})
        assert code == 409 and answer["error"]["code"] == "shard_change_refused", answer
        code, answer = move({"source": source, "target": 4}, shard_id=999)
        assert code == 409 and answer["error"]["code"] == "shard_change_refused", answer
        code, answer = move({"target": 0})
        assert code == 400, answer
        writer = Writer(cluster, [1, 2, 3, 4])
        try:
            command = ["shard", "move", str(shard["id"]), "--from", str(source), "--to", "4"]
            result = CliRunner().invoke(cli, [*command, "--endpoints", cluster.url(3)])
            assert result.exit_code == 0, result.output
            assert f"shard {shard['id']}: moving node {source} to node 4" in result.output

            def moved() -> bool:
                row = next(s for s in shards(cluster, 1)["shards"] if s["id"] == shard["id"])
                return "n4" in row["replicas"] and f"n{source}" not in row["replicas"]

            wait_for(moved, "the operator's move to finish", MOVE_DEADLINE_S)
            writer.more(20)
        finally:
            writer.stop()
        check_every_write(cluster, 1, writer.acked)
    finally:
        stop_process(node4)


def test_a_dead_nodes_replicas_are_rebuilt_on_the_others(cluster: LocalCluster) -> None:
    node4 = cluster.add_node(4)
    try:
        wait_for_share_of_node_4(cluster)
        writer = Writer(cluster, [1, 3, 4])
        try:
            writer.more(20)
            os.kill(cluster.pids()[2], signal.SIGKILL)
            doc = wait_for(
                lambda: balanced(cluster, {"n1", "n3", "n4"}),
                "node 2's replicas rebuilt on nodes 1, 3 and 4",
                MOVE_DEADLINE_S,
            )
            assert {n["name"]: n["state"] for n in doc["nodes"]}["n2"] == "down"
            writer.more(20)
        finally:
            writer.stop()
        check_every_write(cluster, 3, writer.acked)
    finally:
        stop_process(node4)


def test_a_node_without_every_shard_serves_watches_and_ranges_over_all(
    cluster: LocalCluster,
) -> None:
    node4 = cluster.add_node(4)
    try:
        doc = wait_for_share_of_node_4(cluster)
        # 3 shards, 2 of them on node 4: the third is watched on another node.
        assert sum("n4" in s["replicas"] for s in doc["shards"]) == 2
        watcher = WatchReader(cluster.url(4), "/v1/watch?prefix=z/")
        try:
            for i in range(30):  # (a leader may be handing over: 503, tried again)
                url = f"{cluster.url(1)}/v1/kv/z/{i}"
                wait_for(lambda url=url: http("PUT", url, b"v")[0] == 200, f"put z/{i}")
            wait_for(lambda: len(watcher.events) >= 30, "30 watch events")
        finally:
            watcher.close()
        assert sorted(e["kv"]["key"] for e in watcher.events) == sorted(f"z/{i}" for i in range(30))
        assert {e["shard"] for e in watcher.events} == {1, 2, 3}
        # A range over every shard, read there too: the missing shard's part remotely.
        for consistency in ("", "&consistency=serializable"):
            code, body, _ = http("GET", f"{cluster.url(4)}/v1/range?prefix=z/{consistency}")
            assert code == 200, body
            answer = json.loads(body)
            assert sorted(kv["key"] for kv in answer["kvs"]) == sorted(f"z/{i}" for i in range(30))
            assert answer["count"] == 30 and sorted(answer["revisions"]) == ["1", "2", "3"]
        code, body, _ = http("GET", f"{cluster.url(4)}/v1/range?prefix=z/&limit=7")
        answer = json.loads(body)
        assert [kv["key"] for kv in answer["kvs"]] == sorted(f"z/{i}" for i in range(30))[:7]
        assert answer["more"] and answer["count"] == 30
        assert asyncio.run(watch_natively(cluster.native_url(4))) == {
            f"y/{i}".encode() for i in range(9)
        }
    finally:
        stop_process(node4)


async def watch_natively(url: str) -> set[bytes]:
    """Keys of 9 puts over every shard, seen by a native watch on `url` once open."""
    async with accord.AsyncClient([url]) as client:
        watch = client.watch(prefix="y/")
        events = aiter(watch)
        first = asyncio.ensure_future(anext(events))  # opens the watch
        async with asyncio.timeout(DEADLINE_S):
            while watch.endpoint is None:
                await asyncio.sleep(0.05)
        for i in range(9):
            await client.put(f"y/{i}", "v")
        seen = {(await asyncio.wait_for(first, DEADLINE_S)).kv.key}
        while len(seen) < 9:
            seen.add((await asyncio.wait_for(anext(events), DEADLINE_S)).kv.key)
        await watch.aclose()
    return seen
