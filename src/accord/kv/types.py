"""The values the KV store hands out: key-value versions and watch events.

Key ranges follow etcd's conventions, with `range_end` beside `key`:

- `range_end == b""`: the single key `key`;
- `range_end == b"\\0"`: every key `>= key` (so `(b"", b"\\0")` is every key);
- otherwise the half-open interval `[key, range_end)`, empty if `range_end <= key`.

`prefix_end(prefix)` is the `range_end` that selects every key starting with `prefix`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

ALL_KEYS_END = b"\0"
"""As a `range_end`: no upper bound."""


def prefix_end(prefix: bytes) -> bytes:
    """The smallest key greater than every key that starts with `prefix` (etcd's
    `GetPrefixRangeEnd`): drop trailing 0xff bytes and increment the last byte left.
    A prefix of only 0xff bytes (or the empty prefix) has no such key: `b"\\0"`."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return ALL_KEYS_END
    return stripped[:-1] + bytes([stripped[-1] + 1])


def in_range(candidate: bytes, key: bytes, range_end: bytes) -> bool:
    """Whether `candidate` lies in the range `(key, range_end)` as defined above."""
    if not range_end:
        return candidate == key
    if range_end == ALL_KEYS_END:
        return candidate >= key
    return key <= candidate < range_end


@dataclass(frozen=True, slots=True)
class KeyValue:
    """One version of a key.

    `version` counts the puts since the key was (re)created: 1 for the first, reset
    by a delete. A deletion is recorded as a tombstone: a `KeyValue` with version 0,
    an empty value, create revision 0 and the deleting revision as `mod_revision`;
    the store never returns a tombstone from a read, only in DELETE events.
    """

    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int = 0

    @property
    def is_tombstone(self) -> bool:
        return self.version == 0


def tombstone(key: bytes, revision: int) -> KeyValue:
    return KeyValue(key, b"", 0, revision, 0, 0)


class EventType(IntEnum):
    PUT = 0
    DELETE = 1


@dataclass(frozen=True, slots=True)
class Event:
    """A change to one key at one revision.

    For PUT, `kv` is the new version; for DELETE it is the tombstone (see `KeyValue`).
    `prev_kv` is the version the change replaced, `None` if the key did not exist.
    Events of one revision are ordered by key (each key changes at most once per
    revision), so history replay and live delivery agree on the order.
    """

    type: EventType
    kv: KeyValue
    prev_kv: KeyValue | None

    @property
    def revision(self) -> int:
        return self.kv.mod_revision
