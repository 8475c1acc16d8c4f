"""Raft's safety properties, checked continuously while a simulation runs.

- Election safety: at most one leader per term.
- Log matching: checked through entry uniqueness — every (index, term) pair ever
  written anywhere has one payload and one predecessor term; by induction two logs
  holding the same (index, term) agree on every entry up to it.
- Leader completeness: a node that becomes leader holds every committed entry.
- State machine safety: no two nodes apply different entries at one index, and the
  state they compute from them (the lease table: ids, TTLs, deadlines) is the same
  at every index, whether a node applied the log or installed a snapshot.
- Commit and apply: a node's commit index never decreases while it runs, its durable
  commit never decreases across restarts, and applied <= committed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from accord.raft import EntryType, Ready, Role

if TYPE_CHECKING:
    from accord.sim.node import SimReplica


class SafetyViolation(AssertionError):
    def __init__(self, prop: str, detail: str) -> None:
        self.prop = prop
        self.detail = detail
        super().__init__(f"{prop}: {detail}")


class SafetyChecker:
    def __init__(self) -> None:
        self.leader_of_term: dict[int, int] = {}
        self.entry_registry: dict[tuple[int, int], tuple[int, bytes]] = {}
        self.committed: dict[int, tuple[int, bytes]] = {}  # index -> (term, data)
        self.max_committed = 0
        self.commit_seen: dict[int, int] = {}
        self.durable_commit_seen: dict[int, int] = {}
        self.checked_leaders: set[tuple[int, int]] = set()
        self.state_at: dict[int, object] = {}  # applied index -> lease table digest

    def on_start(self, node: SimReplica) -> None:
        commit = node.core.log.committed
        previous = self.durable_commit_seen.get(node.id, 0)
        if commit < previous:
            raise SafetyViolation(
                "durable commit", f"node {node.id} restarted with commit {commit} < {previous}"
            )
        self.commit_seen[node.id] = commit

    def on_ready(self, node: SimReplica, rd: Ready) -> None:
        log = node.core.log
        for entry in rd.entries:
            prev_term = log.term(entry.index - 1)
            key = (entry.index, entry.term)
            record = (prev_term if prev_term is not None else -1, entry.data)
            known = self.entry_registry.setdefault(key, record)
            if known != record and record[0] != -1 and known[0] != -1:
                raise SafetyViolation(
                    "log matching",
                    f"node {node.id} holds ({entry.index}, term {entry.term}) with "
                    f"predecessor term {record[0]} / data {record[1]!r}, elsewhere "
                    f"{known[0]} / {known[1]!r}",
                )

    def on_synced(self, node: SimReplica, rd: Ready) -> None:
        if rd.hard_state is not None:
            self.durable_commit_seen[node.id] = max(
                self.durable_commit_seen.get(node.id, 0), rd.hard_state.commit
            )

    def on_apply(
        self, node: SimReplica, index: int, term: int, kind: EntryType, data: bytes
    ) -> None:
        if not node.durable(index, term):
            raise SafetyViolation(
                "apply after persist",
                f"node {node.id} applied (term {term}) at {index} before its own disk held it",
            )
        known = self.committed.get(index)
        if known is None:
            self.committed[index] = (term, data)
            self.max_committed = max(self.max_committed, index)
        elif known != (term, data):
            raise SafetyViolation(
                "state machine safety",
                f"node {node.id} applied (term {term}, {data!r}) at {index}; another node "
                f"applied (term {known[0]}, {known[1]!r})",
            )

    def on_state(self, node: SimReplica, index: int, digest: object) -> None:
        """`digest`: what `node`'s state machine holds once applied up to `index`."""
        known = self.state_at.setdefault(index, digest)
        if known != digest:
            raise SafetyViolation(
                "replica determinism",
                f"node {node.id} at index {index} holds leases {digest!r:.300}; another "
                f"node held {known!r:.300}",
            )

    def after_advance(self, node: SimReplica) -> None:
        self.check_node(node)

    def check_node(self, node: SimReplica) -> None:
        core = node.core
        commit = core.log.committed
        if commit < self.commit_seen.get(node.id, 0):
            raise SafetyViolation(
                "commit monotonic",
                f"node {node.id} commit went from {self.commit_seen[node.id]} to {commit}",
            )
        self.commit_seen[node.id] = commit
        if core.log.applied > commit:
            raise SafetyViolation(
                "applied <= committed", f"node {node.id} applied {core.log.applied} > {commit}"
            )

    def check_cluster(self, nodes: list[SimReplica]) -> None:
        """Run after every simulation step."""
        for node in nodes:
            if not node.alive:
                continue
            self.check_node(node)
            core = node.core
            if core.role != Role.LEADER:
                continue
            holder = self.leader_of_term.setdefault(core.term, node.id)
            if holder != node.id:
                raise SafetyViolation(
                    "election safety", f"nodes {holder} and {node.id} both lead term {core.term}"
                )
            if (core.term, node.id) not in self.checked_leaders:
                self.checked_leaders.add((core.term, node.id))
                self._check_leader_completeness(node)

    def _check_leader_completeness(self, node: SimReplica) -> None:
        log = node.core.log
        for index in range(log.snapshot_index + 1, self.max_committed + 1):
            known = self.committed.get(index)
            if known is None:
                continue
            if log.term(index) != known[0]:
                raise SafetyViolation(
                    "leader completeness",
                    f"node {node.id} leads term {node.core.term} without committed entry "
                    f"{index} (term {known[0]}); its log has term {log.term(index)} there",
                )
