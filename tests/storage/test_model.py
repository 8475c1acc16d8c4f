"""Replay (`LogModel`) and the choice of the recovered state (`recover_state`)."""

from __future__ import annotations

import pytest

from accord.raft.types import HardState
from accord.storage.errors import CorruptionError
from accord.storage.model import Batch, LogModel, recover_state

from .helpers import entries, snapshot


def model_of(*batches: Batch) -> LogModel:
    model = LogModel()
    for batch in batches:
        model.apply(batch)
    return model


def test_appends_extend_and_overlaps_replace_the_suffix() -> None:
    model = model_of(
        Batch(entries=tuple(entries(1, 5))),
        Batch(entries=tuple(entries(6, 9))),
        Batch(entries=tuple(entries(4, 5, term=2))),
    )
    assert model.first == 1
    assert model.entries == entries(1, 3) + entries(4, 5, term=2)


def test_reset_empties_the_log_after_the_snapshot() -> None:
    model = model_of(Batch(entries=tuple(entries(1, 5))), Batch(reset=(10, 2)))
    assert (model.first, model.entries, model.last) == (11, [], 10)
    model.apply(Batch(entries=tuple(entries(11, 12, term=2))))
    assert model.entries == entries(11, 12, term=2)


def test_replay_starting_mid_history_and_jumps_start_afresh() -> None:
    model = model_of(Batch(entries=tuple(entries(40, 45))))
    assert model.first == 40
    model.apply(Batch(entries=tuple(entries(50, 51))))  # a gap: only a snapshot can cover it
    assert (model.first, model.entries) == (50, entries(50, 51))
    model.apply(Batch(entries=tuple(entries(30, 31, term=3))))  # rewrites below what is known
    assert (model.first, model.entries) == (30, entries(30, 31, term=3))


def test_compact_forgets_entries_up_to_index() -> None:
    model = model_of(Batch(entries=tuple(entries(1, 10))))
    model.compact(4)
    assert (model.first, model.entries) == (5, entries(5, 10))
    model.compact(2)
    assert model.first == 5
    model.compact(12)
    assert (model.first, model.entries) == (13, [])


@pytest.mark.parametrize(
    ("index", "term", "strict", "expected"),
    [
        (0, 0, True, (1, 10)),
        (4, 1, True, (5, 10)),
        (10, 1, True, ()),  # the log ends exactly at the snapshot
        (10, 1, False, ()),  # the newest may be at or ahead of the log's end
        (15, 3, False, ()),
        (15, 3, True, None),
        (4, 9, True, None),  # conflicting term: an older snapshot is unusable
        (4, 9, False, ()),  # the newest's install drops the conflicting log
    ],
)
def test_entries_after_a_snapshot(
    index: int, term: int, strict: bool, expected: tuple[int, ...] | None
) -> None:
    model = model_of(Batch(entries=tuple(entries(1, 10))))
    found = model.entries_after(index, term, strict=strict)
    if expected is None:
        assert found is None
    elif expected == ():
        assert found == []
    else:
        assert found == entries(*expected)


def test_entries_after_snapshot_with_a_gap_is_none() -> None:
    model = model_of(Batch(entries=tuple(entries(8, 10))))
    assert model.entries_after(5, 1, strict=False) is None
    assert model.entries_after(7, 1, strict=True) == entries(8, 10)


def test_recover_state_takes_newest_snapshot_and_normalizes_commit() -> None:
    model = model_of(Batch(entries=tuple(entries(1, 10))))
    state = recover_state(HardState(1, 1, 3), model, [snapshot(6), snapshot(4)], log_name="wal")
    assert state.snapshot == snapshot(6)
    assert state.entries == entries(7, 10)
    assert state.hard_state == HardState(1, 1, 6)


def test_recover_state_falls_back_past_a_corrupt_snapshot() -> None:
    model = model_of(Batch(entries=tuple(entries(3, 10))))
    bad = CorruptionError("snap/x", 16, "checksum mismatch")
    state = recover_state(HardState(1, 1, 8), model, [bad, snapshot(4)], log_name="wal")
    assert state.snapshot == snapshot(4)
    assert state.entries == entries(5, 10)
    assert any("skipped corrupt snapshot" in note for note in state.notes)


def test_recover_state_refuses_when_nothing_connects() -> None:
    model = model_of(Batch(reset=(20, 1)), Batch(entries=tuple(entries(21, 22))))
    bad = CorruptionError("snap/20", 16, "checksum mismatch")
    with pytest.raises(CorruptionError, match="no older snapshot connects") as caught:
        recover_state(HardState(1, 1, 20), model, [bad, snapshot(4)], log_name="wal")
    assert (caught.value.path, caught.value.offset) == ("snap/20", 16)


def test_recover_state_without_snapshot_needs_the_log_from_index_one() -> None:
    model = model_of(Batch(entries=tuple(entries(5, 6))))
    with pytest.raises(CorruptionError, match="starts at index 5"):
        recover_state(HardState(), model, [], log_name="wal")


def test_recover_state_refuses_commit_beyond_the_log() -> None:
    model = model_of(Batch(entries=tuple(entries(1, 3))))
    with pytest.raises(CorruptionError, match="commit 7"):
        recover_state(HardState(1, 1, 7), model, [], log_name="wal")
