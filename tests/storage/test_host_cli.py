"""`accord storage check|repair` on a directory holding many groups: a report per
group, leftovers of destroyed groups, a repair that cuts a log shared by groups."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from accord.cli.storage import storage as storage_group
from accord.raft.types import HardState
from accord.security.atrest import at_rest_cipher
from accord.security.keys import new_key_text, parse_keys
from accord.storage import FileHostStorage, GroupWrite
from accord.storage.limits import RECORD_HEADER_BYTES
from accord.storage.record import scan

from .helpers import entries, snapshot


def fill(directory: Path, **options: object) -> None:
    with FileHostStorage(directory, segment_bytes_max=4096, **options) as host:  # type: ignore[arg-type]
        for group in (0, 5, 12):
            host.create_group(group)
            host.load(group)
        for first in range(1, 60, 10):
            host.save(
                [
                    GroupWrite(
                        g, HardState(2, 1, first - 1), tuple(entries(first, first + 9, 2, 40))
                    )
                    for g in (0, 5, 12)
                ]
            )
        host.save_snapshot(5, snapshot(30, term=2))
        host.create_group(7)  # created last: only in the last segment
        host.load(7)
        host.save([GroupWrite(7, HardState(1, 0, 4), tuple(entries(5, 6)), snapshot(4))])


def invoke(*args: str, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(
        storage_group, list(args), input=stdin, env={"ACCORD_ENCRYPTION_KEY": ""}
    )
    return result.exit_code, result.output


@pytest.fixture
def node(tmp_path: Path) -> Path:
    fill(tmp_path / "node")
    return tmp_path / "node"


def test_check_reports_every_group(node: Path) -> None:
    code, out = invoke("check", str(node))
    assert code == 0, out
    assert "groups: 4" in out
    for group in (0, 5, 7, 12):
        assert f"  group {group}\n" in out
    assert "5/000000000000001e-0000000000000002.snap  index 30  term 2" in out
    assert "recovers to: snapshot at 30 (term 2), entries 31-60, commit 50" in out
    assert "recovers to: snapshot at 4 (term 1), entries 5-6, commit 4" in out
    assert "group 0: entries" in out and "group 12: entries" in out
    assert out.rstrip().endswith("result: OK")


def test_check_lists_the_snapshots_of_a_group_that_does_not_exist(node: Path) -> None:
    stray = node / "snap" / "9"
    stray.mkdir()
    (stray / "000000000000001e-0000000000000002.snap").write_bytes(b"left over")
    code, out = invoke("check", str(node))
    assert code == 0, out
    assert f"not in any group the log holds: {stray}/" in out
    with FileHostStorage(node) as host:  # the next open removes them
        assert host.groups() == {0, 5, 7, 12}
    assert not stray.exists()


def test_repair_cuts_the_shared_log_and_moves_groups_it_forgets_away(node: Path) -> None:
    first = sorted((node / "wal").iterdir())[0]
    records, _ = scan(first.read_bytes(), tail=False, payload_bytes_max=1 << 30)
    data = bytearray(first.read_bytes())
    data[records[-1].offset + RECORD_HEADER_BYTES + 3] ^= 0x20
    first.write_bytes(bytes(data))
    code, out = invoke("check", str(node))
    assert code == 1 and "recovery refuses" in out and "result: CORRUPT" in out
    code, out = invoke("repair", str(node), "--yes")
    assert "warning: the damage is not only a torn tail" in out
    assert code == 0, out
    # Group 7 was created after the cut: the log no longer holds it, so its snapshot
    # went into the backup with the segments removed. The others remain.
    (backup,) = node.glob("repair-backup-*")
    assert list(backup.glob("snap/7/*.snap")) and not list(node.glob("snap/7/*"))
    assert "groups: 3" in out
    with FileHostStorage(node) as host:
        assert host.groups() == {0, 5, 12}
        assert host.load(5).snapshot == snapshot(30, term=2)


def test_an_encrypted_multi_group_data_dir_is_checked_with_its_key(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(new_key_text() + "\n")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    cipher = at_rest_cipher(data_dir, parse_keys(key_file.read_text(), "test"))
    fill(data_dir / "raft", cipher=cipher)
    code, out = invoke("check", str(data_dir), "--key-file", str(key_file))
    assert code == 0, out
    assert "groups: 4" in out and "sealed" in out
    code, out = invoke("check", str(data_dir))
    assert code == 1 and "encrypted" in out
