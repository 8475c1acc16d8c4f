"""msgpack encodings of record payloads: batches, segment headers, snapshots.

Payloads are compact msgpack arrays, not maps: a batch of entries is on the hot path.
Decoding is strict: anything but the exact shape written raises `DecodeError`, which
callers turn into `CorruptionError` with the file and offset (a record that passed
its checksum but does not decode was written by something else, or by a bug).

Two segment formats are read. Version 1 (`FORMAT_VERSION`, written by single-group
versions of Accord) holds BATCH records: one batch of the one group, `encode_batch`.
Version 2 (`FORMAT_VERSION_GROUPS`, all that is written now) holds GROUP_RECORD
records, `encode_record`::

    [checkpoint, ops]
    checkpoint: nil | [[group, term, vote, commit], ...]      (first record only)
    op:         [group, 0, hard state, reset, first, terms, types, data]   a batch
              | [group, 1]                                    group created
              | [group, 2]                                    group destroyed

where a batch's six fields are exactly a version-1 batch's.
"""

from __future__ import annotations

from typing import Any

import msgpack

from accord.raft.types import ConfState, Entry, EntryType, HardState, Snapshot
from accord.storage.limits import SNAPSHOT_MEMBERS_MAX
from accord.storage.model import (
    Batch,
    Checkpoint,
    GroupBatch,
    GroupCreated,
    GroupDestroyed,
    Op,
    WalRecord,
)

FORMAT_VERSION = 1
"""Snapshot files, and single-group WAL segments."""
FORMAT_VERSION_GROUPS = 2
"""WAL segments whose records name their groups."""
SEGMENT_FORMAT_VERSIONS = frozenset({FORMAT_VERSION, FORMAT_VERSION_GROUPS})

_OP_BATCH, _OP_CREATED, _OP_DESTROYED = 0, 1, 2

_ENTRY_TYPES: dict[int, EntryType] = {int(t): t for t in EntryType}
_DECODE_ERRORS = (ValueError, TypeError, OverflowError, msgpack.UnpackException)


class DecodeError(ValueError):
    """A payload does not have the shape this version writes."""


def _unpack(payload: bytes) -> Any:
    try:
        return msgpack.unpackb(payload, raw=False, use_list=True, strict_map_key=True)
    except _DECODE_ERRORS as exc:
        raise DecodeError(f"undecodable payload: {exc}") from exc


def _int(value: object, what: str) -> int:
    # bool is an int subclass; a bool where a number belongs is not our encoding.
    if type(value) is not int or value < 0:
        raise DecodeError(f"{what}: expected a non-negative integer, got {value!r}")
    return value


def _array(value: object, length: int | None, what: str) -> list[Any]:
    if type(value) is not list or (length is not None and len(value) != length):
        raise DecodeError(f"{what}: expected an array of {length}, got {type(value).__name__}")
    return value


def encode_batch(batch: Batch) -> bytes:
    """`[hard state, reset, first index, terms, types, data]`, entries by column.

    Columns keep the hot path cheap: a batch almost always has one term and only
    NORMAL entries, stored as a single term and `nil` types; otherwise each is a list.
    """
    packed: bytes = msgpack.packb(_batch_fields(batch), use_bin_type=True)
    return packed


def _batch_fields(batch: Batch) -> tuple[Any, ...]:
    hard_state = batch.hard_state
    hs = None if hard_state is None else (hard_state.term, hard_state.vote, hard_state.commit)
    entries = batch.entries
    first = entries[0].index if entries else 0
    term_list = [e.term for e in entries]
    uniform = bool(entries) and term_list.count(term_list[0]) == len(term_list)
    terms: int | list[int] = term_list[0] if uniform else term_list
    type_list = [e.type for e in entries]  # an EntryType packs as its int value
    types = None if type_list.count(EntryType.NORMAL) == len(entries) else type_list
    data = [e.data for e in entries]
    return (hs, batch.reset, first, terms, types, data)


def decode_batch(payload: bytes) -> Batch:
    return _batch_from_fields(_array(_unpack(payload), 6, "batch"))


def _batch_from_fields(fields: list[Any]) -> Batch:
    hs_field, reset_field, first_field, terms, types, data = fields
    hard_state = None
    if hs_field is not None:
        term, vote, commit = _array(hs_field, 3, "hard state")
        hard_state = HardState(_int(term, "term"), _int(vote, "vote"), _int(commit, "commit"))
    reset = None
    if reset_field is not None:
        index, term = _array(reset_field, 2, "reset")
        reset = (_int(index, "reset index"), _int(term, "reset term"))
    first = _int(first_field, "first index")
    entries = _decode_entries(first, terms, types, _array(data, None, "entry data"))
    if entries and first < 1:
        raise DecodeError("entries start at index 0")
    return Batch(hard_state, reset, tuple(entries))


def _decode_entries(first: int, terms: object, types: object, data: list[Any]) -> list[Entry]:
    count = len(data)
    if type(terms) is int:
        terms = [terms] * count
    term_list = [_int(term, "entry term") for term in _array(terms, count, "entry terms")]
    type_list: list[EntryType | None] = [EntryType.NORMAL] * count
    if types is not None:
        codes = _array(types, count, "entry types")
        type_list = [_ENTRY_TYPES.get(code) if type(code) is int else None for code in codes]
    out: list[Entry] = []
    for offset, (term, entry_type, item) in enumerate(zip(term_list, type_list, data, strict=True)):
        if entry_type is None or type(item) is not bytes:
            raise DecodeError(f"entry {first + offset}: bad type or data")
        out.append(Entry(term, first + offset, entry_type, item))
    return out


