"""The write-ahead log: segmented, append-only, one record and one fdatasync per batch,
shared by every Raft group of a node.

Theory of operation
-------------------
The log lives in `DIR/wal/` as segments named by a sequence number
(`0000000000000001.wal`, ...). Each segment starts with a header record (format
version, its own sequence number, whether its payloads are sealed by a cipher) and
continues with WAL records (see `accord.storage.record` for the framing,
`accord.storage.codec` for the payloads, `accord.storage.model` for what they mean).
A record is a list of operations, each naming its group: one group's batch (one
`save()` of that group), a group created, a group destroyed. A host save that writes
many groups is one record.

Formats: version-2 segments (all that is written) hold such records. Version-1
segments, written before groups existed, hold one batch per record and no group ids;
their batches are group 0's (`LEGACY_GROUP`), which exists from the start of a replay
that begins with one. Recovery reads both; an append never goes into a version-1
segment but starts a version-2 one (`needs_upgrade`: `FileHostStorage` appends a
checkpoint at once when it opens such a directory), so the two never mix within a
segment. (Older versions of Accord cannot read version 2.)

Appending: a record is encoded, framed, written with one `write()` and made durable
with one `fdatasync` (enough for an append on Linux: it flushes the size with the
data; see `_fsutil`). That is group commit: one sync per record, however many entries
and groups it holds. A record is never split across segments: one that would take a
segment past the configured size starts a new segment (a segment's first record is
always accepted). Creating a segment costs one more sync, of the directory, after the
first record in it.

Because every record is synced before the next is written, only the final record of
the last segment can be torn by a crash. Recovery reads every segment in order and
truncates that torn tail (with an fsync) so the node can start; damage anywhere else
is `CorruptionError` naming the file and byte offset. Recovery also syncs the last
segment and the directory: a killed process may have left its last write in the page
cache only, and the node must not act on data a power cut could still take away.

Truncating a conflicting suffix is logical: a batch whose first entry index is
already in its group's log replaces that entry and everything after it on replay;
the same record carries both, so the truncation is exactly as durable as the new
entries. Segments are never rewritten; physically, old versions disappear with
compaction.

The checkpoint: the first record of every version-2 segment carries every existing
group with its hard state at that point. So no earlier segment is ever needed for a
hard state or for knowing which groups exist (or that one was destroyed), and the
previous segments can go once no group needs their entries.

Compaction removes a prefix of segments, oldest first, followed by a directory sync.
Each segment tracks, per group, the highest index whose current version it may hold
(`live_index_max`; a later truncation or snapshot install lowers it, destroying the
group drops it). A segment goes only when, for every group it holds live entries of,
they are at or below what that group allowed (`compact(allowed)`); the newest segment
with a checkpoint, and every segment after it, stay. Removing only a prefix keeps
the replay a suffix of history: a record that superseded older entries is never
removed while those entries remain. The price: a group that never compacts (an idle
one without snapshots) keeps every segment from its oldest live entry on;
`blocking_groups()` names such groups so the host can snapshot them.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from accord.invariant import InvariantError
from accord.storage._fsutil import sync_dir, sync_file, write_all
from accord.storage.codec import (
    FORMAT_VERSION,
    FORMAT_VERSION_GROUPS,
    DecodeError,
    decode_batch,
    decode_record,
    decode_segment_header,
    encode_record,
    encode_segment_header,
)
from accord.storage.errors import CipherRequired, CorruptionError, LimitExceeded
from accord.storage.limits import RECORD_PAYLOAD_BYTES_MAX, SEGMENT_FILE_BYTES_MAX
from accord.storage.model import (
    LEGACY_GROUP,
    Batch,
    Checkpoint,
    GroupBatch,
    GroupCreated,
    HostReplay,
    Op,
    ReplayError,
    WalRecord,
)
from accord.storage.protocol import Cipher
from accord.storage.record import Damage, Record, RecordType, frame, scan

SEGMENT_SUFFIX = ".wal"
_SEQ_DIGITS = 16
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_POSITION = struct.Struct("<QQ")

SyncObserver = Callable[[float, int], None]
"""Called after each appended record is synced with (sync seconds, record bytes), on
the writing thread; how the node measures fsync latency without this package knowing
about metrics."""


def segment_name(seq: int) -> str:
    return f"{seq:0{_SEQ_DIGITS}x}{SEGMENT_SUFFIX}"


def parse_segment_name(name: str) -> int | None:
    stem = name.removesuffix(SEGMENT_SUFFIX)
    if stem == name or len(stem) != _SEQ_DIGITS:
        return None
    try:
        return int(stem, 16)
    except ValueError:
        return None


def list_segments(directory: Path) -> list[tuple[int, Path]]:
    """(sequence number, path) of every segment in `directory`, oldest first."""
    found = []
    for path in directory.iterdir():
        seq = parse_segment_name(path.name)
        if seq is not None and path.is_file():
            found.append((seq, path))
    found.sort()
    return found


def associated_data(seq: int, offset: int, version: int = FORMAT_VERSION) -> bytes:
    """What a sealed record is bound to: its segment and offset, so a record copied
    elsewhere, or replayed at another position, fails to open; and the segment's format
    version, so a record cannot be passed off as one of the other format."""
    prefix = b"accord-wal" if version == FORMAT_VERSION else b"accord-wal/2"
    return prefix + _POSITION.pack(seq, offset)


@dataclass(slots=True)
class SegmentInfo:
    """What the writer knows about one segment."""

    seq: int
    path: Path
    size_bytes: int
    sealed: bool
    version: int = FORMAT_VERSION_GROUPS
    record_count: int = 0
    live_index_max: dict[int, int] = field(default_factory=dict)
    """Per group, the highest index whose current version this segment may hold (a
    group without live entries here is absent)."""

    @property
    def has_checkpoint(self) -> bool:
        return self.version == FORMAT_VERSION_GROUPS and self.record_count > 0


@dataclass(slots=True)
class SegmentRead:
    """The outcome of reading one segment; `damage` is None when it read cleanly."""

    seq: int
    path: Path
    size_bytes: int
    sealed: bool = False
    version: int = 0
    records: list[tuple[int, WalRecord]] = field(default_factory=list)
    damage: Damage | None = None
    valid_bytes: int = 0

    @property
    def batches(self) -> list[tuple[int, Batch]]:
        """(record offset, batch) of every group's batch, in log order."""
        return [
            (offset, op.batch)
            for offset, record in self.records
            for op in record.ops
            if isinstance(op, GroupBatch)
        ]


