"""One chaos run: start a cluster, run a workload's clients under a fault schedule for
a while, heal, read the final state, check the history, write the results.

Phases, every one bounded in time:

1. set up the network (the proxy, or network namespaces: `network.py`) and start
   the node processes; wait for a leader known to all;
2. set up the workload; run its clients and the nemesis for `time_s`;
3. stop the nemesis (it heals what it broke), heal everything else (resume paused
   nodes, restart dead ones, open every link) and wait for a healthy cluster;
4. stop the clients (an operation still in flight after `DRAIN_S` is unknown);
5. the workload's final reads, then its checker;
6. write `history.jsonl`, `faults.jsonl`, `verdict.json` and `report.html`.

Whatever happens (an error, Ctrl-C), every node process is stopped by its PID and
the network is taken down (the proxy closed; the namespaces and rules deleted).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from accord.chaos.clients import CLIENT_KINDS, OP_TIMEOUT_S, ChaosClient
from accord.chaos.cluster import REPLICAS, ProcessCluster
from accord.chaos.faults import NORMAL, FaultLog, Nemesis, Pace, move_refusal
from accord.chaos.netns import NetnsNetwork, unavailable
from accord.chaos.network import ClusterNetwork, NetworkUnavailable
from accord.chaos.proxy import NetProxy
from accord.chaos.record import Recorder
from accord.chaos.report import write_report
from accord.chaos.workloads import WORKLOADS
from accord.chaos.workloads.base import Context, Verdict, Workload

STARTUP_TIMEOUT_S = 30.0
HEAL_TIMEOUT_S = 45.0
DRAIN_S = OP_TIMEOUT_S + 2.0
NETWORKS = ("proxy", "netns")


@dataclass(slots=True)
class RunOptions:
    workload: str
    faults: list[str]
    nodes: int = 3
    time_s: float = 60.0
    seed: int = 0
    out: Path = Path("chaos-out")
    client_kind: str = "http"
    bugs: frozenset[str] = frozenset()
    pace: Pace = NORMAL
    variants: dict[str, list[str]] = field(default_factory=dict)
    """Restrict a fault family to some of its variants (e.g. kill: ["all"])."""
    clients: int | None = None
    network: str = "proxy"
    """`proxy` (every node on 127.0.0.1, a TCP proxy between them) or `netns` (every
    node in a network namespace of its own; needs root, ip and iptables)."""
    shards: int = 1
    """Spread the keys over this many shards (`accord up --shards`)."""
    replicas: int = REPLICAS
    """Voters of each shard, at most one per node (`accord up --replicas`)."""
    stop_when_invalid: bool = False
    """Check the history every few seconds and stop early once it is invalid (used
    to show that a deliberate bug is caught, without waiting for the full time)."""


@dataclass(slots=True)
class RunResult:
    verdict: Verdict
    operations: dict[str, int]
    faults: dict[str, int]
    moves: dict[str, int]
    """The `move` faults: asked for, accepted, and how each ended (`FaultLog.moves`)."""
    duration_s: float
    out: Path
    seed: int

    @property
    def valid(self) -> bool:
        return self.verdict.valid


def run(options: RunOptions) -> RunResult:
    """Run synchronously (own event loop); see `run_async`."""
    return asyncio.run(run_async(options))


async def run_async(options: RunOptions) -> RunResult:
    if options.workload not in WORKLOADS:
        raise ValueError(f"unknown workload {options.workload!r}")
    if options.client_kind not in CLIENT_KINDS:
        raise ValueError(f"unknown client kind {options.client_kind!r}")
    if options.replicas > options.nodes:
        raise ValueError(f"{options.replicas} replicas of each shard on {options.nodes} nodes")
    refusal = move_refusal(options.shards, options.nodes, options.replicas)
    if "move" in options.faults and refusal is not None:
        raise ValueError(refusal)
    network = make_network(options.network, options.seed)
    options.out.mkdir(parents=True, exist_ok=True)
    workload: Workload = WORKLOADS[options.workload](options.clients)
    cluster = ProcessCluster(
        options.out / "cluster",
        options.nodes,
        network,
        bugs=options.bugs,
        shards=options.shards,
        replicas=options.replicas,
    )
    recorder = Recorder()
    faults = FaultLog(recorder.now)
    started = time.monotonic()
    # SIGTERM ends the run like Ctrl-C: cancelled, so the `finally` stops the nodes.
    main = asyncio.current_task()
    assert main is not None
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGTERM, main.cancel)
    try:
        await cluster.start()
        await cluster.wait_healthy(STARTUP_TIMEOUT_S)
        verdict = await _exercise(options, workload, cluster, recorder, faults)
    finally:
        cluster.stop()
        await network.stop()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGTERM)
    duration = time.monotonic() - started
    recorder.close_open()
    result = RunResult(
        verdict,
        recorder.counts(),
        faults.counts(),
        faults.moves(),
        duration,
        options.out,
        options.seed,
    )
    _write_outputs(options, result, recorder, faults)
    return result


def make_network(kind: str, seed: int) -> ClusterNetwork:
    """The run's network backend (NetworkUnavailable if it cannot run here)."""
    rng = random.Random(f"{seed}/{kind}")
    if kind == "proxy":
        return NetProxy(rng)
    if kind == "netns":
        reason = unavailable()
        if reason is not None:
            raise NetworkUnavailable(reason)
        return NetnsNetwork(rng)
    raise ValueError(f"unknown network {kind!r} (known: {', '.join(NETWORKS)})")


