"""`serve(config)`: one Accord node process — storage, Raft runtime, peer transport,
KV state machine and the HTTP API — running until SIGINT/SIGTERM, then a graceful
shutdown: stop accepting requests, hand leadership over, flush, exit 0."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from accord.api.http import HttpApi
from accord.api.limits import LISTEN_BACKLOG_MAX
from accord.api.native import NativeServer
from accord.kv import KVLimits, KVStateMachine
from accord.node.members import NodeState
from accord.node.observe import sample_node
from accord.node.router import ShardedKV
from accord.node.runtime import Node
from accord.node.service import KVService
from accord.node.shardhost import ShardHost
from accord.observability.logs import NodeContext
from accord.observability.metrics import NodeMetrics
from accord.observability.tracing import Tracing, make_tracing
from accord.raft import DebugFlags, Message, RaftConfig
from accord.security.atrest import node_cipher
from accord.security.nodetls import INSECURE_PEERS_WARNING, NodeTls
from accord.security.tls import node_identity
from accord.server.config import NodeConfig
from accord.server.security import NodeSecurity
from accord.storage import FileHostStorage
from accord.transport import PeerTransport

log = logging.getLogger("accord.node")

WRITE_BEHIND_S = 1.0
"""With `debug_ack_before_fsync`, how long acknowledged Raft state may sit in memory
before it is written: wide enough for a crash to catch acknowledged writes there."""


@dataclass(slots=True)
class Observers:
    """The node's metrics registry and tracer (None when tracing is off)."""

    metrics: NodeMetrics
    tracing: Tracing | None


def _sync_observer(config: NodeConfig, metrics: NodeMetrics) -> Callable[[float, int], None]:
    slow_s = config.slow_fsync_ms / 1000

    def on_sync(seconds: float, nbytes: int) -> None:
        metrics.observe_sync(seconds, nbytes)
        if seconds > slow_s:
            log.warning(
                "slow fsync: %.1f ms for %d bytes",
                seconds * 1000,
                nbytes,
                extra={"event": "slow_fsync", "seconds": round(seconds, 6), "bytes": nbytes},
            )

    return on_sync


def build_node(
    config: NodeConfig, observers: Observers | None = None
) -> tuple[Node, ShardedKV, NodeState]:
    raft_config = RaftConfig(
        id=config.id,
        bootstrap_voters=frozenset() if config.join else frozenset(config.members),
        election_ticks=config.election_ticks,
        debug=DebugFlags(ack_before_persist=config.debug_ack_before_fsync),
    )
    on_sync = _sync_observer(config, observers.metrics) if observers else None
    security = config.security
    cipher = node_cipher(config.data_dir, security.encryption_key_file, security.encryption_key)
    storage = FileHostStorage(config.data_dir / "raft", on_sync=on_sync, cipher=cipher)
    peers = NodeTls.build(security, config.id, config.cluster_id).peers
    peer_tls: dict[str, Any] = {}
    if peers is None:
        log.warning(INSECURE_PEERS_WARNING, extra={"event": "insecure_peers"})
    else:
        peer_tls = {
            "ssl_server": peers.server,
            "ssl_client": peers.client,
            "certificate_identity": node_identity,
        }
    limits = KVLimits(
        leases_max=config.leases_max,
        leases_per_user_max=config.leases_per_user_max,
        response_bytes_max=config.response_bytes_max,
        read_keys_scanned_max=config.read_keys_scanned_max,
        store_bytes_max=config.store_bytes_max,
    )
    state = NodeState(KVStateMachine(limits), config.members)
    transports: list[PeerTransport] = []

    def dial_addresses() -> dict[int, tuple[str, int]]:
        # `dial` overrides only where this node connects; the replicated registry
        # keeps every member's own address.
        return {m.id: config.dial.get(m.id, m.peer) for m in state.members.values()}

    def transport(on_message: Callable[[Message], None]) -> PeerTransport:
        transports.append(
            PeerTransport(
                config.id,
                config.cluster_id,
                config.peer,
                dial_addresses(),
                on_message,
                **peer_tls,
            )
        )
        return transports[0]

    def members_changed() -> None:
        transports[0].update_peers(dial_addresses())

    services: list[KVService] = []
    node = Node(
        raft_config,
        storage,
        transport,
        state,
        tick_ms=config.tick_ms,
        snapshot_entries=config.snapshot_entries,
        on_events=lambda events: services[0].on_events(events),
        on_restore=lambda: services[0].resync_watches(),
        on_members_changed=members_changed,
        write_behind_s=WRITE_BEHIND_S if config.debug_ack_before_fsync else 0.0,
        send_before_persist=config.debug_send_before_persist,
        disk_delay_s=config.debug_slow_disk_ms / 1000,
        request_timeout_s=config.request_timeout_s,
        pending_reads_max=config.pending_reads_max,
    )
    tracing = observers.tracing if observers else None
    unsafe = config.debug_unsafe_local_reads
    services.append(KVService(node, state.kv, tracing=tracing, unsafe_local_reads=unsafe))
    shard_host = ShardHost(
        node,
        state,
        shards=config.shards,
        replicas=config.replicas,
        make_machine=lambda: KVStateMachine(limits),
        make_service=lambda replica, machine: KVService(
            node, machine, tracing=tracing, unsafe_local_reads=unsafe, group=replica
        ),
        snapshot_entries=config.snapshot_entries,
        labels=config.labels,
        down_after_s=config.node_down_after_s,
    )
    if tracing is not None:
        node.trace_proposal = tracing.proposal
    bugs = (
        config.debug_unsafe_local_reads,
        config.debug_ack_before_fsync,
        config.debug_send_before_persist,
    )
    if any(bugs):
        log.warning("DELIBERATE BUGS ENABLED (debug_* settings): this node is not safe")
    return node, ShardedKV(services[0], shard_host), state


