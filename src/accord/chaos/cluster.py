"""A cluster of real `accord node` processes that the fault schedule can hurt one by one.

Each node runs as its own OS process (`python -m accord.cli.main node --config F`)
from a config this module writes, so a fault can kill -9, SIGSTOP/SIGCONT or restart
exactly one node by its PID. Where the nodes listen, where each dials the others
and how its process is started are the run's network's to say (`network.py`): with
the `proxy` network every node is on 127.0.0.1 and dials the others through the
harness's `NetProxy` (the config's `[dial]` table); with `netns` each node runs in a
network namespace of its own (`ip netns exec`, which execs, so the PID held is the
node's) and dials the others' own addresses. Either way the network between any two
nodes can be cut or slowed per direction; clients talk to the nodes directly.

`stop()` ends every process this object started (SIGCONT first, so a paused node
can act on SIGTERM; SIGKILL after a grace period) and is safe to call more than
once, also after errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

import aiohttp

from accord.chaos.network import ClusterNetwork
from accord.node.address import Member
from accord.observability.logs import open_log_file
from accord.security.config import SecurityConfig
from accord.security.localcluster import create_peer_material
from accord.server.config import NodeConfig, render_config

TICK_MS = 50
ELECTION_TICKS = 10
ELECTION_TIMEOUT_S = TICK_MS * ELECTION_TICKS / 1000
"""The nodes' base election timeout (randomised up to twice that by Raft)."""

BUGS = {
    "unsafe-local-reads": "config debug_unsafe_local_reads: reads without ReadIndex",
    "ack-before-fsync": "config debug_ack_before_fsync: acks before the log is on disk",
    "send-before-persist": "config debug_send_before_persist: the executor sends acks "
    "before the fsync (every node but the first on a slow disk)",
}
SLOW_DISK_MS = 120
"""With send-before-persist, every node but the first takes 0..0.24 s a write (under the
election timeout): when the fast node leads, the others acknowledge before they write."""
"""Deliberate bugs the harness can switch on, to show that the checkers catch them."""

STOP_GRACE_S = 5.0
STATUS_TIMEOUT_S = 1.0
MOVE_TIMEOUT_S = 8.0
"""How long a move request may take: the node forwards it to the metadata leader,
which answers once the move's record commits (or its request deadline passes)."""
REPLICAS = 3
"""Voters of each shard unless told otherwise, at most one per node (`accord up`'s
default)."""


@dataclass(slots=True)
class NodeProcess:
    config: NodeConfig
    config_path: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    paused: bool = False
    log_file: IO[bytes] | None = field(default=None, repr=False)

    @property
    def id(self) -> int:
        return self.config.id

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None


