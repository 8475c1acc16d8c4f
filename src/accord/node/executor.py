"""Carrying out the placement driver's decisions on a sharded cluster of real nodes.

Theory of operation
-------------------
Two jobs, run on every node by its `ShardHost`:

1. **Placement** (the metadata leader only, every `PLACEMENT_INTERVAL_S`). Each node
   registers itself in the metadata with its labels (`node`); the leader probes every
   other node's `/health` and marks one `down` once it has not answered for
   `node_down_after_s`, `leaving` once it is no longer a member of the cluster, and
   `up` again when it answers. Then it runs `placement.plan` over the map, the nodes
   and the moves under way, and records each move decided (`move`), and each
   leadership transfer as a new order of the shard's replicas (`members`: the first
   is the preferred leader, whom the shard's leader hands over to). That is all it
   does: a decision is in the replicated metadata the moment it commits, so a new
   metadata leader sees it and plans around it, and nothing is decided twice (the
   metadata refuses a second move of a shard, and a command decided against an old
   map version).
2. **Moves** (each shard's leader, every `MOVE_TICK_S`). A recorded move of a shard
   this node leads is carried out by a `Mover` resumed from the shard group's
   configuration: the target joins as a learner, catches up, leadership leaves the
   source if it has it, one joint change promotes the target and removes the source,
   then the metadata gets the shard's members and the move's end. Every step but the
   last two is a membership change of the shard's own group, so the group's
   configuration and the metadata's mark of a move being given up (`abort`, recorded
   before its learner is removed) are the whole truth about a move's progress: when
   the shard's leadership changes (the hand-over does that on purpose), the new
   leader resumes the move from them. The target hosts the group (empty, learning the log or a
   snapshot from the leader) as soon as it applies the `move` record.

Metadata commands go to the metadata group's leader: proposed here when this node
leads group 0, else through `RemoteMetadata` (the HTTP API's call to that node, with
this node's credentials). An answer that does not come is not an error: the mover
asks again every `RETRY_TICKS`, and asking twice is harmless: `members` is accepted
only as the recorded move's outcome (or a new order), `abort` and `moved` name the
move they are about, and `moved` only once the map shows it done or given up.
Answers are fed back on the next tick, never inside the one that asked, so no
refusal can loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from accord.errors import AccordError
from accord.invariant import InvariantError
from accord.node.members import NodeState
from accord.node.registry import ShardCommand, encode
from accord.node.runtime import Node
from accord.node.service import KVService, RaftGroup
from accord.shard.metadata import MetadataResult, encode_metadata_command
from accord.shard.mover import (
    AWAITED,
    RETRY_TICKS,
    AddLearner,
    HandOver,
    Instruction,
    Membership,
    Mover,
    Progress,
    ProposeMetadata,
    Recorded,
    RemoveLearner,
    Swap,
    Tick,
    conf_change,
)
from accord.shard.placement import (
    DOWN,
    LEAVING,
    UP,
    AddReplica,
    Move,
    MoveReplica,
    NodeInfo,
    PlacementConfig,
    TransferLeader,
    plan,
)

log = logging.getLogger("accord.shards")

PLACEMENT_INTERVAL_S = 1.0
"""How often the metadata leader probes the nodes and plans a round."""
MOVE_TICK_S = 0.05
"""A mover's tick: its budgets (`mover.CATCH_UP_TICKS`, `RETRY_TICKS`) count these."""
PROBE_TIMEOUT_S = 1.0
"""How long a health probe of a node may take before it counts as unanswered."""

VERSIONED_OPS = frozenset({"split", "members", "move"})
"""Metadata commands that name the map version they were decided against (first)."""


class RemoteMetadata(Protocol):
    """What the executor needs from other nodes (the HTTP API implements it)."""

    async def propose_metadata(self, leader: int, op: str, args: list[Any]) -> MetadataResult:
        """Propose a metadata command through `leader`, the metadata group's leader."""
        ...

    async def probe(self, node: int) -> bool:
        """Whether `node` answers its health check within `PROBE_TIMEOUT_S`."""
        ...


