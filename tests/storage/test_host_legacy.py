"""A directory written by the single-group format (version-1 segments: one batch per
record, no group ids) opens as group 0 with all its data, encrypted or not.

The fixture is generated here with the version-1 encoding (`write_legacy`), the way
the single-group `FileStorage` wrote it: a segment header of format 1, BATCH records
of `encode_batch` payloads, sealed with the version-1 associated data, the first
batch of each segment carrying the hard state, snapshots in DIR/snap/."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from click.testing import CliRunner

from accord.cli.storage import storage as storage_group
from accord.raft.types import Entry, HardState, Snapshot
from accord.storage import Cipher, FileHostStorage, FileStorage, GroupWrite
from accord.storage.codec import FORMAT_VERSION, encode_batch, encode_segment_header
from accord.storage.model import Batch
from accord.storage.protocol import RecoveredState
from accord.storage.record import RecordType, frame
from accord.storage.snapshots import SnapshotStore
from accord.storage.wal import associated_data, read_segment, segment_name

from .helpers import Reference, XorCipher, entries, snapshot, view_of

Save = tuple[HardState | None, list[Entry]]


def legacy_history() -> list[Save]:
    saves: list[Save] = []
    last, commit = 0, 0
    for step in range(10):
        first = last + 1
        term = 1 if step < 6 else 2
        if step == 6:
            first = last - 2  # a conflicting suffix, replaced in term 2
        saves.append((HardState(term, 1, commit), entries(first, first + 4, term, size=30)))
        last = first + 4
        commit = last - 3
    saves.append((HardState(2, 1, commit), []))
    return saves


def write_legacy(
    directory: Path,
    saves: list[Save],
    *,
    per_segment: int = 3,
    cipher: Cipher | None = None,
    snapshots: tuple[Snapshot, ...] = (),
) -> None:
    """Lay out `saves` as the single-group FileStorage did (module docstring)."""
    wal = directory / "wal"
    wal.mkdir(parents=True)
    (directory / "snap").mkdir()
    hard_state = HardState()
    chunks = [saves[i : i + per_segment] for i in range(0, len(saves), per_segment)]
    for seq, chunk in enumerate(chunks, start=1):
        header = encode_segment_header(seq, cipher is not None, version=FORMAT_VERSION)
        data = frame(RecordType.SEGMENT_HEADER, header)
        for position, (hs, new) in enumerate(chunk):
            batch = Batch(hs, None, tuple(new))
            if position == 0 and hs is None and hard_state != HardState():
                batch = dataclasses.replace(batch, hard_state=hard_state)
            payload = encode_batch(batch)
            if cipher is not None:
                payload = cipher.seal(payload, associated_data(seq, len(data)))
            data += frame(RecordType.BATCH, payload)
            hard_state = batch.hard_state or hard_state
        (wal / segment_name(seq)).write_bytes(data)
    store = SnapshotStore(directory / "snap", cipher=cipher, kept=2)
    for snap in snapshots:
        store.save(snap)


def expected(saves: list[Save], snap: Snapshot | None = None) -> Reference:
    ref = Reference()
    for hs, new in saves:
        ref.save(hs, new, None)
    if snap is not None:
        ref.local_snapshot(snap.index, snap.term)
    return ref


def assert_state(state: RecoveredState, ref: Reference) -> None:
    assert view_of(state) == ref.view()
    assert state.hard_state == ref.normalized_hard_state(ref.snapshot_index)


def test_a_single_group_directory_opens_as_group_0(tmp_path: Path) -> None:
    saves = legacy_history()
    snap = snapshot(20, term=1)
    write_legacy(tmp_path, saves, snapshots=(snapshot(10), snap))
    ref = expected(saves, snap)
    with FileHostStorage(tmp_path, segment_bytes_max=4096) as host:
        assert host.groups() == {0}
        assert_state(host.load(0), ref)
        # The next records go into a version-2 segment whose checkpoint names group 0.
        upgraded = host.segment_paths[-1]
        assert len(host.segment_paths) == 5
        host.create_group(3)
        host.load(3)
        host.save([GroupWrite(3, HardState(1, 0, 0), tuple(entries(1, 2)))])
    first = read_segment(upgraded, 5, tail=False, cipher=None)
    assert first.version == 2
    assert first.records[0][1].checkpoint == ((0, ref.hard_state),)
    with FileStorage(tmp_path) as storage:
        assert_state(storage.load(), ref)


def test_version_1_segments_go_once_group_0_compacts(tmp_path: Path) -> None:
    saves = legacy_history()
    write_legacy(tmp_path, saves)
    ref = expected(saves)
    with FileStorage(tmp_path, segment_bytes_max=4096) as storage:
        assert_state(storage.load(), ref)
        commit = ref.hard_state.commit
        storage.save_snapshot(snapshot(commit, term=2))
        storage.compact(commit)
        ref.local_snapshot(commit, 2)
        names = [path.name for path in storage.segment_paths]
    # The first three version-1 segments held only entries the snapshot covers (or
    # stale ones); the fourth holds entries 43-47, beyond it.
    assert names == [segment_name(4), segment_name(5)]
    with FileStorage(tmp_path) as storage:
        assert_state(storage.load(), ref)


def test_an_encrypted_single_group_directory_opens(tmp_path: Path) -> None:
    cipher = XorCipher(b"old key")
    saves = legacy_history()
    snap = snapshot(15, term=1)
    write_legacy(tmp_path, saves, cipher=cipher, snapshots=(snap,))
    ref = expected(saves, snap)
    with FileStorage(tmp_path, cipher=cipher) as storage:
        assert_state(storage.load(), ref)
        storage.save(None, entries(ref.last_index + 1, ref.last_index + 1, term=2))
        ref.save(None, entries(ref.last_index + 1, ref.last_index + 1, term=2), None)
    with FileHostStorage(tmp_path, cipher=cipher) as host:
        assert_state(host.load(0), ref)


def test_a_torn_tail_of_a_version_1_segment_is_truncated(tmp_path: Path) -> None:
    saves = legacy_history()
    write_legacy(tmp_path, saves, per_segment=4)
    last = sorted((tmp_path / "wal").iterdir())[-1]
    with last.open("r+b") as file:
        file.truncate(last.stat().st_size - 3)  # the final save (a hard state) is torn
    with FileStorage(tmp_path) as storage:
        state = storage.load()
    assert_state(state, expected(saves[:-1]))
    assert any("truncated torn tail" in note for note in state.notes)


def test_a_single_group_directory_with_only_a_snapshot(tmp_path: Path) -> None:
    # The first install's file became durable, its WAL record never did.
    write_legacy(tmp_path, [], snapshots=(snapshot(7, term=3),))
    with FileHostStorage(tmp_path) as host:
        assert host.groups() == {0}
        state = host.load(0)
    assert (state.snapshot, state.hard_state) == (snapshot(7, term=3), HardState(0, 0, 7))


def test_storage_check_reads_a_single_group_directory(tmp_path: Path) -> None:
    saves = legacy_history()
    write_legacy(tmp_path, saves)
    ref = expected(saves)
    result = CliRunner().invoke(storage_group, ["check", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "format 1" in result.output and "groups: 1" in result.output
    hs = ref.hard_state
    assert f"hard state: term {hs.term}, vote {hs.vote}, commit {hs.commit}" in result.output
    assert f"entries 1-{ref.last_index}" in result.output
