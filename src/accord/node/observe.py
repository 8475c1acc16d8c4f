"""What a node reports to its metrics and readiness checks: plain copies of its
state, taken when someone asks (a scrape, a `/ready` probe), never on the hot path."""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Mapping

from accord.node.limits import READY_APPLY_LAG_MAX
from accord.node.router import ShardedKV
from accord.node.runtime import Node
from accord.observability.metrics import NodeSample
from accord.raft import MessageType, Role

_TYPE_NAMES = {t.value: t.name.lower() for t in MessageType}


def _by_type(counts: list[int]) -> dict[str, int]:
    return {_TYPE_NAMES[i]: n for i, n in enumerate(counts) if i in _TYPE_NAMES}


def sample_node(
    node: Node, service: ShardedKV, name: str, connections: Callable[[], int]
) -> NodeSample:
    """The node's state; the key-value figures are those of every store it holds (on a
    sharded cluster, each hosted shard's: keys and leases summed, the highest revision,
    since a lease lives on every shard its count is that of one shard)."""
    core = node.core
    raft_log = core.log
    follower_match: dict[int, int] = {}
    if core.role == Role.LEADER:
        follower_match = {n: p.match for n, p in core.status().progress.items() if n != core.id}
    last_index = raft_log.last_index()
    stats = node.stats
    machines = service.machines() or [service.machine]
    return NodeSample(
        node_id=core.id,
        name=name,
        term=core.term,
        role=core.role.name.lower(),
        leader=core.leader,
        commit=raft_log.committed,
        applied=node.applied_index,
        last_index=last_index,
        pending_proposals=node.pending_proposals,
        proposals_failed=stats.proposals_failed,
        leader_changes=stats.leader_changes,
        snapshots_taken=stats.snapshots_taken,
        snapshots_installed=stats.snapshots_installed,
        messages_sent=_by_type(stats.messages_sent),
        messages_received=_by_type(stats.messages_received),
        follower_match=follower_match,
        follower_lag_seconds=lag_seconds(node, follower_match, last_index),
        keys=sum(m.keys_count for m in machines),
        revision=max(m.revision for m in machines),
        leases=max(m.leases_count for m in machines),
        watchers=len(service.primary.watches)
        + sum(len(shard.watches) for shard in service.shards.services.values()),
        client_connections=connections(),
    )


def lag_seconds(node: Node, match: Mapping[int, int], last_index: int) -> dict[int, float]:
    """For each follower, how long ago the leader appended the first entry the
    follower lacks (0 when it has everything)."""
    times = list(node.append_times)
    indexes = [index for index, _ in times]
    now = time.monotonic()
    lag: dict[int, float] = {}
    for follower, matched in match.items():
        if matched >= last_index or not times:
            lag[follower] = 0.0
            continue
        # The first Ready whose appended entries go beyond what the follower holds.
        at = min(bisect.bisect_right(indexes, matched), len(times) - 1)
        lag[follower] = now - times[at][1]
    return lag


def readiness(node: Node) -> tuple[bool, str, str]:
    """(ready, code, reason): ready when this member knows a leader and has applied
    (nearly) everything it knows to be committed."""
    core = node.core
    if node.fatal.is_set():
        return False, "failed", "the node failed and is stopping"
    if not core.leader or core.role in (Role.PRE_CANDIDATE, Role.CANDIDATE):
        return False, "no_leader", "this member knows no leader"
    lag = core.log.committed - node.applied_index
    if lag > READY_APPLY_LAG_MAX:
        return False, "catching_up", f"applied index trails the commit index by {lag} entries"
    return True, "ready", "ready"
