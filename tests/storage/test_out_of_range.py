"""A hard state with a term beyond Raft's bound (written before peers' numbers were
bounded) is refused on load and reported by `accord storage check`."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from accord.cli.storage import storage as storage_group
from accord.limits import RAFT_TERM_MAX
from accord.raft.types import HardState
from accord.storage import FileStorage
from accord.storage.errors import CorruptionError

from .helpers import entries


def write(directory: Path, term: int) -> None:
    with FileStorage(directory) as storage:
        storage.load()
        storage.save(HardState(2, 1, 3), entries(1, 3, term=2))
        storage.save(HardState(term, 0, 3), [])


@pytest.mark.parametrize("term", [RAFT_TERM_MAX + 1, 1 << 63, (1 << 64) - 1])
def test_load_refuses_a_term_beyond_the_bound(tmp_path: Path, term: int) -> None:
    write(tmp_path / "raft", term)
    with FileStorage(tmp_path / "raft") as storage, pytest.raises(CorruptionError, match="term"):
        storage.load()


def test_load_accepts_the_bound_itself(tmp_path: Path) -> None:
    write(tmp_path / "raft", RAFT_TERM_MAX)
    with FileStorage(tmp_path / "raft") as storage:
        assert storage.load().hard_state.term == RAFT_TERM_MAX


def test_storage_check_reports_it(tmp_path: Path) -> None:
    write(tmp_path / "raft", (1 << 64) - 1)
    result = CliRunner().invoke(storage_group, ["check", str(tmp_path / "raft")])
    assert result.exit_code == 1, result.output
    assert "hard state term 18446744073709551615 is beyond the bound" in result.output
    assert "result: CORRUPT" in result.output
