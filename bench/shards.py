"""Writes on 3 nodes with S shards against the same 3 nodes with one group.

Each round starts a fresh `accord up --nodes 3 [--shards S]` cluster per shape
(`accord.chaos.localup.UpCluster`, its own directory under /tmp and free ports on
loopback), waits until every shard has a leader (the leaders spread by the map's
preferred voters), runs `accord bench --workload write --concurrency C` against
the native ports for `--seconds`, and measures the node processes' CPU (utime +
stime from /proc/PID/stat) over the run. The shapes alternate which goes first from
round to round (A/B, B/A), so a drift of the shared machine falls on both.

    python bench/shards.py --shards 3 --rounds 4 --seconds 10 --concurrency 64

Reported per shape: writes/s, p50/p99 latency, CPU per write (µs, the three nodes
together) and the nodes' CPU in % of one core; then S shards against one group. Every
cluster is stopped by PID at the end of its run, also on an error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from accord.chaos.localup import UpCluster

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def run_shape(shards: int, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    directory = Path(tempfile.mkdtemp(prefix=f"s{shards}-", dir=root))
    with UpCluster(directory, shards=shards) as cluster:
        endpoints = ",".join(node.native_url for node in cluster.nodes)
        before = {node.pid: cpu_seconds(node.pid) for node in cluster.nodes}
        started = time.monotonic()
        command = [
            sys.executable, "-m", "accord.cli.main", "bench", "--workload", "write",
            "--concurrency", str(args.concurrency), "--seconds", str(args.seconds),
            "--processes", str(args.processes), "--endpoints", endpoints, "--json",
        ]  # fmt: skip
        out = subprocess.run(command, capture_output=True, check=True, timeout=args.seconds * 6)
        window_s = time.monotonic() - started
        cpu = sum(cpu_seconds(pid) - seconds for pid, seconds in before.items())
    result = json.loads(out.stdout)[0]
    operations = result["operations"]
    return {
        "shards": shards,
        "writes_per_s": result["ops_per_s"],
        "p50_ms": result["latency_ms"]["p50"],
        "p99_ms": result["latency_ms"]["p99"],
        "errors": result["errors"],
        "cpu_us_per_write": cpu / max(operations, 1) * 1e6,
        "nodes_cpu_percent": cpu / window_s * 100,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shards", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--processes", type=int, default=2, help="load-generating processes")
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="accord-shards-bench-") as tmp:
        for round_no in range(args.rounds):
            order = (1, args.shards) if round_no % 2 == 0 else (args.shards, 1)
            for shards in order:
                row = run_shape(shards, args, Path(tmp))
                row["round"] = round_no + 1
                rows.append(row)
                print(json.dumps(row), file=sys.stderr)
    report(rows, args.shards)


def report(rows: list[dict[str, Any]], shards: int) -> None:
    def mean(shape: int, field: str) -> float:
        return statistics.fmean(r[field] for r in rows if r["shards"] == shape)

    print("| shape | writes/s | p50 ms | p99 ms | CPU µs/write | nodes' CPU % |")
    print("| --- | --- | --- | --- | --- | --- |")
    for shape in (1, shards):
        print(
            f"| {shape} shard(s) | {mean(shape, 'writes_per_s'):,.0f} "
            f"| {mean(shape, 'p50_ms'):.1f} | {mean(shape, 'p99_ms'):.1f} "
            f"| {mean(shape, 'cpu_us_per_write'):,.0f} | {mean(shape, 'nodes_cpu_percent'):.0f} |"
        )
    per_round = [
        next(r for r in rows if r["round"] == n and r["shards"] == shards)["writes_per_s"]
        / next(r for r in rows if r["round"] == n and r["shards"] == 1)["writes_per_s"]
        for n in sorted({r["round"] for r in rows})
    ]
    ratio = mean(shards, "writes_per_s") / mean(1, "writes_per_s")
    cpu_ratio = mean(shards, "cpu_us_per_write") / mean(1, "cpu_us_per_write")
    print(
        f"\n{shards} shards / 1 group: writes/s x{ratio:.2f} (per round "
        f"{', '.join(f'{r:.2f}' for r in per_round)}), CPU per write x{cpu_ratio:.2f}"
    )


if __name__ == "__main__":
    main()
