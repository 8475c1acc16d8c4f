"""The write-ahead log: segmented, append-only, one record and one fdatasync per batch.

Theory of operation
-------------------
The log lives in `DIR/wal/` as segments named by a sequence number
(`0000000000000001.wal`, ...). Each segment starts with a header record (format
version, its own sequence number, whether its payloads are sealed by a cipher) and
continues with batch records, one per `save()` (see `accord.storage.record` for the
framing, `accord.storage.model` for what a batch means).

Appending: a batch is encoded, framed, written with one `write()` and made durable
with one `fdatasync` (enough for an append on Linux: it flushes the size with the
data; see `_fsutil`). That is group commit: one sync per batch, however many entries
it holds. A batch is never split across segments: one that would take a segment past
the configured size starts a new segment (a segment's first batch is always accepted).
Creating a segment costs one more sync, of the directory, after the first batch in it.

Because every batch is synced before the next is written, only the final record of
the last segment can be torn by a crash. Recovery reads every segment in order and
truncates that torn tail (with an fsync) so the node can start; damage anywhere else
is `CorruptionError` naming the file and byte offset. Recovery also syncs the last
segment and the directory: a killed process may have left its last write in the page
cache only, and the node must not act on data a power cut could still take away.

Truncating a conflicting suffix is logical: a batch whose first entry index is
already in the log replaces that entry and everything after it on replay; the same
record carries both, so the truncation is exactly as durable as the new entries.
Segments are never rewritten; physically, old versions disappear with compaction.

Compaction removes the oldest segments whose every entry is at or below the
compaction index, or was superseded by a later truncation or snapshot install. Each
segment tracks the highest index whose current version it may hold
(`live_index_max`); only a prefix of segments is removed, oldest first, followed by a
directory sync. The newest segment holding a hard state is never removed; the first
batch of every segment carries the full hard state so the previous segments can go.
"""

from __future__ import annotations

import dataclasses
import os
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from accord.invariant import InvariantError
from accord.raft.types import HardState
from accord.storage._fsutil import sync_dir, sync_file, write_all
from accord.storage.codec import (
    DecodeError,
    decode_batch,
    decode_segment_header,
    encode_batch,
    encode_segment_header,
)
from accord.storage.errors import CipherRequired, CorruptionError, LimitExceeded
from accord.storage.limits import RECORD_PAYLOAD_BYTES_MAX, SEGMENT_FILE_BYTES_MAX
from accord.storage.model import Batch, LogModel
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


def associated_data(seq: int, offset: int) -> bytes:
    """What a sealed batch is bound to: its segment and offset, so a record copied
    elsewhere, or replayed at another position, fails to open."""
    return b"accord-wal" + _POSITION.pack(seq, offset)


@dataclass(slots=True)
class SegmentInfo:
    """What the writer knows about one segment."""

    seq: int
    path: Path
    size_bytes: int
    sealed: bool
    batch_count: int = 0
    live_index_max: int = 0
    """Highest index whose current version this segment may hold (0: none)."""
    has_hard_state: bool = False


@dataclass(slots=True)
class SegmentRead:
    """The outcome of reading one segment; `damage` is None when it read cleanly."""

    seq: int
    path: Path
    size_bytes: int
    sealed: bool = False
    batches: list[tuple[int, Batch]] = field(default_factory=list)
    damage: Damage | None = None
    valid_bytes: int = 0


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
                result.sealed = _check_header(record, seq, cipher, path)
            else:
                result.batches.append((record.offset, _decode(record, seq, result, cipher)))
        except DecodeError as exc:
            result.damage = Damage(record.offset, str(exc), torn=False)
            result.valid_bytes = record.offset
            return result
        result.valid_bytes = record.end
    result.damage = damage
    return result


def _check_header(record: Record, seq: int, cipher: Cipher | None, path: Path) -> bool:
    if record.type != RecordType.SEGMENT_HEADER:
        raise DecodeError(f"segment starts with a {record.type.name} record, not a header")
    header_seq, sealed = decode_segment_header(record.payload)
    if header_seq != seq:
        raise DecodeError(f"header names segment {header_seq}, the file name {seq}")
    if sealed and cipher is None:
        raise CipherRequired(str(path))
    return sealed


def _decode(record: Record, seq: int, segment: SegmentRead, cipher: Cipher | None) -> Batch:
    if record.type != RecordType.BATCH:
        raise DecodeError(f"unexpected {record.type.name} record inside a segment")
    payload = record.payload
    if segment.sealed:
        if cipher is None:
            raise CipherRequired(str(segment.path))
        try:
            payload = cipher.open(payload, associated_data(seq, record.offset))
        except Exception as exc:  # a foreign cipher may fail any way it likes
            raise DecodeError(f"cannot open sealed record (wrong key?): {exc!r}") from exc
    return decode_batch(payload)


