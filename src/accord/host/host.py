"""`Host`: every Raft group a node runs, and the one Ready executor they share.

Theory of operation
-------------------
A group is a `RaftCore` plus a `GroupHandler`, the side of the node that owns that
group's state machine and waiting requests. The host routes each incoming message to
its group by `Message.group`, ticks every group, and turns the Readys of all groups
that have one into one `Batch`: its `steps` (see `accord.host.plan`) are executed in
order by the driver — the asyncio runtime or the simulator. The driver performs the
I/O steps itself (`Send`, `Persist`, `AWAIT_DURABLE`) and hands every other step back
to `Host.run`, which calls the group's handler and core. So the driver never decides
what is sent before which fsync, and the simulator runs the same ordering as
production.

One batch is in flight at a time: the driver takes the next batch only after the
last step of the previous one. Inputs (messages, ticks, proposals) arriving while a
batch waits for its fsync go into the next batch — the group commit, across groups.

Groups can be added and removed while the host runs; a removed group's steps in a
batch still in flight are skipped (its handler is gone).

Only the groups given an input since their last Ready are asked for one: a core
reports each input (`RaftCore.on_input`), and a quiet core's tick is none.

Quiet groups and node liveness. A group whose leader has been idle goes quiet (see
`RaftConfig.quiesce_ticks`): no heartbeats, no election timers, so a thousand idle
groups cost next to nothing. What a quiet follower can no longer notice by itself
is that its leader died; the host notices for it, once per node instead of once per
group. While it has quiet groups, a host built with its `node_id` sends every
member of those groups a `NODE_HEARTBEAT` each `liveness_ticks // 4` ticks (with
the Ready of the next batch); any message from a node, of any group, counts as
hearing from it. A node not heard from for `liveness_ticks` is lost: each quiet
follower whose leader is on it is woken with `leader_lost`, and campaigns as if its
election timer had run out.

Pure: no I/O, no clock, no asyncio.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from accord.host.plan import Advance, Apply, Send, Step, plan
from accord.invariant import invariant
from accord.raft import Entry, Message, MessageType, RaftCore, ReadState, Ready, Role, Snapshot
from accord.raft.limits import RAFT_ELECTION_TICKS


class GroupHandler(Protocol):
    """What a node does with one group's Ready (called by `Host.run`, in plan order)."""

    def on_ready(self, ready: Ready) -> None:
        """The Ready was just taken from the core: soft state, bookkeeping, checks."""
        ...

    def restore(self, snapshot: Snapshot) -> None:
        """Replace the state machine with the snapshot's (before its entries)."""
        ...

    def apply(self, entries: Sequence[Entry]) -> None:
        """Apply committed entries, in order."""
        ...

    def on_read_states(self, read_states: tuple[ReadState, ...]) -> None:
        """Read indexes confirmed (or rejected) by this Ready."""
        ...

    def on_advanced(self, ready: Ready) -> None:
        """The core was advanced past the Ready."""
        ...


@dataclass(slots=True)
class _Group:
    core: RaftCore
    handler: GroupHandler


@dataclass(frozen=True, slots=True)
class Batch:
    readies: tuple[tuple[int, Ready], ...]
    steps: tuple[Step, ...]


