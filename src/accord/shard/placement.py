"""The placement driver: where each shard's replicas and leader should be.

Theory of operation
-------------------
Pure: a view of the cluster in (the shard map, the nodes with their labels and
states, who leads each shard, each shard's load, the changes already under way),
decisions out. The metadata group's leader runs it every round, proposes the
decisions it accepts to the metadata group (so no placement lives in one node's
memory), and an executor carries each one out; the next round sees the result. The
driver keeps no state between rounds, so a new metadata leader picks up where the
old one stopped, and the simulator can run it at a thousand nodes in one process.

Failure domains. A node's labels (`zone=`, `host=`) place it in a hierarchy. The
driver uses the coarsest level of `PlacementConfig.domain_labels` that has at least
`replicas` distinct domains among the nodes that are up (a node without that label
falls to its next finer label, and without any to itself), and never puts two
replicas of one shard in one domain of that level: with three zones, every shard has
one replica per zone; with one zone and many hosts, no two replicas share a host.

One round decides, in this order, within its budgets:

1. **Repairs** — a replica on a node that is down or leaving moves to a new node
   (`MoveReplica`: add it as a learner, catch it up by snapshot, promote it, remove
   the old voter, each step a joint-consensus membership change of the shard's
   group); a shard with fewer voters than `replicas` gets one (`AddReplica`); a
   shard with two replicas in one domain moves one of them.
2. **Balance of replicas** — from the node holding the most to the node holding the
   fewest, while they differ by more than one: the fewest moves that reach it, so
   adding a node moves about its fair share and nothing else.
3. **Balance of leaders** (`TransferLeader`, no data moves) — while some node leads
   two more shards than a node that holds a replica of one of them.
4. **Splits** (`Split`) — a shard over a size or load threshold is cut at the slot
   its load names (else the middle of its slots).

Moves are the expensive part (a snapshot each), so at most `moves_in_flight_max` are
under way in the cluster and `node_moves_in_flight_max` per node, counting those the
caller says are already under way: rebalancing never starves foreground traffic, and
a down node's repairs go first.
"""

from __future__ import annotations

import heapq
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from accord.invariant import invariant
from accord.shard.limits import (
    LEADER_TRANSFERS_PER_ROUND_MAX,
    MOVES_IN_FLIGHT_MAX,
    NODE_MOVES_IN_FLIGHT_MAX,
    SHARD_REPLICAS_MAX,
    SPLITS_PER_ROUND_MAX,
)
from accord.shard.shardmap import Shard, ShardMap

UP, DOWN, LEAVING = "up", "down", "leaving"


@dataclass(frozen=True, slots=True)
class NodeInfo:
    id: int
    labels: tuple[tuple[str, str], ...] = ()
    state: str = UP
    """`up`; `down` (not heard from: its replicas are repaired elsewhere); `leaving`
    (drained on purpose: the same, and it gets no new replica)."""

    def label(self, name: str) -> str | None:
        for key, value in self.labels:
            if key == name:
                return value
        return None


@dataclass(frozen=True, slots=True)
class ShardLoad:
    keys: int = 0
    bytes: int = 0
    writes_per_s: float = 0.0
    split_at: int | None = None
    """A slot that halves the shard's keys or load, if the shard knows one."""


@dataclass(frozen=True, slots=True)
class PlacementConfig:
    replicas: int = 3
    domain_labels: tuple[str, ...] = ("zone", "host")
    moves_in_flight_max: int = MOVES_IN_FLIGHT_MAX
    node_moves_in_flight_max: int = NODE_MOVES_IN_FLIGHT_MAX
    leader_transfers_max: int = LEADER_TRANSFERS_PER_ROUND_MAX
    splits_max: int = SPLITS_PER_ROUND_MAX
    split_keys_max: int | None = None
    split_bytes_max: int | None = None
    split_writes_per_s_max: float | None = None

    def __post_init__(self) -> None:
        invariant(1 <= self.replicas <= SHARD_REPLICAS_MAX, "replicas out of range")
        invariant(self.moves_in_flight_max >= 1, "moves_in_flight_max must be >= 1")
        invariant(self.node_moves_in_flight_max >= 1, "node_moves_in_flight_max must be >= 1")


