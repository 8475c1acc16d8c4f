"""The `netns` network: namespaces, a router, iptables cuts and NFQUEUE delays.

Real sockets in real namespaces (created from this process with `in_namespace`),
then real node processes. Skipped unless this runs as root on Linux with `ip` and
`iptables`. Waits are deadlines on conditions; the only timeouts that are meant
to expire are those of a connection attempt or a read that a cut must swallow.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from accord.chaos import netns, runner
from accord.chaos.cluster import ProcessCluster
from accord.chaos.faults import AGGRESSIVE
from accord.chaos.netns import CLIENT_PORT, PEER_PORT, NetnsNetwork, in_namespace
from accord.chaos.network import NetworkUnavailable
from accord.chaos.runner import RunOptions, run

_reason = netns.unavailable()
pytestmark = pytest.mark.skipif(_reason is not None, reason=f"netns network: {_reason}")

DEADLINE_S = 15.0  # long enough for TCP's retransmission backoff after a short cut
DELAY_S = 0.3


def machine_state() -> dict[str, list[str]]:
    """What a run must leave as it found it: the namespaces, the root namespace's
    interfaces and routes, and its iptables rules (which the netns network never
    touches: its rules live in the router's namespace)."""

    def lines(command: str, *args: str) -> list[str]:
        argv = [netns.tool(command) or command, *args]
        out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
        return sorted(out.splitlines())

    return {
        "namespaces": [line.split()[0] for line in lines("ip", "netns", "list")],
        "interfaces": [
            line.split(":")[1].strip().split("@")[0] for line in lines("ip", "-o", "link", "show")
        ],
        "routes": lines("ip", "route", "show", "table", "all"),
        "iptables": lines("iptables", "-S") + lines("iptables", "-t", "nat", "-S"),
    }


def wait_for(predicate: Callable[[], bool], timeout_s: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        time.sleep(0.01)


class Hosts:
    """Two nodes' namespaces with a listener on each one's peer and client ports."""

    def __init__(self, network: NetnsNetwork) -> None:
        self.network = network
        self.listeners: dict[tuple[int, int], socket.socket] = {}
        for node in (1, 2):
            for port in (PEER_PORT, CLIENT_PORT):
                s = self.socket(node)
                s.bind((network.addresses[node], port))
                s.listen()
                self.listeners[(node, port)] = s

    def socket(self, node: int) -> socket.socket:
        return in_namespace(self.network.namespace(node), socket.socket)

    def connect(self, src: int, dst: int, port: int = PEER_PORT) -> tuple[socket.socket, ...]:
        """A connection from node src to dst's `port`: (src's end, dst's end)."""
        s = self.socket(src)
        s.settimeout(DEADLINE_S)
        s.connect((self.network.addresses[dst], port))
        listener = self.listeners[(dst, port)]
        listener.settimeout(DEADLINE_S)
        accepted, _ = listener.accept()
        accepted.settimeout(DEADLINE_S)
        return s, accepted

    def close(self) -> None:
        for s in self.listeners.values():
            s.close()


@pytest_asyncio.fixture
async def hosts() -> AsyncIterator[Hosts]:
    network = NetnsNetwork(random.Random(1))
    await network.place([1, 2])
    h = Hosts(network)
    try:
        yield h
    finally:
        h.close()
        await network.stop()


def round_trip_s(sender: socket.socket, echoer: socket.socket) -> float:
    """One byte there and back on one connection (the answer goes the other way)."""
    started = time.monotonic()
    sender.sendall(b"x")
    assert echoer.recv(1) == b"x"
    echoer.sendall(b"y")
    assert sender.recv(1) == b"y"
    return time.monotonic() - started


def receive_exactly(s: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = s.recv(size - len(data))
        assert chunk, "connection closed"
        data += chunk
    return data


# --- setting up and taking down ------------------------------------------------------------
@pytest.mark.asyncio
async def test_stop_leaves_no_namespace_interface_route_or_rule() -> None:
    before = machine_state()
    network = NetnsNetwork(random.Random(1))
    try:
        await network.place([1, 2, 3])
        network.block(1, 2)
        network.slow(2, 3, 0.05, 0.01, 0.01)
        during = machine_state()
        ours = {network.router, *(network.namespace(i) for i in (1, 2, 3))}
        assert ours <= set(during["namespaces"])
        assert network.uplink in during["interfaces"]
        assert during["iptables"] == before["iptables"]  # the rules are in the router
        iptables = netns.tool("iptables") or "iptables"
        rules = subprocess.run(
            ["ip", "netns", "exec", network.router, iptables, "-S", "FORWARD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "-j DROP" in rules and "-j NFQUEUE" in rules
    finally:
        await network.stop()
    assert machine_state() == before
    await network.stop()  # a second stop does nothing


@pytest.mark.asyncio
async def test_a_failed_setup_takes_down_what_it_had_made(monkeypatch: pytest.MonkeyPatch) -> None:
    before = machine_state()

    def refuse() -> None:
        raise NetworkUnavailable("refused on purpose")

    # The last step of the setup: every namespace, veth and route exists by then.
    monkeypatch.setattr(netns, "_enable_forwarding", refuse)
    with pytest.raises(NetworkUnavailable, match="on purpose"):
        await NetnsNetwork(random.Random(1)).place([1, 2, 3])
    assert machine_state() == before


@pytest.mark.slow
def test_a_run_that_fails_takes_the_network_down(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = machine_state()

    async def fail(*args: Any) -> None:
        raise RuntimeError("the harness failed on purpose")

    monkeypatch.setattr(runner, "_exercise", fail)
    options = RunOptions("register", ["partition"], time_s=5, out=tmp_path, network="netns")
    with pytest.raises(RuntimeError, match="on purpose"):
        run(options)
    assert machine_state() == before
    assert_every_process_stopped(tmp_path)


# --- faults on real sockets ----------------------------------------------------------------
@pytest.mark.asyncio
async def test_a_one_way_cut_stops_that_direction_only_until_healed(hosts: Hosts) -> None:
    a_to_b, at_b = hosts.connect(1, 2)
    b_to_a, at_a = hosts.connect(2, 1)
    a_to_b.sendall(b"before")
    assert receive_exactly(at_b, 6) == b"before"

    hosts.network.block(1, 2)
    a_to_b.sendall(b"during")
    # B→A goes on, a megabyte of it: A's acknowledgements get through as well.
    for _ in range(16):
        b_to_a.sendall(b"m" * 65536)
        assert receive_exactly(at_a, 65536) == b"m" * 65536
    at_b.settimeout(0.5)
    with pytest.raises(TimeoutError):
        at_b.recv(6)  # the open connection's packets are lost...
    late = hosts.socket(1)
    late.settimeout(0.5)
    with pytest.raises(TimeoutError):
        late.connect((hosts.network.addresses[2], PEER_PORT))  # ...and so is a new SYN
    late.close()

    hosts.network.unblock(1, 2)
    at_b.settimeout(DEADLINE_S)
    assert receive_exactly(at_b, 6) == b"during"  # retransmitted once the cut is gone
    for s in (a_to_b, at_b, b_to_a, at_a):
        s.close()


@pytest.mark.asyncio
async def test_latency_delays_that_direction_and_not_clients(hosts: Hosts) -> None:
    a_to_b, at_b = hosts.connect(1, 2)
    b_to_a, at_a = hosts.connect(2, 1)
    client, at_client = hosts.connect(1, 2, CLIENT_PORT)

    hosts.network.slow(1, 2, DELAY_S, 0.0, 0.0)
    assert round_trip_s(a_to_b, at_b) >= DELAY_S
    assert round_trip_s(b_to_a, at_a) < DELAY_S  # the other direction,
    assert round_trip_s(client, at_client) < DELAY_S  # and client traffic, are not slowed

    hosts.network.heal()
    assert round_trip_s(a_to_b, at_b) < DELAY_S
    for s in (a_to_b, at_b, b_to_a, at_a, client, at_client):
        s.close()


@pytest.mark.asyncio
async def test_loss_drops_packets_that_tcp_then_retransmits(hosts: Hosts) -> None:
    a_to_b, at_b = hosts.connect(1, 2)
    hosts.network.slow(1, 2, 0.0, 0.0, 1.0)
    a_to_b.sendall(b"lost")
    queue = hosts.network.queue(1, 2)
    wait_for(lambda: queue.dropped >= 2)  # the first send and a retransmission
    hosts.network.heal()
    assert receive_exactly(at_b, 4) == b"lost"
    a_to_b.close()
    at_b.close()


# --- real nodes ----------------------------------------------------------------------------
def assert_every_process_stopped(out: Path) -> None:
    nodes = json.loads((out / "cluster" / "cluster.json").read_text())["nodes"]
    for node in nodes:
        with pytest.raises(ProcessLookupError):
            os.kill(node["pid"], 0)


async def statuses(cluster: ProcessCluster, session: aiohttp.ClientSession) -> dict[int, Any]:
    got = await asyncio.gather(*(cluster.status(session, n) for n in cluster.ids))
    return {n: s for n, s in zip(cluster.ids, got, strict=True) if s is not None}


async def until(condition: Callable[[], Awaitable[bool]], timeout_s: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not await condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(0.1)


@pytest.mark.slow
@pytest.mark.asyncio
async def test_an_isolated_leader_steps_down_and_rejoins_once_healed(tmp_path: Path) -> None:
    network = NetnsNetwork(random.Random(1))
    cluster = ProcessCluster(tmp_path, 3, network)
    try:
        await cluster.start()
        for node in cluster.ids:  # the PID held is the node itself, in its namespace
            pid = cluster.nodes[node].pid
            # `ip netns exec` execs the node: the same PID, soon a Python interpreter.
            wait_for(lambda pid=pid: os.path.samefile(f"/proc/{pid}/exe", sys.executable))
            namespace = f"{netns.NETNS_DIR}/{network.namespace(node)}"
            assert os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(namespace).st_ino
        old = await cluster.wait_healthy(30.0)
        others = [n for n in cluster.ids if n != old]
        for other in others:
            network.block(old, other)
            network.block(other, old)
        async with aiohttp.ClientSession() as session:

            async def new_leader_and_old_stepped_down() -> bool:
                st = await statuses(cluster, session)
                if len(st) < 3 or st[old]["role"] == "leader":
                    return False
                return any(st[n]["role"] == "leader" for n in others)

            await until(new_leader_and_old_stepped_down)
            network.heal()
            new = await cluster.wait_healthy(30.0)
            st = await statuses(cluster, session)
        assert new != old and {s["leader"] for s in st.values()} == {new}
        assert len({s["term"] for s in st.values()}) == 1
    finally:
        cluster.stop()
        await network.stop()


@pytest.mark.slow
def test_a_short_run_over_netns_is_valid(tmp_path: Path) -> None:
    before = machine_state()
    seed = int(os.environ.get("ACCORD_CHAOS_SEED") or random.randrange(1_000_000))
    options = RunOptions(
        "register",
        ["partition", "latency", "kill"],
        time_s=15.0,
        seed=seed,
        out=tmp_path,
        network="netns",
    )
    result = run(options)
    assert result.valid, f"seed {seed}: {result.verdict.summary} (see {tmp_path})"
    assert all(result.faults.get(f, 0) >= 1 for f in options.faults), result.faults
    assert result.operations["ok"] >= 20, result.operations
    assert json.loads((tmp_path / "verdict.json").read_text())["network"] == "netns"
    assert_every_process_stopped(tmp_path)
    assert machine_state() == before


@pytest.mark.slow
def test_unsafe_local_reads_are_caught_over_netns_too(tmp_path: Path) -> None:
    seed = int(os.environ.get("ACCORD_CHAOS_SEED") or random.randrange(1_000_000))
    options = RunOptions(
        "register",
        ["partition"],
        time_s=40.0,  # a bound; the run stops as soon as the history is invalid
        seed=seed,
        out=tmp_path,
        bugs=frozenset({"unsafe-local-reads"}),
        pace=AGGRESSIVE,
        variants={"partition": ["isolate-leader"]},
        stop_when_invalid=True,
        network="netns",
    )
    result = run(options)
    assert not result.valid, f"seed {seed}: {result.verdict.summary} (see {tmp_path})"
    assert result.verdict.summary.startswith("INVALID: key"), result.verdict.summary
    assert_every_process_stopped(tmp_path)
