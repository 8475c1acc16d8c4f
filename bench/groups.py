"""Many Raft groups per node: fsyncs under write load, and what idle groups cost.

Starts three real node processes (this script re-executed with a hidden
`--node-worker` flag), each a `Node` with a `FileHostStorage` in a temporary
directory under /tmp and a plaintext `PeerTransport` on loopback (ports 23000-23999).
Each hosts the primary group 0 plus K extra groups, every group with voters {1, 2, 3}
and a `NodeState` (KV store) of its own. The parent drives the workers with JSON
lines over their stdin and stdout; every wait has a deadline, each worker exits by
itself when its stdin closes or its lifetime ends, and the parent kills its workers
by PID and removes the directory at the end, also on an error or Ctrl-C.

    python bench/groups.py write --groups 1 --groups 8 --seconds 10 --concurrency 64
    python bench/groups.py idle --groups 0 --groups 1000 --seconds 20

`write`, for each K (a fresh cluster each): wait until every group has a leader; then
each node drives writes (100-byte Puts, proposed in-process with
`node.group(g).propose`) to the groups it leads among groups 1..K (group 0 when
K = 0), `--concurrency` writers in all, split evenly over those groups, for
`--seconds`. Reported per K: committed writes/s (cluster total), WAL fsyncs/s of each
node (counted by `on_sync`), writes per fsync (writes/s over the nodes' mean fsyncs/s),
p50/p99 write latency, and each node process's CPU; then every K against the first
one. The node's write path saves the writes of every group of a batch with one record
and one fsync, so with more groups the fsync rate should stay about the same. Where
the leaders are matters: elections often put every group's leader on one node;
`--leaders together` moves them all to node 1 and `--leaders spread` round robin
over the nodes before the window, so a node then also fsyncs for the appends of
the groups the other two lead, arriving at other moments than its own writes.

`idle`, for each K (a fresh cluster each): the time until every group has a leader
(bounded by `--leader-timeout`), then `--settle` seconds, then a window of `--seconds`
over which each node process's CPU (utime + stime from /proc/PID/stat, in % of one
core) and Raft messages sent per second (`node.stats.messages_sent`) are measured;
RSS (VmRSS from /proc/PID/status) at the end. Memory per group is
(RSS(K) - RSS(0)) / K, the node processes' mean, when K = 0 is in the same run. Every
group's leader heartbeats its followers each tick (50 ms by default) and they answer,
so idle CPU and messages grow linearly with K, until a node cannot keep up: then
"heartbeat rounds/s" (heartbeats sent / 2 followers / groups led) falls below one per
tick.

Both modes also report, per node, the time its threads were runnable but waiting for
a CPU ("waiting for a CPU %", from /proc/PID/task/*/schedstat): when CPU % plus that
is near 100, the node's event loop is saturated and its CPU % is the share of a
shared machine it got, not what it would use.

`--json` prints the results as one JSON document on stdout (the report then goes to
stderr). Figures depend heavily on the machine; compare runs made on the same one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accord.bench.stats import Stats
from accord.errors import DeadlineExceeded, NotLeader, ProposalDropped
from accord.kv import Envelope, KVStateMachine, Put, encode_command
from accord.node import gcpolicy
from accord.node.address import Member
from accord.node.limits import SNAPSHOT_ENTRIES, TICK_MS
from accord.node.members import NodeState
from accord.node.runtime import Node
from accord.raft import Message, MessageType, RaftConfig
from accord.storage import FileHostStorage
from accord.transport import PeerTransport

NODE_IDS = (1, 2, 3)
PORTS = range(23000, 24000)
CLUSTER_ID = "groupbench"
VALUE = b"x" * 100
KEYS_PER_WRITER = 1000
WRITE_TIMEOUT_S = 5.0
READY_TIMEOUT_S = 120.0
"""Starting a worker and creating its groups."""
REQUEST_TIMEOUT_S = 30.0
"""A status or sample request to a worker."""
STOP_GRACE_S = 3.0
LOG_TAIL_LINES = 20


# --- the node worker (a child process) ------------------------------------------------


class SyncCounter:
    """The WAL's `on_sync` observer: counts fsyncs and their bytes (disk thread)."""

    def __init__(self) -> None:
        self.count = 0
        self.bytes = 0

    def __call__(self, seconds: float, nbytes: int) -> None:
        self.count += 1
        self.bytes += nbytes


