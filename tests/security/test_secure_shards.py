"""A sharded `accord up --secure` cluster: the shard executors' own calls between
nodes (registrations sent to the metadata leader, its health probes) pass TLS and
auth with the nodes' credentials, and a dead node is still told from a live one."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest

from accord.testing.cluster import LocalCluster, wait_for

from .authnode import call, login


@pytest.fixture
def cluster(tmp_path: Any) -> Iterator[LocalCluster]:
    c = LocalCluster(
        tmp_path / "cluster", secure=True, shards=3, env={"ACCORD_NODE_DOWN_AFTER_S": "2"}
    )
    c.start()
    yield c
    if c.up is not None and c.up.poll() is None:
        c.stop()


def test_nodes_register_through_tls_and_auth_and_a_dead_one_is_marked_down(
    cluster: LocalCluster,
) -> None:
    password = (cluster.directory / "secure" / "root.password").read_text().strip()
    token = wait_for(lambda: _login(cluster, password), "auth bootstrap and a root login")

    asked = [1]  # the node asked: one that stays alive

    def states() -> dict[str, str]:
        url = f"{cluster.url(asked[0])}/v1/cluster/shards"
        status, body = call("GET", url, token=token, context=cluster.context)
        doc = body if status == 200 else {}
        return {n["name"]: n["state"] for n in doc.get("nodes", [])}

    wait_for(lambda: states() == {"n1": "up", "n2": "up", "n3": "up"}, "every node registered")
    leader = cluster.leader()
    victim = next(n for n in (1, 2, 3) if n != leader)
    asked[0] = leader
    os.kill(cluster.pids()[victim], signal.SIGKILL)
    wait_for(lambda: states().get(f"n{victim}") == "down", f"n{victim} marked down")
    assert [s for name, s in states().items() if name != f"n{victim}"] == ["up", "up"]


def _login(cluster: LocalCluster, password: str) -> str | None:
    try:
        return login(cluster.url(1), "root", password, context=cluster.context)
    except (AssertionError, OSError, KeyError):
        return None
