"""Messages of many groups sharing frames, against one message per frame, over a real
loopback connection between two `PeerTransport`s in one process.

Each trial starts a fresh pair of transports (node 1 sends, node 2 receives) in one
of two modes, alternately in one run (A/B/A/B...), so a change in the machine's load
affects both alike:

- batched: the default, as many messages per frame as `FRAME_MESSAGES_MAX` and the
  frame's byte bound allow;
- single: `frame_messages_max=1`, one message per frame (what version 1 sent).

The load is what a node hosting GROUPS groups sends one peer on every heartbeat
tick: one small HEARTBEAT per group, all sent in one event-loop turn. A trial has two
phases:

- throughput: rounds sent back to back for SECONDS, at most WINDOW rounds not yet
  delivered (below the peer queue's 4,096 messages, so nothing is dropped);
- round latency: ROUNDS-LATENCY single rounds on an idle link, each timed from the
  first send to the last delivery.

It prints per trial messages/s, CPU microseconds per message (both ends: they share
the process), messages per frame and the round latency, then the median per mode and
the ratios batched/single. Sender and receiver share one event loop, so the CPU time
per message is the steadier figure on a shared machine: messages/s also moves with
whatever else runs (the `cpu` column is the share of a core the run got). Not a test:
run it by hand.

    python bench/transport_frames.py [--groups 1000] [--trials 3] [--seconds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from accord.raft.types import Message, MessageType
from accord.transport import PeerTransport

CLUSTER = "bench-frames"
HOST = "127.0.0.1"
DEADLINE_S = 30.0
"""Longest wait for deliveries before the run is declared broken."""
MODES: dict[str, dict[str, int]] = {"batched": {}, "single": {"frame_messages_max": 1}}


@dataclass(frozen=True)
class Trial:
    mode: str
    messages_per_s: float
    cpu_share: float
    """Process CPU time over wall time in the throughput phase (1.0: one core busy)."""
    cpu_us_per_message: float
    messages_per_frame: float
    round_ms_p50: float
    round_ms_max: float


class Sink:
    """Counts deliveries; `wait_for(n)` returns once `n` messages have arrived."""

    def __init__(self) -> None:
        self.received = 0
        self._target = 0
        self._reached = asyncio.Event()

    def on_message(self, message: Message) -> None:
        self.received += 1
        if self.received >= self._target:
            self._reached.set()

    async def wait_for(self, count: int) -> None:
        if self.received >= count:
            return
        self._target = count
        self._reached.clear()
        async with asyncio.timeout(DEADLINE_S):
            await self._reached.wait()


def heartbeats(groups: int, commit: int) -> list[Message]:
    """One heartbeat per group from node 1 to node 2, as a leader of them all sends."""
    return [
        Message(MessageType.HEARTBEAT, group, 1, 2, term=7, commit=commit + group)
        for group in range(groups)
    ]


async def run_trial(mode: str, groups: int, seconds: float, window: int, rounds: int) -> Trial:
    sink = Sink()
    receiver = PeerTransport(2, CLUSTER, (HOST, 0), {}, sink.on_message, **MODES[mode])
    await receiver.start()
    sender = PeerTransport(
        1, CLUSTER, (HOST, 0), {2: receiver.listen_address}, lambda m: None, **MODES[mode]
    )
    await sender.start()
    try:
        send: Callable[[Message], bool] = sender.send
        batch = heartbeats(groups, 1000)
        for message in batch:  # connect first: dialling is not what is measured
            send(message)
        await sink.wait_for(groups)
        stats_before = sender.stats().peers[2]
        sent = 0
        started_cpu, started = time.process_time(), time.perf_counter()
        stop = started + seconds
        while time.perf_counter() < stop:
            await sink.wait_for(groups + sent - (window - 1) * groups)
            for message in batch:
                if not send(message):
                    raise RuntimeError("a message was dropped; lower --window")
            sent += groups
            await asyncio.sleep(0)
        await sink.wait_for(groups + sent)
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - started_cpu
        peer = sender.stats().peers[2]
        frames = peer.frames_sent - stats_before.frames_sent
        latencies_ms = []
        for _ in range(rounds):
            target = sink.received + groups
            begin = time.perf_counter()
            for message in batch:
                send(message)
            await sink.wait_for(target)
            latencies_ms.append((time.perf_counter() - begin) * 1000)
        assert sender.stats().peers[2].dropped == 0
        return Trial(
            mode,
            sent / elapsed,
            cpu / elapsed,
            cpu / sent * 1e6,
            sent / frames,
            statistics.median(latencies_ms),
            max(latencies_ms),
        )
    finally:
        await sender.stop()
        await receiver.stop()


def print_trial(number: int, trial: Trial) -> None:
    print(
        f"{number:>5}  {trial.mode:<8} {trial.messages_per_s:>12,.0f} "
        f"{trial.cpu_share:>6.0%} {trial.cpu_us_per_message:>10.2f} "
        f"{trial.messages_per_frame:>10.1f} {trial.round_ms_p50:>10.2f} {trial.round_ms_max:>10.2f}"
    )


async def main_async(args: argparse.Namespace) -> None:
    print(
        f"{args.groups} groups, one heartbeat each per round; {args.trials} trials per mode of "
        f"{args.seconds:g} s, window {args.window} rounds, {args.latency_rounds} timed rounds"
    )
    print(
        f"{'trial':>5}  {'mode':<8} {'messages/s':>12} {'cpu':>6} {'cpu us/msg':>10} "
        f"{'msgs/frame':>10} {'round p50':>10} {'round max':>10}   (ms)"
    )
    trials: list[Trial] = []
    for number in range(args.trials):
        for mode in MODES:
            trial = await run_trial(
                mode, args.groups, args.seconds, args.window, args.latency_rounds
            )
            trials.append(trial)
            print_trial(number + 1, trial)
    medians = {
        mode: Trial(
            mode,
            *(
                statistics.median(getattr(t, field) for t in trials if t.mode == mode)
                for field in (
                    "messages_per_s",
                    "cpu_share",
                    "cpu_us_per_message",
                    "messages_per_frame",
                    "round_ms_p50",
                    "round_ms_max",
                )
            ),
        )
        for mode in MODES
    }
    print("median")
    for trial in medians.values():
        print_trial(0, trial)
    batched, single = medians["batched"], medians["single"]
    print(
        f"batched/single: messages/s x{batched.messages_per_s / single.messages_per_s:.2f}, "
        f"CPU per message x{batched.cpu_us_per_message / single.cpu_us_per_message:.2f}, "
        f"round latency p50 x{batched.round_ms_p50 / single.round_ms_p50:.2f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--groups", type=int, default=1000, help="heartbeats per round")
    parser.add_argument("--trials", type=int, default=3, help="trials per mode")
    parser.add_argument("--seconds", type=float, default=2.0, help="throughput phase")
    parser.add_argument("--window", type=int, default=3, help="rounds in flight at most")
    parser.add_argument("--latency-rounds", type=int, default=30, help="timed idle rounds")
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    args = parser.parse_args()
    if not (args.groups > 0 and args.window > 0 and args.window * args.groups <= 4096):
        parser.error("need 0 < groups, 0 < window, window * groups <= 4096 (the peer queue)")
    if not (0 < args.seconds <= 60 and 0 < args.trials <= 20 and 0 < args.latency_rounds <= 1000):
        parser.error("need 0 < seconds <= 60, 0 < trials <= 20, 0 < latency-rounds <= 1000")
    if args.loop == "uvloop":
        import uvloop

        uvloop.run(main_async(args))
    else:
        asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
