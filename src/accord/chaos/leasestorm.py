"""The lease storm: many long leases, a leader killed, then what writes see.

Theory of operation
-------------------
`grant()` takes `leases` leases of `ttl_s` seconds on native connections
(`AsyncClient` over accord:// endpoints, pipelined: many grants in flight at once).
`storm()` then kills the leader with SIGKILL and restarts it at once, and for
`seconds` issues one write every `write_interval_s` (each with its own deadline,
started on schedule whether or not the previous one finished), while a poller reads
`/v1/cluster/status` of every node every `POLL_INTERVAL_S`. It reports the writes
attempted and succeeded with their latencies, the leader changes and elections the
poller saw (distinct terms with a leader after the kill) and how far the commit index
grew, which is the log growth the leases caused.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from accord.chaos.localup import UpCluster
from accord.client.aio import AsyncClient
from accord.security.tls import client_tls

TTL_S_DEFAULT = 10 * 365 * 24 * 3600
GRANTS_IN_FLIGHT = 256
WRITE_INTERVAL_S = 5.0
WRITE_TIMEOUT_S = 10.0
POLL_INTERVAL_S = 0.5
GRANT_TIMEOUT_S = 30.0
NODE_ENV = {"ACCORD_LEASES_MAX": "1000000", "ACCORD_LEASES_PER_USER_MAX": "200000"}
"""Bounds on leases (total, per user), so the storm is not refused by them: it
measures what the leases do once granted. A node that does not know these settings
ignores them (only known `ACCORD_*` names are read)."""


@dataclass
class StormReport:
    leases_requested: int
    leases_granted: int = 0
    grant_errors: dict[str, int] = field(default_factory=dict)
    grant_s: float = 0.0
    killed: str = ""
    seconds: float = 0.0
    writes_attempted: int = 0
    writes_ok: int = 0
    write_latency_median_s: float | None = None
    write_latency_max_s: float | None = None
    write_errors: dict[str, int] = field(default_factory=dict)
    leader_changes: int = 0
    elections: int = 0
    elections_per_min: float = 0.0
    leaders_seen: list[tuple[int, int]] = field(default_factory=list)
    commit_before: int = 0
    commit_after: int = 0

    @property
    def log_growth(self) -> int:
        return self.commit_after - self.commit_before

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "log_growth": self.log_growth}

    def summary(self) -> str:
        median, worst = self.write_latency_median_s, self.write_latency_max_s
        latency = "n/a" if median is None else f"median {median:.2f} s, max {worst:.2f} s"
        return "\n".join(
            [
                f"leases: {self.leases_granted} of {self.leases_requested} granted in "
                f"{self.grant_s:.1f} s (errors: {self.grant_errors or 'none'})",
                f"killed (kill -9, restarted): {self.killed}",
                f"writes in {self.seconds:.0f} s: {self.writes_ok} of {self.writes_attempted} "
                f"succeeded; latency {latency} (errors: {self.write_errors or 'none'})",
                f"elections: {self.elections} ({self.elections_per_min:.1f}/min), "
                f"leader changes: {self.leader_changes}, (leader, term) seen: "
                f"{self.leaders_seen[:12]}",
                f"log (commit index): {self.commit_before} -> {self.commit_after} "
                f"(+{self.log_growth})",
            ]
        )


def _client(cluster: UpCluster) -> AsyncClient:
    tls = client_tls(cluster.ca) if cluster.secure else None
    password = cluster.root_password() if cluster.secure else None
    return AsyncClient(
        [n.native_url for n in cluster.nodes],
        tls=tls,
        user="root" if cluster.secure else None,
        password=password,
        timeout_s=GRANT_TIMEOUT_S,
    )


def _count(errors: dict[str, int], exc: BaseException) -> None:
    name = type(exc).__name__
    errors[name] = errors.get(name, 0) + 1


async def grant(cluster: UpCluster, report: StormReport, ttl_s: int, deadline_s: float) -> None:
    """Grant `report.leases_requested` leases, GRANTS_IN_FLIGHT at a time."""
    started = time.monotonic()
    deadline = started + deadline_s
    async with _client(cluster) as client:
        remaining = report.leases_requested
        while remaining > 0 and time.monotonic() < deadline:
            batch = min(GRANTS_IN_FLIGHT, remaining)
            results = await asyncio.gather(
                *(client.lease_grant(ttl_s) for _ in range(batch)), return_exceptions=True
            )
            for result in results:
                if isinstance(result, BaseException):
                    _count(report.grant_errors, result)
                else:
                    report.leases_granted += 1
            remaining -= batch
    report.grant_s = time.monotonic() - started


async def storm(
    cluster: UpCluster,
    report: StormReport,
    seconds: float,
    write_interval_s: float = WRITE_INTERVAL_S,
) -> None:
    """Kill -9 the leader, restart it, then write and watch for `seconds`."""
    found = cluster.leader(30.0)
    if found is None:
        raise RuntimeError("no leader before the kill")
    leader = cluster.node(found[0])
    report.commit_before = int((cluster.status(leader) or {}).get("commit", 0))
    cluster.kill9(leader)
    cluster.restart(leader)
    report.killed = f"{leader.name} (leader in term {found[1]})"
    seen: list[tuple[int, int]] = [found]
    stop = asyncio.Event()
    poller = asyncio.create_task(_poll(cluster, seen, report, stop))
    started = time.monotonic()
    latencies: list[float] = []
    async with _client(cluster) as client:
        tasks: list[asyncio.Task[None]] = []
        while time.monotonic() - started < seconds:
            tasks.append(asyncio.create_task(_write(client, len(tasks), latencies, report)))
            await asyncio.sleep(write_interval_s)
        await asyncio.gather(*tasks)
    stop.set()
    await poller
    report.seconds = time.monotonic() - started
    report.writes_attempted = len(tasks)
    report.writes_ok = len(latencies)
    if latencies:
        report.write_latency_median_s = round(statistics.median(latencies), 3)
        report.write_latency_max_s = round(max(latencies), 3)
    report.leaders_seen = seen
    report.leader_changes = len(seen) - 1
    report.elections = len({term for _, term in seen}) - 1
    report.elections_per_min = round(report.elections * 60 / report.seconds, 1)


async def _write(client: AsyncClient, n: int, latencies: list[float], report: StormReport) -> None:
    started = time.monotonic()
    try:
        await client.put(f"storm/write-{n}", b"x", timeout_s=WRITE_TIMEOUT_S)
    except Exception as exc:  # every failure is a figure of the storm, not a crash
        _count(report.write_errors, exc)
    else:
        latencies.append(time.monotonic() - started)


async def _poll(
    cluster: UpCluster, seen: list[tuple[int, int]], report: StormReport, stop: asyncio.Event
) -> None:
    """Record each new (leader, term) pair a leader reports, and the highest commit."""
    while not stop.is_set():
        for node in cluster.nodes:
            status = await asyncio.to_thread(cluster.status, node, 1.0)
            if not status:
                continue
            report.commit_after = max(report.commit_after, int(status.get("commit", 0)))
            if status.get("role") == "leader":
                pair = (int(status["id"]), int(status["term"]))
                if pair != seen[-1]:
                    seen.append(pair)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), POLL_INTERVAL_S)


async def run(
    cluster: UpCluster,
    leases: int,
    seconds: float,
    write_interval_s: float = WRITE_INTERVAL_S,
    ttl_s: int = TTL_S_DEFAULT,
    grant_deadline_s: float = 900.0,
) -> StormReport:
    report = StormReport(leases)
    await grant(cluster, report, ttl_s, grant_deadline_s)
    await storm(cluster, report, seconds, write_interval_s)
    return report
