"""`serve(config)`: one Accord node process — storage, Raft runtime, peer transport,
KV state machine and the HTTP API — running until SIGINT/SIGTERM, then a graceful
shutdown: stop accepting requests, hand leadership over, flush, exit 0."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable
from typing import Any

from aiohttp import web

from accord.api.http import HttpApi
from accord.api.native import NativeServer
from accord.kv import KVStateMachine
from accord.node.config import NodeConfig
from accord.node.members import NodeState
from accord.node.runtime import Node
from accord.node.service import KVService
from accord.raft import Message, RaftConfig
from accord.security.atrest import node_cipher
from accord.security.node_security import NodeSecurity
from accord.security.nodetls import NodeTls
from accord.storage import FileStorage
from accord.transport import PeerTransport

log = logging.getLogger("accord.node")


def build_node(config: NodeConfig) -> tuple[Node, KVService, NodeState]:
    raft_config = RaftConfig(
        id=config.id,
        bootstrap_voters=frozenset() if config.join else frozenset(config.members),
        election_ticks=config.election_ticks,
    )
    security = config.security
    cipher = node_cipher(config.data_dir, security.encryption_key_file, security.encryption_key)
    storage = FileStorage(config.data_dir / "raft", cipher=cipher)
    node_tls = NodeTls.build(security)
    peer_tls: dict[str, Any] = {}
    if node_tls is not None:
        peer_tls = {
            "ssl_server": node_tls.peer_server,
            "ssl_client": node_tls.outgoing,
            "accept_certificate": NodeTls.accept_peer,
        }
    state = NodeState(KVStateMachine(), config.members)
    transports: list[PeerTransport] = []

    def transport(on_message: Callable[[Message], None]) -> PeerTransport:
        peers = {m.id: m.peer for m in state.members.values()}
        transports.append(
            PeerTransport(config.id, config.cluster_id, config.peer, peers, on_message, **peer_tls)
        )
        return transports[0]

    def members_changed() -> None:
        transports[0].update_peers({m.id: m.peer for m in state.members.values()})

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
    )
    services.append(KVService(node, state.kv))
    return node, services[0], state


async def serve(config: NodeConfig) -> None:
    config.data_dir.mkdir(parents=True, exist_ok=True)
    node, service, state = build_node(config)
    node_tls = NodeTls.build(config.security)
    api = HttpApi(service, state, forward_ssl=node_tls.outgoing if node_tls else None)
    security = NodeSecurity(config.security, node, state)
    # handler_cancellation: a watcher that disconnects ends its watch at once.
    runner = security.http_runner(
        api.app(), HttpApi._key_range, access_log=None, handler_cancellation=True
    )
    await runner.setup()
    await node.start()
    service.start()
    security.start()
    client_ssl = node_tls.client_ports if node_tls else None
    site = web.TCPSite(runner, config.client[0], config.client[1], ssl_context=client_ssl)
    await site.start()
    native = NativeServer(service, state)
    security.install_native(native)
    if config.native:
        await native.start(*config.native, ssl=client_ssl)
    log.info(
        "node %s (id %d) serving clients on %s (native: %s), peers on %s:%d",
        config.name,
        config.id,
        config.client_url,
        config.native_url or "off",
        *config.peer,
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
    log.info("stopped")
