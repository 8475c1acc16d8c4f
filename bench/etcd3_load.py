"""Load etcd with its own Python client (the `etcd3` package), for bench/compare_etcd.py.

Runs in a virtual environment of its own (etcd3 needs an old protobuf that does not
mix with the project's dependencies). `--processes` processes each run
`--concurrency / processes` threads (etcd3 is a blocking gRPC client), each putting
or getting 100-byte values over `--keys` keys for `--seconds`; prints one JSON line:
operations, seconds, latency percentiles in ms, errors.

    python bench/etcd3_load.py --endpoint 127.0.0.1:23791 --op put --concurrency 16
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import threading
import time


def _process(args: argparse.Namespace, threads: int, out: multiprocessing.Queue) -> None:
    import etcd3  # imported here: only this environment has it

    host, port = args.endpoint.rsplit(":", 1)
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    end = time.monotonic() + args.seconds
    value = b"x" * 100

    def work(seed: int) -> None:
        nonlocal errors
        client = etcd3.client(host=host, port=int(port), timeout=10)
        rng = random.Random(seed)
        mine: list[float] = []
        failed = 0
        while time.monotonic() < end:
            key = f"bench/{rng.randrange(args.keys):08d}"
            began = time.monotonic()
            try:
                if args.op == "put":
                    client.put(key, value)
                else:
                    client.get(key, serializable=args.op == "get-serializable")
            except Exception:
                failed += 1
                continue
            mine.append(time.monotonic() - began)
        with lock:
            latencies.extend(mine)
            errors += failed

    pool = [threading.Thread(target=work, args=(random.random(),)) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    out.put((latencies, errors))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--op", choices=["put", "get", "get-serializable"], default="put")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--keys", type=int, default=100_000)
    args = parser.parse_args()
    processes = max(1, min(args.processes, args.concurrency))
    out: multiprocessing.Queue = multiprocessing.Queue()
    base, extra = divmod(args.concurrency, processes)
    shares = [base + (i < extra) for i in range(processes)]
    procs = [multiprocessing.Process(target=_process, args=(args, n, out)) for n in shares]
    began = time.monotonic()
    for p in procs:
        p.start()
    latencies: list[float] = []
    errors = 0
    for _ in procs:
        part, failed = out.get(timeout=args.seconds + 120)
        latencies.extend(part)
        errors += failed
    for p in procs:
        p.join()
    elapsed = time.monotonic() - began
    latencies.sort()

    def pct(p: float) -> float:
        if not latencies:
            return 0.0
        return latencies[min(len(latencies) - 1, int(len(latencies) * p))] * 1000

    print(
        json.dumps(
            {
                "operations": len(latencies),
                "seconds": elapsed,
                "ops_per_s": len(latencies) / args.seconds,
                "p50": pct(0.5),
                "p99": pct(0.99),
                "errors": errors,
            }
        )
    )


if __name__ == "__main__":
    main()
