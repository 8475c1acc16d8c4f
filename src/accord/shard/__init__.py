"""Sharding: keys onto slots, slots onto shards (Raft groups), and where each shard's
replicas and leader live.

- `slots`: the fixed ring of hash slots, hash tags, slot ranges;
- `shardmap`: `ShardMap`, the versioned assignment of slot ranges to shards and of
  shards to nodes, and its edits (split, replica changes);
- `placement`: the placement driver, pure: cluster view in, decisions out.

Pure: no I/O anywhere in this package.
"""

from accord.shard.placement import (
    AddReplica,
    Decision,
    MoveReplica,
    NodeInfo,
    PlacementConfig,
    ShardLoad,
    Split,
    TransferLeader,
    place,
    plan,
)
from accord.shard.shardmap import Shard, ShardMap
from accord.shard.slots import SlotRange, hash_part, slot_of

__all__ = [
    "AddReplica",
    "Decision",
    "MoveReplica",
    "NodeInfo",
    "PlacementConfig",
    "Shard",
    "ShardLoad",
    "ShardMap",
    "SlotRange",
    "Split",
    "TransferLeader",
    "hash_part",
    "place",
    "plan",
    "slot_of",
]
