"""Batched ReadIndex: one heartbeat round confirms every read waiting at that moment.

Theory of operation: a linearizable read must see every write committed before it
arrived. The leader records its commit index and proves it is still the leader
after the read arrived by hearing from a quorum. Reads arriving while a round is in
flight cannot join it (its heartbeats left before they arrived), so they wait for
the next round, which starts at the next `Ready`. Round ids grow; a follower that
answers round r has also seen every earlier round, so a round is confirmed when a
quorum has acknowledged it or a later one.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from accord.raft.types import NodeId


@dataclass(frozen=True, slots=True)
class PendingRead:
    context: bytes
    requester: NodeId


@dataclass(slots=True)
class _Round:
    round_id: int
    index: int
    reads: list[PendingRead]


class ReadIndexQueue:
    def __init__(self) -> None:
        self._waiting: list[PendingRead] = []
        self._rounds: deque[_Round] = deque()
        self._last_round = 0

    def add(self, read: PendingRead) -> None:
        self._waiting.append(read)

    def has_waiting(self) -> bool:
        return bool(self._waiting)

    def idle(self) -> bool:
        """No read waits for a round or for its round's confirmation."""
        return not self._waiting and not self._rounds

    def start_round(self, commit_index: int) -> int:
        """Put every waiting read into a new round confirming `commit_index`."""
        self._last_round += 1
        self._rounds.append(_Round(self._last_round, commit_index, self._waiting))
        self._waiting = []
        return self._last_round

    @property
    def last_round(self) -> int:
        return self._last_round

    def confirmed(self, quorum_acked: Callable[[int], bool]) -> list[tuple[PendingRead, int]]:
        """Pop every round for which `quorum_acked(round_id)` holds, oldest first."""
        released: list[tuple[PendingRead, int]] = []
        while self._rounds and quorum_acked(self._rounds[0].round_id):
            done = self._rounds.popleft()
            released.extend((read, done.index) for read in done.reads)
        return released

    def drain(self) -> list[PendingRead]:
        """Every read not yet confirmed (leadership is lost: they must be rejected)."""
        reads = list(self._waiting)
        for pending in self._rounds:
            reads.extend(pending.reads)
        self._waiting = []
        self._rounds.clear()
        return reads
