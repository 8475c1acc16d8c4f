"""Property tests: random append / truncate / install / snapshot+compact / hard state /
sync / crash sequences; after every recovery the state is one the history allows.

MemoryStorage: the recovered log is the state after some prefix of the writes that
contains every synced one, and the hard state is the last synced one.
FileStorage (every save is synced): a crash (closing the files unsynced, which is what
the kernel does to a killed process) loses nothing; a torn final record (cut,
flipped or zeroed at a random byte) loses exactly the last save.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from accord.raft.types import Entry, HardState, Snapshot
from accord.storage import FileStorage, MemoryStorage
from accord.storage.record import scan

from .helpers import CONF, Reference, entries, fast_directory, view_of

Draw = Callable[[st.SearchStrategy[Any]], Any]
Plan = tuple[HardState | None, list[Entry], Snapshot | None]

SAVE_OPS = ["append", "append", "append", "truncate", "commit", "commit", "vote", "install"]


def plan_save(op: str, ref: Reference, draw: Draw) -> Plan | None:
    """A valid save for `op` from state `ref`, or None when `op` does not apply."""
    hs = ref.hard_state
    if op == "append":
        term = max(hs.term, ref.last_term, 1)
        new_hs = None if term == hs.term else HardState(term, 0, hs.commit)
        count, size = draw(st.integers(1, 12)), draw(st.sampled_from([0, 10, 200]))
        return new_hs, entries(ref.last_index + 1, ref.last_index + count, term, size), None
    if op == "truncate":
        low = max(hs.commit, ref.snapshot_index) + 1
        if low > ref.last_index:
            return None
        start = draw(st.integers(low, ref.last_index))
        term = max(hs.term, ref.last_term) + 1
        return (
            HardState(term, 0, hs.commit),
            entries(start, start + draw(st.integers(0, 5)), term),
            None,
        )
    if op == "commit":
        if hs.commit >= ref.last_index:
            return None
        return (
            HardState(hs.term, hs.vote, draw(st.integers(hs.commit + 1, ref.last_index))),
            [],
            None,
        )
    if op == "vote":
        return HardState(hs.term + 1, draw(st.integers(1, 3)), hs.commit), [], None
    index = max(ref.snapshot_index, hs.commit, 1) + draw(st.integers(0, 15))
    term = max(hs.term, ref.last_term, 1)
    snap = Snapshot(index, term, CONF, draw(st.binary(max_size=64)))
    new_hs = (
        HardState(term, hs.vote if term == hs.term else 0, index) if draw(st.booleans()) else None
    )
    after = entries(index + 1, index + draw(st.integers(0, 4)), term) if draw(st.booleans()) else []
    return new_hs, after, snap


def local_snapshot(storage: Any, ref: Reference, draw: Draw) -> bool:
    """Snapshot at the commit index and compact a little behind it; False if no-op."""
    index = ref.hard_state.commit
    if index <= ref.snapshot_index or index < 1:
        return False
    snap = Snapshot(index, ref.term_at(index), CONF, draw(st.binary(max_size=32)))
    storage.save_snapshot(snap)
    storage.compact(max(0, index - draw(st.integers(0, 5))))
    ref.local_snapshot(index, snap.term)
    return True


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_memory_storage_recovers_a_prefix_containing_every_sync(data: st.DataObject) -> None:
    storage = MemoryStorage()
    storage.load()
    ref = Reference()
    history = [ref.copy()]  # visible states since the last recovery
    synced = 0  # history[synced] is durable
    for _ in range(data.draw(st.integers(1, 40))):
        op = data.draw(st.sampled_from([*SAVE_OPS, "snapshot", "sync", "sync", "crash"]))
        if op == "sync":
            storage.sync()
            synced = len(history) - 1
        elif op == "snapshot":
            storage.sync()
            synced = len(history) - 1
            if local_snapshot(storage, ref, data.draw):
                history, synced = [ref.copy()], 0
        elif op == "crash":
            storage.crash(random.Random(data.draw(st.integers(0, 2**32))))
            state = storage.load()
            assert any(view_of(state) == h.view() for h in history[synced:])
            snapshot_index = state.snapshot.index if state.snapshot else 0
            assert state.hard_state == history[synced].normalized_hard_state(snapshot_index)
            ref = Reference.of(state)
            history, synced = [ref.copy()], 0
        else:
            plan = plan_save(op, ref, data.draw)
            if plan is not None:
                storage.write(*plan)
                ref.save(*plan)
                history.append(ref.copy())


class FileRun:
    """A FileStorage under test plus what it takes to tear its last record."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.storage = self.open()
        self.storage.load()
        self.last_record: tuple[Path, int, int] | None = None

    def open(self) -> FileStorage:
        return FileStorage(self.directory, segment_bytes_max=4096)

    def save(self, plan: Plan) -> bool:
        """Save; True if a WAL record was written (remembered for tearing)."""
        before = self._tail()
        self.storage.save(*plan)
        after = self._tail()
        if after == before or after is None:
            return False
        path, size = after
        records, _ = scan(path.read_bytes(), tail=False, payload_bytes_max=1 << 30)
        self.last_record = None if plan[2] is not None else (path, records[-1].offset, size)
        return True

    def _tail(self) -> tuple[Path, int] | None:
        paths = self.storage.segment_paths
        return (paths[-1], paths[-1].stat().st_size) if paths else None

    def restart(self) -> Any:
        self.storage.close()
        self.storage = self.open()
        self.last_record = None
        return self.storage.load()

    def tear(self, draw: Draw) -> bool:
        """Damage the last record; False if the bytes happened not to change."""
        assert self.last_record is not None
        path, start, end = self.last_record
        self.storage.close()
        original = path.read_bytes()
        data = bytearray(original)
        at = draw(st.integers(start, end - 1))
        how = draw(st.sampled_from(["cut", "flip", "zero"]))
        if how == "cut":
            del data[at:]
        elif how == "flip":
            data[at] ^= draw(st.integers(1, 255))
        else:
            data[at:] = bytes(len(data) - at)  # may already be zero: then nothing tore
        path.write_bytes(bytes(data))
        return bytes(data) != original


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_file_storage_recovers_every_save_and_loses_only_a_torn_last_one(
    data: st.DataObject,
) -> None:
    with fast_directory() as directory:
        run = FileRun(directory)
        ref = Reference()
        history = [ref.copy()]
        for _ in range(data.draw(st.integers(1, 40))):
            op = data.draw(st.sampled_from([*SAVE_OPS, "snapshot", "crash", "tear"]))
            if op == "snapshot":
                if local_snapshot(run.storage, ref, data.draw):
                    history, run.last_record = [ref.copy()], None
                continue
            if op in ("crash", "tear"):
                torn = op == "tear" and run.last_record is not None and len(history) >= 2
                if torn and run.tear(data.draw):
                    history.pop()
                state = run.restart()
                assert view_of(state) == history[-1].view()
                snapshot_index = state.snapshot.index if state.snapshot else 0
                assert state.hard_state == history[-1].normalized_hard_state(snapshot_index)
                ref = Reference.of(state)
                history = [ref.copy()]
                continue
            plan = plan_save(op, ref, data.draw)
            if plan is not None and run.save(plan):
                ref.save(*plan)
                history.append(ref.copy())
        run.storage.close()
