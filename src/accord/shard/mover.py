"""Carrying out one replica move: learner, catch-up, joint swap, record.

Theory of operation
-------------------
A `MoveReplica(shard, source, target)` from the placement driver becomes a `Mover`,
run by the shard's leader (`accord.node.executor`). It is a table of
`(state, event) -> state` transitions; each transition returns the instructions the
executor must carry out (propose a metadata command, propose a membership change of
the shard's group, transfer its leadership). Events not in the table for the state
are refused (`InvalidTransition`): a stray event is a bug, not something to guess at.

The steps, each a Raft membership change of the shard's own group, so the shard is
never without a quorum of caught-up voters:

1. `RECORDING`: the metadata group records that the move is under way (`move`), so a
   new metadata leader sees it and the driver plans nothing else for the shard;
2. `ADDING`: the target joins as a learner (it votes on nothing yet);
3. `CATCHING_UP`: Raft sends it the log, or a snapshot if the log was compacted;
   done when its match index reaches the commit index seen when it joined;
4. `HANDING_OVER` (only if the source leads the shard): leadership moves to another
   voter first, so the group does not lose its leader to its own removal;
5. `SWAPPING`: one joint change promotes the target and removes the source; Raft
   leaves the joint configuration by itself once it commits;
6. `FINISHING`: the metadata group gets the shard's new members and the move's end
   (`members`, then `moved`).

Until the swap is proposed, a timeout gives the move up: the metadata group first
records that it is being given up (`abort`, `ABORT_RECORDING`), so no later shard
leader takes it forward again, then the learner is removed (`ABORTING`) and the
move's end recorded. Once the target is a voter the move only goes forward, in every
state: the joint configuration commits or a new leader finishes it, and the mover
waits for the configuration to show the outcome. So a voter is never removed as a
learner, whatever order a leader change shows things in.

An `AddReplica` is the same without a source (step 5 promotes only).

Pure: no I/O, no clock (deadlines are ticks the executor counts).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from accord.invariant import InvariantError
from accord.raft.confchange import ConfChange, ConfChangeOp
from accord.raft.types import ConfState
from accord.shard.placement import Move, MoveReplica

CATCH_UP_TICKS = 600
"""Ticks a move may spend before its swap (adding the learner, its catch-up, the
hand-over) before it is given up (30 s at 50 ms)."""

RETRY_TICKS = 20
"""Ticks after which a membership change or hand-over not yet in effect is asked for
again: the leader it went to may have lost its leadership and dropped it. A change
asked twice is refused by Raft (one at a time, each checked against the
configuration), so asking again is safe."""


class MoveState(Enum):
    RECORDING = "recording"
    ADDING = "adding"
    CATCHING_UP = "catching_up"
    HANDING_OVER = "handing_over"
    SWAPPING = "swapping"
    FINISHING = "finishing"
    ABORT_RECORDING = "abort_recording"
    ABORTING = "aborting"
    DONE = "done"
    ABORTED = "aborted"


# --- events ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Recorded:
    """A metadata command of this move was applied (`ok`) or refused."""

    ok: bool


@dataclass(frozen=True, slots=True)
class Membership:
    """The shard group's configuration now (after a change was applied)."""

    voters: frozenset[int]
    learners: frozenset[int]
    joint: bool

    @staticmethod
    def of(conf: ConfState) -> Membership:
        """A Raft configuration's members: the voters of both sides of a joint one."""
        return Membership(frozenset(conf.voters | conf.voters_outgoing), conf.learners, conf.joint)


@dataclass(frozen=True, slots=True)
class Progress:
    """The shard leader's view: who leads, the target's match index, the commit."""

    leader: int
    target_match: int
    commit: int


@dataclass(frozen=True, slots=True)
class Tick:
    pass


Event = Recorded | Membership | Progress | Tick


# --- instructions ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ProposeMetadata:
    """Propose `op` with `args` to the metadata group; the executor puts the current
    map version first for the ops that take one (`move`, `members`)."""

    op: str
    args: tuple[object, ...]


@dataclass(frozen=True, slots=True)
class AddLearner:
    node: int


@dataclass(frozen=True, slots=True)
class Swap:
    """One change: promote `promote`; remove `remove` if set (joint consensus)."""

    promote: int
    remove: int | None


@dataclass(frozen=True, slots=True)
class RemoveLearner:
    node: int


@dataclass(frozen=True, slots=True)
class HandOver:
    """Transfer the shard's leadership to `to`."""

    to: int


Instruction = ProposeMetadata | AddLearner | Swap | RemoveLearner | HandOver


def conf_change(instruction: AddLearner | Swap | RemoveLearner) -> ConfChange:
    """The shard group's membership change an instruction asks its leader for."""
    if isinstance(instruction, AddLearner):
        return ConfChange(((ConfChangeOp.ADD_LEARNER, instruction.node),))
    if isinstance(instruction, RemoveLearner):
        return ConfChange(((ConfChangeOp.REMOVE, instruction.node),))
    changes = [(ConfChangeOp.ADD_VOTER, instruction.promote)]
    if instruction.remove is not None:
        changes.append((ConfChangeOp.REMOVE, instruction.remove))
    return ConfChange(tuple(changes))