def voters(group: RaftGroup) -> frozenset[int]:
    """The voters of `group`'s configuration, both sides of a joint one."""
    conf = group.core.conf
    return frozenset(conf.voters | conf.voters_outgoing)


def ordered_members(current: tuple[int, ...], voters: list[int], move: Move) -> list[int]:
    """The shard's voters after `move`, in the map's order with the target in the
    source's place: the first voter is the preferred leader, so the leaderships the
    placement driver gave the source pass to the target and the balance holds."""
    source = move.source if isinstance(move, MoveReplica) else None
    order = [move.target if node == source else node for node in current]
    kept = [node for node in order if node in voters]
    return kept + sorted(set(voters) - set(kept))


class ShardExecutor:
    def __init__(
        self,
        node: Node,
        state: NodeState,
        services: Mapping[int, KVService],
        *,
        replicas: int,
        labels: tuple[tuple[str, str], ...],
        down_after_s: float,
    ) -> None:
        self.node = node
        self.state = state
        self.services = services
        self.replicas = replicas
        self.labels = labels
        self.down_after_s = down_after_s
        self.remote: RemoteMetadata | None = None
        """Set by the HTTP API; without it only the metadata leader can propose."""
        self.movers: dict[int, Mover] = {}
        """Shard -> the mover this node runs for it (only while it leads the shard)."""
        self._answers: list[tuple[int, Mover, str, bool]] = []
        """Metadata answers to feed to their movers on the next tick."""
        self._waiting: dict[int, int] = {}
        """Shard -> ticks since its finished mover asked for `moved` (asked again
        every RETRY_TICKS until the metadata shows the move's end)."""
        self._unanswered_since: dict[int, float] = {}
        """Node -> when the probes of it began to fail (this metadata leader's view)."""
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- proposing metadata commands ------------------------------------------------------
    async def propose(self, op: str, *args: Any) -> MetadataResult | None:
        """Propose a metadata command to the metadata leader; None if no answer came
        (no leader known, unreachable, timed out: the outcome is unknown)."""
        if op in VERSIONED_OPS:
            args = (self.state.shards.version, *args)
        try:
            if self.node.is_leader:
                command = ShardCommand(encode_metadata_command(op, *args))
                result: MetadataResult = await self.node.propose(encode(command))
                return result
            leader = self.node.leader_id
            if not leader or self.remote is None:
                return None
            return await self.remote.propose_metadata(leader, op, list(args))
        except AccordError as exc:
            log.debug("metadata command %s not answered: %s", op, exc)
            return None

    def _spawn(self, work: Awaitable[Any]) -> None:
        async def quietly() -> None:
            with contextlib.suppress(AccordError, InvariantError):
                await work

        task = asyncio.create_task(quietly())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- placement -----------------------------------------------------------------------
    async def place(self) -> None:
        """One placement round: register this node; on the metadata leader, update
        the nodes' states and record the moves the driver decides."""
        metadata = self.state.shards
        if metadata.map is None:
            return
        await self._register_self()
        if not self.node.is_leader:
            self._unanswered_since.clear()  # a later term starts its own count
            return
        try:  # a new leader plans once it has applied what its predecessors committed
            await self.node.read_barrier()
        except AccordError:
            return
        await self._update_node_states()
        shard_map = metadata.map
        assert shard_map is not None
        decisions = plan(
            shard_map,
            self._nodes(),
            PlacementConfig(replicas=self.replicas),
            # The map's first voter is the preferred leader, and the shard leaders hand
            # over to it (ShardHost): balancing those balances the leaders.
            leaders={shard.id: shard.replicas[0] for shard in shard_map},
            in_flight=tuple(metadata.moves.values()),
        )
        for decision in decisions:
            if isinstance(decision, TransferLeader):
                await self._prefer(decision)
            elif isinstance(decision, AddReplica | MoveReplica):
                source = decision.source if isinstance(decision, MoveReplica) else 0
                result = await self.propose("move", decision.shard, source, decision.target)
                if result is not None and result.ok:
                    log.info(
                        "shard %d: moving a replica from %s to node %d (%s)",
                        decision.shard,
                        f"node {source}" if source else "nowhere",
                        decision.target,
                        decision.reason,
                    )

    async def _prefer(self, transfer: TransferLeader) -> None:
        """Make `transfer.target` the shard's preferred leader: first in the map's
        replicas (the same members, in another order)."""
        shard_map = self.state.shards.map
        if shard_map is None or transfer.shard not in shard_map:
            return
        shard = shard_map.shard(transfer.shard)
        if transfer.target not in shard.replicas:
            return  # a learner cannot lead
        order = [transfer.target, *(n for n in shard.replicas if n != transfer.target)]
        result = await self.propose("members", shard.id, order, list(shard.learners))
        if result is not None and result.ok:
            log.info(
                "shard %d: preferred leader is now node %d (%s)",
                shard.id,
                transfer.target,
                transfer.reason,
            )

    def _nodes(self) -> list[NodeInfo]:
        """The nodes the driver places over: those registered, and a placeholder
        (up, no labels) for a node the map names that has not registered yet, so
        that its replicas are not repaired away before it is found down."""
        metadata = self.state.shards
        nodes = dict(metadata.nodes)
        assert metadata.map is not None
        for shard in metadata.map:
            for member in shard.members():
                nodes.setdefault(member, NodeInfo(member, (), UP))
        return list(nodes.values())

    async def _register_self(self) -> None:
        """Register, or correct the labels; the state is the metadata leader's to
        judge (a node that cannot be reached from it is down, whatever it thinks)."""
        me = self.node.host.node_id
        known = self.state.shards.nodes.get(me)
        if known is None or known.labels != self.labels:
            labels = [list(pair) for pair in self.labels]
            state = known.state if known is not None else UP
            result = await self.propose("node", me, labels, state)
            if result is not None and result.ok:
                log.info("registered in the shard metadata (labels %s)", dict(self.labels))

    async def _update_node_states(self) -> None:
        metadata, me = self.state.shards, self.node.host.node_id
        assert metadata.map is not None
        members = set(self.state.members)
        candidates = (set(metadata.nodes) | {m for s in metadata.map for m in s.members()}) - {me}
        probed = sorted(n for n in candidates if n in members)
        answers = await asyncio.gather(*(self._probe(n) for n in probed))
        now = self.node.clock.monotonic()
        for node, answered in zip(probed, answers, strict=True):
            known = metadata.nodes.get(node, NodeInfo(node))
            if answered:
                self._unanswered_since.pop(node, None)
                if known.state == DOWN:
                    await self._set_state(known, UP, "answers again")
                continue
            since = self._unanswered_since.setdefault(node, now)
            if known.state == UP and now - since >= self.down_after_s:
                await self._set_state(known, DOWN, f"unanswered for {now - since:.0f} s")
        for node in sorted(candidates - members):
            known = metadata.nodes.get(node, NodeInfo(node))
            if known.state != LEAVING:
                await self._set_state(known, LEAVING, "no longer a member of the cluster")

    async def _probe(self, node: int) -> bool:
        if self.remote is None:
            return True  # no way to tell: never mark a node down on no evidence
        try:
            return await asyncio.wait_for(self.remote.probe(node), PROBE_TIMEOUT_S)
        except (TimeoutError, OSError, AccordError):
            return False

    async def _set_state(self, known: NodeInfo, state: str, why: str) -> None:
        labels = [list(pair) for pair in known.labels]
        result = await self.propose("node", known.id, labels, state)
        if result is not None and result.ok:
            log.warning("node %d is %s: %s", known.id, state, why)

    # --- moves ----------------------------------------------------------------------------
    def drive_moves(self) -> None:
        """One tick of every move on a shard this node leads."""
        moves = self.state.shards.moves
        answers, self._answers = self._answers, []
        for shard, asker, op, ok in answers:
            if self.movers.get(shard) is asker and AWAITED.get(asker.state) == op:
                follow_up = asker.step(Recorded(ok))
                if ok:  # a refusal is asked again by the mover's own repeats
                    self._carry_out(shard, asker, follow_up)
        for shard in [s for s in self.movers if s not in moves]:
            del self.movers[shard]  # its end is recorded
            self._waiting.pop(shard, None)
        for shard, move in moves.items():
            service = self.services.get(shard)
            if service is None or not service.group.is_leader:
                self.movers.pop(shard, None)  # its leader (another node) runs it
                continue
            core = service.group.core
            mover = self.movers.get(shard)
            if mover is None or (mover.source, mover.target) != _ends(move):
                resumed = self.movers[shard] = Mover(move)
                aborting = shard in self.state.shards.aborting
                self._carry_out(shard, resumed, resumed.resume(Membership.of(core.conf), aborting))
                continue
            if mover.finished:
                self._ask_for_end_again(shard, mover)
                continue
            status = core.status()
            target = status.progress.get(mover.target)
            events = (
                Membership.of(status.conf),
                Progress(status.leader, target.match if target else 0, status.commit),
                Tick(),
            )
            for event in events:
                self._carry_out(shard, mover, mover.step(event))
                if mover.finished:
                    break

    def _ask_for_end_again(self, shard: int, mover: Mover) -> None:
        waited = self._waiting.get(shard, 0) + 1
        self._waiting[shard] = waited
        if waited % RETRY_TICKS == 0:
            self._spawn(self.propose("moved", *mover.ends()))

    def _carry_out(self, shard: int, mover: Mover, instructions: list[Instruction]) -> None:
        replica = self.services[shard].group
        for instruction in instructions:
            if isinstance(instruction, ProposeMetadata):
                self._spawn(self._record(shard, mover, instruction))
            elif isinstance(instruction, RemoveLearner) and instruction.node in voters(replica):
                continue  # never a voter: the mover goes forward once it sees it one
            elif isinstance(instruction, AddLearner | Swap | RemoveLearner):
                log.info("shard %d: %s", shard, instruction)
                self._spawn(replica.propose_conf_change(conf_change(instruction)))
            elif isinstance(instruction, HandOver):
                log.info("shard %d: handing leadership to %d for a move", shard, instruction.to)
                self._spawn(replica.transfer_leadership(instruction.to))
        if mover.finished and mover.reason:
            log.warning("shard %d: move to node %d given up: %s", shard, mover.target, mover.reason)

    async def _record(self, shard: int, mover: Mover, instruction: ProposeMetadata) -> None:
        args: tuple[Any, ...] = instruction.args
        shard_map = self.state.shards.map
        if instruction.op == "members" and shard_map is not None and shard in shard_map:
            move = self.state.shards.moves.get(shard)
            if move is not None:
                current = shard_map.shard(shard).replicas
                args = (shard, ordered_members(current, list(args[1]), move), args[2])
        result = await self.propose(instruction.op, *args)
        if result is not None:
            if not result.ok:
                log.info(
                    "shard %d: %s refused: %s %s",
                    shard,
                    instruction.op,
                    result.error,
                    result.detail,
                )
            self._answers.append((shard, mover, instruction.op, result.ok))


def _ends(move: Move) -> tuple[int | None, int]:
    return (move.source if isinstance(move, MoveReplica) else None, move.target)


async def every(interval_s: float, work: Callable[[], Awaitable[None]]) -> None:
    """Run `work` every `interval_s` seconds, for ever; an error is logged, not fatal
    (the next round starts from the replicated state again)."""
    while True:
        try:
            await work()
        except AccordError as exc:
            log.warning("shard executor: %s", exc)
        await asyncio.sleep(interval_s)
