"""Bounds of sharding: the slot ring, shard maps and the placement driver's pace;
named with units last.

`SLOT_COUNT` is fixed for the life of a cluster (every key's slot depends on it); the
rest bound what one shard map or one round of placement may hold or do.
"""

from __future__ import annotations

SLOT_COUNT = 1 << 20
"""Slots on the ring (1,048,576): the finest unit a split or a move can take, and a
bound on the number of shards. Redis Cluster's 16,384 fits its gossip of slot
bitmaps; Accord's map is replicated and looked up by range, so a larger ring costs
nothing and leaves room for a hundred thousand shards and more."""

SHARDS_MAX = 1_000_000
"""Shards in one map (each owns at least one slot)."""

SHARDS_PER_CLUSTER_MAX = 1024
"""Shards a cluster may start with (`shards`, `accord up --shards`): every initial
node hosts a replica of up to all of them, a Raft group each."""

SHARD_REPLICAS_MAX = 7
"""Voters of one shard (`--replicas`): a quorum of more costs every write more
round trips than it buys in durability."""

SHARD_RANGES_MAX = 64
"""Slot ranges one shard may own: a map stays small to send and to search."""

LABELS_MAX = 16
"""Labels (`zone=`, `host=`, ...) on one node."""

LABEL_BYTES_MAX = 128
"""Bytes of one label's name or value."""

MOVES_IN_FLIGHT_MAX = 4
"""Replica moves the placement driver keeps under way at once, cluster-wide, by
default (`PlacementConfig.moves_in_flight_max`): each is a snapshot sent and a
membership change, so rebalancing cannot starve foreground traffic."""

NODE_MOVES_IN_FLIGHT_MAX = 1
"""Moves under way at once that add a replica to, or take one from, one node."""

LEADER_TRANSFERS_PER_ROUND_MAX = 16
"""Leadership transfers the driver asks for in one round."""

SPLITS_PER_ROUND_MAX = 4
"""Splits the driver asks for in one round (a split moves no data, but each is a
new Raft group on every replica of the shard)."""

METADATA_NODES_MAX = 100_000
"""Nodes the metadata group keeps labels and states for."""

METADATA_COMMAND_BYTES_MAX = 64 << 20
"""One metadata command (a bootstrap carries a whole shard map); a larger one is
refused as `bad_command` before it is decoded."""

NODE_DOWN_AFTER_S = 30.0
"""Default time a node may go unanswered (health probes from the metadata leader)
before it is marked down and its replicas are repaired on other nodes: long enough
that a restart or a short partition moves nothing, short enough that a dead node's
shards are back to full strength within a minute."""
NODE_DOWN_AFTER_S_MIN = 1.0
"""The shortest `node_down_after_s`: a few health probes (one a second) must fail."""
NODE_DOWN_AFTER_S_MAX = 86_400.0
"""The longest `node_down_after_s`: a day, for operators who repair by hand."""