def read_segment(path: Path, seq: int, *, tail: bool, cipher: Cipher | None) -> SegmentRead:
    """Read and decode one segment. Damage is reported, not raised (the caller knows
    whether it may be repaired); only `CipherRequired` and I/O errors raise."""
    size = path.stat().st_size
    result = SegmentRead(seq, path, size)
    if size > SEGMENT_FILE_BYTES_MAX:
        result.damage = Damage(0, f"segment of {size} bytes exceeds any we write", torn=False)
        return result
    data = path.read_bytes()
    records, damage = scan(data, tail=tail, payload_bytes_max=RECORD_PAYLOAD_BYTES_MAX)
    if not records and damage is None:
        damage = Damage(0, "empty segment (no header)", torn=tail)
    for position, record in enumerate(records):
        try:
            if position == 0:
                result.version, result.sealed = _check_header(record, seq, cipher, path)
            else:
                decoded = _decode(record, result, cipher)
                first_of_v2 = position == 1 and result.version == FORMAT_VERSION_GROUPS
                if first_of_v2 and decoded.checkpoint is None:
                    raise DecodeError("the first record of a segment has no checkpoint")
                result.records.append((record.offset, decoded))
        except DecodeError as exc:
            result.damage = Damage(record.offset, str(exc), torn=False)
            result.valid_bytes = record.offset
            return result
        result.valid_bytes = record.end
    result.damage = damage
    return result