class Host:
    def __init__(
        self,
        *,
        node_id: int = 0,
        liveness_ticks: int = RAFT_ELECTION_TICKS,
        send_before_persist: bool = False,
    ) -> None:
        invariant(liveness_ticks >= 4, "liveness_ticks must be >= 4")
        self._groups: dict[int, _Group] = {}
        self.send_before_persist = send_before_persist
        """DELIBERATE BUG (see `accord.host.plan`): acks leave before the fsync."""
        self.node_id = node_id
        """This node's id; 0: no node heartbeats (the host's groups never go quiet)."""
        self.liveness_ticks = liveness_ticks
        self._ticks = 0
        self._heard: dict[int, int] = {}
        """Node id -> the tick it was last heard from."""
        self._lost: set[int] = set()
        self._outbox: list[Message] = []
        self._dirty: dict[int, None] = {}
        """Groups given an input since their last Ready, in the order of their first
        input (a dict: ordered, and deterministic in the simulator): only these are
        asked for a Ready, so a thousand quiet groups cost no Ready checks."""
        self._quiet_peers: frozenset[int] = frozenset()
        self._quiet_count = -1
        self._peers_at = 0

    # --- groups ------------------------------------------------------------------------
    def add_group(self, core: RaftCore, handler: GroupHandler) -> None:
        invariant(core.group not in self._groups, f"group {core.group} already hosted")
        invariant(
            bool(self.node_id) or not core.config.quiesce_ticks,
            "a group that may go quiet needs a host that sends node heartbeats (node_id)",
        )
        self._groups[core.group] = _Group(core, handler)
        core.on_input = self._mark
        self._mark(core.group)

    def remove_group(self, group: int) -> None:
        hosted = self._groups.pop(group, None)
        if hosted is not None:
            hosted.core.on_input = None
        self._dirty.pop(group, None)

    def _mark(self, group: int) -> None:
        self._dirty[group] = None

    def core(self, group: int) -> RaftCore:
        return self._groups[group].core

    def __contains__(self, group: int) -> bool:
        return group in self._groups

    def __len__(self) -> int:
        return len(self._groups)

    def groups(self) -> Iterator[int]:
        return iter(self._groups)

    # --- inputs --------------------------------------------------------------------------
    def step(self, message: Message) -> bool:
        """Route a peer's message to its group; False if this node hosts no such group
        (a node heartbeat is the host's own, and True)."""
        self._heard[message.src] = self._ticks
        self._lost.discard(message.src)
        if message.type == MessageType.NODE_HEARTBEAT:
            return True
        hosted = self._groups.get(message.group)
        if hosted is None:
            return False
        hosted.core.step(message)
        return True

    def tick(self) -> None:
        self._ticks += 1
        quiet = 0
        for hosted in self._groups.values():
            core = hosted.core
            core.tick()  # a quiet core returns at once
            quiet += core.quiescent
        if quiet and self.node_id:
            self._tick_liveness(quiet)

    def _tick_liveness(self, quiet: int) -> None:
        ticks = self._ticks
        if quiet != self._quiet_count or ticks - self._peers_at >= self.liveness_ticks:
            # Who the quiet groups' members are: again when their number changed, and
            # once per liveness period (a membership change), not every tick.
            peers: set[int] = set()
            for hosted in self._groups.values():
                if hosted.core.quiescent:
                    peers.update(hosted.core.conf.members())
            peers.discard(self.node_id)
            self._quiet_peers = frozenset(peers)
            self._quiet_count, self._peers_at = quiet, ticks
        if ticks % max(1, self.liveness_ticks // 4) == 0:
            self._outbox.extend(
                Message(MessageType.NODE_HEARTBEAT, 0, self.node_id, peer, 0)
                for peer in sorted(self._quiet_peers)
            )
        for peer in self._quiet_peers:
            # Never heard of since this host started: give it a full timeout too.
            heard = self._heard.setdefault(peer, ticks)
            if peer not in self._lost and ticks - heard >= self.liveness_ticks:
                self._lost.add(peer)
                for hosted in self._groups.values():
                    core = hosted.core
                    if core.quiescent and core.leader == peer and core.role != Role.LEADER:
                        core.wake(leader_lost=True)

    # --- the executor ----------------------------------------------------------------------
    def has_ready(self) -> bool:
        groups = self._groups
        return bool(self._outbox) or any(
            group in groups and groups[group].core.has_ready() for group in self._dirty
        )

    def ready(self, groups_max: int | None = None) -> Batch | None:
        """Take the Ready of every group that has one (of those given an input since
        their last Ready, in the order of that input, so a simulation replays exactly)
        and plan how to handle them together; with `groups_max`, of that many groups at
        most (the others wait for the next batch)."""
        readies: list[tuple[int, Ready]] = []
        dirty, self._dirty = self._dirty, {}
        for group in dirty:
            if groups_max is not None and len(readies) >= groups_max:
                self._dirty[group] = None
                continue
            hosted = self._groups.get(group)
            if hosted is not None and hosted.core.has_ready():
                rd = hosted.core.ready()
                hosted.handler.on_ready(rd)
                readies.append((group, rd))
        steps = plan(readies, send_before_persist=self.send_before_persist) if readies else ()
        if self._outbox:
            steps = (Send(tuple(self._outbox)), *steps)
            self._outbox = []
        if not steps:
            return None
        return Batch(tuple(readies), steps)

    def run(self, step: Step) -> None:
        """Execute a step that is not I/O: `Apply` or `Advance`."""
        if isinstance(step, Apply):
            hosted = self._groups.get(step.group)
            if hosted is None:
                return
            rd = step.ready
            if step.finish and rd.snapshot is not None:
                hosted.handler.restore(rd.snapshot)
            if step.stop > step.start:
                hosted.handler.apply(rd.committed_entries[step.start : step.stop])
            if step.finish and rd.read_states:
                hosted.handler.on_read_states(rd.read_states)
        elif isinstance(step, Advance):
            hosted = self._groups.get(step.group)
            if hosted is None:
                return
            hosted.core.advance(step.ready)
            self._mark(step.group)  # more to apply, or its own acknowledgements stepped
            hosted.handler.on_advanced(step.ready)
        else:
            invariant(False, f"{type(step).__name__} is the driver's to execute")
