"""The Raft log as the core sees it: a snapshot boundary plus the entries after it.

Theory of operation: the core keeps every entry after the latest snapshot in memory
(compaction bounds that). Index `i` lives at `entries[i - first_index()]`; the entry
at `snapshot_index` is gone but its term is remembered, which is all AppendEntries
consistency checks need. Three cursors move forward:

- `committed`: highest index known to be committed;
- `applied`: highest index handed to the driver for applying (never > committed);
- `unstable_from`: first index not yet handed to the driver for persisting. A
  follower that truncates a diverging suffix moves it back, so the driver rewrites.

A snapshot received from a leader replaces the whole log (`restore`), and waits in
`pending_snapshot` until handed out.
"""

from __future__ import annotations

from collections.abc import Sequence

from accord.invariant import invariant
from accord.raft.types import Entry, Snapshot

ENTRY_OVERHEAD_BYTES = 24
"""Rough per-entry framing cost, so batches of empty entries are bounded too."""


def entry_size(entry: Entry) -> int:
    return len(entry.data) + ENTRY_OVERHEAD_BYTES


class RaftLog:
    def __init__(self, snapshot: Snapshot | None, entries: Sequence[Entry], committed: int) -> None:
        self.snapshot = snapshot
        self.snapshot_index = snapshot.index if snapshot else 0
        self.snapshot_term = snapshot.term if snapshot else 0
        self.entries: list[Entry] = list(entries)
        for offset, entry in enumerate(self.entries):
            invariant(entry.index == self.snapshot_index + 1 + offset, "log entries not contiguous")
        self.committed = max(committed, self.snapshot_index)
        invariant(self.committed <= self.last_index(), "commit index beyond the log")
        self.applied = self.snapshot_index
        self.unstable_from = self.last_index() + 1
        self.pending_snapshot: Snapshot | None = None

    # --- queries -------------------------------------------------------------------
    def first_index(self) -> int:
        return self.snapshot_index + 1

    def last_index(self) -> int:
        return self.snapshot_index + len(self.entries)

    def last_term(self) -> int:
        return self.entries[-1].term if self.entries else self.snapshot_term

    def term(self, index: int) -> int | None:
        """Term of the entry at `index`; None when compacted away or not yet written."""
        if index == self.snapshot_index:
            return self.snapshot_term
        if index < self.snapshot_index or index > self.last_index():
            return None
        return self.entries[index - self.snapshot_index - 1].term

    def match_term(self, index: int, term: int) -> bool:
        return self.term(index) == term

    def entry(self, index: int) -> Entry:
        invariant(self.snapshot_index < index <= self.last_index(), f"no entry at {index}")
        return self.entries[index - self.snapshot_index - 1]

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """Raft's election restriction: is a log ending at (last_index, last_term) at
        least as up to date as ours?"""
        ours = self.last_term()
        return last_term > ours or (last_term == ours and last_index >= self.last_index())

    def slice(self, lo: int, hi: int, max_count: int, max_bytes: int) -> tuple[Entry, ...]:
        """Entries [lo, hi), at most `max_count` and about `max_bytes` (never fewer than
        one entry if any is available)."""
        invariant(lo > self.snapshot_index, "slice below the snapshot")
        hi = min(hi, self.last_index() + 1, lo + max_count)
        out: list[Entry] = []
        size = 0
        for index in range(lo, hi):
            entry = self.entries[index - self.snapshot_index - 1]
            size += entry_size(entry)
            if out and size > max_bytes:
                break
            out.append(entry)
        return tuple(out)

    def find_conflict_by_term(self, index: int, term: int) -> int:
        """The largest index <= `index` whose term is <= `term` (the fast-backtracking
        hint: entries after it cannot match a log whose entry at `index` has `term`)."""
        index = min(index, self.last_index())
        while index > self.snapshot_index:
            entry_term = self.term(index)
            if entry_term is not None and entry_term <= term:
                return index
            index -= 1
        return index

    # --- mutations -----------------------------------------------------------------
    def append(self, entries: Sequence[Entry]) -> None:
        """Append entries that continue the log exactly (the leader's own proposals)."""
        if entries:
            invariant(entries[0].index == self.last_index() + 1, "append leaves a gap")
            self.entries.extend(entries)

    def maybe_append(
        self, prev_index: int, prev_term: int, commit: int, entries: Sequence[Entry]
    ) -> int | None:
        """AppendEntries on a follower: None if the log does not contain an entry at
        `prev_index` with `prev_term`; otherwise the index of the last new entry."""
        if not self.match_term(prev_index, prev_term):
            return None
        last_new = prev_index + len(entries)
        conflict = self._find_conflict(entries)
        if conflict:
            invariant(conflict > self.committed, f"conflict at committed index {conflict}")
            self._truncate_and_append(entries[conflict - prev_index - 1 :])
        self.commit_to(min(commit, last_new))
        return last_new

    def _find_conflict(self, entries: Sequence[Entry]) -> int:
        """First index where `entries` disagree with (or extend) the log; 0 if none."""
        for entry in entries:
            if not self.match_term(entry.index, entry.term):
                return entry.index
        return 0

    def _truncate_and_append(self, entries: Sequence[Entry]) -> None:
        start = entries[0].index
        invariant(self.snapshot_index < start <= self.last_index() + 1, "bad truncation point")
        del self.entries[start - self.snapshot_index - 1 :]
        self.entries.extend(entries)
        self.unstable_from = min(self.unstable_from, start)

    def commit_to(self, index: int) -> bool:
        if index <= self.committed:
            return False
        invariant(index <= self.last_index(), f"commit {index} beyond last {self.last_index()}")
        self.committed = index
        return True

    def restore(self, snapshot: Snapshot) -> None:
        """Replace the log with an empty log after `snapshot` (sent by a leader)."""
        invariant(snapshot.index > self.committed, "restore would move commit backwards")
        self.snapshot = snapshot
        self.snapshot_index = snapshot.index
        self.snapshot_term = snapshot.term
        self.entries = []
        self.committed = snapshot.index
        self.applied = snapshot.index
        self.unstable_from = snapshot.index + 1
        self.pending_snapshot = snapshot

    def compact(self, snapshot: Snapshot, keep_entries: int) -> None:
        """Drop entries covered by a locally taken snapshot, keeping the last
        `keep_entries` of them so slightly lagging followers need no snapshot."""
        invariant(snapshot.index <= self.applied, "snapshot beyond the applied index")
        invariant(snapshot.index >= self.snapshot_index, "snapshot older than the current one")
        self.snapshot = snapshot
        drop_to = max(self.snapshot_index, snapshot.index - keep_entries)
        drop_term = self.term(drop_to)
        invariant(drop_term is not None, "compaction point has no term")
        del self.entries[: drop_to - self.snapshot_index]
        self.snapshot_index = drop_to
        self.snapshot_term = drop_term or 0

    # --- hand-out cursors ------------------------------------------------------------
    def unstable_entries(self) -> tuple[Entry, ...]:
        if self.unstable_from > self.last_index():
            return ()
        return tuple(self.entries[self.unstable_from - self.snapshot_index - 1 :])

    def next_committed(self, max_count: int) -> tuple[Entry, ...]:
        lo = self.applied + 1
        hi = min(self.committed, self.applied + max_count)
        if hi < lo:
            return ()
        base = self.snapshot_index + 1
        return tuple(self.entries[lo - base : hi - base + 1])
