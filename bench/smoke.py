"""A quick throughput smoke of a local 3-node cluster over both client protocols.

Starts `accord up` on free loopback ports (fsync on), then for each protocol and
concurrency level runs that many concurrent workers writing 100-byte values (or
reading them back, linearizably) against the leader for a fixed time, and prints
operations per second and latency percentiles. HTTP workers share an aiohttp
connection pool (a connection each); native workers share ONE pipelined connection.
Not a test and not the etcd comparison (that is `accord bench`, later); it tells
whether a change made a path faster or slower on this machine.

    python bench/smoke.py --seconds 5 --concurrency 1 32 --protocol http native
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import aiohttp

from accord.client.native import NativeLink
from accord.testing.cluster import LocalCluster

VALUE = b"x" * 100


async def _http_worker(
    session: aiohttp.ClientSession, url: str, worker: int, deadline: float, read: bool
) -> list[float]:
    latencies = []
    i = 0
    while time.monotonic() < deadline:
        i += 1
        key = f"bench/{worker}/{i % 1000}"
        began = time.monotonic()
        if read:
            async with session.get(f"{url}/v1/kv/{key}") as response:
                await response.read()
                ok = response.status in (200, 404)
        else:
            async with session.put(f"{url}/v1/kv/{key}", data=VALUE) as response:
                await response.read()
                ok = response.status == 200
        if ok:
            latencies.append(time.monotonic() - began)
    return latencies


async def _native_worker(link: NativeLink, worker: int, deadline: float, read: bool) -> list[float]:
    latencies = []
    i = 0
    while time.monotonic() < deadline:
        i += 1
        key = f"bench/{worker}/{i % 1000}".encode()
        began = time.monotonic()
        if read:
            status, _ = await link.call("get", {"key": key})
        else:
            status, _ = await link.call("put", {"key": key, "value": VALUE})
        if status == 200:
            latencies.append(time.monotonic() - began)
    return latencies


async def run(url: str, concurrency: int, seconds: float, read: bool) -> tuple[float, list[float]]:
    deadline = time.monotonic() + seconds
    began = time.monotonic()
    if url.startswith("accord://"):
        link = NativeLink(url)
        await link.connect()
        try:
            results = await asyncio.gather(
                *(_native_worker(link, w, deadline, read) for w in range(concurrency))
            )
        finally:
            await link.close()
    else:
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            results = await asyncio.gather(
                *(_http_worker(session, url, w, deadline, read) for w in range(concurrency))
            )
    elapsed = time.monotonic() - began
    latencies = sorted(latency for worker in results for latency in worker)
    return len(latencies) / elapsed, latencies


def _percentile(values: list[float], fraction: float) -> float:
    return values[min(len(values) - 1, int(len(values) * fraction))] * 1000 if values else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    parser.add_argument(
        "--protocol", nargs="+", choices=["http", "native"], default=["http", "native"]
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        cluster = LocalCluster(Path(directory) / "cluster")
        cluster.start()
        try:
            leader = cluster.leader()
            urls = {"http": cluster.url(leader), "native": cluster.native_url(leader)}
            print(f"3-node cluster, leader n{leader}; {args.seconds:g}s per row")
            print(f"{'workload':<38}{'ops/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
            rows = [
                (protocol, read, concurrency)
                for read in (False, True)
                for concurrency in args.concurrency
                for protocol in args.protocol
            ]
            for protocol, read, concurrency in rows:
                rate, latencies = asyncio.run(run(urls[protocol], concurrency, args.seconds, read))
                kind = "linearizable reads" if read else "writes"
                name = f"{protocol} {kind}, {concurrency} clients"
                print(
                    f"{name:<38}{rate:>10.0f}{_percentile(latencies, 0.5):>10.2f}"
                    f"{_percentile(latencies, 0.99):>10.2f}"
                )
        finally:
            cluster.stop()


if __name__ == "__main__":
    main()