class InvalidTransition(InvariantError):
    pass


class Mover:
    def __init__(self, move: Move, catch_up_ticks: int = CATCH_UP_TICKS) -> None:
        self.shard = move.shard
        self.target = move.target
        self.source = move.source if isinstance(move, MoveReplica) else None
        self.state = MoveState.RECORDING
        self.catch_up_ticks = catch_up_ticks
        self._ticks = 0
        """Ticks since the state was entered."""
        self._repeat: list[Instruction] = []
        """What the state asked for, asked again every RETRY_TICKS until it is seen."""
        self._catch_up_to = 0
        self._members: tuple[int, ...] = ()
        self._voters: frozenset[int] = frozenset()
        self.reason = ""
        """Why the move was aborted."""

    def start(self) -> list[Instruction]:
        return [ProposeMetadata("move", (self.shard, self.source or 0, self.target))]

    def resume(self, membership: Membership, aborting: bool = False) -> list[Instruction]:
        """Take over a move the metadata group has recorded (`aborting`: and marked
        as being given up), from wherever the shard's configuration shows it to be: a
        new shard leader picks up the move its predecessor was carrying out (the
        steps are membership changes of the group, and the metadata says whether it
        is being given up)."""
        if self.state is not MoveState.RECORDING:
            raise InvalidTransition(f"move of shard {self.shard}: resumed in {self.state.value}")
        self._voters = membership.voters
        in_group = membership.voters | membership.learners
        if self.target in membership.voters:  # the swap was proposed: only forward now
            return self._forward(membership)
        if aborting:
            self.reason = "given up by an earlier leader of the shard"
            return self._enter(MoveState.ABORTING, [RemoveLearner(self.target)])
        if self.target in membership.learners:
            return self._enter(MoveState.CATCHING_UP, [])
        if self.source is not None and self.source not in in_group:
            # The source is gone but the target never became a voter: not a state a
            # move leaves behind, so give it up (the map is the driver's to repair).
            self.reason = f"the source {self.source} left the group before the move"
            return self._give_up()
        return self._enter(MoveState.ADDING, [AddLearner(self.target)])

    def _forward(self, membership: Membership) -> list[Instruction]:
        """The target is a voter: the swap was proposed, whatever this mover did."""
        self._enter(MoveState.SWAPPING, [Swap(self.target, self.source)])
        return self._swapped(membership)

    def _give_up(self) -> list[Instruction]:
        return self._enter(MoveState.ABORT_RECORDING, [ProposeMetadata("abort", self.ends())])

    def ends(self) -> tuple[int, int, int]:
        """`[shard, source (0: none), target]`, as the metadata names the move."""
        return (self.shard, self.source or 0, self.target)

    @property
    def finished(self) -> bool:
        return self.state in (MoveState.DONE, MoveState.ABORTED)

    def step(self, event: Event) -> list[Instruction]:
        handler = _TABLE.get((self.state, type(event)))
        if handler is None:
            if isinstance(event, (Tick, Progress, Membership)):
                return []  # what every state may hear and ignore
            raise InvalidTransition(f"move of shard {self.shard}: {event!r} in {self.state.value}")
        return handler(self, event)

    # --- transitions ------------------------------------------------------------------
    def _recorded(self, event: Recorded) -> list[Instruction]:
        if not event.ok:
            self.reason = "the metadata group refused the move"
            return self._enter(MoveState.ABORTED, [])
        return self._enter(MoveState.ADDING, [AddLearner(self.target)])

    def _adding(self, event: Membership) -> list[Instruction]:
        self._voters = event.voters
        if self.target in event.voters:
            return self._forward(event)
        if self.target in event.learners:
            return self._enter(MoveState.CATCHING_UP, [])
        return []

    def _catching_up(self, event: Progress) -> list[Instruction]:
        if event.leader == 0:
            return []  # no leader to ask: its view of the target is not known
        if not self._catch_up_to:
            self._catch_up_to = max(1, event.commit)
        if event.target_match < self._catch_up_to:
            return []
        others = sorted(self._voters - {self.source})
        if self.source is not None and event.leader == self.source and others:
            # A learner cannot lead: hand over to another voter (with one voter there
            # is none, and the swap itself hands over when the joint change commits).
            return self._enter(MoveState.HANDING_OVER, [HandOver(others[0])])
        return self._swap()

    def _handing_over(self, event: Progress) -> list[Instruction]:
        if event.leader in (0, self.source):
            return []  # not yet
        return self._swap()

    def _swap(self) -> list[Instruction]:
        return self._enter(MoveState.SWAPPING, [Swap(self.target, self.source)])

    def _enter(self, state: MoveState, instructions: list[Instruction]) -> list[Instruction]:
        self.state, self._ticks, self._repeat = state, 0, instructions
        return instructions

    def _swapped(self, event: Membership) -> list[Instruction]:
        done = (
            not event.joint
            and self.target in event.voters
            and (self.source is None or self.source not in event.voters | event.learners)
        )
        if not done:
            return []
        self._members = tuple(sorted(event.voters))
        record = ProposeMetadata("members", (self.shard, list(self._members), []))
        return self._enter(MoveState.FINISHING, [record])  # asked again until it is seen

    def _finished_members(self, event: Recorded) -> list[Instruction]:
        if not event.ok:  # the map moved on meanwhile: record the members again
            return list(self._repeat)
        self._enter(MoveState.DONE, [])
        return [ProposeMetadata("moved", self.ends())]

    def _tick(self, event: Tick) -> list[Instruction]:
        """Before the swap: give up after `catch_up_ticks`; meanwhile ask again."""
        self._ticks += 1
        if self.state in _GIVE_UP and self._ticks >= self.catch_up_ticks:
            self.reason = f"the learner did not catch up in {self.catch_up_ticks} ticks"
            return self._give_up()
        if self._ticks % RETRY_TICKS == 0:
            return list(self._repeat)
        return []

    def _late_answer(self, event: Recorded) -> list[Instruction]:
        return []  # the answer to the last `moved`: nothing follows it

    def _abort_recorded(self, event: Recorded) -> list[Instruction]:
        if not event.ok:
            return []  # asked again after RETRY_TICKS
        return self._enter(MoveState.ABORTING, [RemoveLearner(self.target)])

    def _giving_up(self, event: Membership) -> list[Instruction]:
        """The membership while giving up: a target that is a voter goes forward."""
        if self.target in event.voters:
            self.reason = ""
            return self._forward(event)
        if self.state is MoveState.ABORTING and self.target not in event.learners:
            self._enter(MoveState.ABORTED, [])
            return [ProposeMetadata("moved", self.ends())]
        return []

    def _watch_for_promotion(self, event: Membership) -> list[Instruction]:
        """Catching up or handing over, the target can only become a voter by a swap
        another leader of the shard proposed: go forward with it."""
        self._voters = event.voters
        return self._forward(event) if self.target in event.voters else []


