"""A tiny synchronous network of Raft cores for unit tests (after etcd's `network`).

Every node persists instantly and applies at once; messages are delivered in FIFO
order when `deliver()` is called. Links can be cut, nodes isolated, and individual
message types dropped. For faults with timing (delays, crashes losing unsynced data)
use the deterministic simulator in `accord.sim`.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterable

from accord.raft import (
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    NodeId,
    RaftConfig,
    RaftCore,
    ReadState,
    RecoveredState,
    Snapshot,
)


class MemoryNode:
    """A core plus what it persisted and applied."""

    def __init__(self, core: RaftCore) -> None:
        self.core = core
        self.hard_state = HardState()
        self.snapshot: Snapshot | None = None
        self.log: list[Entry] = []
        self.applied: list[Entry] = []
        self.read_states: list[ReadState] = []

    def persist(self, entries: Iterable[Entry], snapshot: Snapshot | None) -> None:
        if snapshot is not None:
            self.snapshot = snapshot
            self.log = []
        for entry in entries:
            first = self.snapshot.index + 1 if self.snapshot else 1
            del self.log[entry.index - first :]
            self.log.append(entry)

    def recovered(self) -> RecoveredState:
        return RecoveredState(self.hard_state, self.snapshot, tuple(self.log))

    def applied_data(self) -> list[bytes]:
        return [e.data for e in self.applied if e.type == EntryType.NORMAL and e.data]


class RaftNetwork:
    def __init__(
        self,
        ids: Iterable[NodeId],
        seed: int = 1,
        configure: Callable[[RaftConfig], RaftConfig] | None = None,
    ) -> None:
        self.ids = sorted(ids)
        self.rng = random.Random(seed)
        self.configure = configure or (lambda c: c)
        self.nodes: dict[NodeId, MemoryNode] = {}
        for node in self.ids:
            self.add_node(node, bootstrap=True)
        self.queue: deque[Message] = deque()
        self.cut: set[tuple[NodeId, NodeId]] = set()
        self.drop_types: set[MessageType] = set()
        self.sent: list[Message] = []

    def config_for(self, node: NodeId, bootstrap: bool) -> RaftConfig:
        voters = frozenset(self.ids) if bootstrap else frozenset()
        return self.configure(RaftConfig(id=node, bootstrap_voters=voters))

    def add_node(self, node: NodeId, bootstrap: bool = False) -> MemoryNode:
        core = RaftCore(self.config_for(node, bootstrap), random.Random(self.rng.random()))
        self.nodes[node] = MemoryNode(core)
        return self.nodes[node]

    def restart(self, node: NodeId) -> None:
        old = self.nodes[node]
        core = RaftCore(
            self.config_for(node, True), random.Random(self.rng.random()), old.recovered()
        )
        fresh = MemoryNode(core)
        fresh.hard_state, fresh.snapshot, fresh.log = old.hard_state, old.snapshot, old.log
        self.nodes[node] = fresh

    def core(self, node: NodeId) -> RaftCore:
        return self.nodes[node].core

    # --- driving --------------------------------------------------------------------
    def process_ready(self, node: NodeId) -> bool:
        mem = self.nodes[node]
        core = mem.core
        if not core.has_ready():
            return False
        rd = core.ready()
        self._post(rd.messages)
        mem.persist(rd.entries, rd.snapshot)
        if rd.hard_state is not None:
            mem.hard_state = rd.hard_state
        self._post(rd.messages_after_persist)
        mem.applied.extend(rd.committed_entries)
        mem.read_states.extend(rd.read_states)
        core.advance(rd)
        return True

    def _post(self, messages: Iterable[Message]) -> None:
        for m in messages:
            self.sent.append(m)
            if (m.src, m.dst) in self.cut or m.type in self.drop_types:
                continue
            if m.dst in self.nodes:
                self.queue.append(m)

    def settle(self, max_rounds: int = 10_000) -> None:
        """Process readies and deliver messages until nothing moves."""
        for _ in range(max_rounds):
            moved = False
            for node in list(self.nodes):
                moved |= self.process_ready(node)
            while self.queue:
                m = self.queue.popleft()
                if m.dst in self.nodes and (m.src, m.dst) not in self.cut:
                    self.nodes[m.dst].core.step(m)
                moved = True
            if not moved:
                return
        raise AssertionError("network did not settle")

    def tick(self, node: NodeId, times: int = 1) -> None:
        for _ in range(times):
            self.core(node).tick()
        self.settle()

    def tick_all(self, times: int = 1) -> None:
        for _ in range(times):
            for node in self.nodes:
                self.core(node).tick()
            self.settle()

    def elect(self, node: NodeId) -> None:
        self.core(node).campaign()
        self.settle()

    def propose(self, node: NodeId, data: bytes) -> tuple[int, int]:
        result = self.core(node).propose(data)
        self.settle()
        return result

    def isolate(self, node: NodeId) -> None:
        for other in self.ids:
            if other != node:
                self.cut.add((node, other))
                self.cut.add((other, node))

    def heal(self) -> None:
        self.cut.clear()
        self.drop_types.clear()

    def leader(self) -> NodeId | None:
        from accord.raft import Role

        leaders = [n for n, m in self.nodes.items() if m.core.role == Role.LEADER]
        return max(leaders, key=lambda n: self.core(n).term) if leaders else None

    def normal_entry(self, term: int, index: int, data: bytes) -> Entry:
        return Entry(term, index, EntryType.NORMAL, data)
