"""This node's shard groups: created as the shard map gives them to it, each with a
key-value state machine and a service of its own.

Theory of operation
-------------------
A cluster started with `shards = S` (S > 1) keeps its keys in S Raft groups, the
shards, and uses group 0, the primary group, as the metadata group: the member
registry, the auth store and the shard map (`NodeState`). Nothing about which
groups exist is decided by one node's memory:

1. The primary group's leader proposes the first map once (`bootstrap`): the ring
   cut evenly into S shards, voters placed by the placement driver over the voters
   of the primary group. Every node's configuration names the same S, and if two
   leaders race, the second bootstrap is refused: the first map stays.
2. Every node, after each change to the metadata it applied (and every
   `RECONCILE_INTERVAL_S` anyway), creates the groups of the shards it is a member
   of, or the target of a move of, and does not host yet. A founder (a voter of the
   shard in the bootstrap map, while the shard still has its first members) creates
   its group with the founders as its first configuration; any other member starts
   it empty and learns the log from the leader, so no two replicas can ever hold
   different entries at index 1.
   A group this node hosts but no longer needs (a move took its replica away, or
   gave up on adding it) is stopped and deleted, after a read barrier on the
   metadata group: the map only says a node is no longer a member once the shard
   group's own configuration has removed it, and the barrier makes sure this node's
   view of the map is not older than the moves that concern it.
3. Recovery is the same step: after a restart the map is back from the primary
   group's snapshot and log, and creating a group the storage holds recovers it.
4. Leaders follow the map: a shard's first voter is its preferred leader (the
   placement driver spreads them over the nodes). A leader that is not the
   preferred one hands over to it when the preferred voter has its whole log (so
   a node that is down or behind is never waited for), at most every
   `HANDOVER_RETRY_S` per shard, and not while a move of the shard is under way
   (the move hands leadership off its source on purpose).
5. The placement driver runs on the metadata leader and moves replicas when nodes
   join, leave or die; each move is carried out by the shard's leader
   (`accord.node.executor`).

A shard's state machine (`ShardState`) is a `KVStateMachine` behind the command
registry (kind KV only); membership addresses stay in the primary group, so a shard
group's configuration changes touch nothing but Raft.

Each shard has its own `KVService` (proposals, ReadIndex reads, watches, lease
housekeeping on its leader). `Router` (`accord.node.router`) picks the service for
a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from accord.errors import AccordError
from accord.kv import KVStateMachine, SnapshotJob
from accord.kv.types import Event
from accord.node.executor import MOVE_TICK_S, PLACEMENT_INTERVAL_S, ShardExecutor, every
from accord.node.members import NodeState
from accord.node.registry import Kind, Registry, ShardCommand, encode
from accord.node.replica import Replica
from accord.node.runtime import Node
from accord.node.service import KVService
from accord.raft import ConfChange
from accord.shard import ShardMap
from accord.shard.limits import NODE_DOWN_AFTER_S
from accord.shard.metadata import encode_metadata_command
from accord.shard.placement import UP, NodeInfo, PlacementConfig, place

log = logging.getLogger("accord.shards")

RECONCILE_INTERVAL_S = 0.5
"""How often a node compares the groups it hosts with the map even when nothing
changed (a failed creation or bootstrap is tried again then)."""

HANDOVER_RETRY_S = 5.0
"""How long a shard leader waits before it asks its preferred leader to take over
again, when the last hand-over did not happen."""


class ShardState:
    """The state machine of one shard group: the key-value store, nothing else."""

    def __init__(self, kv: KVStateMachine) -> None:
        self.kv = kv
        self.commands = Registry({Kind.KV: kv.apply}, kv.refuse)

    def apply(self, index: int, data: bytes) -> tuple[Any, list[Event]]:
        return self.commands.apply(index, data)

    def apply_conf_change(self, change: ConfChange) -> None:
        """Nothing to record: members' addresses live in the primary group."""

    def snapshot_job(self) -> SnapshotJob:
        return self.kv.snapshot_job()

    def restore(self, data: bytes) -> None:
        self.kv.restore(data)


