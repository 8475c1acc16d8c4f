"""`accord storage check` and `accord storage repair`."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from accord.cli.storage import storage as storage_group
from accord.raft.types import HardState
from accord.storage import FileStorage
from accord.storage.limits import RECORD_HEADER_BYTES
from accord.storage.record import scan
from accord.storage.snapshots import list_snapshots

from .helpers import entries, snapshot


@pytest.fixture
def node(tmp_path: Path) -> Path:
    directory = tmp_path / "node"
    with FileStorage(directory, segment_bytes_max=4096) as storage:
        storage.load()
        for first in range(1, 120, 20):
            storage.save(HardState(2, 1, first + 19), entries(first, first + 19, term=2, size=60))
        storage.save_snapshot(snapshot(60, term=2))
    return directory


def invoke(*args: str, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(storage_group, list(args), input=stdin)
    return result.exit_code, result.output


def record_offsets(path: Path) -> list[int]:
    return [r.offset for r in scan(path.read_bytes(), tail=False, payload_bytes_max=1 << 30)[0]]


def corrupt_middle(directory: Path) -> tuple[Path, int]:
    segment = sorted((directory / "wal").iterdir())[0]
    offset = record_offsets(segment)[1]
    data = bytearray(segment.read_bytes())
    data[offset + RECORD_HEADER_BYTES + 2] ^= 0x55
    segment.write_bytes(bytes(data))
    return segment, offset


def test_check_reports_a_healthy_directory(node: Path) -> None:
    code, out = invoke("check", str(node))
    assert code == 0, out
    assert "WAL segments:" in out and "0000000000000001.wal" in out
    assert "index 60  term 2" in out
    assert "hard state: term 2, vote 1, commit 120" in out
    assert "recovers to: snapshot at 60 (term 2), entries 61-120" in out
    assert out.rstrip().endswith("result: OK")


def test_check_treats_a_torn_tail_as_healthy(node: Path) -> None:
    last = sorted((node / "wal").iterdir())[-1]
    with last.open("r+b") as f:
        f.truncate(last.stat().st_size - 5)
    code, out = invoke("check", str(node))
    assert code == 0, out
    assert "torn tail at byte" in out and "result: OK (torn tail)" in out
    assert last.stat().st_size > 0  # check changes nothing


def test_check_exits_1_on_corruption_naming_file_and_offset(node: Path) -> None:
    segment, offset = corrupt_middle(node)
    code, out = invoke("check", str(node))
    assert code == 1, out
    assert f"{segment.name}" in out and f"CORRUPT at byte {offset}" in out
    assert "recovery refuses" in out and "result: CORRUPT" in out


def test_check_reports_a_corrupt_snapshot(node: Path) -> None:
    snap = list_snapshots(node / "snap")[0].path
    snap.write_bytes(snap.read_bytes()[:-2])
    code, out = invoke("check", str(node))
    assert code == 1
    assert "CORRUPT: " in out


def test_repair_asks_first_and_does_nothing_when_declined(node: Path) -> None:
    segment, _ = corrupt_middle(node)
    before = segment.read_bytes()
    code, out = invoke("repair", str(node), stdin="n\n")
    assert code != 0
    assert "apply these changes?" in out
    assert segment.read_bytes() == before
    assert not list(node.glob("repair-backup-*"))


def test_repair_truncates_at_the_first_bad_record_and_keeps_backups(node: Path) -> None:
    segment, offset = corrupt_middle(node)
    later = sorted((node / "wal").iterdir())[1:]
    original = {p.name: p.read_bytes() for p in [segment, *later]}
    code, out = invoke("repair", str(node), "--yes")
    assert "warning: the damage is not only a torn tail" in out
    assert segment.stat().st_size == offset
    assert not any(p.exists() for p in later)
    (backup,) = node.glob("repair-backup-*")
    for name, data in original.items():
        assert (backup / "wal" / name).read_bytes() == data
    # Only the snapshot is left: it opens, having lost what the warning said it might.
    assert code == 0, out
    assert "recovers to: snapshot at 60 (term 2), no entries after it" in out


def test_repair_of_a_torn_tail_lets_the_node_start(node: Path) -> None:
    last = sorted((node / "wal").iterdir())[-1]
    with last.open("ab") as f:
        f.write(b"\xacWAL garbage")
    code, out = invoke("repair", str(node), "--yes")
    assert code == 0, out
    with FileStorage(node) as storage:
        assert storage.load().last_index == 120


def test_repair_moves_a_corrupt_snapshot_away(node: Path) -> None:
    snap = list_snapshots(node / "snap")[0].path
    snap.write_bytes(snap.read_bytes()[:-2])
    code, out = invoke("repair", str(node), "--yes")
    assert code == 0, out
    assert not snap.exists()
    assert list(node.glob(f"repair-backup-*/snap/{snap.name}"))


def test_repair_refuses_while_a_node_holds_the_directory(node: Path) -> None:
    with FileStorage(node):
        code, out = invoke("repair", str(node), "--yes")
    assert code == 1
    assert "in use" in out


def test_nothing_to_repair(node: Path) -> None:
    code, out = invoke("repair", str(node))
    assert code == 0
    assert "nothing to repair" in out


def test_storage_group_is_registered_in_the_accord_command() -> None:
    from accord.cli.main import cli

    result = CliRunner().invoke(cli, ["storage", "--help"])
    assert result.exit_code == 0
    assert "check" in result.output and "repair" in result.output
