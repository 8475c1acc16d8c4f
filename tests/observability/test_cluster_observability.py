"""Metrics, /health, /ready and logs of real node processes (`accord up`)."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from accord.testing.cluster import LocalCluster, http, running_cluster, wait_for

from .scrape import scrape, total, value

FAMILIES = [
    "accord_http_requests_total",
    "accord_http_request_duration_seconds_bucket",
    "accord_raft_term",
    "accord_raft_role",
    "accord_raft_leader_changes_total",
    "accord_raft_commit_index",
    "accord_raft_applied_index",
    "accord_raft_pending_proposals",
    "accord_raft_proposals_failed_total",
    "accord_raft_messages_sent_total",
    "accord_raft_messages_received_total",
    "accord_raft_snapshots_taken_total",
    "accord_raft_snapshots_sent_total",
    "accord_raft_snapshots_installed_total",
    "accord_wal_fsync_duration_seconds_count",
    "accord_wal_written_bytes_total",
    "accord_kv_keys",
    "accord_kv_revision",
    "accord_kv_leases",
    "accord_kv_watchers",
    "accord_http_client_connections",
    "process_resident_memory_bytes",
    "process_cpu_seconds_total",
]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    yield from running_cluster(tmp_path / "cluster")


def put(url: str, key: str) -> None:
    code, body, _ = http("PUT", f"{url}/v1/kv/{key}", b"v")
    assert code == 200, body


def test_metric_families_are_present_and_move(cluster: LocalCluster) -> None:
    leader = cluster.leader()
    follower = next(n for n in (1, 2, 3) if n != leader)
    before = scrape(cluster.url(follower))
    names = {name for name, _ in before}
    assert not [f for f in FAMILIES if f not in names]
    assert value(before, "accord_raft_role", role="follower") == 1
    puts = 25
    for i in range(puts):
        put(cluster.url(follower), f"m{i}")
    after = scrape(cluster.url(follower))
    counted = value(after, "accord_http_requests_total", operation="kv_put", status="200")
    assert (
        counted - value(before, "accord_http_requests_total", operation="kv_put", status="200")
        == puts
    )
    assert (
        value(after, "accord_raft_commit_index") >= value(before, "accord_raft_commit_index") + puts
    )
    assert value(after, "accord_wal_fsync_duration_seconds_count") > value(
        before, "accord_wal_fsync_duration_seconds_count"
    )
    assert value(after, "accord_wal_written_bytes_total") > value(
        before, "accord_wal_written_bytes_total"
    )
    assert total(after, "accord_raft_messages_received_total") > total(
        before, "accord_raft_messages_received_total"
    )
    wait_for(
        lambda: value(scrape(cluster.url(follower)), "accord_kv_keys") == puts,
        "the follower to apply every key",
    )
    on_leader = scrape(cluster.url(leader))
    assert value(on_leader, "accord_raft_role", role="leader") == 1
    assert total(on_leader, "accord_raft_messages_sent_total", type="append") >= 1
    assert {ls for n, ls in on_leader if n == "accord_raft_replication_lag_entries"} == {
        frozenset({("follower", str(n))}) for n in (1, 2, 3) if n != leader
    }
    _, headers = http("GET", f"{cluster.url(1)}/metrics")[1:]
    assert headers["Access-Control-Allow-Origin"] == "*"


def test_killing_the_leader_counts_a_leader_change(cluster: LocalCluster) -> None:
    leader = cluster.leader()
    survivor = next(n for n in (1, 2, 3) if n != leader)
    changes = value(scrape(cluster.url(survivor)), "accord_raft_leader_changes_total")
    assert changes >= 1
    os.kill(cluster.pids()[leader], signal.SIGKILL)
    new_leader = cluster.leader(exclude=leader)
    wait_for(
        lambda: value(scrape(cluster.url(survivor)), "accord_raft_leader_changes_total") > changes,
        "the survivor to count the new leader",
    )
    put(cluster.url(new_leader), "after")
    first = scrape(cluster.url(new_leader))
    dead = {"follower": str(leader)}
    assert value(first, "accord_raft_replication_lag_entries", **dead) >= 1  # misses "after"
    lag_s = value(first, "accord_raft_replication_lag_seconds", **dead)
    assert lag_s > 0
    wait_for(
        lambda: (
            value(scrape(cluster.url(new_leader)), "accord_raft_replication_lag_seconds", **dead)
            > lag_s
        ),
        "the dead member's lag to grow",
    )
    alive = {"follower": str(next(n for n in (1, 2, 3) if n not in (leader, new_leader)))}
    wait_for(
        lambda: (
            value(scrape(cluster.url(new_leader)), "accord_raft_replication_lag_seconds", **alive)
            == 0
        ),
        "the live follower to have every entry",
    )


def test_health_and_ready_follow_the_quorum(cluster: LocalCluster) -> None:
    lone = 1
    others = [cluster.pids()[n] for n in (2, 3)]
    url = cluster.url(lone)
    wait_for(lambda: http("GET", f"{url}/ready")[0] == 200, "node 1 ready")
    try:
        for pid in others:
            os.kill(pid, signal.SIGSTOP)

        def not_ready() -> dict[str, object] | None:
            code, body, _ = http("GET", f"{url}/ready", timeout=1)
            return json.loads(body) if code == 503 else None

        reason = wait_for(not_ready, "node 1 to be unready without a quorum")
        assert reason["error"]["code"] == "no_leader"  # type: ignore[index]
        code, body, _ = http("GET", f"{url}/health")
        assert code == 200, body  # alive, only not ready
    finally:
        for pid in others:
            os.kill(pid, signal.SIGCONT)
    wait_for(lambda: http("GET", f"{url}/ready")[0] == 200, "node 1 ready again")


def test_node_logs_are_json_lines_with_node_and_term(cluster: LocalCluster) -> None:
    leader = cluster.leader()
    put(cluster.url(leader), "logged")
    log_file = cluster.directory / f"n{leader}" / "node.log"
    records = [json.loads(line) for line in log_file.read_text().splitlines() if line]
    assert records and all(r["node"] == f"n{leader}" and r["node_id"] == leader for r in records)
    events = [r for r in records if r.get("event") == "role_changed" and r["role"] == "leader"]
    assert events and events[-1]["term"] >= 1
    assert f"Dashboard: {cluster.url(1)}/" in cluster.stop()


def test_status_watch_refreshes_until_interrupted(cluster: LocalCluster) -> None:
    """Run in a pseudo-terminal, as a person would: Live redraws only on terminals."""
    endpoints = ",".join(cluster.url(n) for n in (1, 2, 3))
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "accord.cli.main", "status", "--watch", "--interval", "0.2"],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env={**os.environ, "ACCORD_ENDPOINTS": endpoints, "COLUMNS": "160"},
    )
    os.close(terminal)
    seen = bytearray()
    try:

        def refreshed() -> bool:
            # Live redraws the same table by itself; distinct times prove new polls.
            if select.select([controller], [], [], 0.2)[0]:
                seen.extend(os.read(controller, 65536))
            return len(set(re.findall(rb"updated (\d\d:\d\d:\d\d)", seen))) >= 2

        wait_for(refreshed, "the table to be polled again")
        text = seen.decode(errors="replace")
        assert all(f"n{n} ({n})" in text for n in (1, 2, 3)) and "leader" in text
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(controller)
