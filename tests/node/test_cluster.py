"""A real 3-node cluster of separate processes on loopback, driven over HTTP."""

from __future__ import annotations

import json
import os
import re
import signal
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from accord.testing.cluster import (
    DEADLINE_S,
    LocalCluster,
    WatchReader,
    http,
    running_cluster,
    wait_for,
)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    yield from running_cluster(tmp_path / "cluster")


@pytest.fixture(scope="module")
def shared_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """One cluster for the tests that neither kill nor reconfigure anything."""
    yield from running_cluster(tmp_path_factory.mktemp("shared") / "cluster")


def put(url: str, key: str, value: bytes) -> int:
    code, body, _ = http("PUT", f"{url}/v1/kv/{key}", value)
    assert code == 200, body
    return int(json.loads(body)["revision"])


def test_writes_through_any_node_are_read_back_linearizably(cluster: LocalCluster) -> None:
    revisions = [put(cluster.url(node), f"k{node}", f"v{node}".encode()) for node in (1, 2, 3)]
    assert revisions == sorted(revisions) and len(set(revisions)) == 3
    for node in (1, 2, 3):
        for key_node in (1, 2, 3):
            code, body, headers = http("GET", f"{cluster.url(node)}/v1/kv/k{key_node}")
            assert (code, body) == (200, f"v{key_node}".encode())
            assert headers["X-Accord-Mod-Revision"] == str(revisions[key_node - 1])
    code, body, _ = http("GET", f"{cluster.url(1)}/v1/range?prefix=k")
    assert [kv["key"] for kv in json.loads(body)["kvs"]] == ["k1", "k2", "k3"]


def test_killing_the_leader_loses_no_acknowledged_write(cluster: LocalCluster) -> None:
    acknowledged = {f"a{i}": put(cluster.url(1 + i % 3), f"a{i}", b"x") for i in range(30)}
    leader = cluster.leader()
    os.kill(cluster.pids()[leader], signal.SIGKILL)
    survivor = next(n for n in (1, 2, 3) if n != leader)
    new_leader = cluster.leader(exclude=leader)
    assert new_leader != leader
    wait_for(
        lambda: http("PUT", f"{cluster.url(survivor)}/v1/kv/after", b"y")[0] == 200,
        "a write after the failover",
    )
    for key in acknowledged:
        code, body, _ = http("GET", f"{cluster.url(survivor)}/v1/kv/{key}")
        assert (code, body) == (200, b"x"), key


def test_restarting_every_node_keeps_the_data(cluster: LocalCluster) -> None:
    for i in range(20):
        put(cluster.url(1), f"p{i}", str(i).encode())
    output = cluster.stop()
    assert "stopped" in output
    cluster.start()
    for i in range(20):
        code, body, _ = http("GET", f"{cluster.url(2)}/v1/kv/p{i}")
        assert (code, body) == (200, str(i).encode())


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("POST", "/v1/txn", b"{not json", 400, "bad_request"),
        ("POST", "/v1/txn", b'{"compare": [], "extra": 1}', 400, "bad_request"),
        ("POST", "/v1/txn", b'{"success": [{"put": {"key": "k"}}]}', 400, "bad_request"),
        ("GET", "/v1/kv/k?revision=abc", None, 400, "bad_request"),
        ("GET", "/v1/kv/k?consistency=eventual", None, 400, "bad_request"),
        ("GET", "/v1/range?limit=5", None, 400, "bad_request"),
        ("PUT", "/v1/kv/" + "k" * 5000, b"v", 413, "limit_exceeded"),
        ("PUT", "/v1/kv/big", b"v" * (5 << 20), 413, "request_too_large"),
        ("GET", "/v1/kv/absent", None, 404, "not_found"),
        ("GET", "/v1/kv/k?revision=%C2%B2", None, 400, "bad_request"),
        ("GET", "/v1/lease/" + "9" * 5000, None, 400, "bad_request"),
        ("POST", "/v1/txn", b"[" * 100_000, 400, "bad_request"),
        (
            "POST",
            "/v1/txn",
            b'{"success": [{"range": {"key": "a", "limit": 18446744073709551616}}]}',
            400,
            "bad_request",
        ),
        ("POST", "/v1/lease/grant", b'{"ttl": 0}', 400, "bad_request"),
        (
            "POST",
            "/v1/members",
            '{"id": 9, "name": "n9", "peer": "h:\u00b2", "client": "h:1"}'.encode(),
            400,
            "bad_request",
        ),
        ("GET", "/v1/kv/k?revision=999999", None, 400, "future_revision"),
    ],
)
def test_bad_input_gets_a_clear_4xx(
    shared_cluster: LocalCluster, method: str, path: str, body: bytes | None, status: int, code: str
) -> None:
    got_status, got_body, _ = http(method, shared_cluster.url(1) + path, body)
    assert got_status == status, got_body
    error = json.loads(got_body)["error"]
    assert error["code"] == code and error["message"]