async def _exercise(
    options: RunOptions,
    workload: Workload,
    cluster: ProcessCluster,
    recorder: Recorder,
    faults: FaultLog,
) -> Verdict:
    make = CLIENT_KINDS[options.client_kind]
    rng = random.Random(f"{options.seed}/workload")
    stop_clients, stop_faults = asyncio.Event(), asyncio.Event()
    ctx = Context(recorder, rng, stop_clients)
    endpoints = cluster.endpoints(options.client_kind)
    admin: ChaosClient = make(endpoints)
    clients = [make(endpoints) for _ in range(workload.clients)]
    nemesis = Nemesis(cluster, options.faults, options.seed, faults, options.pace, options.variants)
    try:
        await workload.setup(admin)
        recorder.started = time.monotonic()  # the timeline starts with the clients
        tasks = [
            asyncio.create_task(workload.run_client(ctx, i, c), name=f"client-{i}")
            for i, c in enumerate(clients)
        ]
        nemesis_task = asyncio.create_task(nemesis.run(stop_faults), name="nemesis")
        await _run_for(options, workload, recorder, [*tasks, nemesis_task])
        stop_faults.set()
        await nemesis_task
        return await _heal_and_check(workload, cluster, ctx, admin, tasks)
    finally:
        stop_faults.set()
        stop_clients.set()
        for client in [admin, *clients]:
            with contextlib.suppress(Exception):
                await client.close()


async def _heal_and_check(
    workload: Workload,
    cluster: ProcessCluster,
    ctx: Context,
    admin: ChaosClient,
    tasks: list[asyncio.Task[None]],
) -> Verdict:
    """Heal every fault, stop the clients, read the final state and check. A cluster
    that does not recover once every fault is gone fails the run (liveness) with
    what the checker could still say; the outputs are written either way."""
    cluster.network.heal()
    cluster.heal_processes()
    cluster.write_manifest()
    stuck: str | None = None
    try:
        await cluster.wait_healthy(HEAL_TIMEOUT_S)
    except TimeoutError as e:
        stuck = str(e)
    ctx.stop.set()
    await _drain(tasks)
    if stuck is None:
        try:
            await workload.finish(ctx, admin)
        except TimeoutError as e:
            stuck = str(e)
    verdict = workload.check(recorder=ctx.recorder)
    if stuck is None:
        return verdict
    details = [f"after healing every fault: {stuck}", *cluster.describe(), *verdict.details]
    summary = f"INVALID: the cluster did not recover after healing ({stuck})"
    if not verdict.valid:
        summary = f"{verdict.summary}; and the cluster did not recover after healing"
    return Verdict(False, summary, details, verdict.stats)


async def _run_for(
    options: RunOptions,
    workload: Workload,
    recorder: Recorder,
    tasks: list[asyncio.Task[None]],
) -> None:
    """Sleep out the run's time; a task that dies early is a harness bug: raise it."""
    deadline = time.monotonic() + options.time_s
    while (left := deadline - time.monotonic()) > 0:
        done, _ = await asyncio.wait(tasks, timeout=min(left, 5.0))
        for task in done:
            if task.exception() is not None:
                raise RuntimeError(f"{task.get_name()} failed") from task.exception()
        if options.stop_when_invalid and not workload.check(recorder).valid:
            return


async def _drain(tasks: list[asyncio.Task[None]]) -> None:
    _, pending = await asyncio.wait(tasks, timeout=DRAIN_S)
    for task in pending:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for task, result in zip(tasks, results, strict=True):
        if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
            raise RuntimeError(f"{task.get_name()} failed") from result


def _write_outputs(
    options: RunOptions, result: RunResult, recorder: Recorder, faults: FaultLog
) -> None:
    recorder.write_jsonl(options.out / "history.jsonl")
    faults.write_jsonl(options.out / "faults.jsonl")
    summary = {
        "workload": options.workload,
        "faults": options.faults,
        "nodes": options.nodes,
        "shards": options.shards,
        "replicas": options.replicas,
        "network": options.network,
        "time_s": options.time_s,
        "seed": options.seed,
        "bugs": sorted(options.bugs),
        "valid": result.valid,
        "verdict": asdict(result.verdict),
        "operations": result.operations,
        "faults_injected": result.faults,
        "moves": result.moves,
        "duration_s": round(result.duration_s, 1),
    }
    (options.out / "verdict.json").write_text(json.dumps(summary, indent=2, default=repr))
    write_report(options.out / "report.html", summary, recorder.ops, faults.records)
