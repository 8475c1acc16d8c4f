"""FileHostStorage on a real directory: one fsync per batch of groups, recovery of
many groups, torn tails across groups, per-group snapshots, crashes inside
create/destroy, compaction with interleaved groups, encryption."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

import pytest

from accord.invariant import InvariantError
from accord.raft.types import HardState
from accord.storage import CorruptionError, FileHostStorage, GroupWrite, StorageFailed
from accord.storage import file as file_module
from accord.storage.record import scan
from accord.storage.wal import Wal

from .helpers import Reference, XorCipher, entries, fast_directory, snapshot, view_of
from .test_file import SyncCounter

SEGMENT_BYTES = 4096


def open_host(directory: Path, **options: object) -> FileHostStorage:
    options.setdefault("segment_bytes_max", SEGMENT_BYTES)
    return FileHostStorage(directory, **options)  # type: ignore[arg-type]


def write_round(
    host: FileHostStorage, refs: dict[int, Reference], count: int = 3, size: int = 20
) -> list[GroupWrite]:
    """Append `count` entries to every group in `refs`, committing what was there."""
    writes = []
    for group, ref in refs.items():
        first = ref.last_index + 1
        writes.append(
            GroupWrite(
                group,
                HardState(2, 1, ref.last_index),
                tuple(entries(first, first + count - 1, term=2, size=size)),
            )
        )
    host.save(writes)
    for write in writes:
        refs[write.group].save(write.hard_state, list(write.entries), None)
    return writes


def assert_recovers(directory: Path, refs: dict[int, Reference], **options: object) -> None:
    with open_host(directory, **options) as host:
        assert host.groups() == set(refs)
        for group, ref in refs.items():
            state = host.load(group)
            assert view_of(state) == ref.view(), f"group {group}"
            assert state.hard_state == ref.normalized_hard_state(ref.snapshot_index), group


def test_one_data_sync_per_save_across_groups(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    observed: list[tuple[float, int]] = []
    host = open_host(tmp_path, on_sync=lambda seconds, size: observed.append((seconds, size)))
    refs = {group: Reference() for group in range(20)}
    for group in refs:
        host.create_group(group)
        host.load(group)
    write_round(host, refs, count=1)  # settles the segment
    observed.clear()
    counter = SyncCounter(monkeypatch)
    write_round(host, refs, count=1)
    assert (counter.data, counter.full) == (1, 0)
    assert len(observed) == 1
    host.close()


def test_a_hundred_groups_recover_after_close_and_after_a_torn_tail(tmp_path: Path) -> None:
    refs = {group: Reference() for group in range(100)}
    with FileHostStorage(tmp_path, segment_bytes_max=64 * 1024) as host:
        for group in refs:
            host.create_group(group)
            host.load(group)
        for round_ in range(12):
            write_round(host, refs, count=1 + round_ % 3)
            if round_ == 6:
                host.save_snapshot(7, snapshot(refs[7].hard_state.commit, term=2))
                refs[7].local_snapshot(refs[7].hard_state.commit, 2)
                host.compact(7, refs[7].snapshot_index)
        before = {group: ref.copy() for group, ref in refs.items()}
        write_round(host, refs, count=2)
        assert len(host.segment_paths) > 1
        last = host.segment_paths[-1]
    assert_recovers(tmp_path, refs, segment_bytes_max=64 * 1024)
    # The last save, torn anywhere inside its record: every group is as before it.
    records, _ = scan(last.read_bytes(), tail=True, payload_bytes_max=1 << 30)
    start, end = records[-1].offset, records[-1].end
    for cut in (end - 1, (start + end) // 2, start + 5):
        copy = tmp_path.parent / f"torn-{cut}"
        shutil.copytree(tmp_path, copy)
        with (copy / "wal" / last.name).open("r+b") as file:
            file.truncate(cut)
        assert_recovers(copy, before, segment_bytes_max=64 * 1024)


def test_a_torn_last_record_loses_the_whole_save_in_every_group() -> None:
    with fast_directory() as root:
        template = root / "template"
        refs = {group: Reference() for group in (0, 4, 11)}
        with open_host(template) as host:
            for group in refs:
                host.create_group(group)
                host.load(group)
            write_round(host, refs)
            before = {group: ref.copy() for group, ref in refs.items()}
            write_round(host, refs, size=7)
            path = host.segment_paths[-1]
        records, damage = scan(path.read_bytes(), tail=True, payload_bytes_max=1 << 30)
        assert damage is None
        start, end = records[-1].offset, records[-1].end
        for cut in range(start, end + 1):
            directory = root / f"cut-{cut}"
            shutil.copytree(template, directory)
            with (directory / "wal" / path.name).open("r+b") as file:
                file.truncate(cut)
            assert_recovers(directory, refs if cut == end else before)
            shutil.rmtree(directory)


def test_snapshots_live_in_a_directory_per_group(tmp_path: Path) -> None:
    host = open_host(tmp_path)
    refs = {0: Reference(), 3: Reference()}
    for group in refs:
        host.create_group(group)
        host.load(group)
    write_round(host, refs)
    write_round(host, refs)
    host.save_snapshot(0, snapshot(3, term=2))
    host.save_snapshot(3, snapshot(2, term=2))
    assert host.snapshot_directory(0) == tmp_path / "snap"
    assert host.snapshot_directory(3) == tmp_path / "snap" / "3"
    assert [p.name for p in (tmp_path / "snap" / "3").iterdir()] == [
        "0000000000000002-0000000000000002.snap"
    ]
    host.destroy_group(3)
    assert not (tmp_path / "snap" / "3").exists()
    assert len(list((tmp_path / "snap").glob("*.snap"))) == 1
    host.close()


def test_a_crash_inside_destroy_removes_the_rest_at_the_next_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = open_host(tmp_path)
    refs = {1: Reference(), 2: Reference()}
    for group in refs:
        host.create_group(group)
        host.load(group)
    write_round(host, refs)
    write_round(host, refs)
    host.save_snapshot(1, snapshot(2, term=2))

    def dies(root: Path, group: int) -> list[Path]:
        raise OSError(errno.EIO, "power cut")

    monkeypatch.setattr(file_module, "remove_group_snapshots", dies)
    with pytest.raises(StorageFailed):
        host.destroy_group(1)
    monkeypatch.undo()
    host.close()
    assert (tmp_path / "snap" / "1").exists()
    with open_host(tmp_path) as again:
        assert again.groups() == {2}
        assert any("group 1, which does not exist" in n for n in again.load(2).notes)
    assert not (tmp_path / "snap" / "1").exists()
    del refs[1]
    assert_recovers(tmp_path, refs)


def test_a_crash_inside_create_leaves_no_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = open_host(tmp_path)
    host.create_group(1)

    def dies(self: Wal, *args: object, **kwargs: object) -> None:
        raise OSError(errno.EIO, "power cut")

    monkeypatch.setattr(Wal, "append", dies)
    with pytest.raises(StorageFailed):
        host.create_group(6)
    monkeypatch.undo()
    host.close()
    with open_host(tmp_path) as again:
        assert again.groups() == {1}
    assert not (tmp_path / "snap" / "6").exists()


def test_an_idle_group_keeps_the_segments_it_needs_until_it_compacts(tmp_path: Path) -> None:
    host = open_host(tmp_path)
    refs = {1: Reference(), 2: Reference(), 3: Reference()}
    for group in refs:
        host.create_group(group)
        host.load(group)
    write_round(host, refs, count=2, size=100)  # group 3 writes only here
    idle = refs.pop(3)
    for _ in range(12):
        write_round(host, refs, count=5, size=100)
    segments = host.segment_paths
    assert len(segments) > 3
    for group, ref in refs.items():
        index = ref.hard_state.commit
        host.save_snapshot(group, snapshot(index, term=2))
        host.compact(group, index)
        ref.local_snapshot(index, 2)
    assert host.segment_paths == segments  # the first holds group 3's entries
    assert host.blocking_groups() == {3}
    host.save([GroupWrite(3, HardState(2, 1, 2))])
    host.save_snapshot(3, snapshot(2, term=2))
    host.compact(3, 2)
    idle.save(HardState(2, 1, 2), [], None)
    idle.local_snapshot(2, 2)
    assert len(host.segment_paths) < len(segments)
    assert host.blocking_groups() == frozenset()
    host.close()
    refs[3] = idle
    assert_recovers(tmp_path, refs)


def test_destroying_the_idle_group_frees_its_segments(tmp_path: Path) -> None:
    host = open_host(tmp_path)
    refs = {1: Reference(), 2: Reference()}
    for group in refs:
        host.create_group(group)
        host.load(group)
    write_round(host, refs, count=2, size=100)
    del refs[2]
    for _ in range(12):
        write_round(host, refs, count=5, size=100)
    index = refs[1].hard_state.commit
    host.save_snapshot(1, snapshot(index, term=2))
    host.compact(1, index)
    refs[1].local_snapshot(index, 2)
    kept = len(host.segment_paths)
    host.destroy_group(2)
    assert len(host.segment_paths) < kept
    host.close()
    assert_recovers(tmp_path, refs)


def test_a_hard_state_survives_the_removal_of_the_segment_that_set_it(tmp_path: Path) -> None:
    host = open_host(tmp_path)
    refs = {1: Reference(), 2: Reference()}
    for group in refs:
        host.create_group(group)
        host.load(group)
    host.save([GroupWrite(2, HardState(9, 3, 0))])  # group 2: a vote, never anything else
    refs[2].save(HardState(9, 3, 0), [], None)
    for _ in range(12):
        write_round(host, {1: refs[1]}, count=5, size=100)
    index = refs[1].hard_state.commit
    host.save_snapshot(1, snapshot(index, term=2))
    host.compact(1, index)
    refs[1].local_snapshot(index, 2)
    assert len(host.segment_paths) == 1
    host.close()
    assert_recovers(tmp_path, refs)


def test_encrypted_groups_round_trip_and_hide_their_data(tmp_path: Path) -> None:
    cipher = XorCipher(b"key")
    refs = {0: Reference(), 8: Reference()}
    with open_host(tmp_path, cipher=cipher) as host:
        for group in refs:
            host.create_group(group)
            host.load(group)
        for _ in range(4):
            write_round(host, refs, size=50)
        host.save_snapshot(8, snapshot(6, term=2, data=b"secret-state" * 4))
        refs[8].local_snapshot(6, 2)
        host.save(
            [GroupWrite(0, HardState(2, 1, 12), (), snapshot(30, term=2, data=b"secret-state"))]
        )
        refs[0].save(HardState(2, 1, 12), [], snapshot(30, term=2))
    for path in tmp_path.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert b"secret-state" not in data and b"12:2:" not in data, path
    with open_host(tmp_path, cipher=cipher) as host:
        assert host.groups() == {0, 8}
        assert host.load(8).snapshot == snapshot(6, term=2, data=b"secret-state" * 4)
        assert view_of(host.load(0)) == (30, 2, ())


def test_a_sealed_snapshot_moved_to_another_group_does_not_open(tmp_path: Path) -> None:
    cipher = XorCipher(b"key")
    with open_host(tmp_path, cipher=cipher) as host:
        for group in (1, 2):
            host.create_group(group)
            host.load(group)
        host.save([GroupWrite(1, HardState(1, 1, 0), (), snapshot(5))])
    moved = next((tmp_path / "snap" / "1").glob("*.snap"))
    shutil.copy(moved, tmp_path / "snap" / "2" / moved.name)
    with open_host(tmp_path, cipher=cipher) as host:
        assert host.load(1).snapshot == snapshot(5)
        state = host.load(2)
        assert state.snapshot is None
        assert any("skipped corrupt snapshot" in note for note in state.notes)
    assert (tmp_path / "snap" / "2" / (moved.name + ".corrupt")).exists()


def test_a_group_that_cannot_be_recovered_does_not_stop_the_others(tmp_path: Path) -> None:
    with open_host(tmp_path) as host:
        for group in (1, 2):
            host.create_group(group)
            host.load(group)
        host.save([GroupWrite(2, HardState(1, 1, 5), tuple(entries(6, 7)), snapshot(5))])
    only = next((tmp_path / "snap" / "2").glob("*.snap"))
    only.write_bytes(only.read_bytes()[:-1])
    with open_host(tmp_path) as host:
        with pytest.raises(CorruptionError, match=r"group 2: .*no older snapshot connects"):
            host.load(2)
        host.load(1)
        host.save([GroupWrite(1, HardState(1, 1, 0), tuple(entries(1, 1)))])
        with pytest.raises(InvariantError, match="before load"):
            host.save([GroupWrite(2, HardState(1, 1, 5))])
    with open_host(tmp_path) as host:
        assert host.load(1).entries == entries(1, 1)


def test_a_crash_between_the_snapshot_files_and_the_record_completes_every_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = open_host(tmp_path)
    for group in (1, 2, 3):
        host.create_group(group)
        host.load(group)
    host.save([GroupWrite(g, HardState(1, 1, 2), tuple(entries(1, 8))) for g in (1, 2, 3)])

    def dies(self: Wal, *args: object, **kwargs: object) -> None:
        raise OSError(errno.EIO, "power cut")

    monkeypatch.setattr(Wal, "append", dies)
    with pytest.raises(StorageFailed):
        host.save(
            [
                GroupWrite(1, HardState(2, 0, 6), (), snapshot(6, term=2)),  # conflicts at 6
                GroupWrite(2, HardState(1, 1, 3)),
                GroupWrite(3, HardState(2, 0, 12), (), snapshot(12, term=2)),  # beyond the log
            ]
        )
    monkeypatch.undo()
    host.close()
    with open_host(tmp_path) as again:
        for group, index in ((1, 6), (3, 12)):
            state = again.load(group)
            assert (state.snapshot, state.entries) == (snapshot(index, term=2), [])
            assert any("completed the install" in note for note in state.notes)
            again.save(
                [GroupWrite(group, HardState(2, 0, index), tuple(entries(index + 1, index + 2, 2)))]
            )
        assert again.load(2).hard_state == HardState(1, 1, 2)  # the record was never written
    with open_host(tmp_path) as third:
        for group, index in ((1, 6), (3, 12)):
            state = third.load(group)
            assert state.snapshot == snapshot(index, term=2)
            assert state.entries == entries(index + 1, index + 2, 2)
