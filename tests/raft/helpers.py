"""Builders shared by the Raft core tests: hand-made logs, cores and messages.

The synchronous `RaftNetwork` covers whole-cluster behaviour; these helpers add what
precise tests need on top: cores recovered from hand-built logs, a node that is made
leader by stepping vote responses by hand, and message selectors over `net.sent`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence

from accord.raft import (
    ConfChange,
    ConfChangeOp,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    NodeId,
    RaftConfig,
    RaftCore,
    Ready,
    RecoveredState,
    Role,
)
from accord.testing.raftnet import MemoryNode, RaftNetwork

GROUP = 0
VOTERS = (1, 2, 3)


def bootstrap_entry(voters: Iterable[NodeId] = VOTERS) -> Entry:
    """The entry every initial member writes at index 1 (see `RaftCore._bootstrap`)."""
    change = ConfChange(tuple((ConfChangeOp.ADD_VOTER, v) for v in sorted(voters)))
    return Entry(1, 1, EntryType.CONF_CHANGE, change.encode())


def make_log(terms: Sequence[int], voters: Iterable[NodeId] = VOTERS) -> tuple[Entry, ...]:
    """The bootstrap entry at index 1, then one entry per term in `terms` from index 2."""
    entries = [bootstrap_entry(voters)]
    for offset, term in enumerate(terms):
        index = offset + 2
        entries.append(Entry(term, index, EntryType.NORMAL, f"t{term}i{index}".encode()))
    return tuple(entries)


def recovered(
    terms: Sequence[int],
    *,
    term: int | None = None,
    vote: NodeId = 0,
    commit: int = 1,
    voters: Iterable[NodeId] = VOTERS,
) -> RecoveredState:
    log = make_log(terms, voters)
    hard_term = term if term is not None else max(e.term for e in log)
    return RecoveredState(HardState(hard_term, vote, commit), None, log)


def config(node: NodeId, voters: Iterable[NodeId] = VOTERS, **overrides: object) -> RaftConfig:
    return RaftConfig(id=node, bootstrap_voters=frozenset(voters), **overrides)  # type: ignore[arg-type]


def new_core(
    node: NodeId,
    *,
    seed: int = 0,
    state: RecoveredState | None = None,
    voters: Iterable[NodeId] = VOTERS,
    **overrides: object,
) -> RaftCore:
    return RaftCore(config(node, voters, **overrides), random.Random(seed), state)


def drain(core: RaftCore) -> Ready:
    """Take a Ready and acknowledge it at once, as a driver with an instant disk would."""
    rd = core.ready()
    core.advance(rd)
    return rd


def all_messages(rd: Ready) -> list[Message]:
    return list(rd.messages) + list(rd.messages_after_persist)


def msg(kind: MessageType, src: NodeId, dst: NodeId, term: int, **fields: object) -> Message:
    return Message(type=kind, group=GROUP, src=src, dst=dst, term=term, **fields)  # type: ignore[arg-type]


def make_leader(core: RaftCore) -> Ready:
    """Elect `core` by hand: campaign, persist its own vote, and receive one grant
    from every other voter. Returns the Ready carrying the new term's empty entry
    (already advanced, so the leader has acknowledged its own entry)."""
    core.campaign()
    drain(core)  # persists the term and own vote; advance() delivers the own vote
    for voter in sorted(core.status().conf.all_voters() - {core.id}):
        if core.role == Role.LEADER:
            break
        core.step(msg(MessageType.VOTE_RESP, voter, core.id, core.term))
    assert core.role == Role.LEADER
    return drain(core)


def of_type(messages: Iterable[Message], kind: MessageType, **match: object) -> list[Message]:
    """Messages of `kind` whose fields equal every keyword in `match`."""
    return [
        m
        for m in messages
        if m.type == kind and all(getattr(m, name) == value for name, value in match.items())
    ]


def replace_node(net: RaftNetwork, node: NodeId, state: RecoveredState, seed: int) -> None:
    """Swap a network node for one recovered from `state` (what its disk holds)."""
    core = RaftCore(net.config_for(node, True), random.Random(seed), state)
    mem = MemoryNode(core)
    mem.hard_state, mem.snapshot, mem.log = state.hard_state, state.snapshot, list(state.entries)
    net.nodes[node] = mem


def net_with_logs(
    logs: dict[NodeId, RecoveredState],
    seed: int = 1,
    configure: Callable[[RaftConfig], RaftConfig] | None = None,
) -> RaftNetwork:
    net = RaftNetwork(sorted(logs), seed=seed, configure=configure)
    for node, state in logs.items():
        replace_node(net, node, state, seed * 1000 + node)
    return net


def process_readies(net: RaftNetwork) -> bool:
    """Every node handles its Ready; the messages wait in `net.queue`."""
    moved = False
    for node in list(net.nodes):
        moved |= net.process_ready(node)
    return moved


def deliver_queued(net: RaftNetwork) -> bool:
    """Deliver what is queued now (not what the deliveries cause)."""
    moved = bool(net.queue)
    for _ in range(len(net.queue)):
        m = net.queue.popleft()
        if m.dst in net.nodes and (m.src, m.dst) not in net.cut:
            net.nodes[m.dst].core.step(m)
    return moved


def settle_dropping(
    net: RaftNetwork, lost: Callable[[Message], bool], rounds_max: int = 1000
) -> list[Message]:
    """`settle()`, except that queued messages for which `lost` holds are dropped.
    Returns the dropped messages."""
    dropped: list[Message] = []
    for _ in range(rounds_max):
        moved = process_readies(net)
        for m in list(net.queue):
            if lost(m):
                net.queue.remove(m)
                dropped.append(m)
        if not (deliver_queued(net) or moved):
            return dropped
    raise AssertionError("network did not settle")


def pump_until(net: RaftNetwork, condition: Callable[[], bool], rounds_max: int = 1000) -> None:
    """Run `settle()`'s loop step by step until `condition` holds: between steps the
    test can inspect, drop or reorder what is in `net.queue`."""
    for _ in range(rounds_max):
        if condition():
            return
        moved = process_readies(net)
        if condition():
            return
        if not (deliver_queued(net) or moved):
            break
    assert condition(), "condition not reached"


def log_terms(core: RaftCore) -> list[int]:
    status = core.status()
    return [core.log.entry(i).term for i in range(status.first_index, status.last_index + 1)]
