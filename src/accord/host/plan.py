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


@dataclass(frozen=True, slots=True)
class Send:
    messages: tuple[Message, ...]


@dataclass(frozen=True, slots=True)
class Persist:
    writes: tuple[GroupWrite, ...]
    sync: bool


@dataclass(frozen=True, slots=True)
class AwaitDurable:
    pass


AWAIT_DURABLE = AwaitDurable()


@dataclass(frozen=True, slots=True)
class Apply:
    group: int
    ready: Ready
    start: int
    stop: int
    finish: bool
    """Restore the snapshot before the entries and hand over the read states after."""


@dataclass(frozen=True, slots=True)
class Advance:
    group: int
    ready: Ready


Step = Send | Persist | AwaitDurable | Apply | Advance


def plan(
    readies: Sequence[tuple[int, Ready]], *, send_before_persist: bool = False
) -> tuple[Step, ...]:
    """The steps that handle `readies` (group id, Ready), in the order to run them."""
    writes = tuple(
        GroupWrite(group, rd.hard_state, rd.entries, rd.snapshot)
        for group, rd in readies
        if rd.persist_needed()
    )
    first = tuple(m for _, rd in readies for m in rd.messages)
    after = tuple(m for _, rd in readies for m in rd.messages_after_persist)
    steps: list[Step] = []
    if any(rd.persist_needed() and rd.must_sync for _, rd in readies):
        if send_before_persist:
            first, after = first + after, ()
        if first:
            steps.append(Send(first))
        steps.append(Persist(writes, sync=True))
        early = {group: rd.durable_committed() for group, rd in readies}
        steps.extend(
            Apply(group, rd, 0, early[group], finish=False) for group, rd in readies if early[group]
        )
        steps.append(AWAIT_DURABLE)
        if after:
            steps.append(Send(after))
        for group, rd in readies:
            steps.append(Apply(group, rd, early[group], len(rd.committed_entries), finish=True))
    else:
        if writes:
            steps.append(Persist(writes, sync=False))
        steps.extend(
            Apply(group, rd, 0, len(rd.committed_entries), finish=True) for group, rd in readies
        )
        if first + after:
            steps.append(Send(first + after))
    steps.extend(Advance(group, rd) for group, rd in readies)
    return tuple(steps)