def initial_map(shards: int, replicas: int, voters: frozenset[int]) -> ShardMap:
    """Version 1 for `shards` shards (ids 1..shards) over `voters`, `replicas` each
    (at most one per node), leaders spread by the placement driver."""
    nodes = [NodeInfo(node, (), UP) for node in sorted(voters)]
    config = PlacementConfig(replicas=min(replicas, len(nodes)))
    return ShardMap.initial(shards, place(range(1, shards + 1), nodes, config))


class ShardHost:
    def __init__(
        self,
        node: Node,
        state: NodeState,
        *,
        shards: int,
        replicas: int,
        make_machine: Callable[[], KVStateMachine],
        make_service: Callable[[Replica, KVStateMachine], KVService],
        snapshot_entries: int,
        labels: tuple[tuple[str, str], ...] = (),
        down_after_s: float = NODE_DOWN_AFTER_S,
    ) -> None:
        self.node = node
        self.state = state
        self.shards = shards
        """Shards the map starts with (1: no map, the primary group holds the keys)."""
        self.replicas = replicas
        self._make_machine = make_machine
        self._make_service = make_service
        self._snapshot_entries = snapshot_entries
        self.services: dict[int, KVService] = {}
        """Shard id -> the service of its group on this node."""
        self._changed = asyncio.Event()
        state.on_shards_changed = self._changed.set
        state.lease_tables = self.lease_tables
        self.executor = ShardExecutor(
            node,
            state,
            self.services,
            replicas=replicas,
            labels=labels,
            down_after_s=down_after_s,
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._handed_over_at: dict[int, float] = {}
        """Shard -> when this node last asked its preferred leader to take over."""

    def lease_tables(self) -> list[KVStateMachine]:
        """The stores holding this node's keys and leases: the primary group's, or
        each hosted shard's once there is a map."""
        if self.state.shards.map is None:
            return [self.state.kv]
        return [service.machine for service in self.services.values()]

    def start(self) -> None:
        # On a cluster of one group (no map) the executor's rounds return at once.
        loops = [
            self._run(),
            every(PLACEMENT_INTERVAL_S, self.executor.place),
            every(MOVE_TICK_S, self._drive_moves),
        ]
        for loop in loops:
            task = asyncio.create_task(loop, name="accord-shards")
            self.node.watch_task(task)
            self._tasks.append(task)

    async def _drive_moves(self) -> None:
        self.executor.drive_moves()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.executor.stop()
        for service in self.services.values():
            await service.stop()

    async def _run(self) -> None:
        while True:
            self._changed.clear()
            await self._bootstrap_if_due()
            try:
                await self.reconcile()
            except AccordError as exc:  # e.g. the storage's group limit: try again later
                log.warning("cannot host every shard of the map yet: %s", exc)
            self.hand_over_to_preferred()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), RECONCILE_INTERVAL_S)

    async def _bootstrap_if_due(self) -> None:
        if self.shards <= 1 or self.state.shards.map is not None or not self.node.is_leader:
            return
        voters = self.node.core.conf.all_voters()
        shard_map = initial_map(self.shards, self.replicas, voters)
        command = ShardCommand(encode_metadata_command("bootstrap", shard_map.to_doc()))
        try:
            result = await self.node.propose(encode(command))
        except AccordError as exc:  # not the leader any more, or no quorum yet
            log.info("shard map bootstrap not committed (%s); trying again", exc)
            return
        if result.ok:
            log.info(
                "shard map bootstrapped: %d shards, %d replicas each",
                self.shards,
                min(self.replicas, len(voters)),
            )

    def needed(self) -> set[int]:
        """The shards this node must host: those it is a member of, or the target of
        a move of."""
        metadata, me = self.state.shards, self.node.host.node_id
        if metadata.map is None:
            return set()
        needed = {shard.id for shard in metadata.map if me in shard.members()}
        return needed | {move.shard for move in metadata.moves.values() if move.target == me}

    async def reconcile(self) -> None:
        """Host every shard `needed` and not hosted; drop every one hosted and not."""
        metadata, me = self.state.shards, self.node.host.node_id
        missing = self.needed() - self.services.keys()
        if any(me in metadata.founders.get(shard, ()) for shard in missing):
            # A founder starts the group with its first configuration: only if the
            # shard still has its first members, as the current metadata says (a
            # restarted node may have replayed only an older map).
            if not await self._barrier():
                return
            missing = self.needed() - self.services.keys()
        for shard in sorted(missing):
            founders = metadata.founders.get(shard, ())
            await self._host(shard, frozenset(founders) if me in founders else frozenset())
        if self._unneeded() and await self._barrier():
            for shard in sorted(self._unneeded()):
                await self._drop(shard)

    async def _barrier(self) -> bool:
        """A read barrier on the metadata group: this node's map is then not older
        than the moves that concern it. False without a quorum (try later)."""
        try:
            await self.node.read_barrier()
        except AccordError:
            return False
        return True

    def _unneeded(self) -> set[int]:
        """Groups hosted here that no shard needs any more, and whose own
        configuration no longer counts this node among its (incoming) voters: a
        replica that may be part of a quorum is never deleted, whatever the map says
        (a replica moved away stops being one when the swap commits)."""
        me = self.node.host.node_id
        return {
            shard
            for shard, service in self.services.items()
            if shard not in self.needed() and me not in service.group.core.conf.voters
        }

    async def _drop(self, shard: int) -> None:
        service = self.services.pop(shard, None)
        self.executor.movers.pop(shard, None)
        if service is not None:
            await service.stop()
        await self.node.destroy_group(shard)
        log.info("shard %d: no longer a replica here; its group is deleted", shard)

    def hand_over_to_preferred(self) -> None:
        shard_map = self.state.shards.map
        if shard_map is None:
            return
        now = self.node.clock.monotonic()
        for shard_id, service in self.services.items():
            group = service.group
            if not group.is_leader or shard_id not in shard_map:
                continue
            if shard_id in self.state.shards.moves:
                continue  # the move decides who leads (it hands off its source)
            preferred = shard_map.shard(shard_id).replicas[0]
            core = group.core
            progress = core.status().progress.get(preferred)
            caught_up = progress is not None and progress.match == core.log.last_index()
            due = now - self._handed_over_at.get(shard_id, -HANDOVER_RETRY_S) >= HANDOVER_RETRY_S
            if preferred != core.id and caught_up and due:
                self._handed_over_at[shard_id] = now
                with contextlib.suppress(AccordError):  # lost the lead, or a member left
                    core.transfer_leadership(preferred)
                    self.node.wake()
                    log.info(
                        "shard %d: handing leadership to its preferred node %d", shard_id, preferred
                    )

    async def _host(self, shard: int, bootstrap_voters: frozenset[int]) -> None:
        config = dataclasses.replace(
            self.node.core.config, group=shard, bootstrap_voters=bootstrap_voters
        )
        machine = self._make_machine()
        holder: list[KVService] = []
        # The Ready loop may apply a recovered group's entries before this coroutine
        # resumes with its replica: until the service exists no watch can be open
        # (and a watch opened later catches up from the store), so nothing is lost.
        replica = await self.node.create_group(
            config,
            ShardState(machine),
            snapshot_entries=self._snapshot_entries,
            on_events=lambda events: holder[0].on_events(events) if holder else None,
            on_restore=lambda: holder[0].resync_watches() if holder else None,
        )
        service = self._make_service(replica, machine)
        holder.append(service)
        service.start()
        self.services[shard] = service
        log.info("hosting shard %d (%s)", shard, "founder" if bootstrap_voters else "joining")