@dataclass(frozen=True, slots=True)
class AddReplica:
    shard: int
    target: int
    reason: str


@dataclass(frozen=True, slots=True)
class MoveReplica:
    shard: int
    source: int
    target: int
    reason: str


@dataclass(frozen=True, slots=True)
class TransferLeader:
    shard: int
    source: int
    target: int
    reason: str


@dataclass(frozen=True, slots=True)
class Split:
    shard: int
    at: int
    new_id: int
    reason: str


Decision = AddReplica | MoveReplica | TransferLeader | Split
Move = AddReplica | MoveReplica


# --- failure domains ------------------------------------------------------------------
def domains(nodes: Iterable[NodeInfo], config: PlacementConfig) -> dict[int, str]:
    """Each node's failure domain, at the coarsest level with enough domains for
    `config.replicas` among the nodes that are up."""
    nodes = list(nodes)
    up = [n for n in nodes if n.state == UP]
    levels = config.domain_labels
    for level in range(len(levels) + 1):
        if len({_domain(n, levels[level:]) for n in up}) >= config.replicas:
            break
    return {n.id: _domain(n, levels[level:]) for n in nodes}


def _domain(node: NodeInfo, labels: Sequence[str]) -> str:
    for name in labels:
        value = node.label(name)
        if value is not None:
            return f"{name}={value}"
    return f"node={node.id}"


# --- initial placement ------------------------------------------------------------------
def place(
    shard_ids: Iterable[int], nodes: Iterable[NodeInfo], config: PlacementConfig
) -> dict[int, tuple[int, ...]]:
    """Voters for new shards: `config.replicas` each (fewer if there are fewer
    domains), on the nodes holding the fewest, in distinct domains. The first voter
    of each is the one to lead it; leaders are spread the same way."""
    nodes = [n for n in nodes if n.state == UP]
    invariant(bool(nodes), "no node is up to place shards on")
    domain = domains(nodes, config)
    heap = [(0, n.id) for n in sorted(nodes, key=lambda n: n.id)]
    leads = {n.id: 0 for n in nodes}
    placed: dict[int, tuple[int, ...]] = {}
    for shard in shard_ids:
        chosen: list[int] = []
        used: set[str] = set()
        skipped: list[tuple[int, int]] = []
        while heap and len(chosen) < config.replicas:
            count, node = heapq.heappop(heap)
            if domain[node] in used:
                skipped.append((count, node))
                continue
            chosen.append(node)
            used.add(domain[node])
            skipped.append((count + 1, node))
        for item in skipped:
            heapq.heappush(heap, item)
        leader = min(chosen, key=lambda n: (leads[n], n))
        leads[leader] += 1
        placed[shard] = (leader, *(n for n in chosen if n != leader))
    return placed


# --- one round ------------------------------------------------------------------------
def plan(
    shard_map: ShardMap,
    nodes: Iterable[NodeInfo],
    config: PlacementConfig,
    *,
    leaders: Mapping[int, int] | None = None,
    loads: Mapping[int, ShardLoad] | None = None,
    in_flight: Collection[Move] = (),
) -> tuple[Decision, ...]:
    """The decisions of one round (see the module's docstring), deterministic for
    the same view."""
    view = _View(shard_map, list(nodes), config, in_flight)
    decisions: list[Decision] = []
    decisions += _repairs(view)
    decisions += _balance_replicas(view)
    decisions += _balance_leaders(view, dict(leaders or {}))
    decisions += _splits(shard_map, config, loads or {}, view.busy_shards)
    return tuple(decisions)


