"""The fault schedule ("nemesis"): kills, pauses, partitions and slow links, drawn
from the run's seed and logged with their times.

Each enabled fault family runs its own loop, so families combine (a node can be
killed while the network is partitioned). A loop waits a random gap, injects one
fault, holds it for a random duration, heals it, and repeats until the run stops;
on the way out (also when cancelled) it heals what it broke. The random choices
come from one `random.Random` per family seeded from the run's seed; what the
cluster does in between (who is leader) is real, so a seed fixes the schedule's
shape, not the whole run.

Families:
- kill: kill -9 one random node, the leader, a majority or every node; restart
  them after a short downtime (a kill of every node tests durability: acknowledged
  writes must survive on disk). Variants not drawn by default: `followers` kills a
  majority of followers while the leader lives on; `stranded-leader` stops the
  leader (SIGSTOP), kills a majority of followers, restarts them and lets them elect
  one of their own before the leader resumes — so whatever the leader alone still
  holds is overwritten, and an acknowledgement a follower gave for a write it had
  not yet made durable shows as a lost write.
- pause: SIGSTOP the leader or a random node for longer than the election timeout,
  then SIGCONT (a stopped leader that wakes up must not act on stale authority).
- partition: majority/minority halves, the leader isolated, a bridge (two sides
  that each see one node in the middle), or one-way (one node's outbound traffic
  lost, so others hear nothing from it while it hears them).
- latency: every link delayed by tens to hundreds of milliseconds, with jitter and
  some loss (through the proxy a lost chunk cuts its connection; with the netns
  network a lost packet is retransmitted by TCP).

Network faults go through the run's `network.Network`, whichever backend it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import aiohttp

from accord.chaos.cluster import ELECTION_TIMEOUT_S, ProcessCluster

log = logging.getLogger("accord.chaos")

FAMILIES = ("kill", "pause", "partition", "latency")
VARIANTS = {
    "kill": ("random", "leader", "majority", "all", "followers", "stranded-leader"),
    "pause": ("leader", "random"),
    "partition": ("halves", "isolate-leader", "bridge", "one-way"),
}
"""Every variant of each family (`--variant FAMILY=V,...` picks among them)."""
STRANDED_ELECTION_WAIT_S = 10.0
"""`stranded-leader`: how long the stopped leader waits for the others to elect."""


@dataclass(frozen=True, slots=True)
class Pace:
    """How often and how long faults happen (seconds)."""

    gap_s: tuple[float, float] = (1.0, 4.0)
    hold_s: tuple[float, float] = (1.5, 5.0)


NORMAL = Pace()
AGGRESSIVE = Pace(gap_s=(0.3, 1.2), hold_s=(2.0, 4.0))


@dataclass(slots=True)
class FaultRecord:
    family: str
    description: str
    start_s: float
    end_s: float | None = None
    nodes: list[int] = field(default_factory=list)


@dataclass(slots=True)
class FaultLog:
    clock: Callable[[], float]
    records: list[FaultRecord] = field(default_factory=list)

    def begin(self, family: str, description: str, nodes: list[int]) -> FaultRecord:
        record = FaultRecord(family, description, self.clock(), None, sorted(nodes))
        self.records.append(record)
        log.info("%7.2fs fault: %s", record.start_s, description)
        return record

    def end(self, record: FaultRecord) -> None:
        if record.end_s is None:
            record.end_s = self.clock()
            log.info("%7.2fs healed: %s", record.end_s, record.description)

    def write_jsonl(self, path: Path) -> None:
        with path.open("w") as f:
            for record in self.records:
                f.write(json.dumps(asdict(record)) + "\n")

    def counts(self) -> dict[str, int]:
        result: dict[str, int] = {}
        for record in self.records:
            result[record.family] = result.get(record.family, 0) + 1
        return result


class Nemesis:
    def __init__(
        self,
        cluster: ProcessCluster,
        families: list[str],
        seed: int,
        log: FaultLog,
        pace: Pace = NORMAL,
        variants: dict[str, list[str]] | None = None,
    ) -> None:
        unknown = set(families) - set(FAMILIES)
        if unknown:
            raise ValueError(f"unknown faults: {', '.join(sorted(unknown))}")
        self.cluster = cluster
        self.families = families
        self.seed = seed
        self.log = log
        self.pace = pace
        self.variants = variants or {}
        self._session: aiohttp.ClientSession | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Inject faults until `stop` is set; everything is healed when this returns."""
        async with aiohttp.ClientSession() as session:
            self._session = session
            loops = [
                self._loop(family, random.Random(f"{self.seed}/{family}"), stop)
                for family in self.families
            ]
            await asyncio.gather(*loops)

    async def _loop(self, family: str, rng: random.Random, stop: asyncio.Event) -> None:
        inject: dict[str, Callable[[random.Random, asyncio.Event], Awaitable[None]]] = {
            "kill": self._kill,
            "pause": self._pause,
            "partition": self._partition,
            "latency": self._latency,
        }
        while not stop.is_set():
            if await _wait(stop, rng.uniform(*self.pace.gap_s)):
                return
            await inject[family](rng, stop)

    def _variant(self, family: str, rng: random.Random, default: list[str]) -> str:
        return rng.choice(self.variants.get(family, default))

    async def _leader_or_random(self, rng: random.Random) -> tuple[int, str]:
        """The leader, or a random node when none is known right now (e.g. during an
        election); the second item says which, for the fault log."""
        assert self._session is not None
        leader = await self.cluster.leader(self._session)
        if leader is None:
            return rng.choice(self.cluster.ids), "no leader known: random node"
        return leader, "leader"

    def _majority(self, rng: random.Random, including: int) -> list[int]:
        others = [n for n in self.cluster.ids if n != including]
        size = len(self.cluster.ids) // 2 + 1
        return [including, *rng.sample(others, size - 1)]

    def _majority_of_followers(self, rng: random.Random, leader: int) -> list[int]:
        """A majority of the cluster, the leader not among them: it survives, holding
        entries the restarted majority may never have written."""
        others = [n for n in self.cluster.ids if n != leader]
        return sorted(rng.sample(others, len(self.cluster.ids) // 2 + 1))

    # --- families --------------------------------------------------------------------
    async def _kill(self, rng: random.Random, stop: asyncio.Event) -> None:
        variant = self._variant("kill", rng, ["random", "leader", "majority", "all"])
        leader, who = await self._leader_or_random(rng)
        if variant == "stranded-leader":
            await self._strand_leader(rng, stop, leader)
            return
        targets = {
            "random": [rng.choice(self.cluster.ids)],
            "leader": [leader],
            "majority": self._majority(rng, leader),
            "followers": self._majority_of_followers(rng, leader),
            "all": list(self.cluster.ids),
        }[variant]
        label = who if variant == "leader" else variant
        record = self.log.begin("kill", f"kill -9 {label} {_nodes(targets)}", targets)
        try:
            for node in targets:
                self.cluster.kill(node)
            await _wait(stop, rng.uniform(0.3, 2.5))
        finally:
            for node in targets:
                if not self.cluster.nodes[node].alive:
                    self.cluster.spawn(node)
            self.cluster.write_manifest()
            self.log.end(record)

    async def _strand_leader(self, rng: random.Random, stop: asyncio.Event, leader: int) -> None:
        targets = self._majority_of_followers(rng, leader)
        text = f"SIGSTOP leader {_nodes([leader])}, kill -9 followers {_nodes(targets)}"
        record = self.log.begin("kill", text, [leader, *targets])
        try:
            self.cluster.pause(leader)
            for node in targets:
                self.cluster.kill(node)
            await _wait(stop, rng.uniform(0.1, 1.0))
            for node in targets:
                self.cluster.spawn(node)
            self.cluster.write_manifest()
            # The leader stays stopped until the restarted followers elect one of their
            # own (or a bounded wait passes): its entries no majority kept are then
            # overwritten when it returns.
            assert self._session is not None
            deadline = asyncio.get_running_loop().time() + STRANDED_ELECTION_WAIT_S
            while asyncio.get_running_loop().time() < deadline and not stop.is_set():
                if await self.cluster.leader(self._session) in targets:
                    break
                await asyncio.sleep(0.1)
        finally:
            for node in targets:
                if not self.cluster.nodes[node].alive:
                    self.cluster.spawn(node)
            self.cluster.resume(leader)
            self.cluster.write_manifest()
            self.log.end(record)

    async def _pause(self, rng: random.Random, stop: asyncio.Event) -> None:
        variant = self._variant("pause", rng, ["leader", "random"])
        if variant == "leader":
            target, variant = await self._leader_or_random(rng)
        else:
            target = rng.choice(self.cluster.ids)
        # Longer than the longest randomised election timeout, so the others elect.
        hold = max(rng.uniform(*self.pace.hold_s), 2.5 * ELECTION_TIMEOUT_S)
        record = self.log.begin("pause", f"SIGSTOP {variant} {_nodes([target])}", [target])
        try:
            self.cluster.pause(target)
            await _wait(stop, hold)
        finally:
            self.cluster.resume(target)
            self.log.end(record)

    async def _partition(self, rng: random.Random, stop: asyncio.Event) -> None:
        variant = self._variant("partition", rng, ["halves", "isolate-leader", "bridge", "one-way"])
        ids = list(self.cluster.ids)
        leader, who = await self._leader_or_random(rng)
        cut: list[tuple[int, int]]
        if variant == "halves":
            minority = rng.sample(ids, (len(ids) - 1) // 2)
            cut = _between(minority, [n for n in ids if n not in minority])
            text, nodes = f"halves: minority {_nodes(minority)}", minority
        elif variant == "isolate-leader":
            cut = _between([leader], [n for n in ids if n != leader])
            text, nodes = f"isolate {who} {_nodes([leader])}", [leader]
        elif variant == "bridge":
            shuffled = rng.sample(ids, len(ids))
            bridge, rest = shuffled[0], shuffled[1:]
            left, right = rest[: len(rest) // 2], rest[len(rest) // 2 :]
            cut = _between(left, right)
            text, nodes = (
                f"bridge {_nodes([bridge])} between {_nodes(left)} | {_nodes(right)}",
                [bridge],
            )
        else:
            source = leader if rng.random() < 0.5 else rng.choice(ids)
            cut = [(source, n) for n in ids if n != source]
            text, nodes = f"one-way: nothing from {_nodes([source])} arrives", [source]
        record = self.log.begin("partition", text, nodes)
        try:
            for src, dst in cut:
                self.cluster.network.block(src, dst)
            await _wait(stop, rng.uniform(*self.pace.hold_s))
        finally:
            for src, dst in cut:
                self.cluster.network.unblock(src, dst)
            self.log.end(record)

    async def _latency(self, rng: random.Random, stop: asyncio.Event) -> None:
        delay = rng.uniform(0.01, 0.15)  # below the election timeout
        jitter = rng.uniform(0.0, delay)
        loss = rng.choice([0.0, 0.01, 0.05])
        text = f"latency {delay * 1000:.0f}ms +{jitter * 1000:.0f}ms jitter, loss {loss:.0%}"
        record = self.log.begin("latency", text, list(self.cluster.ids))
        links = list(self.cluster.network.links)
        try:
            for src, dst in links:
                self.cluster.network.slow(src, dst, delay, jitter, loss)
            await _wait(stop, rng.uniform(*self.pace.hold_s))
        finally:
            for src, dst in links:
                self.cluster.network.slow(src, dst, 0.0, 0.0, 0.0)
            self.log.end(record)


def _between(a: list[int], b: list[int]) -> list[tuple[int, int]]:
    """Both directions of every link between groups `a` and `b`."""
    return [(x, y) for x in a for y in b] + [(y, x) for x in a for y in b]


def _nodes(nodes: list[int]) -> str:
    return "{" + ",".join(f"n{n}" for n in sorted(nodes)) + "}"


async def _wait(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep `seconds` or until `stop`; True if stopped."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()