def iter_segments(directory: Path, cipher: Cipher | None) -> Iterator[SegmentRead]:
    """Read the segments oldest first; only the last may end in a torn tail."""
    segments = list_segments(directory)
    for position, (seq, path) in enumerate(segments):
        yield read_segment(path, seq, tail=position == len(segments) - 1, cipher=cipher)


@dataclass(slots=True)
class WalRecovery:
    hard_state: HardState
    model: LogModel
    notes: list[str]


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
        self._last_index = 0
        self._dir_dirty = False
        self._unsynced = False
        """An append since the last data sync (written with sync=False)."""
        self._unsynced_bytes = 0

    @property
    def segments(self) -> tuple[SegmentInfo, ...]:
        return tuple(self._segments)

    def recover(self) -> WalRecovery:
        """Replay every segment; truncate a torn tail; raise on corruption."""
        model = LogModel()
        hard_state = HardState()
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
            self._segments.append(
                SegmentInfo(read.seq, read.path, read.valid_bytes, read.sealed, len(read.batches))
            )
            for _, batch in read.batches:
                model.apply(batch)
                self._track(batch)
                if batch.hard_state is not None:
                    hard_state = batch.hard_state
            if damage is not None:
                _truncate(read.path, damage.offset)
                notes.append(
                    f"truncated torn tail of {read.path.name} at byte {damage.offset} "
                    f"({read.size_bytes - damage.offset} bytes: {damage.reason})"
                )
        if self._segments:
            self._fd = os.open(self._segments[-1].path, os.O_WRONLY | os.O_APPEND | _CLOEXEC)
            # A process killed between write() and fdatasync() left its last batch in
            # the page cache only: we just read it back, so make it as durable as it
            # looks. (Earlier segments were synced before the next one was created.)
            sync_file(self._fd)
        sync_dir(self._dir)
        return WalRecovery(hard_state, model, notes)

    def append(self, batch: Batch, hard_state_now: HardState, *, sync: bool = True) -> None:
        """Write `batch` as one record and make it durable with one data sync (or, if
        not `sync`, leave it for the next sync: it is then the tail a crash may tear).

        `hard_state_now` is the hard state after this batch; the first batch of a
        segment carries it in full (see theory of operation).
        """
        if not self._segments or self._segments[-1].sealed != (self._cipher is not None):
            self._roll()
        record, batch = self._encode(batch, hard_state_now)
        active = self._segments[-1]
        if active.batch_count and active.size_bytes + len(record) > self._segment_bytes_max:
            self._roll()
            record, batch = self._encode(batch, hard_state_now)
            active = self._segments[-1]
        fd = self._fd
        if fd is None:
            raise InvariantError("append on a closed WAL")
        write_all(fd, record)
        active.size_bytes += len(record)
        active.batch_count += 1
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
        self._track(batch)

    def _encode(self, batch: Batch, hard_state_now: HardState) -> tuple[bytes, Batch]:
        active = self._segments[-1]
        if batch.hard_state is None and not active.has_hard_state and hard_state_now != HardState():
            batch = dataclasses.replace(batch, hard_state=hard_state_now)
        payload = encode_batch(batch)
        if self._cipher is not None:
            payload = self._cipher.seal(payload, associated_data(active.seq, active.size_bytes))
        if len(payload) > RECORD_PAYLOAD_BYTES_MAX:
            raise LimitExceeded("WAL record", len(payload), RECORD_PAYLOAD_BYTES_MAX)
        return frame(RecordType.BATCH, payload), batch

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

    def _track(self, batch: Batch) -> None:
        """Update what each segment may still be needed for after `batch`."""
        active = self._segments[-1]
        if batch.hard_state is not None:
            active.has_hard_state = True
        if batch.reset is not None:
            for segment in self._segments:
                segment.live_index_max = 0
            self._last_index = batch.reset[0]
        if batch.entries:
            first = batch.entries[0].index
            if first <= self._last_index:
                for segment in self._segments:
                    segment.live_index_max = min(segment.live_index_max, first - 1)
            self._last_index = batch.entries[-1].index
            active.live_index_max = max(active.live_index_max, self._last_index)

    def compact(self, index: int) -> list[Path]:
        """Remove the oldest segments holding nothing above `index`; return their paths."""
        newest_with_hard_state = max(
            (i for i, s in enumerate(self._segments) if s.has_hard_state),
            default=len(self._segments),
        )
        removable: list[SegmentInfo] = []
        for position, segment in enumerate(self._segments[:-1]):
            if position >= newest_with_hard_state or segment.live_index_max > index:
                break
            removable.append(segment)
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
