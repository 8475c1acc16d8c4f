"""Replica moves in the simulator: the real `Mover` driving real membership changes.

Now and then (`move_rate`, drawn per seed) a group with a free node (one that is not
a member: the random membership changes remove some, and when there is none a voter
is drained first) moves a random voter's replica to it, the way the placement
driver's executor does: the move is recorded in a `ShardMetadata` (shard id =
group + 1), the target joins as a learner, catches up, and one joint change
promotes it and removes the source, with a hand-over first when the source leads.
Crashes, partitions and the other membership changes go on around it, and every
safety check and the history's linearizability must hold as before. A move is
driven at most once per tick: the leader's configuration and progress in, the mover's
instructions out, to whichever node leads the group then.

The metadata here is this module's own (not replicated): what is under test is the
shard group's safety through the move's steps, and the mover's handling of
leaders that change under it.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from accord.raft import ConfChange, ConfChangeOp
from accord.shard import Shard, ShardMap, SlotRange
from accord.shard.limits import SLOT_COUNT
from accord.shard.metadata import ShardMetadata, encode_metadata_command
from accord.shard.mover import (
    AWAITED,
    HandOver,
    Instruction,
    Membership,
    Mover,
    MoveState,
    Progress,
    ProposeMetadata,
    Recorded,
    RemoveLearner,
    Tick,
    conf_change,
)
from accord.shard.placement import MoveReplica

if TYPE_CHECKING:
    from accord.sim.runner import Simulation

MOVE_RATE_CHOICES = (0.0, 0.0, 0.002, 0.006)
"""Chance per event that a move starts, one drawn per seed."""
CATCH_UP_TICKS = 200
"""A simulated learner's catch-up budget (ticks), shorter than a node's default."""


class SimMoves:
    def __init__(self, sim: Simulation, rng: random.Random, rate: float) -> None:
        self.sim = sim
        self.rng = rng
        self.rate = rate
        self.movers: dict[int, Mover] = {}
        """Group -> its move under way."""
        self.done = 0
        self.aborted = 0
        self._led_by: dict[int, int] = {}
        """Group -> the leader its mover was last driven through."""
        self._driven_at = 0
        ids = tuple(sorted(sim.nodes))
        groups = sim.params.groups
        bounds = [i * SLOT_COUNT // groups for i in range(groups + 1)]
        shards = tuple(
            Shard(g + 1, (SlotRange(bounds[g], bounds[g + 1]),), ids) for g in range(groups)
        )
        self.metadata = ShardMetadata()
        self.metadata.apply(encode_metadata_command("bootstrap", ShardMap(1, shards).to_doc()))

    def maybe_start(self) -> None:
        if self.rate and not self.sim.healing and self.rng.random() < self.rate:
            # A group with a free node first (one drained earlier), so that with many
            # groups a drain is followed by its move rather than by other drains.
            ready = [g for g in range(self.sim.params.groups) if self._has_free_node(g)]
            self._start(
                self.rng.choice(ready) if ready else self.rng.randrange(self.sim.params.groups)
            )

    def _has_free_node(self, group: int) -> bool:
        leader = self.sim._leader(group)
        if group in self.movers or leader is None:
            return False
        members = self.sim.nodes[leader].replica(group).core.conf.members()
        return any(n not in members for n in self.sim.nodes)

    def _start(self, group: int) -> None:
        leader = self.sim._leader(group)
        if group in self.movers or leader is None:
            return
        conf = self.sim.nodes[leader].replica(group).core.conf
        free = [n for n in sorted(self.sim.nodes) if n not in conf.members()]
        if conf.joint or len(conf.voters) < 2:
            return
        if not free:
            # Every node holds the group: drain one (as the placement driver's executor
            # does for a leaving node), so a later move has somewhere to go.
            if len(conf.voters) >= 3:
                drained = self.rng.choice(sorted(conf.voters))
                self.sim._note(f"group {group}: drain {drained} to make room for a move")
                self.sim.nodes[leader].propose_conf_change(
                    group, ConfChange(((ConfChangeOp.REMOVE, drained),))
                )
            return
        # The random membership changes edit groups behind the metadata's back: this
        # module's own metadata is told what the group is now (a real one refuses
        # members that are not a move's outcome).
        shard_map = self.metadata.map
        assert shard_map is not None
        self.metadata.map = shard_map.with_members(
            group + 1, tuple(sorted(conf.voters)), tuple(sorted(conf.learners))
        )
        source, target = self.rng.choice(sorted(conf.voters)), self.rng.choice(free)
        mover = Mover(MoveReplica(group + 1, source, target, "simulated"), CATCH_UP_TICKS)
        self.movers[group] = mover
        self._led_by[group] = leader
        self.sim.faults += 1
        self.sim._note(f"group {group}: move {source} -> {target} starts")
        self._carry_out(group, mover.start())

    def drive(self, now: int) -> None:
        """At most once a tick of simulated time, after an event (never an event of
        its own, which would take from the seed's budget of events): feed each move
        what its group's leader shows."""
        if now - self._driven_at < self.sim.params.tick_base:
            return
        self._driven_at = now
        for group in list(self.movers):
            mover = self._take_over(group)
            for event in self._observe(group, mover.target):
                self._carry_out(group, mover.step(event))
                if mover.finished:
                    break
            if mover.finished:
                del self.movers[group]
                outcome = "aborted: " + mover.reason if mover.reason else "done"
                self.sim._note(f"group {group}: move {mover.source} -> {mover.target} {outcome}")
                self.done += not mover.reason
                self.aborted += bool(mover.reason)

    def _take_over(self, group: int) -> Mover:
        """The group's mover; when the group has a new leader, a new one resumed from
        the configuration and the metadata, as a node's executor does at every change
        of a shard's leader (the old leader's mover is gone with its leadership)."""
        mover = self.movers[group]
        leader = self.sim._leader(group)
        move = self.metadata.moves.get(group + 1)
        if leader is None or move is None or leader == self._led_by.get(group):
            return mover
        self._led_by[group] = leader
        if mover.state is MoveState.RECORDING or mover.finished:
            return mover
        resumed = self.movers[group] = Mover(move, CATCH_UP_TICKS)
        conf = self.sim.nodes[leader].replica(group).core.conf
        aborting = group + 1 in self.metadata.aborting
        self._carry_out(group, resumed.resume(Membership.of(conf), aborting))
        return resumed

    def _observe(self, group: int, target: int) -> list[Membership | Progress | Tick]:
        leader = self.sim._leader(group)
        if leader is None:
            return [Progress(0, 0, 0), Tick()]
        status = self.sim.nodes[leader].replica(group).core.status()
        match = status.progress[target].match if target in status.progress else 0
        return [Membership.of(status.conf), Progress(leader, match, status.commit), Tick()]

    def _carry_out(self, group: int, instructions: list[Instruction]) -> None:
        mover = self.movers.get(group)
        for instruction in instructions:
            if isinstance(instruction, ProposeMetadata):
                ok = self._propose(instruction.op, instruction.args)
                if mover is not None and AWAITED.get(mover.state) == instruction.op:
                    follow_up = mover.step(Recorded(ok))
                    if ok:  # as the executor: a refusal is asked again by the repeats
                        self._carry_out(group, follow_up)
                continue
            leader = self.sim._leader(group)
            if leader is None:
                continue  # asked again after RETRY_TICKS
            node = self.sim.nodes[leader]
            conf = node.replica(group).core.conf
            if isinstance(instruction, RemoveLearner) and instruction.node in (
                conf.voters | conf.voters_outgoing
            ):
                continue  # as the executor: never remove a voter as a learner
            if isinstance(instruction, HandOver):
                node.transfer_leadership(group, instruction.to)
                continue
            node.propose_conf_change(group, conf_change(instruction))

    def _propose(self, op: str, args: tuple[object, ...]) -> bool:
        if op in ("move", "members"):
            args = (self.metadata.version, *args)
        ok = self.metadata.apply(encode_metadata_command(op, *args)).ok
        if not ok and op == "members":
            # The random membership changes edit groups behind this metadata's back,
            # so a move's outcome may not be what the metadata expects: take it (a
            # real metadata group's groups change only through moves).
            shard, voters, learners = args[1:]
            assert self.metadata.map is not None
            self.metadata.map = self.metadata.map.with_members(shard, voters, learners)  # type: ignore[arg-type]
            return True
        return ok