class ProcessCluster:
    """N node processes, their configs under `directory`, and the network between them."""

    def __init__(
        self,
        directory: Path,
        nodes: int,
        network: ClusterNetwork,
        *,
        bugs: frozenset[str] = frozenset(),
        shards: int = 1,
        replicas: int = REPLICAS,
    ) -> None:
        """`bugs` names deliberate bugs to switch on in every node (see `BUGS`);
        `shards` > 1 spreads the keys over that many shards, each with `replicas`
        voters (at most one per node)."""
        unknown = bugs - BUGS.keys()
        if unknown:
            raise ValueError(f"unknown bugs: {', '.join(sorted(unknown))}")
        self.directory = directory
        self.network = network
        self.ids = list(range(1, nodes + 1))
        self.bugs = bugs
        self.shards = shards
        self.replicas = replicas
        self.nodes: dict[int, NodeProcess] = {}

    @property
    def urls(self) -> list[str]:
        return [self.nodes[i].config.client_url for i in self.ids]

    def url(self, node: int) -> str:
        return self.nodes[node].config.client_url

    def name(self, node: int) -> str:
        """The node's name, as the shard map lists its replicas (`n1`)."""
        return self.nodes[node].config.name

    def endpoints(self, client_kind: str) -> list[str]:
        """Every node's endpoint for a client kind: `native` gets accord:// URLs."""
        if client_kind == "native":
            return [str(self.nodes[i].config.native_url) for i in self.ids]
        return self.urls

    async def start(self) -> None:
        """Write every node's config (placed by the network) and start them all."""
        members = await self.network.place(self.ids)
        self.directory.mkdir(parents=True, exist_ok=True)
        peer_files = self._peer_material(members)
        for i, member in members.items():
            peer_ca, peer_cert, peer_key = peer_files[i]
            config = NodeConfig(
                name=member.name,
                id=i,
                data_dir=self.directory / member.name,
                client=member.client,
                peer=member.peer,
                native=member.native,
                members=members,
                cluster_id="accord-chaos",
                tick_ms=TICK_MS,
                election_ticks=ELECTION_TICKS,
                snapshot_entries=2_000,  # snapshots and compaction happen during runs
                shards=self.shards,
                replicas=self.replicas,
                dial={
                    j: address
                    for j in self.ids
                    if j != i and (address := self.network.dial(i, j)) is not None
                },
                security=SecurityConfig(peer_ca=peer_ca, peer_cert=peer_cert, peer_key=peer_key),
            )
            config = replace(
                config,
                debug_unsafe_local_reads="unsafe-local-reads" in self.bugs,
                debug_ack_before_fsync="ack-before-fsync" in self.bugs,
                debug_send_before_persist="send-before-persist" in self.bugs,
                debug_slow_disk_ms=SLOW_DISK_MS
                if "send-before-persist" in self.bugs and i != self.ids[0]
                else 0,
            )
            path = self.directory / f"{member.name}.toml"
            path.write_text(render_config(config))
            self.nodes[i] = NodeProcess(config, path, self.directory / f"{member.name}.log")
        for i in self.ids:
            self.spawn(i)
        self.write_manifest()

    def _peer_material(self, members: dict[int, Member]) -> dict[int, tuple[Path, Path, Path]]:
        """Peer certificates as `accord up` makes them; the proxy and the namespaces
        forward TCP, so TLS runs end to end. A certificate is valid for every address
        a peer dials its node at."""
        hosts: dict[int, list[str]] = {}
        for j, member in members.items():
            dialled = [self.network.dial(i, j) for i in self.ids if i != j]
            hosts[j] = [member.peer[0], *(a[0] for a in dialled if a is not None)]
        names = {i: m.name for i, m in members.items()}
        return create_peer_material(self.directory, "accord-chaos", names, hosts)

    def spawn(self, node: int) -> None:
        """Start (or restart) one node process from its config."""
        proc = self.nodes[node]
        if proc.log_file is None:
            proc.log_file = open_log_file(proc.log_path)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        argv = [sys.executable, "-m", "accord.cli.main", "node", "--config", str(proc.config_path)]
        proc.process = subprocess.Popen(
            self.network.command(node, argv),
            stdout=proc.log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        proc.paused = False

    def kill(self, node: int) -> None:
        """kill -9: the process gets no chance to flush or hand over anything."""
        proc = self.nodes[node]
        if proc.process is not None and proc.alive:
            proc.process.send_signal(signal.SIGKILL)
            proc.process.wait()
        proc.paused = False

    def pause(self, node: int) -> None:
        proc = self.nodes[node]
        if proc.process is not None and proc.alive and not proc.paused:
            proc.process.send_signal(signal.SIGSTOP)
            proc.paused = True

    def resume(self, node: int) -> None:
        proc = self.nodes[node]
        if proc.process is not None and proc.alive and proc.paused:
            proc.process.send_signal(signal.SIGCONT)
        proc.paused = False

    def heal_processes(self) -> None:
        """Every node running and not paused (used before the final reads)."""
        for node in self.ids:
            self.resume(node)
            if not self.nodes[node].alive:
                self.spawn(node)

    def write_manifest(self) -> None:
        rows = [
            {"id": p.id, "pid": p.pid, "client": p.config.client_url, "log": str(p.log_path)}
            for p in self.nodes.values()
        ]
        manifest = {"network": self.network.name, "nodes": rows}
        (self.directory / "cluster.json").write_text(json.dumps(manifest, indent=2))

    def stop(self) -> None:
        """End every process this cluster started; never raises."""
        for proc in self.nodes.values():
            if proc.process is None or not proc.alive:
                continue
            with contextlib.suppress(ProcessLookupError):
                proc.process.send_signal(signal.SIGCONT)
                proc.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for proc in self.nodes.values():
            if proc.process is None:
                continue
            try:
                proc.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.process.kill()
                proc.process.wait()
            if proc.log_file is not None:
                proc.log_file.close()
                proc.log_file = None

    def describe(self) -> list[str]:
        """One line per node: its PID and whether it runs, is paused or exited how."""
        lines = []
        for proc in self.nodes.values():
            if proc.process is None:
                state = "never started"
            elif proc.alive:
                state = "paused" if proc.paused else "running"
            else:
                state = f"exited with status {proc.process.returncode}"
            lines.append(f"n{proc.id} (pid {proc.pid}): {state}; log {proc.log_path}")
        return lines

    # --- observing -----------------------------------------------------------------------
    async def status(
        self, session: aiohttp.ClientSession, node: int, path: str = "/v1/cluster/status"
    ) -> dict[str, Any] | None:
        proc = self.nodes[node]
        if not proc.alive or proc.paused:
            return None
        url = f"{proc.config.client_url}{path}"
        try:
            timeout = aiohttp.ClientTimeout(total=STATUS_TIMEOUT_S)
            async with session.get(url, timeout=timeout) as response:
                if response.status != 200:
                    return None
                body: dict[str, Any] = await response.json()
                return body
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None

    async def leader(self, session: aiohttp.ClientSession) -> int | None:
        """The leader of the highest term any reachable node reports, if any."""
        statuses = await asyncio.gather(*(self.status(session, n) for n in self.ids))
        best: tuple[int, int] | None = None
        for st in statuses:
            if st is not None and st.get("role") == "leader":
                candidate = (int(st["term"]), int(st["id"]))
                best = candidate if best is None or candidate > best else best
        return best[1] if best else None

    async def _shards_led(self, session: aiohttp.ClientSession) -> bool:
        """Every node knows the shard map and a leader for each shard it holds a
        replica of (a node without one cannot know that shard's leader)."""
        docs = await asyncio.gather(
            *(self.status(session, n, "/v1/cluster/shards") for n in self.ids)
        )
        return all(
            doc is not None
            and doc.get("version")
            and all(s["leader"] for s in doc["shards"] if self.name(n) in s["replicas"])
            for n, doc in zip(self.ids, docs, strict=True)
        )

    async def wait_healthy(self, timeout_s: float) -> int:
        """Wait until a leader is known to every node; returns it (TimeoutError if not)."""
        deadline = time.monotonic() + timeout_s
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                statuses = await asyncio.gather(*(self.status(session, n) for n in self.ids))
                leaders = {int(s["leader"]) for s in statuses if s is not None}
                agreed = None not in statuses and len(leaders) == 1 and 0 not in leaders
                if agreed and (self.shards == 1 or await self._shards_led(session)):
                    return leaders.pop()
                await asyncio.sleep(0.1)
        raise TimeoutError(f"the cluster did not become healthy within {timeout_s:g}s")

    # --- acting on the shards -----------------------------------------------------------
    async def move(
        self, session: aiohttp.ClientSession, node: int, shard: int, source: int, target: int
    ) -> tuple[int, dict[str, Any]] | None:
        """Ask `node` to move `shard`'s replica from `source` to `target` (it forwards
        the request to the metadata leader): the answer's status and document, or
        None if no answer came within `MOVE_TIMEOUT_S`."""
        url = f"{self.url(node)}/v1/cluster/shards/{shard}/move"
        try:
            timeout = aiohttp.ClientTimeout(total=MOVE_TIMEOUT_S)
            body = {"source": source, "target": target}
            async with session.post(url, json=body, timeout=timeout) as response:
                doc: dict[str, Any] = await response.json()
                return response.status, doc
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None
