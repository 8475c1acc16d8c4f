"""Snapshot files: written atomically, checksummed, validated on load, the newest K kept.

Theory of operation
-------------------
Snapshots live in one directory per Raft group: group 0's in `DIR/snap/` (where a
single-group directory always kept them), group G's in `DIR/snap/G/` (G in decimal;
`group_snapshot_dir()`). Each is `{index:016x}-{term:016x}.snap`: two records in the
WAL's framing (`accord.storage.record`). The header record (format version, index,
term, whether the body is sealed) is never encrypted, so `accord storage check` can
list snapshots without the key; the body record (index, term, membership, data) is
sealed when a cipher is configured, bound to the index and term, and to the group
for every group but 0 (whose files keep the binding they always had), so a sealed
snapshot moved into another group's directory fails to open.

Writing: the file is written under a temporary name, fsynced, renamed into place and
the directory fsynced. A crash leaves no file or a complete one; temporaries left
over are deleted at the next open. Once the new file is durable, all but the newest K
(`snapshots_kept`, default 2) are deleted.

Loading checks everything (checksums, header against file name, body against header)
and never trusts a part of a file: any failure is `CorruptionError`. There is no torn
tail to forgive here, since a snapshot only appears under its name after its fsync.

A corrupt snapshot is never loaded. `candidates()` yields the files newest first (a
corrupt one as its `CorruptionError`) and `model.recover_state()` takes the newest
valid one that the log connects to; corrupt files passed over are renamed to
`NAME.corrupt`, out of the way of retention but kept for inspection. `FileStorage`
keeps the WAL from the oldest retained snapshot on, so it can fall back past a corrupt
newest snapshot, except when that snapshot was installed from the leader: the log
before it was discarded then, and the node must be re-seeded from its peers.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from accord.raft.types import Snapshot
from accord.storage._fsutil import sync_dir, sync_file, write_all
from accord.storage.codec import (
    DecodeError,
    decode_snapshot_body,
    decode_snapshot_header,
    encode_snapshot_body,
    encode_snapshot_header,
)
from accord.storage.errors import CipherRequired, CorruptionError, LimitExceeded
from accord.storage.limits import SNAPSHOT_DATA_BYTES_MAX, SNAPSHOT_FILE_BYTES_MAX
from accord.storage.protocol import Cipher
from accord.storage.record import RecordType, frame, frame_header, scan

SNAPSHOT_SUFFIX = ".snap"
TEMPORARY_SUFFIX = ".tmp"
CORRUPT_SUFFIX = ".corrupt"
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_POSITION = struct.Struct("<QQ")
_GROUP = struct.Struct("<Q")


def snapshot_name(index: int, term: int) -> str:
    return f"{index:016x}-{term:016x}{SNAPSHOT_SUFFIX}"


def parse_snapshot_name(name: str) -> tuple[int, int] | None:
    stem = name.removesuffix(SNAPSHOT_SUFFIX)
    parts = stem.split("-")
    if stem == name or len(parts) != 2 or any(len(part) != 16 for part in parts):
        return None
    try:
        return int(parts[0], 16), int(parts[1], 16)
    except ValueError:
        return None


def associated_data(index: int, term: int, group: int = 0) -> bytes:
    if group == 0:
        return b"accord-snap" + _POSITION.pack(index, term)
    return b"accord-snap/g" + _GROUP.pack(group) + _POSITION.pack(index, term)


def group_snapshot_dir(root: Path, group: int) -> Path:
    """Where `group` keeps its snapshots under the snapshot root `DIR/snap/`."""
    return root if group == 0 else root / str(group)


def parse_group_dir_name(name: str) -> int | None:
    """The group a subdirectory of the snapshot root belongs to, or None."""
    if not name.isdigit() or not name.isascii() or str(int(name)) != name or name == "0":
        return None
    return int(name)


def list_group_dirs(root: Path) -> dict[int, Path]:
    """Every group's snapshot directory under `root` (group 0's is `root` itself)."""
    found = {0: root}
    for path in root.iterdir():
        group = parse_group_dir_name(path.name)
        if group is not None and path.is_dir():
            found[group] = path
    return found


def remove_group_snapshots(root: Path, group: int) -> list[Path]:
    """Delete every file of `group`'s snapshot directory (snapshots, temporaries, files
    set aside as corrupt) and, but for group 0, the directory; durably."""
    directory = group_snapshot_dir(root, group)
    if not directory.is_dir():
        return []
    removed = [path for path in directory.iterdir() if path.is_file()]
    for path in removed:
        path.unlink()
    if group != 0:
        directory.rmdir()
        sync_dir(root)
    elif removed:
        sync_dir(directory)
    return removed


def groups_with_snapshots(root: Path) -> list[int]:
    """The groups whose snapshot directory under `root` holds a snapshot file."""
    if not root.is_dir():
        return []
    return sorted(g for g, d in list_group_dirs(root).items() if has_snapshot_files(d))


def has_snapshot_files(directory: Path) -> bool:
    """Whether `directory` holds any snapshot file (complete or set aside)."""
    return directory.is_dir() and any(
        path.is_file()
        and (
            parse_snapshot_name(path.name) is not None
            or parse_snapshot_name(path.name.removesuffix(CORRUPT_SUFFIX)) is not None
        )
        for path in directory.iterdir()
    )


@dataclass(frozen=True, slots=True)
class SnapshotFile:
    index: int
    term: int
    path: Path


def list_snapshots(directory: Path) -> list[SnapshotFile]:
    """The snapshot files in `directory`, newest (highest index, then term) first."""
    files = []
    for path in directory.iterdir():
        parsed = parse_snapshot_name(path.name)
        if parsed is not None and path.is_file():
            files.append(SnapshotFile(parsed[0], parsed[1], path))
    files.sort(key=lambda f: (f.index, f.term), reverse=True)
    return files


def read_snapshot(file: SnapshotFile, cipher: Cipher | None, group: int = 0) -> Snapshot:
    """Load and fully validate one snapshot file; `CorruptionError` on any damage."""
    where = str(file.path)
    size = file.path.stat().st_size
    if size > SNAPSHOT_FILE_BYTES_MAX:
        raise CorruptionError(where, None, f"{size} bytes exceeds any snapshot we write")
    data = file.path.read_bytes()
    records, damage = scan(data, tail=False, payload_bytes_max=SNAPSHOT_FILE_BYTES_MAX)
    if damage is not None:
        raise CorruptionError(where, damage.offset, damage.reason)
    types = [record.type for record in records]
    if types != [RecordType.SNAPSHOT_HEADER, RecordType.SNAPSHOT_BODY]:
        raise CorruptionError(where, 0, f"expected a header and a body record, found {types}")
    header, body = records
    try:
        index, term, sealed = decode_snapshot_header(header.payload)
        if (index, term) != (file.index, file.term):
            raise DecodeError(f"header says index {index} term {term}, unlike the file name")
        payload = body.payload
        if sealed:
            if cipher is None:
                raise CipherRequired(where)
            payload = _open(cipher, payload, associated_data(index, term, group))
        snapshot = decode_snapshot_body(payload)
        if (snapshot.index, snapshot.term) != (index, term):
            raise DecodeError("body and header disagree on index or term")
    except DecodeError as exc:
        raise CorruptionError(where, body.offset, str(exc)) from exc
    return snapshot


def _open(cipher: Cipher, payload: bytes, associated: bytes) -> bytes:
    try:
        return cipher.open(payload, associated)
    except Exception as exc:  # a foreign cipher may fail any way it likes
        raise DecodeError(f"cannot open sealed snapshot (wrong key?): {exc!r}") from exc


class SnapshotStore:
    """The snapshot directory. Any `OSError` leaves it in an unknown state."""

    def __init__(
        self, directory: Path, *, cipher: Cipher | None, kept: int, group: int = 0
    ) -> None:
        self._dir = directory
        self._cipher = cipher
        self._kept = kept
        self._group = group

    @property
    def directory(self) -> Path:
        return self._dir

    def files(self) -> list[SnapshotFile]:
        return list_snapshots(self._dir)

    def oldest_index(self) -> int | None:
        files = self.files()
        return files[-1].index if files else None

    def remove_temporaries(self) -> list[str]:
        """Delete files a crash left half-written; they were never renamed into place."""
        removed = [p for p in self._dir.iterdir() if p.name.endswith(TEMPORARY_SUFFIX)]
        for path in removed:
            path.unlink()
        if removed:
            sync_dir(self._dir)
        return [path.name for path in removed]

    def sync(self) -> None:
        """Make the directory's current entries durable (renames a dead process made)."""
        sync_dir(self._dir)

    def candidates(self) -> Iterator[Snapshot | CorruptionError]:
        """Snapshots newest first, each read only when asked for."""
        for file in self.files():
            try:
                yield read_snapshot(file, self._cipher, self._group)
            except CorruptionError as exc:
                yield exc

    def save(self, snapshot: Snapshot) -> None:
        """Write `snapshot` durably (temporary file, fsync, rename, directory fsync)."""
        if len(snapshot.data) > SNAPSHOT_DATA_BYTES_MAX:
            raise LimitExceeded("snapshot data", len(snapshot.data), SNAPSHOT_DATA_BYTES_MAX)
        sealed = self._cipher is not None
        header = frame(
            RecordType.SNAPSHOT_HEADER,
            encode_snapshot_header(snapshot.index, snapshot.term, sealed),
        )
        body = encode_snapshot_body(snapshot)
        if self._cipher is not None:
            body = self._cipher.seal(
                body, associated_data(snapshot.index, snapshot.term, self._group)
            )
        final = self._dir / snapshot_name(snapshot.index, snapshot.term)
        temporary = final.with_name(final.name + TEMPORARY_SUFFIX)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _CLOEXEC, 0o644)
        try:
            write_all(fd, header)
            write_all(fd, frame_header(RecordType.SNAPSHOT_BODY, body))
            write_all(fd, body)
            sync_file(fd)
        finally:
            os.close(fd)
        os.replace(temporary, final)
        sync_dir(self._dir)

    def set_aside(self, paths: list[Path]) -> list[str]:
        """Rename corrupt snapshots to NAME.corrupt: out of every listing, still on disk."""
        names = []
        for path in paths:
            target = path.with_name(path.name + CORRUPT_SUFFIX)
            os.replace(path, target)
            names.append(target.name)
        if names:
            sync_dir(self._dir)
        return names

    def prune(self) -> list[Path]:
        """Delete all but the newest `kept` snapshot files."""
        doomed = [file.path for file in self.files()[self._kept :]]
        for path in doomed:
            path.unlink()
        if doomed:
            sync_dir(self._dir)
        return doomed
