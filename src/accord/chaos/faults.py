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
- move (a sharded cluster with a node free of each shard): one replica of a random
  shard moved from one of its nodes to one without it, asked of a random live node
  as an operator would (`POST /v1/cluster/shards/{id}/move`), while the other
  families go on hurting the nodes the move needs. Nothing to heal: the fault lasts
  until the move is seen done or given up (at most `MOVE_WATCH_S`), and the
  placement driver balances the replicas again afterwards, moving them itself. A
  refusal (a move of that shard under way, the driver's or a previous one) or no
  answer is logged as the move's outcome, never an error of the run.

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
from typing import Any

import aiohttp

from accord.chaos.cluster import ELECTION_TIMEOUT_S, ProcessCluster

log = logging.getLogger("accord.chaos")

FAMILIES = ("kill", "pause", "partition", "latency", "move")
VARIANTS = {
    "kill": ("random", "leader", "majority", "all", "followers", "stranded-leader"),
    "pause": ("leader", "random"),
    "partition": ("halves", "isolate-leader", "bridge", "one-way"),
}
"""Every variant of each family (`--variant FAMILY=V,...` picks among them)."""
STRANDED_ELECTION_WAIT_S = 10.0
"""`stranded-leader`: how long the stopped leader waits for the others to elect."""
MOVE_WATCH_S = 20.0
"""How long an accepted move is watched for its end. A learner that cannot catch up
is given up by the shard's leader after 30 s; under a run's faults most moves end
within seconds, and one still under way is logged as such."""
MOVE_POLL_S = 0.25

DONE, GIVEN_UP, UNDER_WAY = "done", "given up", "under way"
"""What became of an accepted move: the target holds the replica instead of the
source; the move ended without that; neither seen within `MOVE_WATCH_S`."""
REFUSED, UNANSWERED = "refused", "unanswered"
"""A move not accepted: refused (409, with the metadata's reason), or no decision
known (no node answered, or an error such as `not_leader` during an election)."""


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
    outcome: str | None = None
    """What became of a fault that heals nothing (a move: `DONE`, `REFUSED`, ...)."""


@dataclass(slots=True)
class FaultLog:
    clock: Callable[[], float]
    records: list[FaultRecord] = field(default_factory=list)

    def begin(self, family: str, description: str, nodes: list[int]) -> FaultRecord:
        record = FaultRecord(family, description, self.clock(), None, sorted(nodes))
        self.records.append(record)
        log.info("%7.2fs fault: %s", record.start_s, description)
        return record

    def end(self, record: FaultRecord, outcome: str | None = None) -> None:
        if record.end_s is None:
            record.end_s = self.clock()
            record.outcome = outcome
            log.info("%7.2fs %s: %s", record.end_s, outcome or "healed", record.description)

    def write_jsonl(self, path: Path) -> None:
        with path.open("w") as f:
            for record in self.records:
                f.write(json.dumps(asdict(record)) + "\n")

    def counts(self) -> dict[str, int]:
        result: dict[str, int] = {}
        for record in self.records:
            result[record.family] = result.get(record.family, 0) + 1
        return result

    def moves(self) -> dict[str, int]:
        """The moves asked for and accepted, and how many ended each way."""
        outcomes = [r.outcome for r in self.records if r.family == "move"]
        result = {
            "asked": len(outcomes),
            "accepted": sum(o in (DONE, GIVEN_UP, UNDER_WAY) for o in outcomes),
        }
        for outcome in (DONE, GIVEN_UP, UNDER_WAY, REFUSED, UNANSWERED):
            result[outcome] = outcomes.count(outcome)
        return result


def move_refusal(shards: int, nodes: int, replicas: int) -> str | None:
    """Why the `move` family cannot run on this cluster, or None: it moves a replica
    of a shard to a node without one, so it needs shards and a node free of each."""
    if shards < 2:
        return "move needs a sharded cluster (--shards 2 or more)"
    if nodes <= replicas:
        return (
            f"move needs a node free of each shard: --nodes ({nodes}) above the "
            f"replicas of each shard ({replicas})"
        )
    return None


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
            "move": self._move,
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

    async def _move(self, rng: random.Random, stop: asyncio.Event) -> None:
        assert self._session is not None
        found = await self._shard_map(rng.sample(self.cluster.ids, len(self.cluster.ids)))
        if found is None:
            record = self.log.begin("move", "move: no node answered with a shard map", [])
            self.log.end(record, UNANSWERED)
            return
        asked, doc = found
        shard, source, target = self._pick_move(rng, doc)
        text = f"move shard {shard} {_nodes([source])} -> {_nodes([target])}"
        record = self.log.begin("move", f"{text}, asked of {_nodes([asked])}", [source, target])
        answer = await self.cluster.move(self._session, asked, shard, source, target)
        if answer is None or answer[0] != 200:
            outcome = REFUSED if answer is not None and answer[0] == 409 else UNANSWERED
            record.description += f": {_refusal(answer)}"
            self.log.end(record, outcome)
            return
        version = int(answer[1]["version"])
        outcome = UNDER_WAY  # also when the run is cancelled while watching
        try:
            outcome = await self._watch_move(stop, version, shard, source, target)
        finally:
            self.log.end(record, outcome)

    def _pick_move(self, rng: random.Random, doc: dict[str, Any]) -> tuple[int, int, int]:
        """A random shard, one of its nodes and a node without it. The run's options
        leave every shard a node free of it (`move_refusal`)."""
        row = rng.choice(doc["shards"])
        holders = [n for n in self.cluster.ids if self.cluster.name(n) in row["replicas"]]
        others = [n for n in self.cluster.ids if n not in holders]
        return int(row["id"]), rng.choice(holders), rng.choice(others)

    async def _shard_map(self, nodes: list[int]) -> tuple[int, dict[str, Any]] | None:
        """The shard map as the first of `nodes` that answers knows it, and that node
        (a dead or stopped node is skipped at once)."""
        assert self._session is not None
        for node in nodes:
            doc = await self.cluster.status(self._session, node, "/v1/cluster/shards")
            if doc is not None and doc.get("version"):
                return node, doc
        return None

    async def _watch_move(
        self, stop: asyncio.Event, accepted: int, shard: int, source: int, target: int
    ) -> str:
        """What became of a move accepted at map version `accepted`, from the shard
        maps of the nodes, asked in turn (not drawn from the family's generator: how
        long a move takes leaves the schedule's gaps alone). Only a map that has the
        move's record tells: one of a later version (every map change after
        `accepted` comes after the record), or one from a node seen showing the move
        under way. A node yet to apply the record shows no move either, as if the
        move had ended."""
        source_name, target_name = self.cluster.name(source), self.cluster.name(target)
        ids = self.cluster.ids
        seen: set[int] = set()
        turn = 0
        deadline = asyncio.get_running_loop().time() + MOVE_WATCH_S
        while asyncio.get_running_loop().time() < deadline:
            turn = (turn + 1) % len(ids)
            found = await self._shard_map(ids[turn:] + ids[:turn])
            if found is not None:
                node, doc = found
                row = next(r for r in doc["shards"] if r["id"] == shard)
                move = row["move"] or {}
                if (move.get("source"), move.get("target")) == (source_name, target_name):
                    seen.add(node)
                elif node in seen or doc["version"] > accepted:
                    replicas = row["replicas"]
                    moved = target_name in replicas and source_name not in replicas
                    return DONE if moved else GIVEN_UP
            if await _wait(stop, MOVE_POLL_S):
                break
        return UNDER_WAY


def _between(a: list[int], b: list[int]) -> list[tuple[int, int]]:
    """Both directions of every link between groups `a` and `b`."""
    return [(x, y) for x in a for y in b] + [(y, x) for x in a for y in b]


def _refusal(answer: tuple[int, dict[str, Any]] | None) -> str:
    """Why a move was not accepted, for the fault log."""
    if answer is None:
        return "no answer"
    status, doc = answer
    error = doc.get("error") or {}
    return f"{status} {error.get('code')}: {error.get('message')}"


def _nodes(nodes: list[int]) -> str:
    return "{" + ",".join(f"n{n}" for n in sorted(nodes)) + "}"


async def _wait(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep `seconds` or until `stop`; True if stopped."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()
