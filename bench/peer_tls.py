"""What mutual TLS on the peer links costs: a default 3-node `accord up` cluster (peer
mTLS) against the same cluster run with `ACCORD_INSECURE_PEERS=1` (plaintext peers),
alternately in one run (A/B/A/B...), each round on a fresh cluster, driven by

    accord bench --workload write --concurrency 64 --seconds 10 --json

against the native endpoints. Prints one line per round and the mean per mode.

    python bench/peer_tls.py --rounds 2 --seconds 10 --concurrency 64
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from accord.testing.cluster import DEADLINE_S, free_port_base, http, wait_for

MODES = {"mtls": {}, "plaintext": {"ACCORD_INSECURE_PEERS": "1"}}


def _start(directory: Path, extra_env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    base = free_port_base()
    up = subprocess.Popen(
        [sys.executable, "-m", "accord.cli.main", "up", "--nodes", "3",
         "--dir", str(directory), "--port-base", str(base)],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env={**os.environ, **extra_env},
    )  # fmt: skip
    wait_for((directory / "cluster.json").exists, "accord up")

    def leader() -> bool:
        code, body, _ = http("GET", f"http://127.0.0.1:{base + 1}/v1/cluster/status", timeout=1)
        return code == 200 and bool(json.loads(body)["leader"])

    wait_for(leader, "a leader")
    return up, base


def _bench(base: int, seconds: float, concurrency: int) -> dict[str, Any]:
    endpoints = ",".join(f"accord://127.0.0.1:{base + 200 + i}" for i in (1, 2, 3))
    out = subprocess.run(
        [sys.executable, "-m", "accord.cli.main", "bench", "--endpoints", endpoints,
         "--workload", "write", "--concurrency", str(concurrency),
         "--seconds", f"{seconds:g}", "--json"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    [summary] = json.loads(out)
    result: dict[str, Any] = summary
    return result


def _round(mode: str, root: Path, number: int, seconds: float, concurrency: int) -> float:
    directory = root / f"{number:02d}-{mode}"
    up, base = _start(directory, MODES[mode])
    try:
        summary = _bench(base, seconds, concurrency)
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(timeout=DEADLINE_S)
    latency = summary["latency_ms"]
    rate = float(summary["ops_per_s"])
    print(
        f"round {number}  {mode:<9}  {rate:8.0f} writes/s  "
        f"p50 {latency['p50']:.1f} ms  p99 {latency['p99']:.1f} ms",
        flush=True,
    )
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="A/B pairs")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    rates: dict[str, list[float]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory(prefix="accord-peer-tls-") as tmp:
        for pair in range(args.rounds):
            for offset, mode in enumerate(MODES):
                number = 2 * pair + offset + 1
                rates[mode].append(_round(mode, Path(tmp), number, args.seconds, args.concurrency))
    for mode, values in rates.items():
        print(f"{mode:<9}  mean {statistics.mean(values):8.0f} writes/s  rounds {values}")


if __name__ == "__main__":
    main()