def test_openapi_describes_every_route(shared_cluster: LocalCluster) -> None:
    code, body, _ = http("GET", f"{shared_cluster.url(1)}/v1/openapi.json")
    paths = set(json.loads(body)["paths"])
    assert code == 200
    from aiohttp import web

    from accord.api.http import HttpApi

    app = HttpApi.__new__(HttpApi).app()
    routes = {r.resource.canonical for r in app.router.routes() if r.resource is not None}
    routes = {re.sub(r"\{(\w+):[^}]+\}", r"{\1}", route) for route in routes}
    assert routes == paths, routes ^ paths
    assert isinstance(app, web.Application)


def test_watch_sees_every_event_once_in_order_across_a_leader_change(cluster: LocalCluster) -> None:
    leader = cluster.leader()
    follower = next(n for n in (1, 2, 3) if n != leader)
    watcher = WatchReader(cluster.url(follower), "/v1/watch?prefix=w/&start_revision=1")
    try:
        for i in range(10):
            put(cluster.url(follower), f"w/{i}", b"before")
        os.kill(cluster.pids()[leader], signal.SIGKILL)
        cluster.leader(exclude=leader)
        for i in range(10, 20):
            wait_for(
                lambda i=i: http("PUT", f"{cluster.url(follower)}/v1/kv/w/{i}", b"after")[0] == 200,
                f"write {i}",
            )
        wait_for(lambda: len(watcher.events) >= 20, "20 watch events")
    finally:
        watcher.close()
    keys = [e["kv"]["key"] for e in watcher.events]
    revisions = [e["kv"]["mod_revision"] for e in watcher.events]
    assert keys == [f"w/{i}" for i in range(20)]
    assert revisions == sorted(set(revisions))
    assert not watcher.errors


def test_lease_expiry_deletes_its_keys(cluster: LocalCluster) -> None:
    cluster.agreed_leader()  # earlier tests move the leadership; the TTL is short
    code, body, _ = http("POST", f"{cluster.url(1)}/v1/lease/grant", b'{"ttl": 1}')
    assert code == 200, body
    lease = json.loads(body)["id"]
    code, body, _ = http("PUT", f"{cluster.url(2)}/v1/kv/session?lease={lease}", b"alive")
    assert code == 200, body
    code, body, _ = http("GET", f"{cluster.url(3)}/v1/kv/session")
    assert code == 200, body
    wait_for(
        lambda: http("GET", f"{cluster.url(3)}/v1/kv/session")[0] == 404,
        "the leased key to expire",
        timeout_s=10,
    )
    assert http("GET", f"{cluster.url(1)}/v1/lease/{lease}")[0] == 404
    code, body, _ = http("PUT", f"{cluster.url(1)}/v1/kv/late?lease={lease}", b"x")
    assert code == 404 and json.loads(body)["error"]["code"] == "lease_not_found"


def test_a_new_leader_renews_every_lease(cluster: LocalCluster) -> None:
    """Nobody could keep a lease alive while there was no leader: the new one gives every
    lease its full time to live again, so it does not expire for the failover."""
    old = cluster.leader()
    code, body, _ = http("POST", f"{cluster.url(old)}/v1/lease/grant", b'{"ttl": 6}')
    assert code == 200, body
    lease = json.loads(body)["id"]

    def ttl(node: int) -> int | None:
        code, body, _ = http("GET", f"{cluster.url(node)}/v1/lease/{lease}", timeout=2)
        return int(json.loads(body)["ttl"]) if code == 200 else None

    wait_for(lambda: (ttl(old) or 6) <= 3, "half of the lease's time to pass")
    os.kill(cluster.pids()[old], signal.SIGKILL)
    new = cluster.leader(exclude=old)
    renewed = wait_for(lambda: (ttl(new) or 0) >= 4, "the new leader to renew the lease")
    assert renewed


