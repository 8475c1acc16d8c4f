"""Fuzz recovery with randomly corrupted and truncated WAL segments.

Whatever is done to the files, `load()` either raises `CorruptionError` or returns a
state that the writer really had after one of its saves (so no record whose checksum
failed, and no mix of records, was ever returned). Damage confined to the tail of the
last segment must recover; damage elsewhere must be reported.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accord.raft.types import HardState
from accord.storage import CorruptionError, FileStorage

from .helpers import Reference, entries, fast_directory, view_of

SEGMENT_BYTES = 4096


def build_history(directory: Path) -> list[Reference]:
    """Write a WAL of several segments with truncations; return the state after each save."""
    ref = Reference()
    history = [ref.copy()]
    storage = FileStorage(directory, segment_bytes_max=SEGMENT_BYTES)
    storage.load()
    plans = []
    term = 1
    for step in range(18):
        first = ref.last_index + 1
        if step % 5 == 4:
            first = max(ref.hard_state.commit + 1, ref.last_index - 3)  # a conflicting suffix
            term += 1
        hs = HardState(term, 1, max(ref.hard_state.commit, first - 3))
        plans.append((hs, entries(first, first + 9, term, size=90 + step)))
        storage.save(*plans[-1], None)
        ref.save(*plans[-1], None)
        history.append(ref.copy())
    storage.close()
    return history


@pytest.fixture(scope="module")
def template() -> Iterator[tuple[Path, list[Reference]]]:
    with fast_directory() as directory:
        history = build_history(directory / "node")
        yield directory / "node", history


edits_strategy = st.lists(
    st.tuples(
        st.sampled_from(["flip", "cut", "append", "zero-tail"]),
        st.integers(0, 1 << 20),  # which segment
        st.integers(0, 1 << 20),  # where in it
        st.binary(min_size=1, max_size=40),
    ),
    min_size=1,
    max_size=3,
)


def damage(path: Path, kind: str, where: int, blob: bytes) -> None:
    data = bytearray(path.read_bytes())
    at = where % (len(data) + 1)
    if kind == "flip" and data:
        data[at % len(data)] ^= blob[0] or 0x01
    elif kind == "cut":
        del data[at:]
    elif kind == "append":
        data.extend(blob)
    else:
        data[at:] = bytes(len(data) - at)
    path.write_bytes(bytes(data))


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(edits=edits_strategy)
def test_recovery_from_damaged_segments(
    template: tuple[Path, list[Reference]], edits: list[tuple[str, int, int, bytes]]
) -> None:
    source, history = template
    with fast_directory() as scratch:
        directory = scratch / "node"
        shutil.copytree(source, directory)
        segments = sorted((directory / "wal").iterdir())
        tail_only = True
        for kind, which, where, blob in edits:
            path = segments[which % len(segments)]
            tail_only &= path == segments[-1]
            damage(path, kind, where, blob)
        with FileStorage(directory, segment_bytes_max=SEGMENT_BYTES) as storage:
            try:
                state = storage.load()
            except CorruptionError as exc:
                assert exc.path.startswith(str(directory))
                return
            matches = [h for h in history if h.view() == view_of(state)]
            assert matches, "recovered a state the writer never had"
            assert state.hard_state in {h.hard_state for h in matches}
            # A recovered state can be continued, and survives another restart.
            storage.save(None, entries(state.last_index + 1, state.last_index + 1, 9))
        with FileStorage(directory, segment_bytes_max=SEGMENT_BYTES) as again:
            assert again.load().last_index == state.last_index + 1


def test_damage_confined_to_the_last_record_always_recovers(
    template: tuple[Path, list[Reference]],
) -> None:
    source, history = template
    with fast_directory() as scratch:
        directory = scratch / "node"
        shutil.copytree(source, directory)
        last = sorted((directory / "wal").iterdir())[-1]
        damage(last, "cut", last.stat().st_size - 7, b"x")
        with FileStorage(directory) as storage:
            state = storage.load()
        assert view_of(state) == history[-2].view()
        assert state.hard_state == history[-2].hard_state
