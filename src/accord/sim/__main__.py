"""`python -m accord.sim --seeds N [--start S] [--nodes 3|5] [--groups K] [--steps K]`

Runs seeds S..S+N-1 (in parallel with --jobs), every node hosting K Raft groups on one
shared executor, exits 0 when every seed passes and 1 at the first violation, printing
the seed, the violated property, the trace tail and the command that replays exactly
that seed. A random share of the seeds (about one in 50, chosen afresh by each
invocation, or by --determinism-salt) is run twice and must replay exactly.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import zlib
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from accord.raft import DebugFlags
from accord.sim.runner import GROUPS_MAX, SimResult, run_seed

BUGS = {
    "commit-previous-term": DebugFlags(commit_previous_term=True),
    "forget-vote": DebugFlags(forget_vote_on_restart=True),
    "ack-before-persist": DebugFlags(ack_before_persist=True),
    "send-before-persist": DebugFlags(send_before_persist=True),
}
DETERMINISM_SHARE = 50
"""About one seed in this many is run twice and must produce the same fingerprint."""


@dataclass(frozen=True, slots=True)
class Job:
    seed: int
    nodes: int | None
    steps: int
    bug: str | None
    groups: int = 1
    check_determinism: bool = False


def chosen_for_determinism(seed: int, salt: int) -> bool:
    """A share of the seeds that changes with `salt`, so over many invocations the
    determinism check covers every regime, not the same seeds again and again."""
    return zlib.crc32(f"{salt}:{seed}".encode()) % DETERMINISM_SHARE == 0


def _run(job: Job) -> tuple[SimResult, bool]:
    debug = BUGS[job.bug] if job.bug else None
    result = run_seed(job.seed, job.nodes, job.steps, debug, job.groups)
    deterministic = True
    if job.check_determinism:
        again = run_seed(job.seed, job.nodes, job.steps, debug, job.groups)
        deterministic = (again.fingerprint, again.ok, again.trace) == (
            result.fingerprint,
            result.ok,
            result.trace,
        )
    return result, deterministic


def replay_command(
    seed: int, nodes: int | None, steps: int, bug: str | None, groups: int = 1
) -> str:
    parts = ["python -m accord.sim", "--seeds 1", f"--start {seed}", f"--steps {steps}"]
    if nodes:
        parts.append(f"--nodes {nodes}")
    if groups != 1:
        parts.append(f"--groups {groups}")
    if bug:
        parts.append(f"--bug {bug}")
    return " ".join(parts)


def format_failure(
    result: SimResult, nodes: int | None, steps: int, bug: str | None, groups: int = 1
) -> str:
    lines = [
        f"seed {result.seed}: VIOLATION of {result.prop}",
        f"  {result.detail}",
        f"  parameters: {result.params}",
        "  trace (most recent last):",
    ]
    lines += [f"    {line}" for line in result.trace]
    lines.append(f"replay: {replay_command(result.seed, nodes, steps, bug, groups)}")
    return "\n".join(lines)


def run_seeds(
    start: int,
    count: int,
    nodes: int | None,
    steps: int,
    bug: str | None,
    jobs: int,
    groups: int = 1,
    salt: int = 0,
) -> Iterator[tuple[SimResult, bool]]:
    work = [
        Job(seed, nodes, steps, bug, groups, chosen_for_determinism(seed, salt))
        for seed in range(start, start + count)
    ]
    if jobs <= 1:
        yield from map(_run, work)
        return
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        yield from pool.map(_run, work, chunksize=4)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m accord.sim", description=__doc__)
    parser.add_argument("--seeds", type=int, default=100, help="how many seeds to run")
    parser.add_argument("--start", type=int, default=1, help="first seed")
    parser.add_argument(
        "--nodes", type=int, choices=[3, 5], help="cluster size (default: per seed)"
    )
    parser.add_argument(
        "--groups", type=int, default=1, help="Raft groups per node (default: %(default)s)"
    )
    parser.add_argument("--steps", type=int, default=3000, help="events in the fault phase")
    parser.add_argument(
        "--determinism-salt",
        type=int,
        help="choose the seeds run twice (default: a fresh random choice, printed)",
    )
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    parser.add_argument("--bug", choices=sorted(BUGS), help="inject a deliberate protocol bug")
    args = parser.parse_args(argv)
    if not 1 <= args.groups <= GROUPS_MAX:
        parser.error(f"--groups must be between 1 and {GROUPS_MAX}")
    salt = args.determinism_salt
    if salt is None:
        salt = random.SystemRandom().getrandbits(32)
    began = time.monotonic()
    passed = ops = unknown = faults = events = moves = 0
    for result, deterministic in run_seeds(
        args.start, args.seeds, args.nodes, args.steps, args.bug, args.jobs, args.groups, salt
    ):
        replay = replay_command(result.seed, args.nodes, args.steps, args.bug, args.groups)
        if not deterministic:
            print(f"seed {result.seed}: NOT DETERMINISTIC (two runs differ)")
            print(f"replay: {replay}")
            return 1
        if not result.ok:
            print(format_failure(result, args.nodes, args.steps, args.bug, args.groups))
            return 1
        passed += 1
        ops += result.ops_completed
        unknown += result.ops_unknown
        faults += result.faults
        events += result.events
        moves += result.moves_done
    elapsed = time.monotonic() - began
    print(
        f"{passed} seeds passed ({args.start}..{args.start + args.seeds - 1}) in {elapsed:.1f}s "
        f"({passed / max(elapsed, 1e-9):.1f} seeds/s): {events} events, {ops} operations "
        f"completed, {unknown} with unknown outcome, {faults} faults injected, "
        f"{moves} replica moves done, "
        f"histories linearizable (determinism salt {salt})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