def test_a_retried_write_takes_effect_once(cluster: LocalCluster) -> None:
    def put_as(node: int, value: bytes, seq: int) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(
            f"{cluster.url(node)}/v1/kv/once",
            data=value,
            method="PUT",
            headers={"X-Accord-Client-Id": "77", "X-Accord-Seq": str(seq)},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    first = put_as(1, b"v1", 1)
    assert first[0] == 200
    # The same request again (e.g. after a lost reply), through another node.
    assert put_as(2, b"v1", 1) == first
    assert put_as(3, b"something else", 1) == first  # answered from the session record
    _, body, headers = http("GET", f"{cluster.url(1)}/v1/kv/once")
    assert body == b"v1" and headers["X-Accord-Version"] == "1"
    assert put_as(1, b"v2", 2)[0] == 200
    stale = put_as(1, b"v0", 1)
    assert stale[0] == 409 and stale[1]["error"]["code"] == "stale_request"
    assert http("PUT", f"{cluster.url(1)}/v1/kv/once", b"x")[0] == 200  # no session: fine
    half = urllib.request.Request(
        f"{cluster.url(1)}/v1/kv/once", data=b"x", method="PUT", headers={"X-Accord-Seq": "3"}
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(half, timeout=5)
    assert info.value.code == 400


def test_a_node_is_added_promoted_and_another_removed_while_writes_continue(
    cluster: LocalCluster,
) -> None:
    import threading

    acked: list[str] = []
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            try:
                code = http("PUT", f"{cluster.url(1 + i % 3)}/v1/kv/m{i}", b"v")[0]
            except OSError:
                continue  # e.g. the removed node stopped answering: outcome unknown
            if code == 200:
                acked.append(f"m{i}")

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    base = cluster.base
    node4 = cluster.add_node(4)
    try:
        wait_for(
            lambda: (
                len(acked) > 20
                and http("GET", f"{cluster.url(4)}/v1/kv/{acked[10]}?consistency=serializable")[0]
                == 200
            ),
            "the learner to catch up",
        )
        code, answer, _ = http("POST", f"{cluster.url(3)}/v1/members/4/promote")
        assert code == 200, answer
        code, answer, _ = http("DELETE", f"{cluster.url(4)}/v1/members/1")
        assert code == 200, answer

        def settled() -> bool:
            code, answer, _ = http("GET", f"{cluster.url(4)}/v1/members")
            data = json.loads(answer) if code == 200 else {}
            roles = {m["id"]: m["role"] for m in data.get("members", [])}
            return not data.get("joint") and roles == {2: "voter", 3: "voter", 4: "voter"}

        wait_for(settled, "members 2, 3, 4 as the only voters")
        status = cluster.status(2)
        assert status is not None
        native = {m["id"]: m["native_url"] for m in status["members"]}
        assert native[4] == f"accord://127.0.0.1:{base + 204}"  # replicated with the change
        count = len(acked)
        wait_for(lambda: len(acked) > count + 10, "writes to go on after the changes")
        stop.set()
        thread.join(timeout=DEADLINE_S)
        for key in acked:  # every acknowledged write, read through the new member
            code, value, _ = http("GET", f"{cluster.url(4)}/v1/kv/{key}")
            assert (code, value) == (200, b"v"), key
    finally:
        stop.set()
        node4.send_signal(signal.SIGTERM)
        node4.wait(timeout=DEADLINE_S)


def test_a_cluster_of_one_group_is_one_shard_owning_every_slot(
    shared_cluster: LocalCluster,
) -> None:
    from accord.shard import slot_of
    from accord.shard.limits import SLOT_COUNT

    for i in range(5):
        put(shared_cluster.url(1), f"shard-key-{i}", b"v")
    leader = shared_cluster.agreed_leader()
    code, body, _ = http("GET", f"{shared_cluster.url(2)}/v1/cluster/shards")
    assert code == 200, body
    doc = json.loads(body)
    assert doc["version"] == 0 and len(doc["shards"]) == 1
    shard = doc["shards"][0]
    assert shard["id"] == 0 and shard["slots"] == [[0, SLOT_COUNT]]
    _, members, _ = http("GET", f"{shared_cluster.url(2)}/v1/members")
    names = {m["id"]: m["name"] for m in json.loads(members)["members"]}
    assert shard["replicas"] == [names[i] for i in sorted(names)]
    assert shard["leader"] == names[leader]
    assert shard["keys"] >= 5  # the shared cluster's other tests may add theirs
    assert 0 <= slot_of(b"shard-key-0") < SLOT_COUNT