class _View:
    """The round's working state: replica counts per node, as if every decision
    taken so far in the round were done."""

    def __init__(
        self,
        shard_map: ShardMap,
        nodes: list[NodeInfo],
        config: PlacementConfig,
        in_flight: Collection[Move],
    ) -> None:
        self.config = config
        self.nodes = {n.id: n for n in nodes}
        self.up = sorted(n.id for n in nodes if n.state == UP)
        self.domain = domains(nodes, config)
        self.members: dict[int, list[int]] = {s.id: list(s.members()) for s in shard_map}
        self.voters = {s.id: len(s.replicas) for s in shard_map}
        self.count = {n: 0 for n in self.up}
        self.held: dict[int, set[int]] = {n: set() for n in self.up}
        for shard in shard_map:
            for node in shard.members():
                if node in self.held:
                    self.held[node].add(shard.id)
                    self.count[node] += 1
        self.busy_shards = {m.shard for m in in_flight}
        self.node_moves = {n: 0 for n in self.nodes}
        for m in in_flight:
            for node in _nodes_of(m):
                self.node_moves[node] = self.node_moves.get(node, 0) + 1
        self.budget = config.moves_in_flight_max - len(in_flight)

    def can_move(self, *nodes: int) -> bool:
        limit = self.config.node_moves_in_flight_max
        return self.budget > 0 and all(self.node_moves.get(n, 0) < limit for n in nodes)

    def eligible(self, shard: int, target: int, leaving: int | None) -> bool:
        """`target` may take a replica of `shard` whose replica on `leaving` goes."""
        members = self.members[shard]
        if target in members or self.nodes[target].state != UP:
            return False
        taken = {self.domain[m] for m in members if m != leaving and m in self.domain}
        return self.domain[target] not in taken

    def best_target(self, shard: int, leaving: int | None) -> int | None:
        candidates = [n for n in self.up if self.eligible(shard, n, leaving) and self.can_move(n)]
        return min(candidates, key=lambda n: (self.count[n], n), default=None)

    def record(self, move: Move) -> Move:
        members = self.members[move.shard]
        if isinstance(move, MoveReplica):
            members.remove(move.source)
            if move.source in self.count:
                self.count[move.source] -= 1
                self.held[move.source].discard(move.shard)
        members.append(move.target)
        self.count[move.target] += 1
        self.held[move.target].add(move.shard)
        self.busy_shards.add(move.shard)
        for node in _nodes_of(move):
            self.node_moves[node] = self.node_moves.get(node, 0) + 1
        self.budget -= 1
        return move


def _nodes_of(move: Move) -> tuple[int, ...]:
    return (move.source, move.target) if isinstance(move, MoveReplica) else (move.target,)


def _repairs(view: _View) -> list[Decision]:
    out: list[Decision] = []
    for shard, members in sorted(view.members.items()):
        if view.budget <= 0:
            break
        if shard in view.busy_shards:
            continue
        move = _repair(view, shard, members)
        if move is not None:
            out.append(view.record(move))
    return out


def _repair(view: _View, shard: int, members: list[int]) -> Move | None:
    for node in members:
        state = view.nodes[node].state if node in view.nodes else DOWN
        if state != UP:
            target = view.best_target(shard, node)
            if target is not None and view.can_move(target):
                return MoveReplica(shard, node, target, f"node {node} is {state}")
            return None
    if view.voters[shard] < view.config.replicas and len(members) < view.config.replicas:
        target = view.best_target(shard, None)
        if target is not None:
            return AddReplica(shard, target, f"{len(members)} of {view.config.replicas} replicas")
        return None
    seen: dict[str, int] = {}
    for node in members:
        other = seen.setdefault(view.domain[node], node)
        if other != node:
            target = view.best_target(shard, node)
            if target is not None and view.can_move(node, target):
                return MoveReplica(shard, node, target, f"shares {view.domain[node]} with {other}")
    return None


def _balance_replicas(view: _View) -> list[Decision]:
    """Move from the fullest node to the emptiest while they differ by more than one."""
    out: list[Decision] = []
    while view.budget > 0:
        move = _one_balancing_move(view)
        if move is None:
            break
        out.append(view.record(move))
    return out


