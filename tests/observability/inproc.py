"""Nodes of one cluster running in this test's event loop, each with its own metrics
registry and an in-memory span exporter: what a real process has, inspectable."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from accord.node.address import Member
from accord.node.runtime import Node
from accord.node.service import KVService
from accord.observability.metrics import NodeMetrics
from accord.observability.tracing import Tracing
from accord.security.config import SecurityConfig
from accord.server.assembly import Observers, build_node, build_runner
from accord.server.config import NodeConfig
from accord.testing.peertls import with_peer_tls
from accord.testing.ports import free_ports


@dataclass
class InProcNode:
    config: NodeConfig
    node: Node
    service: KVService
    runner: web.AppRunner
    spans: InMemorySpanExporter
    metrics: NodeMetrics

    @property
    def url(self) -> str:
        return self.config.client_url


@contextlib.asynccontextmanager
async def inproc_cluster(
    tmp_path: Path, size: int, snapshot_entries: int = 10_000, slow_request_ms: int = 1000
) -> AsyncIterator[list[InProcNode]]:
    ports = free_ports(2 * size)
    members = {
        i: Member(i, f"n{i}", ("127.0.0.1", ports[size + i - 1]), ("127.0.0.1", ports[i - 1]))
        for i in range(1, size + 1)
    }
    names = {i: m.name for i, m in members.items()}
    security = with_peer_tls(SecurityConfig(), tmp_path, "accord", names)
    nodes: list[InProcNode] = []
    try:
        for member in members.values():
            config = NodeConfig(
                name=member.name,
                id=member.id,
                data_dir=tmp_path / member.name,
                client=member.client,
                peer=member.peer,
                members=members,
                tick_ms=20,
                snapshot_entries=snapshot_entries,
                slow_request_ms=slow_request_ms,
                security=security[member.id],
            )
            spans = InMemorySpanExporter()
            observers = Observers(NodeMetrics(), Tracing(member.name, spans, batch=False))
            node, service, state = build_node(config, observers)
            runner = build_runner(config, node, service, state, observers)
            await runner.setup()
            await node.start()
            service.start()
            await web.TCPSite(runner, *config.client).start()
            nodes.append(InProcNode(config, node, service, runner, spans, observers.metrics))
        yield nodes
    finally:
        for n in nodes:
            await n.service.stop()
            await n.runner.cleanup()
            await n.node.stop(transfer_leadership=False)


async def wait_for_leader(nodes: list[InProcNode], timeout_s: float = 20.0) -> InProcNode:
    async with asyncio.timeout(timeout_s):
        while True:
            for n in nodes:
                if n.node.is_leader:
                    return n
            await asyncio.sleep(0.02)
