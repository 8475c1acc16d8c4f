"""The Ready executor's plan: the durability ordering, written once.

Theory of operation
-------------------
A node hosts many Raft groups. Each loop iteration takes the Ready of every group that
has one and turns them into one ordered tuple of steps, which the asyncio runtime and
the simulator both execute, in order, without deciding anything themselves:

- `Send(messages)`: hand messages to the transport;
- `Persist(writes, sync)`: one storage write for every group's snapshot install,
  entries and hard state; `sync` asks for one fsync covering all of it;
- `AWAIT_DURABLE`: wait until the preceding `Persist` is on stable storage;
- `Apply(group, ready, start, stop, finish)`: apply `committed_entries[start:stop]`
  of that group's Ready; with `finish`, first restore the Ready's snapshot and
  afterwards hand its read states to the group;
- `Advance(group, ready)`: tell the group's core the Ready was handled.

When some group needs an fsync the plan is: every group's `messages` leave first (a
leader's AppendEntries, so followers write while we do); one `Persist(sync=True)`;
the committed entries that earlier Readies already made durable are applied while the
fsync runs (their writers need not wait for an unrelated fsync); `AWAIT_DURABLE`; every
group's `messages_after_persist` (vote grants and append acks, which promise
durability); the rest applied; every group advanced.

When no group needs an fsync (typically only new commit indexes), the write needs no
sync, nothing is waited for, and the committed entries are applied *before* the
messages leave: a message may always leave later, and the writers need not wait for
the sends.

`send_before_persist` is a deliberate bug (`DebugFlags.send_before_persist`): the
messages that promise durability leave with the first `Send`, before the fsync. The
simulator and the fault tests must catch it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from accord.raft.types import Message, Ready
from accord.storage.protocol import GroupWrite


# Plain (not frozen) slotted dataclasses: a batch builds several per write when there
# is one writer, and a frozen dataclass's __init__ costs about twice as much. Nothing
# mutates a step once planned.
@dataclass(slots=True)
class Send:
    messages: tuple[Message, ...]


@dataclass(slots=True)
class Persist:
    writes: tuple[GroupWrite, ...]
    sync: bool


@dataclass(slots=True)
class AwaitDurable:
    pass


AWAIT_DURABLE = AwaitDurable()


@dataclass(slots=True)
class Apply:
    group: int
    ready: Ready
    start: int
    stop: int
    finish: bool
    """Restore the snapshot before the entries and hand over the read states after."""


@dataclass(slots=True)
class Advance:
    group: int
    ready: Ready


Step = Send | Persist | AwaitDurable | Apply | Advance


def plan(
    readies: Sequence[tuple[int, Ready]], *, send_before_persist: bool = False
) -> tuple[Step, ...]:
    """The steps that handle `readies` (group id, Ready), in the order to run them."""
    # One pass over the readies, no generators: this runs for every batch, and with one
    # writer a batch is a single small Ready, so its cost is paid per write.
    writes: list[GroupWrite] = []
    first: list[Message] = []
    after: list[Message] = []
    sync = False
    for group, rd in readies:
        if rd.persist_needed():
            writes.append(GroupWrite(group, rd.hard_state, rd.entries, rd.snapshot))
            sync = sync or rd.must_sync
        first.extend(rd.messages)
        after.extend(rd.messages_after_persist)
    steps: list[Step] = []
    if sync:
        if send_before_persist:
            first, after = first + after, []
        if first:
            steps.append(Send(tuple(first)))
        steps.append(Persist(tuple(writes), sync=True))
        early: list[int] = []
        for group, rd in readies:
            durable = rd.durable_committed()
            early.append(durable)
            if durable:
                steps.append(Apply(group, rd, 0, durable, finish=False))
        steps.append(AWAIT_DURABLE)
        if after:
            steps.append(Send(tuple(after)))
        for (group, rd), durable in zip(readies, early, strict=True):
            if _has_rest(rd, durable):
                steps.append(Apply(group, rd, durable, len(rd.committed_entries), finish=True))
    else:
        if writes:
            steps.append(Persist(tuple(writes), sync=False))
        for group, rd in readies:
            if _has_rest(rd, 0):
                steps.append(Apply(group, rd, 0, len(rd.committed_entries), finish=True))
        if first or after:
            steps.append(Send(tuple(first + after)))
    for group, rd in readies:
        steps.append(Advance(group, rd))
    return tuple(steps)


def _has_rest(rd: Ready, start: int) -> bool:
    """Whether a finishing `Apply` from `start` has anything to do."""
    return len(rd.committed_entries) > start or rd.snapshot is not None or bool(rd.read_states)