def build_runner(
    config: NodeConfig,
    node: Node,
    service: ShardedKV,
    state: NodeState,
    observers: Observers,
    security: NodeSecurity | None = None,
) -> web.AppRunner:
    node_tls = NodeTls.build(config.security, config.id, config.cluster_id)
    api = HttpApi(
        service,
        state,
        metrics=observers.metrics,
        tracing=observers.tracing,
        slow_request_ms=config.slow_request_ms,
        forward_ssl=node_tls.forwarding,
    )
    # handler_cancellation: a watcher that disconnects ends its watch at once.
    options: dict[str, Any] = {"access_log": None, "handler_cancellation": True}
    if security is not None:
        api.shard_operations.authorization = security.node_authorization
    if security is None:
        runner = web.AppRunner(api.app(), **options)
    else:
        runner = security.http_runner(api.app(), HttpApi.key_range, **options)

    def connections() -> int:
        server = runner.server
        return len(server.connections) if server is not None else 0

    observers.metrics.watch(lambda: sample_node(node, service, config.name, connections))
    return runner


async def serve(
    config: NodeConfig, observers: Observers | None = None, log_context: NodeContext | None = None
) -> None:
    config.data_dir.mkdir(parents=True, exist_ok=True)
    if observers is None:
        observers = Observers(NodeMetrics(), make_tracing(config.tracing, config.name))
    node, service, state = build_node(config, observers)
    if log_context is not None:
        log_context.term = lambda: node.core.term
    security = NodeSecurity(config.security, node, state)
    runner = build_runner(config, node, service, state, observers, security)
    await runner.setup()
    await node.start()
    service.start()
    security.start()
    client_ssl = NodeTls.build(config.security, config.id, config.cluster_id).client_ports
    # The native port first: once the HTTP API answers (what `accord up` and clients
    # wait for), both protocols are served.
    native = NativeServer(service, state, observers.metrics)
    security.install_native(native)
    if config.native:
        await native.start(*config.native, ssl=client_ssl)
    site = web.TCPSite(
        runner,
        config.client[0],
        config.client[1],
        ssl_context=client_ssl,
        backlog=LISTEN_BACKLOG_MAX,
    )
    await site.start()
    log.info(
        "node %s (id %d) serving clients on %s (native: %s), peers on %s:%d (%s)",
        config.name,
        config.id,
        config.client_url,
        config.native_url or "off",
        *config.peer,
        "mutual TLS" if config.security.peer_tls_files else "PLAINTEXT: insecure_peers",
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    fatal = asyncio.create_task(node.fatal.wait())
    await asyncio.wait(
        {asyncio.create_task(stop.wait()), fatal}, return_when=asyncio.FIRST_COMPLETED
    )
    if node.fatal.is_set():
        log.critical("the node failed; exiting without a graceful handover")
        os._exit(70)  # storage holds only what was synced; nothing else to save
    log.info("shutting down: handing over leadership, flushing")
    await service.stop()
    await security.stop()
    await site.stop()
    await native.stop()
    await node.stop(transfer_leadership=True)
    await runner.cleanup()
    if observers.tracing is not None:
        observers.tracing.shutdown()  # flush spans still batched
    log.info("stopped")