_GIVE_UP = frozenset({MoveState.ADDING, MoveState.CATCHING_UP, MoveState.HANDING_OVER})

AWAITED: dict[MoveState, str] = {
    MoveState.RECORDING: "move",
    MoveState.ABORT_RECORDING: "abort",
    MoveState.FINISHING: "members",
}
"""The metadata command whose answer (`Recorded`) a state waits for: an executor
feeding answers later than it asked drops any other (a late answer to an earlier
step means nothing now)."""
"""States a move may still be given up in (before the swap is asked for)."""

_Handler = Callable[[Mover, Event], list[Instruction]]
_TABLE: dict[tuple[MoveState, type], _Handler] = {
    (MoveState.RECORDING, Recorded): Mover._recorded,  # type: ignore[dict-item]
    (MoveState.ADDING, Membership): Mover._adding,  # type: ignore[dict-item]
    (MoveState.ADDING, Tick): Mover._tick,  # type: ignore[dict-item]
    (MoveState.CATCHING_UP, Progress): Mover._catching_up,  # type: ignore[dict-item]
    (MoveState.CATCHING_UP, Tick): Mover._tick,  # type: ignore[dict-item]
    (MoveState.HANDING_OVER, Progress): Mover._handing_over,  # type: ignore[dict-item]
    (MoveState.HANDING_OVER, Tick): Mover._tick,  # type: ignore[dict-item]
    (MoveState.SWAPPING, Membership): Mover._swapped,  # type: ignore[dict-item]
    (MoveState.SWAPPING, Tick): Mover._tick,  # type: ignore[dict-item]
    (MoveState.ABORTING, Tick): Mover._tick,  # type: ignore[dict-item]
    (MoveState.FINISHING, Recorded): Mover._finished_members,  # type: ignore[dict-item]
    (MoveState.FINISHING, Tick): Mover._tick,  # type: ignore[dict-item]
    (MoveState.CATCHING_UP, Membership): Mover._watch_for_promotion,  # type: ignore[dict-item]
    (MoveState.HANDING_OVER, Membership): Mover._watch_for_promotion,  # type: ignore[dict-item]
    (MoveState.ABORT_RECORDING, Recorded): Mover._abort_recorded,  # type: ignore[dict-item]
    (MoveState.ABORT_RECORDING, Tick): Mover._tick,  # type: ignore[dict-item]
    (MoveState.ABORT_RECORDING, Membership): Mover._giving_up,  # type: ignore[dict-item]
    (MoveState.ABORTING, Membership): Mover._giving_up,  # type: ignore[dict-item]
    (MoveState.DONE, Recorded): Mover._late_answer,  # type: ignore[dict-item]
    (MoveState.ABORTED, Recorded): Mover._late_answer,  # type: ignore[dict-item]
}
"""(state, event type) -> transition. Tick, Progress and Membership are ignored where
absent; anything else absent is refused."""
