"""The placement driver: failure domains, repairs, balance, leaders, splits, pace."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from accord.shard import (
    AddReplica,
    MoveReplica,
    NodeInfo,
    PlacementConfig,
    ShardLoad,
    ShardMap,
    Split,
    TransferLeader,
    place,
    plan,
)
from accord.shard.placement import domains
from accord.shard.simulate import apply_decision, domain_violations, replica_counts, settle


def nodes_in(zones: int, count: int, first: int = 1) -> list[NodeInfo]:
    return [
        NodeInfo(i, (("zone", f"z{(i - 1) % zones}"), ("host", f"h{i}")))
        for i in range(first, first + count)
    ]


def placed_map(
    nodes: list[NodeInfo], shards: int, config: PlacementConfig
) -> tuple[ShardMap, dict[int, int]]:
    placed = place(range(1, shards + 1), nodes, config)
    return ShardMap.initial(shards, placed), {s: r[0] for s, r in placed.items()}


def down(nodes: list[NodeInfo], node_id: int, state: str = "down") -> list[NodeInfo]:
    return [NodeInfo(n.id, n.labels, state) if n.id == node_id else n for n in nodes]


def test_the_domain_level_is_the_coarsest_with_enough_domains() -> None:
    config = PlacementConfig(replicas=3)
    three_zones = nodes_in(3, 6)
    assert domains(three_zones, config)[1] == "zone=z0"
    one_zone = nodes_in(1, 6)
    assert domains(one_zone, config)[1] == "host=h1"  # one zone cannot hold 3 apart
    bare = [NodeInfo(i) for i in (1, 2, 3)]
    assert domains(bare, config) == {1: "node=1", 2: "node=2", 3: "node=3"}
    # Two hosts each with two nodes: three replicas cannot avoid sharing a host, so
    # every node is its own domain rather than placement failing.
    shared = [NodeInfo(i, (("host", f"h{i % 2}"),)) for i in (1, 2, 3, 4)]
    assert len(set(domains(shared, config).values())) == 4


@pytest.mark.parametrize("zones,count,shards", [(3, 3, 12), (3, 9, 100), (5, 20, 500), (1, 7, 70)])
def test_initial_placement_is_balanced_and_never_shares_a_domain(
    zones: int, count: int, shards: int
) -> None:
    config = PlacementConfig()
    nodes = nodes_in(zones, count)
    m, leaders = placed_map(nodes, shards, config)
    counts = replica_counts(m, nodes)
    assert max(counts.values()) - min(counts.values()) <= 1 + (zones > 1 and count % zones != 0)
    assert domain_violations(m, nodes, config) == []
    settled = settle(m, nodes, config, leaders)
    assert settled.shard_map == m  # no replica to move, at most leaders to hand over
    led = Counter(settled.leaders.values())
    assert max(led.values()) - min(led.get(n.id, 0) for n in nodes) <= 1


def test_a_down_node_is_repaired_first_within_the_move_budget() -> None:
    config = PlacementConfig(moves_in_flight_max=2, node_moves_in_flight_max=2)
    nodes = nodes_in(3, 6)
    m, leaders = placed_map(nodes, 30, config)
    nodes = down(nodes, 2)
    decisions = plan(m, nodes, config, leaders=leaders)
    moves = [d for d in decisions if isinstance(d, MoveReplica)]
    assert len(moves) == 2 and all(d.source == 2 and "down" in d.reason for d in moves)
    for d in moves:  # the replacement is in the lost replica's zone, the only free one
        assert nodes[d.target - 1].label("zone") == nodes[1].label("zone")
    # With both moves under way, the round may start nothing more.
    assert [
        d
        for d in plan(m, nodes, config, leaders=leaders, in_flight=moves)
        if not isinstance(d, TransferLeader)
    ] == []
    settled = settle(m, nodes, config, leaders)
    assert all(2 not in s.members() for s in settled.shard_map)
    assert domain_violations(settled.shard_map, nodes, config) == []
    assert settled.decisions["MoveReplica"] == replica_counts(m, nodes_in(3, 6))[2]


def test_a_leaving_node_is_drained_and_gets_nothing_new() -> None:
    config = PlacementConfig(moves_in_flight_max=8)
    nodes = nodes_in(1, 5)
    m, leaders = placed_map(nodes, 20, config)
    nodes = down(nodes, 4, "leaving")
    settled = settle(m, nodes, config, leaders)
    assert replica_counts(settled.shard_map, nodes_in(1, 5))[4] == 0
    assert all(leader != 4 for leader in settled.leaders.values())


def test_an_under_replicated_shard_gets_a_voter_in_a_free_domain() -> None:
    config = PlacementConfig()
    nodes = nodes_in(3, 6)
    m, leaders = placed_map(nodes, 6, config)
    shard = m.shard(1)
    m = m.with_members(1, shard.replicas[:1])
    decisions = plan(m, nodes, config, leaders=leaders)
    adds = [d for d in decisions if isinstance(d, AddReplica)]
    assert [d.shard for d in adds] == [1]
    after = apply_decision(m, dict(leaders), adds[0])
    assert domain_violations(after, nodes, config) == []


def test_adding_a_node_moves_its_fair_share_and_no_more() -> None:
    config = PlacementConfig(moves_in_flight_max=64, node_moves_in_flight_max=64)
    nodes = nodes_in(4, 40)
    m, leaders = placed_map(nodes, 2_000, config)
    grown = nodes + nodes_in(4, 1, first=41)
    settled = settle(m, grown, config, leaders)
    counts = replica_counts(settled.shard_map, grown)
    fair = 3 * 2_000 // 41
    assert counts[41] >= fair
    assert settled.decisions["MoveReplica"] <= 1.02 * fair
    assert max(counts.values()) - min(counts.values()) <= 1
    assert domain_violations(settled.shard_map, grown, config) == []


def test_a_shard_whose_replicas_share_a_zone_is_fixed() -> None:
    config = PlacementConfig()
    nodes = nodes_in(3, 6)  # zones: 1,4 -> z0; 2,5 -> z1; 3,6 -> z2
    m, leaders = placed_map(nodes, 6, config)
    m = m.with_members(1, (1, 4, 2))
    decisions = [d for d in plan(m, nodes, config, leaders=leaders) if isinstance(d, MoveReplica)]
    assert decisions and decisions[0].shard == 1 and "shares zone=z0" in decisions[0].reason
    assert nodes[decisions[0].target - 1].label("zone") == "z2"


def test_leaders_are_spread_within_one_of_each_other() -> None:
    config = PlacementConfig(leader_transfers_max=100)
    nodes = nodes_in(3, 3)
    m, _ = placed_map(nodes, 12, config)
    on_one = {s.id: 1 for s in m}
    settled = settle(m, nodes, config, on_one)
    led = Counter(settled.leaders.values())
    assert sorted(led.values()) == [4, 4, 4]
    assert settled.decisions["TransferLeader"] == 8  # the fewest that get there


def test_splits_follow_the_thresholds_and_the_load_hint() -> None:
    config = PlacementConfig(split_keys_max=1_000, split_writes_per_s_max=500.0)
    nodes = nodes_in(3, 3)
    m, leaders = placed_map(nodes, 2, config)
    two = m.shard(2)
    hint = two.ranges[0].start + 10
    loads = {
        1: ShardLoad(keys=5_000),
        2: ShardLoad(keys=10, writes_per_s=900.0, split_at=hint),
    }
    splits = [
        d for d in plan(m, nodes, config, leaders=leaders, loads=loads) if isinstance(d, Split)
    ]
    assert [(d.shard, d.new_id) for d in splits] == [(1, 3), (2, 4)]
    assert splits[0].at == m.shard(1).ranges[0].start + m.shard(1).slot_count // 2
    assert splits[1].at == hint and "writes/s" in splits[1].reason
    assert plan(m, nodes, config, leaders=leaders, loads={1: ShardLoad(keys=999)}) == ()


def test_the_driver_is_deterministic_and_ignores_input_order() -> None:
    config = PlacementConfig(moves_in_flight_max=16)
    nodes = nodes_in(3, 9)
    m, leaders = placed_map(nodes, 90, config)
    nodes = down(nodes, 5)
    shuffled = list(nodes)
    random.Random(7).shuffle(shuffled)
    assert plan(m, nodes, config, leaders=leaders) == plan(m, shuffled, config, leaders=leaders)


@pytest.mark.parametrize("seed", range(20))
def test_random_clusters_settle_balanced_with_no_shared_domain(seed: int) -> None:
    rng = random.Random(seed)
    zones = rng.choice([1, 3, 4, 5])
    count = rng.randint(max(3, zones), 24)
    config = PlacementConfig(
        replicas=rng.choice([1, 3, 5]) if count >= 5 else 3,
        moves_in_flight_max=rng.randint(1, 32),
        node_moves_in_flight_max=rng.randint(1, 4),
    )
    nodes = nodes_in(zones, count)
    m, leaders = placed_map(nodes, rng.randint(1, 300), config)
    for _ in range(rng.randint(1, 3)):  # nodes join, die or leave
        event = rng.random()
        if event < 0.4:
            nodes = nodes + nodes_in(zones, 1, first=max(n.id for n in nodes) + 1)
        elif sum(n.state == "up" for n in nodes) > config.replicas + 1:
            victim = rng.choice([n for n in nodes if n.state == "up"])
            nodes = down(nodes, victim.id, rng.choice(["down", "leaving"]))
        settled = settle(m, nodes, config, leaders)
        m, leaders = settled.shard_map, settled.leaders
        up = {n.id for n in nodes if n.state == "up"}
        assert all(set(s.members()) <= up for s in m)
        assert all(len(s.replicas) == config.replicas for s in m)
        assert domain_violations(m, [n for n in nodes if n.state == "up"], config) == []
        counts = replica_counts(m, nodes)
        if zones == 1 or (len(up) % zones == 0 and len(up) == count):
            assert max(counts.values()) - min(counts.values()) <= 1
