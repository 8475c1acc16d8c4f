"""Snapshot files: atomic write, validation, retention, fallback; and the record cipher."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accord.raft.types import HardState
from accord.storage import CipherRequired, CorruptionError, FileStorage
from accord.storage.snapshots import SnapshotFile, list_snapshots, read_snapshot, snapshot_name

from .helpers import XorCipher, entries, snapshot


def fill(storage: FileStorage, last: int) -> None:
    for first in range(1, last, 10):
        storage.save(HardState(1, 1, first + 9), entries(first, first + 9, size=40))


def test_only_the_newest_k_snapshots_are_kept(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path, snapshots_kept=3)
    storage.load()
    fill(storage, 100)
    for index in (10, 20, 30, 40, 50):
        storage.save_snapshot(snapshot(index))
    names = sorted(p.name for p in (tmp_path / "snap").iterdir())
    assert names == [snapshot_name(i, 1) for i in (30, 40, 50)]
    storage.close()


def test_leftover_temporary_is_removed_and_never_loaded(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    storage.load()
    fill(storage, 30)
    storage.save_snapshot(snapshot(10))
    storage.close()
    temporary = tmp_path / "snap" / (snapshot_name(20, 1) + ".tmp")
    temporary.write_bytes(b"half a snapshot")
    again = FileStorage(tmp_path)
    state = again.load()
    assert state.snapshot == snapshot(10)
    assert not temporary.exists()
    assert any("unfinished snapshot" in note for note in state.notes)
    again.close()


def test_snapshot_whose_name_disagrees_with_its_header_is_corrupt(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    storage.load()
    fill(storage, 30)
    storage.save_snapshot(snapshot(20))
    storage.close()
    source = tmp_path / "snap" / snapshot_name(20, 1)
    renamed = source.with_name(snapshot_name(21, 1))
    source.rename(renamed)
    with pytest.raises(CorruptionError, match="unlike the file name"):
        read_snapshot(SnapshotFile(21, 1, renamed), None)


def test_corrupt_newest_installed_snapshot_refuses_to_start(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    storage.load()
    fill(storage, 30)
    storage.save_snapshot(snapshot(20))
    storage.save(HardState(2, 0, 50), entries(51, 52, term=2), snapshot(50, term=2))
    storage.close()
    newest = list_snapshots(tmp_path / "snap")[0].path
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0x20
    newest.write_bytes(bytes(data))
    with (
        FileStorage(tmp_path) as broken,
        pytest.raises(CorruptionError, match="no older snapshot connects") as caught,
    ):
        broken.load()
    assert caught.value.path == str(newest)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 255)), min_size=1))
def test_damaged_snapshot_files_never_load(tmp_path: Path, edits: list[tuple[int, int]]) -> None:
    directory = tmp_path / "fuzz"
    if not directory.exists():
        directory.mkdir()
        storage = FileStorage(directory)
        storage.load()
        fill(storage, 30)
        storage.save_snapshot(snapshot(25, data=os.urandom(300)))
        storage.close()
    file = list_snapshots(directory / "snap")[0]
    original = file.path.read_bytes()
    expected = read_snapshot(file, None)
    data = bytearray(original)
    for where, mask in edits:
        data[where % len(data)] ^= mask
    try:
        file.path.write_bytes(bytes(data))
        if bytes(data) == original:
            assert read_snapshot(file, None) == expected
        else:
            with pytest.raises(CorruptionError):
                read_snapshot(file, None)
    finally:
        file.path.write_bytes(original)


def test_sealed_storage_round_trips_and_hides_the_payload(tmp_path: Path) -> None:
    cipher = XorCipher(b"key-1")
    storage = FileStorage(tmp_path, cipher=cipher, segment_bytes_max=4096)
    storage.load()
    secret = [e for e in entries(1, 60, size=100)]
    storage.save(HardState(1, 1, 60), secret)
    storage.save_snapshot(snapshot(30, data=b"SECRET-STATE" * 10))
    storage.close()
    for path in (tmp_path / "wal").iterdir():
        assert secret[0].data not in path.read_bytes()
    for path in (tmp_path / "snap").iterdir():
        assert b"SECRET-STATE" not in path.read_bytes()
    again = FileStorage(tmp_path, cipher=cipher)
    state = again.load()
    assert state.entries == secret[30:]
    assert state.snapshot == snapshot(30, data=b"SECRET-STATE" * 10)
    again.close()


def test_sealed_storage_needs_the_right_key(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path, cipher=XorCipher(b"key-1"))
    storage.load()
    storage.save(HardState(1, 1, 0), entries(1, 3))
    storage.close()
    with FileStorage(tmp_path) as plain, pytest.raises(CipherRequired):
        plain.load()
    with (
        FileStorage(tmp_path, cipher=XorCipher(b"key-2")) as wrong,
        pytest.raises(CorruptionError, match="cannot open sealed record"),
    ):
        wrong.load()


def test_turning_the_cipher_on_starts_a_sealed_segment(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    storage.load()
    storage.save(HardState(1, 1, 0), entries(1, 3))
    storage.close()
    cipher = XorCipher(b"key-1")
    sealed = FileStorage(tmp_path, cipher=cipher)
    sealed.load()
    sealed.save(None, entries(4, 6))
    assert len(sealed.segment_paths) == 2
    sealed.close()
    again = FileStorage(tmp_path, cipher=cipher)
    assert again.load().entries == entries(1, 6)
    again.close()


def test_sealed_record_moved_elsewhere_does_not_open(tmp_path: Path) -> None:
    cipher = XorCipher(b"key-1")
    assert cipher.open(cipher.seal(b"abc", b"here"), b"here") == b"abc"
    with pytest.raises(ValueError):
        cipher.open(cipher.seal(b"abc", b"here"), b"there")