def _put(key: bytes) -> bytes:
    return encode_command(Envelope(0, 0, Put(key, VALUE), 0))


class Worker:
    """One node process: the `Node`, its groups, and the answers to the parent."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.ports = dict(zip(NODE_IDS, args.ports, strict=True))
        self.members = {
            i: Member(i, f"n{i}", ("127.0.0.1", port), ("127.0.0.1", 1))
            for i, port in self.ports.items()
        }
        self.syncs = SyncCounter()
        self.node = self._build_node()

    def _state(self) -> NodeState:
        return NodeState(KVStateMachine(), self.members)

    def _raft_config(self, group: int) -> RaftConfig:
        return RaftConfig(
            id=self.args.id,
            group=group,
            bootstrap_voters=frozenset(NODE_IDS),
            quiesce_ticks=self.args.quiesce_ticks,
        )

    def _build_node(self) -> Node:
        storage = FileHostStorage(Path(self.args.dir) / "raft", on_sync=self.syncs)
        peers = {i: m.peer for i, m in self.members.items()}
        listen = peers[self.args.id]

        def transport(on_message: Callable[[Message], None]) -> PeerTransport:
            return PeerTransport(self.args.id, CLUSTER_ID, listen, peers, on_message)

        return Node(
            self._raft_config(0),
            storage,
            transport,
            self._state(),
            tick_ms=self.args.tick_ms,
            snapshot_entries=SNAPSHOT_ENTRIES,
        )

    async def start(self) -> dict[str, Any]:
        began = time.monotonic()
        await self.node.start()
        await asyncio.gather(
            *(
                self.node.create_group(
                    self._raft_config(g), self._state(), snapshot_entries=SNAPSHOT_ENTRIES
                )
                for g in range(1, self.args.groups + 1)
            )
        )
        return {"ready": True, "create_s": time.monotonic() - began}

    def status(self) -> dict[str, Any]:
        replicas = self.node.replicas
        return {
            "led": sorted(g for g, r in replicas.items() if r.is_leader),
            "known": sum(1 for r in replicas.values() if r.leader_id),
            "groups": len(replicas),
        }

    def sample(self) -> dict[str, Any]:
        stats = self.node.stats
        return {
            "messages_sent": sum(stats.messages_sent),
            "sent_by_type": {t.name: stats.messages_sent[t] for t in MessageType},
            "messages_received": sum(stats.messages_received),
            "fsyncs": self.syncs.count,
            "leader_changes": stats.leader_changes,
        }

    async def write(self, writers: dict[int, int], seconds: float) -> dict[str, Any]:
        """`writers[g]` concurrent writers to group g for `seconds`; what completed
        within the window, and the fsyncs made in it."""
        stats = Stats()
        began = time.monotonic()
        deadline = began + seconds

        async def writer(group: int, n: int) -> None:
            replica = self.node.group(group)
            i = 0
            while (start := time.monotonic()) < deadline:
                key = b"g%d/w%d/%08d" % (group, n, i % KEYS_PER_WRITER)
                i += 1
                try:
                    await replica.propose(_put(key), timeout_s=WRITE_TIMEOUT_S)
                except (NotLeader, ProposalDropped, DeadlineExceeded) as error:
                    stats.error(type(error).__name__)
                    await asyncio.sleep(self.args.tick_ms / 1000)
                    continue
                done = time.monotonic()
                if done < deadline:
                    stats.record(done - start, int(done - began))

        before = self.sample()
        tasks = [
            asyncio.create_task(writer(g, n)) for g, count in writers.items() for n in range(count)
        ]
        await asyncio.sleep(seconds)
        after = self.sample()
        await asyncio.gather(*tasks)
        return {
            "seconds": seconds,
            "fsyncs": after["fsyncs"] - before["fsyncs"],
            "leader_changes": after["leader_changes"] - before["leader_changes"],
            "stats": stats.to_wire(),
        }

    async def transfer(self, groups: list[int], target: int) -> dict[str, Any]:
        """Ask each of `groups` this node leads to hand its leadership to `target`."""
        asked = [g for g in groups if self.node.group(g).is_leader]
        for g in asked:
            await self.node.group(g).transfer_leadership(target)
        return {"asked": len(asked)}

    async def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        command = request["cmd"]
        if command == "status":
            return self.status()
        if command == "sample":
            return self.sample()
        if command == "transfer":
            return await self.transfer([int(g) for g in request["groups"]], int(request["to"]))
        if command == "write":
            writers = {int(g): int(n) for g, n in request["writers"].items()}
            return await self.write(writers, float(request["seconds"]))
        return {"error": f"unknown command {command!r}"}


def _reply(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def _serve_parent(worker: Worker) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    _reply(await worker.start())
    while line := await reader.readline():  # empty: the parent closed our stdin
        try:
            _reply(await worker.answer(json.loads(line)))
        except Exception as error:  # the parent reports it and stops the run
            _reply({"error": f"{type(error).__name__}: {error}"})


async def _worker_main(args: argparse.Namespace) -> None:
    # Bounded even if the parent vanishes without closing our stdin.
    asyncio.get_running_loop().call_later(args.lifetime_s, os._exit, 3)
    worker = Worker(args)
    try:
        await _serve_parent(worker)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(worker.node.stop(transfer_leadership=False), STOP_GRACE_S)


def worker_main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(prog="groups.py --node-worker")
    parser.add_argument("--id", type=int, required=True)
    parser.add_argument("--ports", type=int, nargs=3, required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--groups", type=int, required=True)
    parser.add_argument("--tick-ms", type=int, required=True)
    parser.add_argument("--quiesce-ticks", type=int, required=True)
    parser.add_argument("--lifetime-s", type=float, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    gcpolicy.enable()  # as `accord node` does
    try:
        import uvloop
    except ImportError:
        asyncio.run(_worker_main(args))
    else:
        uvloop.run(_worker_main(args))


# --- the parent: processes, requests, measurements ------------------------------------


class WorkerFailed(RuntimeError):
    pass


@dataclass
class NodeProcess:
    node_id: int
    process: asyncio.subprocess.Process
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    async def read_reply(self, timeout_s: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        try:
            line = await asyncio.wait_for(self.process.stdout.readline(), timeout_s)
        except TimeoutError:
            raise WorkerFailed(f"node {self.node_id}: no answer within {timeout_s:g}s") from None
        if not line:
            code = await self.process.wait()
            raise WorkerFailed(f"node {self.node_id} exited (code {code})") from None
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise WorkerFailed(f"node {self.node_id}: {reply['error']}")
        return reply

    async def request(self, command: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write((json.dumps(command) + "\n").encode())
            await self.process.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            code = await self.process.wait()
            raise WorkerFailed(f"node {self.node_id} exited (code {code})") from None
        return await self.read_reply(timeout_s)

    def log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-LOG_TAIL_LINES:])


STARTED_PIDS: set[int] = set()
"""Every worker started and not yet waited for: killed by PID if all else fails."""


def free_ports(count: int) -> list[int]:
    """`count` loopback ports in `PORTS` that were free a moment ago."""
    candidates = random.sample(PORTS, len(PORTS))
    chosen = []
    for port in candidates:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        chosen.append(port)
        if len(chosen) == count:
            return chosen
    raise RuntimeError(f"fewer than {count} free ports in {PORTS}")


async def spawn(
    node_id: int, ports: list[int], directory: Path, args: argparse.Namespace, groups: int
) -> NodeProcess:
    node_dir = directory / f"n{node_id}"
    node_dir.mkdir()
    log_path = directory / f"n{node_id}.log"
    lifetime_s = args.leader_timeout + args.seconds + args.settle + 2 * READY_TIMEOUT_S
    command = [
        sys.executable, str(Path(__file__).resolve()), "--node-worker",
        "--id", str(node_id), "--ports", *map(str, ports), "--dir", str(node_dir),
        "--groups", str(groups), "--tick-ms", str(args.tick_ms),
        "--quiesce-ticks", str(args.quiesce_ticks),
        "--lifetime-s", str(lifetime_s),
    ]  # fmt: skip
    with open(log_path, "wb") as log_file:
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=log_file,
        )
    STARTED_PIDS.add(process.pid)
    return NodeProcess(node_id, process, log_path)


async def stop(nodes: list[NodeProcess]) -> None:
    """Close each worker's stdin (it stops by itself), then kill what is left by PID."""
    for node in nodes:
        if node.process.stdin is not None:
            node.process.stdin.close()
    for node in nodes:
        try:
            await asyncio.wait_for(node.process.wait(), STOP_GRACE_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(node.pid, signal.SIGKILL)
            await node.process.wait()
        STARTED_PIDS.discard(node.pid)


@asynccontextmanager
async def cluster(args: argparse.Namespace, groups: int) -> AsyncIterator[list[NodeProcess]]:
    """Three fresh node processes hosting group 0 and groups 1..`groups`, started and
    with their groups created; stopped and their directory removed on exit."""
    directory = Path(tempfile.mkdtemp(prefix="accord-groupbench-", dir=args.tmpdir))
    nodes: list[NodeProcess] = []
    try:
        ports = free_ports(len(NODE_IDS))
        for node_id in NODE_IDS:
            nodes.append(await spawn(node_id, ports, directory, args, groups))
        ready = await asyncio.gather(*(n.read_reply(READY_TIMEOUT_S) for n in nodes))
        note(f"K={groups}: 3 nodes up, groups created in {max(r['create_s'] for r in ready):.1f}s")
        yield nodes
    except BaseException:
        for node in nodes:
            if tail := node.log_tail():
                note(f"--- node {node.node_id} log (last lines) ---\n{tail}")
        raise
    finally:
        await stop(nodes)
        shutil.rmtree(directory, ignore_errors=True)


async def ask_all(
    nodes: list[NodeProcess], command: dict[str, Any], timeout_s: float = REQUEST_TIMEOUT_S
) -> list[dict[str, Any]]:
    return list(await asyncio.gather(*(n.request(command, timeout_s) for n in nodes)))


@dataclass
class Leaders:
    seconds: float | None
    """Until every group had a leader; None if `--leader-timeout` passed first."""
    leader_of: dict[int, int]
    """Group -> the node that leads it (at the last look)."""


async def wait_for_leaders(
    nodes: list[NodeProcess], groups: int, timeout_s: float, quiet: bool = False
) -> Leaders:
    """Until some node leads each group and every node knows a leader of each."""
    began = time.monotonic()
    total = groups + 1
    while True:
        statuses = await ask_all(nodes, {"cmd": "status"})
        leader_of = {g: n.node_id for n, s in zip(nodes, statuses, strict=True) for g in s["led"]}
        elapsed = time.monotonic() - began
        if len(leader_of) == total and all(s["known"] == total for s in statuses):
            if not quiet:
                note(f"K={groups}: every group has a leader after {elapsed:.1f}s")
            return Leaders(elapsed, leader_of)
        if elapsed > timeout_s:
            note(f"K={groups}: after {timeout_s:g}s only {len(leader_of)} of {total} groups lead")
            return Leaders(None, leader_of)
        await asyncio.sleep(0.2)


def wanted_leaders(placement: str, written: list[int]) -> dict[int, int]:
    """Group -> the node that should lead it: all on the first node ("together"), or
    round robin over the nodes ("spread")."""
    if placement == "together":
        return {g: NODE_IDS[0] for g in written}
    return {g: NODE_IDS[i % len(NODE_IDS)] for i, g in enumerate(written)}


async def place_leaders(
    nodes: list[NodeProcess], groups: int, wanted: dict[int, int], timeout_s: float
) -> Leaders:
    """Transfer leaderships until each group of `wanted` is led by its node (or
    `timeout_s` passed)."""
    began = time.monotonic()
    while True:
        leaders = await wait_for_leaders(nodes, groups, timeout_s, quiet=True)
        away = {g: n for g, n in wanted.items() if leaders.leader_of.get(g) != n}
        if not away:
            note(f"K={groups}: the written groups are led where wanted")
            return leaders
        if time.monotonic() - began > timeout_s:
            note(f"K={groups}: {len(away)} written groups still led elsewhere")
            return leaders
        for node in nodes:
            for target in NODE_IDS:
                mine = [
                    g
                    for g, n in away.items()
                    if n == target and leaders.leader_of.get(g) == node.node_id
                ]
                if mine:
                    command = {"cmd": "transfer", "groups": mine, "to": target}
                    await node.request(command, REQUEST_TIMEOUT_S)
        await asyncio.sleep(0.5)


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class ProcessTimes:
    """What a process had used by some moment, all its threads together."""

    cpu_s: float
    """utime + stime, from /proc/PID/stat."""
    wait_s: float
    """Time runnable but waiting for a CPU, from /proc/PID/task/*/schedstat."""


def process_times(pid: int) -> ProcessTimes:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()  # fields 3.. (the name may hold spaces)
    cpu_s = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    wait_ns = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that just ended
            wait_ns += int((task / "schedstat").read_text().split()[1])
    return ProcessTimes(cpu_s, wait_ns / 1e9)


def usage(before: ProcessTimes, after: ProcessTimes, window_s: float) -> dict[str, float]:
    """CPU used and CPU waited for over a window, in % of one core."""
    return {
        "cpu_percent": round(100 * (after.cpu_s - before.cpu_s) / window_s, 1),
        "wait_percent": round(100 * (after.wait_s - before.wait_s) / window_s, 1),
    }


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def split_writers(total: int, groups: list[int]) -> dict[int, int]:
    """`total` writers over `groups` as evenly as possible (the first get the rest)."""
    base, extra = divmod(total, len(groups))
    return {g: base + (1 if i < extra else 0) for i, g in enumerate(groups)}


def write_groups(groups: int) -> list[int]:
    return list(range(1, groups + 1)) if groups else [0]


def latency_ms(stats: Stats, percent: float) -> float:
    return round(stats.percentile_s(percent) * 1000, 3)


def write_command(
    node_id: int, writers: dict[int, int], leader_of: dict[int, int], seconds: float
) -> dict[str, Any]:
    """The writers of the groups `node_id` leads (the others only count fsyncs)."""
    led = {str(g): count for g, count in writers.items() if leader_of.get(g) == node_id}
    return {"cmd": "write", "seconds": seconds, "writers": led}


async def measure_write(args: argparse.Namespace, groups: int) -> dict[str, Any]:
    async with cluster(args, groups) as nodes:
        leaders = await wait_for_leaders(nodes, groups, args.leader_timeout)
        if args.leaders != "elected":
            wanted = wanted_leaders(args.leaders, write_groups(groups))
            leaders = await place_leaders(nodes, groups, wanted, args.leader_timeout)
        writers = split_writers(args.concurrency, write_groups(groups))
        timeout_s = args.seconds + WRITE_TIMEOUT_S + REQUEST_TIMEOUT_S
        before = [process_times(n.pid) for n in nodes]
        began = time.monotonic()
        replies = await asyncio.gather(
            *(
                n.request(
                    write_command(n.node_id, writers, leaders.leader_of, args.seconds), timeout_s
                )
                for n in nodes
            )
        )
        window_s = time.monotonic() - began
        used = [
            usage(b, process_times(n.pid), window_s) for b, n in zip(before, nodes, strict=True)
        ]
        pids = [n.pid for n in nodes]
    stats = Stats()
    for reply in replies:
        stats.merge(Stats.from_wire(reply["stats"]))
    fsyncs_per_s = [r["fsyncs"] / args.seconds for r in replies]
    writes_per_s = stats.count / args.seconds
    mean_fsyncs = sum(fsyncs_per_s) / len(fsyncs_per_s)
    return {
        "groups": groups,
        "leaders": args.leaders,
        "written_groups": len(writers),
        "unled_groups": sum(1 for g in writers if g not in leaders.leader_of),
        "written_groups_led": [
            sum(1 for g in writers if leaders.leader_of.get(g) == i) for i in NODE_IDS
        ],
        "concurrency": args.concurrency,
        "seconds": args.seconds,
        "leaders_s": None if leaders.seconds is None else round(leaders.seconds, 2),
        "writes": stats.count,
        "writes_per_s": round(writes_per_s, 1),
        "fsyncs_per_s": [round(f, 1) for f in fsyncs_per_s],
        "writes_per_fsync": round(writes_per_s / mean_fsyncs, 2) if mean_fsyncs else None,
        "latency_ms": {"p50": latency_ms(stats, 50), "p99": latency_ms(stats, 99)},
        "errors": dict(stats.errors),
        "leader_changes": sum(r["leader_changes"] for r in replies),
        "cpu_percent": [u["cpu_percent"] for u in used],
        "wait_percent": [u["wait_percent"] for u in used],
        "pids": pids,
    }


@dataclass
class IdleSample:
    """What one node process had done by some moment."""

    times: ProcessTimes
    sent: dict[str, int]
    """Raft messages sent, by type name."""
    leader_changes: int
    """Leader changes this node saw, all groups together."""


async def sample_idle(nodes: list[NodeProcess]) -> list[IdleSample]:
    times = [process_times(n.pid) for n in nodes]
    samples = await ask_all(nodes, {"cmd": "sample"})
    return [
        IdleSample(t, s["sent_by_type"], s["leader_changes"])
        for t, s in zip(times, samples, strict=True)
    ]


def idle_rates(before: IdleSample, after: IdleSample, window_s: float, led: int) -> dict[str, Any]:
    """One node's CPU, its messages sent per second, and how many heartbeat rounds
    per second each group it leads made (one per tick when the node keeps up)."""
    sent = {t: (after.sent[t] - before.sent[t]) / window_s for t in after.sent}
    followers = len(NODE_IDS) - 1
    return {
        **usage(before.times, after.times, window_s),
        "messages_sent_per_s": round(sum(sent.values()), 1),
        "by_type": {t: round(rate, 1) for t, rate in sent.items() if rate > 0},
        "leader_changes": after.leader_changes - before.leader_changes,
        "heartbeat_rounds_per_s": round(sent["HEARTBEAT"] / (followers * led), 1) if led else None,
    }


async def measure_idle(args: argparse.Namespace, groups: int) -> dict[str, Any]:
    async with cluster(args, groups) as nodes:
        leaders = await wait_for_leaders(nodes, groups, args.leader_timeout)
        await asyncio.sleep(args.settle)
        before = await sample_idle(nodes)
        began = time.monotonic()
        await asyncio.sleep(args.seconds)
        after = await sample_idle(nodes)
        window_s = time.monotonic() - began
        rss = [rss_kib(n.pid) for n in nodes]
        pids = [n.pid for n in nodes]
    led = [sum(1 for v in leaders.leader_of.values() if v == i) for i in NODE_IDS]
    rates = [idle_rates(b, a, window_s, n) for b, a, n in zip(before, after, led, strict=True)]
    return {
        "groups": groups,
        "seconds": round(window_s, 2),
        "leaders_s": None if leaders.seconds is None else round(leaders.seconds, 2),
        "groups_with_leader": len(leaders.leader_of),
        "groups_led": led,
        "cpu_percent": [r["cpu_percent"] for r in rates],
        "wait_percent": [r["wait_percent"] for r in rates],
        "rss_kib": rss,
        "messages_sent_per_s": [r["messages_sent_per_s"] for r in rates],
        "messages_sent_by_type_per_s": [r["by_type"] for r in rates],
        "heartbeat_rounds_per_s": [r["heartbeat_rounds_per_s"] for r in rates],
        "leader_changes": [r["leader_changes"] for r in rates],
        "pids": pids,
    }


def add_memory_per_group(results: list[dict[str, Any]]) -> None:
    """(RSS(K) - RSS(0)) / K, the nodes' mean, for each K > 0 when K = 0 was run."""
    base = next((r for r in results if r["groups"] == 0), None)
    for r in results:
        if base is None or r["groups"] == 0:
            r["memory_per_group_kib"] = None
            continue
        grown = sum(r["rss_kib"]) / len(r["rss_kib"]) - sum(base["rss_kib"]) / len(base["rss_kib"])
        r["memory_per_group_kib"] = round(grown / r["groups"], 1)


def ratios(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each K's writes/s and mean fsyncs/s per node against the first K's."""
    first = results[0]

    def mean(values: list[float]) -> float:
        return sum(values) / len(values)

    out = []
    for r in results[1:]:
        base_fsyncs = mean(first["fsyncs_per_s"])
        out.append(
            {
                "groups": r["groups"],
                "against_groups": first["groups"],
                "writes_per_s": round(r["writes_per_s"] / first["writes_per_s"], 2)
                if first["writes_per_s"]
                else None,
                "fsyncs_per_s": round(mean(r["fsyncs_per_s"]) / base_fsyncs, 2)
                if base_fsyncs
                else None,
            }
        )
    return out


# --- the report -------------------------------------------------------------------------

REPORT = sys.stdout


def note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def say(text: str) -> None:
    print(text, file=REPORT, flush=True)


def node_row(label: str, values: Sequence[float | None], digits: int = 1) -> str:
    cells = ("-" if v is None else f"{v:.{digits}f}" for v in values)
    return f"  {label:<22s}" + "".join(f"{c:>10s}" for c in cells)


def leaders_text(r: dict[str, Any]) -> str:
    if r["leaders_s"] is None:
        return f"NOT ALL LED within the timeout ({r['groups_with_leader']}/{r['groups'] + 1})"
    return f"all led after {r['leaders_s']:.1f}s"


def report_write(results: list[dict[str, Any]], compared: list[dict[str, Any]]) -> None:
    for r in results:
        latency = r["latency_ms"]
        say(
            f"K={r['groups']} (leaders {r['leaders']}): {r['writes_per_s']:.1f} writes/s, "
            f"{r['writes_per_fsync'] or 0:.1f} writes per fsync, "
            f"p50 {latency['p50']:.2f} ms, p99 {latency['p99']:.2f} ms, "
            f"errors {r['errors'] or 'none'}, leader changes {r['leader_changes']}"
        )
        say(node_row("node", NODE_IDS, 0))
        say(node_row("fsyncs/s", r["fsyncs_per_s"]))
        say(node_row("groups written, led", r["written_groups_led"], 0))
        say(node_row("CPU % of a core", r["cpu_percent"]))
        say(node_row("waiting for a CPU %", r["wait_percent"]))
    for c in compared:
        say(
            f"K={c['groups']} against K={c['against_groups']}: fsyncs/s per node "
            f"x{c['fsyncs_per_s']}, writes/s x{c['writes_per_s']}"
        )


def report_idle(results: list[dict[str, Any]]) -> None:
    for r in results:
        per_group = r["memory_per_group_kib"]
        if r["groups"] == 0:
            memory = "the baseline of memory per group"
        elif per_group is None:
            memory = "no K=0 run to measure memory per group against"
        else:
            memory = f"{per_group:.1f} KiB per group"
        say(f"K={r['groups']}: {leaders_text(r)}; {memory}")
        say(node_row("node", NODE_IDS, 0))
        say(node_row("groups led", r["groups_led"], 0))
        say(node_row("CPU % of a core", r["cpu_percent"]))
        say(node_row("waiting for a CPU %", r["wait_percent"]))
        say(node_row("RSS MiB", [k / 1024 for k in r["rss_kib"]]))
        say(node_row("messages sent/s", r["messages_sent_per_s"], 0))
        say(node_row("heartbeat rounds/s", r["heartbeat_rounds_per_s"]))
        say(node_row("leader changes seen", r["leader_changes"], 0))


# --- the command line -----------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Many Raft groups on 3 real node processes: fsyncs under writes, idle cost.",
    )
    parser.add_argument("--json", action="store_true", help="results as JSON on stdout")
    parser.add_argument("--tick-ms", type=int, default=TICK_MS, help="the nodes' Raft tick")
    parser.add_argument(
        "--quiesce-ticks",
        type=int,
        default=0,
        help="RaftConfig.quiesce_ticks of every group: idle ticks before a group goes "
        "quiet (0, as `accord node` runs: never)",
    )
    parser.add_argument(
        "--leader-timeout", type=float, default=120.0, help="seconds to wait for every leader"
    )
    parser.add_argument("--tmpdir", default="/tmp", help="where the data directories go")
    modes = parser.add_subparsers(dest="mode", required=True)
    write = modes.add_parser("write", help="write throughput and fsyncs per K")
    write.add_argument("--groups", type=int, action="append", required=True, help="K (repeat)")
    write.add_argument("--seconds", type=float, default=10.0)
    write.add_argument("--concurrency", type=int, default=64, help="writers in all")
    write.add_argument(
        "--leaders",
        choices=("elected", "together", "spread"),
        default="elected",
        help="where the written groups' leaders are: as elected, all moved to node 1, "
        "or moved round robin over the nodes",
    )
    idle = modes.add_parser("idle", help="CPU, memory and messages of idle groups per K")
    idle.add_argument("--groups", type=int, action="append", required=True, help="K (repeat)")
    idle.add_argument("--seconds", type=float, default=20.0, help="the measured window")
    idle.add_argument("--settle", type=float, default=5.0, help="seconds before the window")
    args = parser.parse_args(argv)
    if args.quiesce_ticks < 0:
        parser.error("--quiesce-ticks must be >= 0")
    if min(args.groups) < 0:
        parser.error("--groups must be >= 0")
    if args.seconds <= 0:
        parser.error("--seconds must be positive")
    if args.mode == "write":
        args.settle = 0.0
        if args.concurrency < max(len(write_groups(k)) for k in args.groups):
            parser.error("--concurrency must be at least the number of groups written")
    return args


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    results = []
    for groups in args.groups:
        measure = measure_write if args.mode == "write" else measure_idle
        results.append(await measure(args, groups))
        note(f"K={groups}: done")
    return results


def main(argv: Sequence[str]) -> int:
    global REPORT
    args = parse_args(argv)
    if args.json:
        REPORT = sys.stderr
    try:
        results = asyncio.run(run(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        note("interrupted")
        return 130
    except WorkerFailed as error:
        note(f"failed: {error}")
        return 1
    finally:
        for pid in STARTED_PIDS:  # only if stopping them normally failed
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    document: dict[str, Any] = {
        "mode": args.mode,
        "tick_ms": args.tick_ms,
        "quiesce_ticks": args.quiesce_ticks,
        "results": results,
    }
    if args.mode == "write":
        document["ratios"] = ratios(results)
        report_write(results, document["ratios"])
    else:
        add_memory_per_group(results)
        report_idle(results)
    if args.json:
        print(json.dumps(document, indent=2))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--node-worker"]:
        worker_main(sys.argv[2:])
    else:
        sys.exit(main(sys.argv[1:]))