def _check_header(record: Record, seq: int, cipher: Cipher | None, path: Path) -> tuple[int, bool]:
    if record.type != RecordType.SEGMENT_HEADER:
        raise DecodeError(f"segment starts with a {record.type.name} record, not a header")
    version, header_seq, sealed = decode_segment_header(record.payload)
    if header_seq != seq:
        raise DecodeError(f"header names segment {header_seq}, the file name {seq}")
    if sealed and cipher is None:
        raise CipherRequired(str(path))
    return version, sealed


_RECORD_TYPE_OF = {FORMAT_VERSION: RecordType.BATCH, FORMAT_VERSION_GROUPS: RecordType.GROUP_RECORD}


def _decode(record: Record, segment: SegmentRead, cipher: Cipher | None) -> WalRecord:
    expected = _RECORD_TYPE_OF[segment.version]
    if record.type != expected:
        raise DecodeError(
            f"unexpected {record.type.name} record inside a version-{segment.version} segment"
        )
    payload = record.payload
    if segment.sealed:
        if cipher is None:
            raise CipherRequired(str(segment.path))
        try:
            payload = cipher.open(
                payload, associated_data(segment.seq, record.offset, segment.version)
            )
        except Exception as exc:  # a foreign cipher may fail any way it likes
            raise DecodeError(f"cannot open sealed record (wrong key?): {exc!r}") from exc
    if segment.version == FORMAT_VERSION:
        return WalRecord(None, (GroupBatch(LEGACY_GROUP, decode_batch(payload)),))
    return decode_record(payload)


def iter_segments(directory: Path, cipher: Cipher | None) -> Iterator[SegmentRead]:
    """Read the segments oldest first; only the last may end in a torn tail."""
    segments = list_segments(directory)
    for position, (seq, path) in enumerate(segments):
        yield read_segment(path, seq, tail=position == len(segments) - 1, cipher=cipher)


class Replayer:
    """Replays segments as recovery does: one `HostReplay` over all of them; raises
    `CorruptionError` for a record that cannot follow the ones before it. A replay
    that begins with a version-1 segment begins with group 0 in existence."""

    def __init__(self) -> None:
        self.replay: HostReplay | None = None
        self.records = 0
        """How many records were replayed."""
        self._newest_version = 0

    def segment(self, read: SegmentRead) -> HostReplay:
        if self.replay is None:
            self.replay = HostReplay([LEGACY_GROUP] if read.version == FORMAT_VERSION else [])
        if read.valid_bytes and read.version < self._newest_version:
            raise CorruptionError(
                str(read.path), 0, "a version-1 segment after a version-2 one (not written by us)"
            )
        self._newest_version = max(self._newest_version, read.version)
        for offset, record in read.records:
            self.records += 1
            try:
                self.replay.apply(record)
            except ReplayError as exc:
                raise CorruptionError(str(read.path), offset, str(exc)) from exc
        return self.replay


@dataclass(slots=True)
class WalRecovery:
    replay: HostReplay
    """What the log holds per group (empty and without groups for an empty log)."""
    notes: list[str]
    records: int
    """How many records the log holds: none, and it cannot say which groups exist."""