def encode_record(record: WalRecord) -> bytes:
    """A version-2 WAL record (module docstring)."""
    checkpoint = record.checkpoint
    ckpt = None
    if checkpoint is not None:
        ckpt = [(group, hs.term, hs.vote, hs.commit) for group, hs in checkpoint]
    ops = []
    for op in record.ops:
        if isinstance(op, GroupBatch):
            ops.append((op.group, _OP_BATCH, *_batch_fields(op.batch)))
        elif isinstance(op, GroupCreated):
            ops.append((op.group, _OP_CREATED))
        else:
            ops.append((op.group, _OP_DESTROYED))
    packed: bytes = msgpack.packb((ckpt, ops), use_bin_type=True)
    return packed


def decode_record(payload: bytes) -> WalRecord:
    ckpt_field, ops_field = _array(_unpack(payload), 2, "record")
    checkpoint: Checkpoint | None = None
    if ckpt_field is not None:
        rows = []
        for row in _array(ckpt_field, None, "checkpoint"):
            group, term, vote, commit = _array(row, 4, "checkpoint group")
            hard_state = HardState(_int(term, "term"), _int(vote, "vote"), _int(commit, "commit"))
            rows.append((_int(group, "group"), hard_state))
        groups = [group for group, _ in rows]
        if groups != sorted(set(groups)):
            raise DecodeError("checkpoint groups not strictly ascending")
        checkpoint = tuple(rows)
    ops: list[Op] = []
    for item in _array(ops_field, None, "operations"):
        op = _array(item, None, "operation")
        if len(op) < 2:
            raise DecodeError("operation: too short")
        group, kind = _int(op[0], "group"), op[1]
        if kind == _OP_BATCH and type(kind) is int and len(op) == 8:
            ops.append(GroupBatch(group, _batch_from_fields(op[2:])))
        elif kind == _OP_CREATED and type(kind) is int and len(op) == 2:
            ops.append(GroupCreated(group))
        elif kind == _OP_DESTROYED and type(kind) is int and len(op) == 2:
            ops.append(GroupDestroyed(group))
        else:
            raise DecodeError(f"operation of kind {kind!r} with {len(op)} fields")
    return WalRecord(checkpoint, tuple(ops))


def encode_segment_header(seq: int, sealed: bool, version: int = FORMAT_VERSION_GROUPS) -> bytes:
    packed: bytes = msgpack.packb((version, seq, sealed), use_bin_type=True)
    return packed


def decode_segment_header(payload: bytes) -> tuple[int, int, bool]:
    """(format version, segment sequence number, whether its record payloads are sealed)."""
    version, seq, sealed = _array(_unpack(payload), 3, "segment header")
    if type(version) is not int or version not in SEGMENT_FORMAT_VERSIONS:
        raise DecodeError(f"unsupported segment format version {version!r}")
    if type(sealed) is not bool:
        raise DecodeError("segment header: bad sealed flag")
    return version, _int(seq, "segment sequence"), sealed


def encode_snapshot_header(index: int, term: int, sealed: bool) -> bytes:
    packed: bytes = msgpack.packb((FORMAT_VERSION, index, term, sealed), use_bin_type=True)
    return packed


def decode_snapshot_header(payload: bytes) -> tuple[int, int, bool]:
    """(index, term, whether the body is sealed)."""
    version, index, term, sealed = _array(_unpack(payload), 4, "snapshot header")
    if version != FORMAT_VERSION:
        raise DecodeError(f"unsupported snapshot format version {version!r}")
    if type(sealed) is not bool:
        raise DecodeError("snapshot header: bad sealed flag")
    return _int(index, "snapshot index"), _int(term, "snapshot term"), sealed


def encode_snapshot_body(snapshot: Snapshot) -> bytes:
    conf = snapshot.conf
    packed: bytes = msgpack.packb(
        (
            snapshot.index,
            snapshot.term,
            sorted(conf.voters),
            sorted(conf.voters_outgoing),
            sorted(conf.learners),
            snapshot.data,
        ),
        use_bin_type=True,
    )
    return packed


def decode_snapshot_body(payload: bytes) -> Snapshot:
    index, term, voters, outgoing, learners, data = _array(_unpack(payload), 6, "snapshot")
    if type(data) is not bytes:
        raise DecodeError("snapshot data is not bytes")
    conf = ConfState(
        voters=_members(voters, "voters"),
        voters_outgoing=_members(outgoing, "outgoing voters"),
        learners=_members(learners, "learners"),
    )
    return Snapshot(_int(index, "snapshot index"), _int(term, "snapshot term"), conf, data)


def _members(value: object, what: str) -> frozenset[int]:
    members = _array(value, None, what)
    if len(members) > SNAPSHOT_MEMBERS_MAX:
        raise DecodeError(f"{what}: {len(members)} members exceed {SNAPSHOT_MEMBERS_MAX}")
    return frozenset(_int(member, what) for member in members)
