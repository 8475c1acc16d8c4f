"""Profile the Accord leader under a wrk load, the way docs/benchmarks.md does.

Starts a 3-node Accord on loopback (fsync on, fresh directories), writes the keys
the reads need, then runs wrk with the comparison's Lua script (`put`, `get` or
`get-serializable`) against the leader while py-spy samples the leader process.
Prints wrk's figures, the leader's CPU share, and the top functions by own samples
and by cumulative samples; the raw folded stacks are kept in `--out`.

    python bench/profile_leader.py --op put --connections 64 --seconds 8 --out /tmp/prof

Needs wrk (Debian) and py-spy (dev extra), and ptrace rights (root).
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compare_etcd import (
    KEYS,
    READ_KEYS,
    Started,
    cpu_seconds,
    lua_script,
    prefill,
    run_wrk,
    start_accord,
)


def summarize(folded: Path, top: int) -> str:
    """Own and cumulative shares per function from py-spy's raw (folded) output."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in folded.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        frames = [f.split(" (")[0] for f in stack.split(";")]
        samples += count
        own[frames[-1]] += count
        for name in set(frames):
            total[name] += count
    lines = [f"{samples} samples", "own:"]
    lines += [f"  {100 * n / samples:5.1f}% {name}" for name, n in own.most_common(top)]
    lines.append("cumulative:")
    lines += [f"  {100 * n / samples:5.1f}% {name}" for name, n in total.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--op", choices=["put", "get", "get-serializable"], default="put")
    parser.add_argument("--connections", type=int, nargs="+", default=[64])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument(
        "--rate", type=int, default=250, help="py-spy samples per second (0: no profile)"
    )
    parser.add_argument(
        "--gil", action="store_true", help="sample only while the GIL is held (CPU in Python)"
    )
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path("profile-out"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="accord-profile-", dir=args.out.resolve()))
    started = Started()
    try:
        accord = start_accord(started, root, 25000)
        if args.op != "put":
            prefill(accord)
        script = root / f"{args.op}.lua"
        script.write_text(lua_script("accord", args.op, KEYS if args.op == "put" else READ_KEYS))
        for connections in args.connections:
            folded = args.out / f"{args.op}-{connections}.folded"
            spy = _start_profile(accord.leader_pid, folded, args) if args.rate else None
            cpu_before, began = cpu_seconds(accord.leader_pid), time.monotonic()
            figures = run_wrk(accord.leader_url, script, connections, args.seconds)
            cpu = (cpu_seconds(accord.leader_pid) - cpu_before) / (time.monotonic() - began)
            print(
                f"{args.op} x{connections}: {figures['ops_per_s']:,.0f}/s "
                f"p50 {figures['p50']:.2f} ms p99 {figures['p99']:.2f} ms "
                f"errors {figures['errors']}; leader CPU {100 * cpu:.0f}%",
                flush=True,
            )
            if spy is not None:
                spy.wait(timeout=args.seconds + 30)
                print(summarize(folded, args.top), flush=True)
    finally:
        started.stop()
    shutil.rmtree(root, ignore_errors=True)


def _start_profile(pid: int, folded: Path, args: argparse.Namespace) -> subprocess.Popen[bytes]:
    py_spy = Path(sys.executable).with_name("py-spy")
    return subprocess.Popen(
        [str(py_spy), "record", "-p", str(pid), "-d", f"{args.seconds:g}",
         "-r", str(args.rate), "-f", "raw", "-o", str(folded),
         *(["--gil"] if args.gil else [])],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


if __name__ == "__main__":
    main()
