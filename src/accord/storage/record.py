"""Record framing shared by WAL segments and snapshot files.

Theory of operation
-------------------
A file is a sequence of records::

    magic (4) | payload length u32 (4) | type u8 (1) | reserved (3) | crc32c u32 (4) | payload

all little-endian. The CRC32C covers the first 12 header bytes and the payload, so a
flipped bit anywhere in a record (including its length) is caught. The magic is not
needed to read a healthy file; it exists so that, after a damaged record, the reader
can look for *later* valid records cheaply (`bytes.find`) instead of trying every
offset.

That search is how torn tails are told from corruption. The WAL writes each batch as
one record and fsyncs before writing the next, so a crash can damage only the final
record of the last segment, and nothing valid can follow it. Hence, in the tail of the
log:

- damage with no valid record anywhere after it is a torn write: the caller truncates
  it (the fsync of that write never returned, so nothing was acknowledged);
- damage followed by a valid record is corruption: something that was durable broke.

Trusting the damaged record's own length field instead would be unsafe: a flipped bit
in the length of a middle record could make it "run to the end of the file", and the
records after it would be silently dropped. The price of the search is a false alarm
when a torn final record happens to contain a complete, well-formed record in its
payload (an application storing WAL bytes as a value): the node then refuses to start
and `accord storage repair` resolves it. Refusing is safe; dropping is not.

Everywhere else (any segment but the last, snapshot files) any damage is corruption.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

from accord.storage.limits import RECORD_HEADER_BYTES, RESYNC_SCAN_BYTES_MAX

RECORD_MAGIC = b"\xacWAL"

_PREFIX = struct.Struct("<4sIB3x")
_CRC = struct.Struct("<I")
_PREFIX_BYTES = _PREFIX.size


class RecordType(IntEnum):
    SEGMENT_HEADER = 1
    BATCH = 2
    SNAPSHOT_HEADER = 3
    SNAPSHOT_BODY = 4
    GROUP_RECORD = 5
    """A WAL record of a version-2 segment: operations that name their groups."""


_RECORD_TYPES = frozenset(int(t) for t in RecordType)


@dataclass(frozen=True, slots=True)
class Record:
    offset: int
    type: RecordType
    payload: bytes

    @property
    def end(self) -> int:
        return self.offset + RECORD_HEADER_BYTES + len(self.payload)


@dataclass(frozen=True, slots=True)
class Damage:
    """Where reading stopped: `offset` of the first bad byte range and why.

    `torn` is True only for the tail of a file read with `tail=True` when no valid
    record follows the damage.
    """

    offset: int
    reason: str
    torn: bool


_crc32c_impl: Callable[[bytes | memoryview, int], int] | None = None


def _crc32c(data: bytes | memoryview, value: int = 0) -> int:
    """The CRC32C of `data`, continuing from `value` (the `crc32c` package's).

    The package is imported on first use rather than with this module: its
    `__init__` reads its own version through `importlib.metadata`, which imports
    `email` and with it `socket`, and importing `accord.storage` loads no networking
    module (`tests/test_layering.py`).
    """
    global _crc32c_impl
    if _crc32c_impl is None:
        import crc32c

        _crc32c_impl = crc32c.crc32c
    return _crc32c_impl(data, value)


def frame_header(record_type: RecordType, payload: bytes) -> bytes:
    """The header of the record holding `payload` (for writing a large payload apart)."""
    prefix = _PREFIX.pack(RECORD_MAGIC, len(payload), record_type)
    return prefix + _CRC.pack(_crc32c(payload, _crc32c(prefix)))


def frame(record_type: RecordType, payload: bytes) -> bytes:
    """Header and payload of one record, ready to be written in one call."""
    return frame_header(record_type, payload) + payload


def _parse_at(data: bytes, offset: int, payload_bytes_max: int) -> tuple[Record | None, str]:
    """The record at `offset`, or None and what is wrong with it."""
    remaining = len(data) - offset
    if remaining < RECORD_HEADER_BYTES:
        return None, f"incomplete record header ({remaining} of {RECORD_HEADER_BYTES} bytes)"
    magic, length, type_code = _PREFIX.unpack_from(data, offset)
    if magic != RECORD_MAGIC:
        return None, "bad record magic"
    if type_code not in _RECORD_TYPES:
        return None, f"unknown record type {type_code}"
    if length > payload_bytes_max:
        return None, f"record length {length} exceeds the limit {payload_bytes_max}"
    start = offset + RECORD_HEADER_BYTES
    if length > len(data) - start:
        return None, f"record length {length} runs past the end of the file"
    (stored,) = _CRC.unpack_from(data, offset + _PREFIX_BYTES)
    computed = _crc32c(
        memoryview(data)[start : start + length], _crc32c(data[offset : offset + _PREFIX_BYTES])
    )
    if computed != stored:
        return None, f"checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
    return Record(offset, RecordType(type_code), data[start : start + length]), ""


def _valid_record_after(data: bytes, start: int, payload_bytes_max: int) -> bool:
    """Whether any valid record begins at or after `start` (see theory of operation).

    Out of budget counts as "found": the caller then reports corruption, which is the
    safe answer when we cannot prove the damage is only a torn tail.
    """
    budget = RESYNC_SCAN_BYTES_MAX
    position = data.find(RECORD_MAGIC, start)
    while position >= 0:
        if len(data) - position >= RECORD_HEADER_BYTES:
            (_, length, _) = _PREFIX.unpack_from(data, position)
            budget -= min(length, len(data) - position)
            if budget < 0:
                return True
        record, _ = _parse_at(data, position, payload_bytes_max)
        if record is not None:
            return True
        position = data.find(RECORD_MAGIC, position + 1)
    return False


def scan(
    data: bytes, *, tail: bool, payload_bytes_max: int, start: int = 0
) -> tuple[list[Record], Damage | None]:
    """Every valid record from `start` up to the first damage, and that damage if any.

    Never raises on bad input: whatever `data` holds, the result is valid records
    (each one's checksum verified) and at most one `Damage`.
    """
    records: list[Record] = []
    offset = start
    while offset < len(data):
        record, reason = _parse_at(data, offset, payload_bytes_max)
        if record is None:
            torn = tail and not _valid_record_after(data, offset + 1, payload_bytes_max)
            return records, Damage(offset, reason, torn)
        records.append(record)
        offset = record.end
    return records, None
