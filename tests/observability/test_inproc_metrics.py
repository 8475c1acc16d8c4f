"""Metrics of several nodes in one process: each has its own registry; snapshot and
fsync observations; the dependency rule that keeps Raft and storage free of them."""

from __future__ import annotations

import ast
import io
import json
import logging
import pkgutil
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

import accord.raft
import accord.storage
from accord.api.openapi import spec
from accord.observability.logs import NodeContext, configure_logging
from accord.observability.metrics import NodeMetrics
from accord.server.assembly import _sync_observer
from accord.server.config import NodeConfig

from .inproc import InProcNode, inproc_cluster, wait_for_leader


def samples(node: InProcNode) -> dict[str, float]:
    text = node.metrics.render().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = s.name + "".join(f"|{k}={v}" for k, v in sorted(s.labels.items()))
            out[key] = s.value
    return out


@pytest.mark.asyncio
async def test_each_node_has_its_own_registry_and_counts_snapshots(tmp_path: Path) -> None:
    async with inproc_cluster(tmp_path, 3, snapshot_entries=10) as nodes:
        leader = await wait_for_leader(nodes)
        async with aiohttp.ClientSession() as http:
            for i in range(30):
                async with http.put(f"{leader.url}/v1/kv/s{i}", data=b"v") as r:
                    assert r.status == 200
        own = samples(leader)
        assert own["accord_http_requests_total|operation=kv_put|status=200"] == 30
        assert own[f"accord_node_info|id={leader.config.id}|name={leader.config.name}"] == 1
        assert own["accord_raft_snapshots_taken_total"] >= 1  # 30 writes, one per 10 entries
        for other in nodes:
            if other is not leader:
                theirs = samples(other)
                assert "accord_http_requests_total|operation=kv_put|status=200" not in theirs
                assert f"accord_node_info|id={other.config.id}|name={other.config.name}" in theirs


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    out = io.StringIO()
    configure_logging("json", "info", NodeContext("n1", 1, lambda: 3), out)
    yield out
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


def test_slow_fsyncs_are_observed_and_logged(captured_logs: io.StringIO) -> None:
    config = NodeConfig("n1", 1, Path("/nonexistent"), ("h", 1), ("h", 2), slow_fsync_ms=50)
    metrics = NodeMetrics()
    observe = _sync_observer(config, metrics)
    observe(0.002, 100)  # fast: measured, not logged
    observe(0.2, 300)  # slow
    text = metrics.render().decode().splitlines()
    assert "accord_wal_fsync_duration_seconds_count 2.0" in text
    assert "accord_wal_written_bytes_total 400.0" in text
    records = [json.loads(line) for line in captured_logs.getvalue().splitlines()]
    assert [(r["event"], r["bytes"], r["term"]) for r in records] == [("slow_fsync", 300, 3)]


def test_the_openapi_document_lists_the_monitoring_endpoints() -> None:
    paths = spec()["paths"]
    for path in ("/health", "/ready", "/metrics", "/"):
        assert "get" in paths[path], path
    assert "text/html" in paths["/"]["get"]["responses"]["200"]["content"]


@pytest.mark.parametrize("package", [accord.raft, accord.storage])
def test_raft_and_storage_know_nothing_of_metrics_or_tracing(package: object) -> None:
    banned = ("prometheus_client", "opentelemetry", "accord.observability")
    path = Path(package.__file__).parent  # type: ignore[attr-defined]
    found = []
    for module in pkgutil.iter_modules([str(path)]):
        tree = ast.parse((path / f"{module.name}.py").read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            found += [f"{module.name}: {n}" for n in names if n.startswith(banned)]
    assert found == []


@pytest.mark.asyncio
async def test_requests_are_labelled_by_route_and_status(tmp_path: Path) -> None:
    async with inproc_cluster(tmp_path, 1) as nodes:
        node = await wait_for_leader(nodes)
        async with aiohttp.ClientSession() as http:
            for method, path, status in [
                ("PUT", "/v1/kv/a", 200),
                ("GET", "/v1/kv/a", 200),
                ("GET", "/v1/kv/absent", 404),
                ("POST", "/v1/kv/a", 405),
                ("GET", "/no/such/path", 404),
                ("HEAD", "/health", 200),
                ("GET", "/", 200),
            ]:
                async with http.request(method, node.url + path) as r:
                    assert r.status == status, (method, path)
        seen = samples(node)
        for operation, status in [
            ("kv_put", 200),
            ("kv_get", 200),
            ("kv_get", 404),
            ("unmatched", 405),
            ("unmatched", 404),
            ("health", 200),
            ("dashboard", 200),
        ]:
            key = f"accord_http_requests_total|operation={operation}|status={status}"
            assert seen.get(key) == 1, key


@pytest.mark.asyncio
async def test_slow_requests_are_logged_with_their_request_id(
    tmp_path: Path, captured_logs: io.StringIO
) -> None:
    # A threshold of 0 ms makes every request slow (the config refuses it; tests may).
    async with inproc_cluster(tmp_path, 1, slow_request_ms=0) as nodes:
        node = await wait_for_leader(nodes)
        async with aiohttp.ClientSession() as http:
            headers = {"X-Request-Id": "req-17"}
            async with http.put(f"{node.url}/v1/kv/slow", data=b"v", headers=headers) as r:
                assert r.status == 200
    records = [json.loads(line) for line in captured_logs.getvalue().splitlines()]
    slow = [r for r in records if r.get("event") == "slow_request"]
    assert [(r["request_id"], r["operation"], r["status"]) for r in slow] == [
        ("req-17", "kv_put", 200)
    ]
    assert slow[0]["node"] == "n1" and slow[0]["seconds"] > 0