class Wal:
    """The segment writer. `recover()` once, then `append()`, `compact()`, `close()`.

    Not thread-safe. Any `OSError` leaves the files in an unknown state; the owner
    must stop using this object (see `StorageFailed`).
    """

    def __init__(
        self,
        directory: Path,
        *,
        cipher: Cipher | None,
        segment_bytes_max: int,
        on_sync: SyncObserver | None = None,
    ) -> None:
        self._dir = directory
        self._on_sync = on_sync
        self._cipher = cipher
        self._segment_bytes_max = segment_bytes_max
        self._segments: list[SegmentInfo] = []
        self._fd: int | None = None
        self._last_index: dict[int, int] = {}
        """Per group, the index of its last entry (or snapshot) as logged."""
        self._dir_dirty = False
        self._unsynced = False
        """An append since the last data sync (written with sync=False)."""
        self._unsynced_bytes = 0

    @property
    def segments(self) -> tuple[SegmentInfo, ...]:
        return tuple(self._segments)

    @property
    def needs_upgrade(self) -> bool:
        """The last segment is version 1: the next append starts a version-2 one."""
        return bool(self._segments) and self._segments[-1].version != FORMAT_VERSION_GROUPS

    def recover(self) -> WalRecovery:
        """Replay every segment; truncate a torn tail; raise on corruption."""
        replayer = Replayer()
        notes: list[str] = []
        for read in iter_segments(self._dir, self._cipher):
            damage = read.damage
            if damage is not None and not damage.torn:
                raise CorruptionError(str(read.path), damage.offset, damage.reason)
            if read.valid_bytes == 0:
                # Created, but not even its header survived: the crash came before the
                # first sync in it, so it held nothing acknowledged.
                read.path.unlink()
                sync_dir(self._dir)
                notes.append(f"removed torn segment {read.path.name}")
                continue
            replayer.segment(read)
            self._segments.append(
                SegmentInfo(read.seq, read.path, read.valid_bytes, read.sealed, read.version, 0)
            )
            for _, record in read.records:
                self._segments[-1].record_count += 1
                self._track(record)
            if damage is not None:
                _truncate(read.path, damage.offset)
                notes.append(
                    f"truncated torn tail of {read.path.name} at byte {damage.offset} "
                    f"({read.size_bytes - damage.offset} bytes: {damage.reason})"
                )
        if self._segments:
            self._fd = os.open(self._segments[-1].path, os.O_WRONLY | os.O_APPEND | _CLOEXEC)
            # A process killed between write() and fdatasync() left its last record in
            # the page cache only: we just read it back, so make it as durable as it
            # looks. (Earlier segments were synced before the next one was created.)
            sync_file(self._fd)
        sync_dir(self._dir)
        return WalRecovery(replayer.replay or HostReplay(), notes, replayer.records)

    def append(
        self, ops: Sequence[Op], checkpoint: Callable[[], Checkpoint], *, sync: bool = True
    ) -> None:
        """Write `ops` as one record and make it durable with one data sync (or, if
        not `sync`, leave it for the next sync: it is then the tail a crash may tear).

        `checkpoint()` gives every existing group with its hard state before `ops`;
        it is called only for the first record of a segment (theory of operation).
        """
        active = self._segments[-1] if self._segments else None
        if (
            active is None
            or active.sealed != (self._cipher is not None)
            or active.version != FORMAT_VERSION_GROUPS
        ):
            self._roll()
        record, encoded = self._encode(ops, checkpoint)
        active = self._segments[-1]
        if active.record_count and active.size_bytes + len(record) > self._segment_bytes_max:
            self._roll()
            record, encoded = self._encode(ops, checkpoint)
            active = self._segments[-1]
        fd = self._fd
        if fd is None:
            raise InvariantError("append on a closed WAL")
        write_all(fd, record)
        active.size_bytes += len(record)
        active.record_count += 1
        self._track(encoded)
        if not sync:
            self._unsynced = True
            self._unsynced_bytes += len(record)
            return
        if self._on_sync is None:
            sync_file(fd)
        else:
            started = time.perf_counter()
            sync_file(fd)
            self._on_sync(time.perf_counter() - started, len(record) + self._unsynced_bytes)
        self._unsynced, self._unsynced_bytes = False, 0
        if self._dir_dirty:
            sync_dir(self._dir)
            self._dir_dirty = False

    def _encode(
        self, ops: Sequence[Op], checkpoint: Callable[[], Checkpoint]
    ) -> tuple[bytes, WalRecord]:
        active = self._segments[-1]
        record = WalRecord(checkpoint() if active.record_count == 0 else None, tuple(ops))
        payload = encode_record(record)
        if self._cipher is not None:
            payload = self._cipher.seal(
                payload, associated_data(active.seq, active.size_bytes, FORMAT_VERSION_GROUPS)
            )
        if len(payload) > RECORD_PAYLOAD_BYTES_MAX:
            raise LimitExceeded("WAL record", len(payload), RECORD_PAYLOAD_BYTES_MAX)
        return frame(RecordType.GROUP_RECORD, payload), record

    def _roll(self) -> None:
        # An unsynced tail must be durable before a later segment is: recovery takes a
        # bad record only at the very end of the log for a torn write.
        if self._unsynced and self._fd is not None:
            sync_file(self._fd)
            self._unsynced = False
        seq = self._segments[-1].seq + 1 if self._segments else 1
        path = self._dir / segment_name(seq)
        sealed = self._cipher is not None
        header = frame(RecordType.SEGMENT_HEADER, encode_segment_header(seq, sealed))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | _CLOEXEC, 0o644)
        try:
            write_all(fd, header)
        except BaseException:
            os.close(fd)
            raise
        if self._fd is not None:
            os.close(self._fd)
        self._fd = fd
        self._segments.append(SegmentInfo(seq, path, len(header), sealed))
        self._dir_dirty = True

    def _track(self, record: WalRecord) -> None:
        """Update what each segment may still be needed for after `record`."""
        if record.checkpoint is not None:
            existing = {group for group, _ in record.checkpoint}
            for group in [g for g in self._last_index if g not in existing]:
                self._forget(group)
        for op in record.ops:
            if isinstance(op, GroupBatch):
                self._track_batch(op.group, op.batch)
            else:
                self._forget(op.group)
                if isinstance(op, GroupCreated):
                    self._last_index[op.group] = 0

    def _forget(self, group: int) -> None:
        self._last_index.pop(group, None)
        for segment in self._segments:
            segment.live_index_max.pop(group, None)

    def _track_batch(self, group: int, batch: Batch) -> None:
        last = self._last_index.get(group, 0)
        if batch.reset is not None:
            for segment in self._segments:
                segment.live_index_max.pop(group, None)
            last = batch.reset[0]
        if batch.entries:
            first = batch.entries[0].index
            if first <= last:
                for segment in self._segments:
                    live = segment.live_index_max.get(group)
                    if live is not None and live >= first:
                        if first > 1:
                            segment.live_index_max[group] = first - 1
                        else:
                            del segment.live_index_max[group]
            last = batch.entries[-1].index
            active = self._segments[-1].live_index_max
            active[group] = max(active.get(group, 0), last)
        self._last_index[group] = last

    def _removable(self, allowed: Mapping[int, int]) -> tuple[list[SegmentInfo], frozenset[int]]:
        """The prefix of segments compaction may remove, and the groups whose entries
        keep the segment after it (empty when it is kept for another reason)."""
        newest_checkpoint = max(
            (i for i, s in enumerate(self._segments) if s.has_checkpoint), default=0
        )
        removable: list[SegmentInfo] = []
        for position, segment in enumerate(self._segments[:-1]):
            if position >= newest_checkpoint:
                break
            blocking = frozenset(
                group
                for group, live in segment.live_index_max.items()
                if live > allowed.get(group, 0)
            )
            if blocking:
                return removable, blocking
            removable.append(segment)
        return removable, frozenset()

    def blocking_groups(self, allowed: Mapping[int, int]) -> frozenset[int]:
        """The groups whose live entries keep the oldest segment compaction cannot
        remove (`allowed`: per group, the index up to which its entries may go)."""
        return self._removable(allowed)[1]

    def compact(self, allowed: Mapping[int, int]) -> list[Path]:
        """Remove the oldest segments no group needs (`allowed`: per group, the index up
        to which its entries may go; 0 when absent); return their paths."""
        removable, _ = self._removable(allowed)
        for segment in removable:
            segment.path.unlink()
        if removable:
            sync_dir(self._dir)
            del self._segments[: len(removable)]
        return [segment.path for segment in removable]

    def close(self) -> None:
        if self._fd is not None:
            if self._unsynced:
                sync_file(self._fd)
                self._unsynced = False
            os.close(self._fd)
            self._fd = None


def _truncate(path: Path, length: int) -> None:
    fd = os.open(path, os.O_WRONLY | _CLOEXEC)
    try:
        os.ftruncate(fd, length)
        os.fsync(fd)
    finally:
        os.close(fd)
