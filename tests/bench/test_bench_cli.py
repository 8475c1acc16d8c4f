"""`accord bench` end to end: against a real Accord cluster over both protocols, and
against a real etcd (Debian's etcd-server) through its JSON gateway."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from accord.client import Client
from accord.testing.cluster import LocalCluster, http, running_cluster, wait_for
from accord.testing.ports import free_ports


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    yield from running_cluster(tmp_path_factory.mktemp("bench") / "cluster")


def bench(*args: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        [sys.executable, "-m", "accord.cli.main", "bench", "--json", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    result: list[dict[str, Any]] = json.loads(out.stdout)
    return result


@pytest.mark.parametrize("protocol", ["native", "http"])
def test_every_workload_runs_and_reports(
    cluster: LocalCluster, protocol: str, tmp_path: Path
) -> None:
    endpoints = ",".join(
        cluster.native_url(n) if protocol == "native" else cluster.url(n) for n in (1, 2, 3)
    )
    plot = tmp_path / "bench.png"
    workloads = ["write", "read", "mixed-50", "txn"]
    summaries = bench(
        "--endpoints", endpoints,
        *(arg for w in workloads for arg in ("--workload", w)),
        "--concurrency", "4", "--seconds", "1", "--processes", "2",
        "--keys", "50", "--prefill", "40", "--plot", str(plot),
    )  # fmt: skip
    assert [s["workload"] for s in summaries] == workloads
    for s in summaries:
        assert s["operations"] > 0 and s["ops_per_s"] > 0, s
        assert set(s["errors"]) <= {"cas_conflict"}, s["errors"]
        latency = s["latency_ms"]
        assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"]
        assert sum(s["per_second"]) == s["operations"]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Client([cluster.url(1)]) as client:  # the prefill really wrote the read keys
        assert client.range(prefix="bench/").count >= 40
        kv = client.get("bench/00000039")
        assert kv is not None and kv.value == b"x" * 100


@pytest.mark.skipif(shutil.which("etcd") is None, reason="etcd-server is not installed")
def test_the_same_load_drives_etcd(tmp_path: Path) -> None:
    client_port, peer_port = free_ports(2)
    client_url = f"http://127.0.0.1:{client_port}"
    peer_url = f"http://127.0.0.1:{peer_port}"
    with open(tmp_path / "etcd.log", "wb") as log:
        etcd = subprocess.Popen(
            [
                "etcd", "--name", "e1", "--data-dir", str(tmp_path / "e1"),
                "--listen-client-urls", client_url, "--advertise-client-urls", client_url,
                "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
                "--initial-cluster", f"e1={peer_url}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_for(lambda: http("GET", f"{client_url}/health")[0] == 200, "etcd to start")
        summaries = bench(
            "--target", "etcd", "--endpoints", client_url,
            "--workload", "write", "--workload", "read-serializable", "--workload", "txn",
            "--concurrency", "4", "--seconds", "1", "--keys", "20", "--prefill", "20",
        )  # fmt: skip
        for s in summaries:
            assert s["target"] == "etcd" and s["operations"] > 0, s
            assert set(s["errors"]) <= {"cas_conflict"}, s["errors"]
    finally:
        etcd.terminate()
        etcd.wait(timeout=30)