def _one_balancing_move(view: _View) -> MoveReplica | None:
    recipients = sorted((n for n in view.up if view.can_move(n)), key=lambda n: (view.count[n], n))
    donors = sorted((n for n in view.up if view.can_move(n)), key=lambda n: (-view.count[n], n))
    for target in recipients:
        for source in donors:
            if view.count[source] - view.count[target] <= 1:
                break  # every later donor holds fewer still
            shard = _movable_shard(view, source, target)
            if shard is not None:
                held, has = view.count[source], view.count[target]
                reason = f"balance: node {source} holds {held}, node {target} {has}"
                return MoveReplica(shard, source, target, reason)
    return None


def _movable_shard(view: _View, source: int, target: int) -> int | None:
    for shard in sorted(view.held[source] - view.held[target]):
        if shard not in view.busy_shards and view.eligible(shard, target, source):
            return shard
    return None


def _balance_leaders(view: _View, leaders: Mapping[int, int]) -> list[Decision]:
    """Hand leadership from a node leading two more than another up voter of the same
    shard: one pass over the nodes, most leaders first, up to the round's limit (what
    is left, the next round does)."""
    up = set(view.up)
    led: dict[int, set[int]] = {n: set() for n in view.up}
    for shard, node in leaders.items():
        if node in led and shard in view.members and shard not in view.busy_shards:
            led[node].add(shard)
    out: list[Decision] = []
    fewest = min((len(s) for s in led.values()), default=0)
    for source in sorted(led, key=lambda n: (-len(led[n]), n)):
        if len(led[source]) - fewest <= 1:
            break  # nor does any later node lead more
        while len(out) < view.config.leader_transfers_max:
            transfer = _one_transfer(view, led, up, source)
            if transfer is None:
                break
            led[source].discard(transfer.shard)
            led[transfer.target].add(transfer.shard)
            out.append(transfer)
        fewest = min(len(s) for s in led.values())
    return out


def _one_transfer(
    view: _View, led: dict[int, set[int]], up: set[int], source: int
) -> TransferLeader | None:
    """The transfer from `source` to the up voter leading fewest, if it leads at least
    two fewer than `source`."""
    count = len(led[source])
    best: tuple[int, int, int] | None = None
    for shard in led[source]:
        for target in view.members[shard]:
            if target in up and target != source and len(led[target]) < count - 1:
                candidate = (len(led[target]), target, shard)
                best = candidate if best is None or candidate < best else best
    if best is None:
        return None
    _, target, shard = best
    reason = f"balance: node {source} leads {count}, node {target} {len(led[target])}"
    return TransferLeader(shard, source, target, reason)


def _splits(
    shard_map: ShardMap,
    config: PlacementConfig,
    loads: Mapping[int, ShardLoad],
    busy: Collection[int],
) -> list[Decision]:
    out: list[Decision] = []
    new_id = shard_map.next_shard_id()
    for shard_id in sorted(loads):
        if len(out) >= config.splits_max:
            break
        if shard_id not in shard_map or shard_id in busy:
            continue
        reason = _split_reason(config, loads[shard_id])
        shard = shard_map.shard(shard_id)
        if reason is None or shard.slot_count < 2:
            continue  # one slot cannot be split: a hot hash tag stays where it is
        at = _split_slot(shard, loads[shard_id].split_at)
        out.append(Split(shard_id, at, new_id, reason))
        new_id += 1
    return out


def _split_reason(config: PlacementConfig, load: ShardLoad) -> str | None:
    if config.split_keys_max is not None and load.keys > config.split_keys_max:
        return f"{load.keys} keys > {config.split_keys_max}"
    if config.split_bytes_max is not None and load.bytes > config.split_bytes_max:
        return f"{load.bytes} bytes > {config.split_bytes_max}"
    limit = config.split_writes_per_s_max
    if limit is not None and load.writes_per_s > limit:
        return f"{load.writes_per_s:.0f} writes/s > {limit:.0f}"
    return None


def _split_slot(shard: Shard, hint: int | None) -> int:
    """`hint` if it splits the shard into two non-empty parts, else its middle slot."""
    first = shard.ranges[0].start
    if hint is not None and shard.owns(hint) and hint != first:
        return hint
    half = shard.slot_count // 2
    for r in shard.ranges:
        if half < len(r):
            return r.start + half
        half -= len(r)
    invariant(False, "a shard of two or more slots has a middle")
    return first
