"""How far the leader believes each follower's log matches its own.

Theory of operation (after etcd's raft): a follower's progress is in one of three
states. PROBE: the leader does not know where the logs agree; it sends one
AppendEntries at a time (per heartbeat) and walks `next` back on each rejection,
helped by the follower's conflict hint. REPLICATE: the logs agree up to `match`;
the leader streams entries optimistically, advancing `next` as it sends, with at
most `inflight_max` messages unacknowledged. SNAPSHOT: the entries the follower
needs are compacted away; the leader sends the snapshot in chunks, then probes.
"""

from __future__ import annotations

from collections import deque
from enum import IntEnum

from accord.invariant import invariant


class ProgressState(IntEnum):
    PROBE = 0
    REPLICATE = 1
    SNAPSHOT = 2


class Progress:
    __slots__ = (
        "inflight",
        "inflight_max",
        "match",
        "next",
        "probe_sent",
        "read_round_acked",
        "recent_active",
        "snapshot_index",
        "snapshot_offset",
        "state",
    )

    def __init__(self, next_index: int, inflight_max: int) -> None:
        self.match = 0
        self.next = next_index
        self.state = ProgressState.PROBE
        self.probe_sent = False
        # Last index carried by each unacknowledged AppendEntries, oldest first.
        self.inflight: deque[int] = deque()
        self.inflight_max = inflight_max
        self.recent_active = False
        self.snapshot_index = 0
        self.snapshot_offset = 0
        self.read_round_acked = 0

    def __repr__(self) -> str:
        return f"Progress({self.state.name} match={self.match} next={self.next})"

    def is_paused(self) -> bool:
        if self.state == ProgressState.PROBE:
            return self.probe_sent
        if self.state == ProgressState.REPLICATE:
            return len(self.inflight) >= self.inflight_max
        return True

    def become_probe(self) -> None:
        if self.state == ProgressState.SNAPSHOT:
            self.next = max(self.match + 1, self.snapshot_index + 1)
        else:
            self.next = self.match + 1
        self._reset(ProgressState.PROBE)

    def become_replicate(self) -> None:
        self.next = self.match + 1
        self._reset(ProgressState.REPLICATE)

    def become_snapshot(self, snapshot_index: int) -> None:
        self._reset(ProgressState.SNAPSHOT)
        self.snapshot_index = snapshot_index
        self.snapshot_offset = 0

    def _reset(self, state: ProgressState) -> None:
        self.state = state
        self.probe_sent = False
        self.inflight.clear()
        self.snapshot_index = 0
        self.snapshot_offset = 0

    def sent_entries(self, count: int, last_index: int) -> None:
        """Record an AppendEntries carrying `count` entries ending at `last_index`."""
        if self.state == ProgressState.REPLICATE:
            if count:
                self.next = last_index + 1
                self.inflight.append(last_index)
        elif self.state == ProgressState.PROBE:
            self.probe_sent = True
        else:
            invariant(False, "append sent while sending a snapshot")

    def maybe_update(self, index: int) -> bool:
        """An acknowledgement that the follower's log matches up to `index`."""
        updated = index > self.match
        if updated:
            self.match = index
            self.probe_sent = False
        self.next = max(self.next, index + 1)
        while self.inflight and self.inflight[0] <= index:
            self.inflight.popleft()
        return updated

    def maybe_decrease_to(self, rejected: int, match_hint: int) -> bool:
        """A rejection of the append whose previous index was `rejected`. Returns False
        when the rejection is stale (it answers a message sent before a newer one)."""
        if self.state == ProgressState.REPLICATE:
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, match_hint + 1), self.match + 1)
        self.probe_sent = False
        return True

    def free_one_slot(self) -> None:
        """Let one more message out when every slot is taken and nothing came back (the
        window could otherwise stay full forever if acknowledgements were lost)."""
        if self.inflight:
            self.inflight.popleft()
