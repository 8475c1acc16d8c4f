"""The placement driver at scale, simulated: balance, minimal moves, failure domains.

Pure computation in this process (no cluster): `accord.shard.place` places S shards
of R replicas on N nodes spread over Z zones (host = node); then `simulate.settle`
runs driver rounds, every decision done at once, after each event:

1. the initial placement (and a settle, which should decide nothing);
2. one node added (in zone 0): replicas moved, against the minimum (the new node's
   fair share, floor(R*S / (N+1)): nothing less brings it within one of the others);
3. one node down: replicas moved, against the minimum (the replicas it held).

Reported after each: replicas per node (min, max, and the largest deviation from the
mean, in %), shards with two replicas in one zone, leaders per node (min, max), the
rounds, and the time the driver took.

    python bench/placement.py --nodes 1000 --shards 100000 --zones 10
    python bench/placement.py --nodes 3 --shards 12 --zones 3     # leaders per node
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter

from accord.shard import NodeInfo, PlacementConfig, ShardMap, place
from accord.shard.simulate import domain_violations, replica_counts, settle


def _nodes(count: int, zones: int) -> list[NodeInfo]:
    return [
        NodeInfo(i, (("zone", f"z{(i - 1) % zones}"), ("host", f"h{i}")))
        for i in range(1, count + 1)
    ]


def _report(label, shard_map, nodes, config, leaders, seconds, moved=None, minimum=None):
    counts = replica_counts(shard_map, nodes)
    mean = sum(counts.values()) / len(counts)
    led = Counter(leaders[s.id] for s in shard_map)
    led_counts = [led.get(n.id, 0) for n in nodes if n.state == "up"]
    row = {
        "event": label,
        "replicas_per_node_min": min(counts.values()),
        "replicas_per_node_max": max(counts.values()),
        "replicas_per_node_mean": round(mean, 2),
        "deviation_pct_max": round(max(abs(c - mean) for c in counts.values()) / mean * 100, 2),
        "domain_violations": len(domain_violations(shard_map, nodes, config)),
        "leaders_per_node_min": min(led_counts),
        "leaders_per_node_max": max(led_counts),
        "driver_s": round(seconds, 2),
    }
    if moved is not None:
        row["moved"] = moved
        row["minimum"] = minimum
        row["moved_over_minimum"] = round(moved / minimum, 3) if minimum else None
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--shards", type=int, default=100_000)
    parser.add_argument("--zones", type=int, default=10)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--moves", type=int, default=256, help="moves in flight per round")
    parser.add_argument(
        "--node-moves",
        type=int,
        default=64,
        help="moves in flight per node (a cluster keeps this at 1-2; more only makes "
        "the simulation take fewer rounds, the moves chosen are the same greedy ones)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    config = PlacementConfig(
        replicas=args.replicas,
        moves_in_flight_max=args.moves,
        node_moves_in_flight_max=args.node_moves,
        leader_transfers_max=10 * args.moves,
    )
    nodes = _nodes(args.nodes, args.zones)
    rows = []

    t = time.perf_counter()
    placed = place(range(1, args.shards + 1), nodes, config)
    shard_map = ShardMap.initial(args.shards, placed)
    leaders = {s: placed[s][0] for s in placed}
    result = settle(shard_map, nodes, config, leaders)
    rows.append(
        _report(
            "initial",
            result.shard_map,
            nodes,
            config,
            result.leaders,
            time.perf_counter() - t,
            result.decisions["MoveReplica"],
            0,
        )
    )

    added = NodeInfo(args.nodes + 1, (("zone", "z0"), ("host", f"h{args.nodes + 1}")))
    nodes.append(added)
    t = time.perf_counter()
    before = result.shard_map
    result = settle(before, nodes, config, result.leaders)
    minimum = args.replicas * args.shards // len(nodes)
    rows.append(
        _report(
            "node added",
            result.shard_map,
            nodes,
            config,
            result.leaders,
            time.perf_counter() - t,
            result.decisions["MoveReplica"],
            minimum,
        )
    )

    victim = nodes[len(nodes) // 2]
    held = replica_counts(result.shard_map, nodes)[victim.id]
    nodes = [n if n.id != victim.id else NodeInfo(n.id, n.labels, "down") for n in nodes]
    t = time.perf_counter()
    result = settle(result.shard_map, nodes, config, result.leaders)
    rows.append(
        _report(
            "node down",
            result.shard_map,
            nodes,
            config,
            result.leaders,
            time.perf_counter() - t,
            result.decisions["MoveReplica"],
            held,
        )
    )

    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        shape = f"{args.shards} shards x {args.replicas} replicas"
        print(f"{args.nodes} nodes, {args.zones} zones, {shape}")
        for row in rows:
            print("  " + ", ".join(f"{k} {v}" for k, v in row.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
