"""The placement driver run against itself, with every decision done at once.

`settle()` runs rounds of `placement.plan`, applying each decision to the shard map
and the leader table as if its move, transfer or split had completed, until a round
decides nothing. It is how the driver is tested at a thousand nodes without a
cluster (`bench/placement.py`, `tests/shard`), and it says what a real cluster
converges to when nothing fails meanwhile. A move here is atomic; in a cluster it is
a learner, a snapshot, a promotion and a removal, and the driver sees it as under way
(`in_flight`) until then.

Pure: no I/O.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from accord.invariant import invariant
from accord.shard.placement import (
    AddReplica,
    Decision,
    MoveReplica,
    NodeInfo,
    PlacementConfig,
    ShardLoad,
    Split,
    TransferLeader,
    domains,
    plan,
)
from accord.shard.shardmap import Shard, ShardMap

ROUNDS_MAX = 100_000


@dataclass
class Settled:
    shard_map: ShardMap
    leaders: dict[int, int]
    rounds: int
    decisions: Counter[str] = field(default_factory=Counter)
    """Decisions taken, by kind (`MoveReplica`, `AddReplica`, ...)."""


def apply_decision(shard_map: ShardMap, leaders: dict[int, int], decision: Decision) -> ShardMap:
    """The map after `decision` completed (`leaders` is updated in place)."""
    if isinstance(decision, TransferLeader):
        leaders[decision.shard] = decision.target
        return shard_map
    if isinstance(decision, Split):
        leaders[decision.new_id] = leaders.get(decision.shard, 0)
        return shard_map.split(decision.shard, decision.at, decision.new_id)
    shard = shard_map.shard(decision.shard)
    voters = list(shard.replicas)
    if isinstance(decision, MoveReplica):
        voters.remove(decision.source)
        if leaders.get(decision.shard) == decision.source:
            leaders[decision.shard] = voters[0] if voters else decision.target
    invariant(isinstance(decision, (AddReplica, MoveReplica)), f"unknown {decision!r}")
    voters.append(decision.target)
    return shard_map.with_members(decision.shard, voters, shard.learners)


def settle(
    shard_map: ShardMap,
    nodes: Iterable[NodeInfo],
    config: PlacementConfig,
    leaders: dict[int, int],
    loads: dict[int, ShardLoad] | None = None,
    rounds_max: int = ROUNDS_MAX,
) -> Settled:
    """Run rounds until one decides nothing (or `rounds_max`, a bug if reached)."""
    nodes = list(nodes)
    result = Settled(shard_map, dict(leaders), 0)
    for _ in range(rounds_max):
        decisions = plan(result.shard_map, nodes, config, leaders=result.leaders, loads=loads)
        if not decisions:
            return result
        result.rounds += 1
        for decision in decisions:
            result.shard_map = apply_decision(result.shard_map, result.leaders, decision)
            result.decisions[type(decision).__name__] += 1
            if loads is not None and isinstance(decision, Split):
                loads.pop(decision.shard, None)
    invariant(False, f"placement did not settle in {rounds_max} rounds")
    return result


def replica_counts(shard_map: ShardMap, nodes: Iterable[NodeInfo]) -> dict[int, int]:
    counts = {n.id: 0 for n in nodes if n.state == "up"}
    for shard in shard_map:
        for node in shard.members():
            if node in counts:
                counts[node] += 1
    return counts


def domain_violations(
    shard_map: ShardMap, nodes: Iterable[NodeInfo], config: PlacementConfig
) -> list[Shard]:
    """Shards with two members in one failure domain."""
    domain = domains(nodes, config)
    return [
        s
        for s in shard_map
        if len({domain.get(n, f"unknown={n}") for n in s.members()}) != len(s.members())
    ]
