"""Runs a workload: worker processes, each with many concurrent tasks, for a while.

Theory of operation
-------------------
A Python client spends CPU on every request, so one process cannot load a cluster
fully; the load is spread over `processes` worker processes (fork), each running
`concurrency / processes` asyncio tasks on one driver (for Accord over the native
protocol: one pipelined connection per node and process). Every task loops: pick an
operation by the workload's read share, time it, record it. Each process reports
the operations completed per second through a queue (the parent prints a live
progress line from them) and finally its `Stats`; the parent merges them.

Reads need data: before the timed part, `prefill` keys are written once (spread over
the processes), and reads pick among them.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import queue
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from accord.bench.drivers import Driver, make_driver
from accord.bench.stats import Stats, Summary


@dataclass(frozen=True)
class Workload:
    name: str
    read_share: float
    """Fraction of operations that are reads (the rest are writes)."""
    serializable: bool = False
    cas: bool = False
    """Writes are compare-and-swap transactions."""


WORKLOADS = {
    w.name: w
    for w in (
        Workload("write", 0.0),
        Workload("read", 1.0),
        Workload("read-serializable", 1.0, serializable=True),
        Workload("mixed-50", 0.5),
        Workload("mixed-95", 0.95),
        Workload("txn", 0.0, cas=True),
    )
}


@dataclass(frozen=True)
class Plan:
    workload: Workload
    target: str
    endpoints: tuple[str, ...]
    concurrency: int
    seconds: float
    keys: int = 100_000
    value_bytes: int = 100
    processes: int = 1
    prefill: int = 0
    seed: int = 0


def key_name(i: int) -> bytes:
    return b"bench/%08d" % i


async def _operate(
    driver: Driver, workload: Workload, rng: random.Random, plan: Plan, value: bytes
) -> None:
    if rng.random() < workload.read_share:
        await driver.get(key_name(rng.randrange(max(plan.prefill, 1))), workload.serializable)
    elif workload.cas:
        if not await driver.cas(key_name(rng.randrange(plan.keys)), value):
            raise CasConflict
    else:
        await driver.put(key_name(rng.randrange(plan.keys)), value)


class CasConflict(Exception):
    """A compare-and-swap lost to another writer (counted, not a failure)."""


async def _prefill(driver: Driver, keys: range, value: bytes, tasks: int) -> None:
    todo = iter(keys)

    async def fill() -> None:
        for i in todo:
            await driver.put(key_name(i), value)

    await asyncio.gather(*(fill() for _ in range(tasks)))


async def _run_process(plan: Plan, index: int, report: Any, start: Any) -> Stats:
    tasks = plan.concurrency // plan.processes + (index < plan.concurrency % plan.processes)
    driver = make_driver(plan.target, list(plan.endpoints))
    value = b"x" * plan.value_bytes
    stats = Stats()
    try:
        share = range(index, plan.prefill, plan.processes)
        await _prefill(driver, share, value, max(tasks, 1))
        report.put(("ready", index))
        # Every process starts the timed part together, once all have prefilled.
        await asyncio.get_running_loop().run_in_executor(None, start.wait)
        began = time.monotonic()
        end = began + plan.seconds

        async def work(task: int) -> None:
            rng = random.Random(plan.seed * 1_000_003 + index * 1009 + task)
            while (now := time.monotonic()) < end:
                try:
                    await _operate(driver, plan.workload, rng, plan, value)
                except CasConflict:
                    stats.error("cas_conflict")
                except Exception as e:
                    stats.error(type(e).__name__)
                else:
                    done = time.monotonic()
                    stats.record(done - now, int(done - began))

        async def progress() -> None:
            sent = 0
            while time.monotonic() < end:
                await asyncio.sleep(0.5)
                total = stats.count
                report.put(("progress", index, total - sent, sum(stats.errors.values())))
                sent = total

        await asyncio.gather(progress(), *(work(t) for t in range(tasks)))
    finally:
        await driver.close()
    return stats


def _process_main(plan: Plan, index: int, report: Any, start: Any) -> None:
    try:
        stats = asyncio.run(_run_process(plan, index, report, start))
        report.put(("done", index, stats.to_wire()))
    except BaseException as e:  # the parent must hear of it, not wait forever
        report.put(("failed", index, f"{type(e).__name__}: {e}"))


PREFILL_TIMEOUT_S = 600.0
FINISH_TIMEOUT_S = 60.0


class BenchError(Exception):
    """A worker process failed before it could report."""


def run(plan: Plan, on_progress: Callable[[int, int, float], None] | None = None) -> Summary:
    """Run `plan`; `on_progress(operations, errors, elapsed_s)` is called about twice a
    second during the timed part."""
    context = multiprocessing.get_context("fork")
    report = context.Queue()
    start = context.Event()
    procs = [
        context.Process(target=_process_main, args=(plan, i, report, start), daemon=True)
        for i in range(plan.processes)
    ]
    for proc in procs:
        proc.start()
    merged, done, ready, operations = Stats(), 0, 0, 0
    per_process_errors = [0] * plan.processes
    started_at = time.time()
    deadline = started_at + PREFILL_TIMEOUT_S + plan.seconds + FINISH_TIMEOUT_S
    try:
        while done < plan.processes:
            try:
                message = report.get(timeout=max(0.1, deadline - time.time()))
            except queue.Empty:
                raise BenchError("worker processes did not finish in time") from None
            kind = message[0]
            if kind == "ready":
                ready += 1
                if ready == plan.processes:
                    started_at = time.time()
                    start.set()
            elif kind == "progress":
                _, index, count, errs = message
                operations += count
                per_process_errors[index] = errs
                if on_progress:
                    on_progress(operations, sum(per_process_errors), time.time() - started_at)
            elif kind == "done":
                merged.merge(Stats.from_wire(message[2]))
                done += 1
            elif kind == "failed":
                raise BenchError(f"worker {message[1]} failed: {message[2]}")
    finally:
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
    return Summary.of(
        merged,
        workload=plan.workload.name,
        target=plan.target,
        concurrency=plan.concurrency,
        seconds=plan.seconds,
    )
