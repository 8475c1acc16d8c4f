"""Keys onto slots: the fixed ring every shard map divides.

Theory of operation
-------------------
The keyspace is hashed onto `SLOT_COUNT` slots, a number fixed for the life of a
cluster. A shard owns slot ranges, never keys: moving or splitting a range moves the
keys that hash into it and no others, and a client can find the slot of a key without
asking anyone. (This is Redis Cluster's scheme: a fixed ring of hash slots instead of a
ring of node tokens, so ownership changes are range edits and never a rehash.)

The hash is CRC-32 (zlib's, the IEEE polynomial) of the key's *hash part*, modulo
`SLOT_COUNT`. The hash part is the whole key unless the key has a hash tag: the bytes
between its first `{` and the first `}` after it, when there is at least one byte
between them. `user:{42}:name` and `user:{42}:email` share a slot (both hash `42`), so
a single-shard transaction can touch both; `{}x` and `x{` have no tag and hash whole.

Pure: no I/O.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from accord.invariant import invariant
from accord.shard.limits import SLOT_COUNT


def hash_part(key: bytes) -> bytes:
    """What of `key` is hashed: its hash tag if it has a non-empty one, else all of it."""
    open_at = key.find(b"{")
    if open_at < 0:
        return key
    close_at = key.find(b"}", open_at + 1)
    if close_at <= open_at + 1:  # no `}` after the `{`, or an empty tag `{}`
        return key
    return key[open_at + 1 : close_at]


def slot_of(key: bytes) -> int:
    """The slot `key` lives on, in [0, SLOT_COUNT)."""
    return zlib.crc32(hash_part(key)) % SLOT_COUNT


def range_slot(key: bytes, range_end: bytes) -> int | None:
    """The one slot every key of the range `[key, range_end)` lives on, or None if
    its keys may hash to several. A single key (`range_end` empty) has one slot; a
    range has one only when all its keys share `key`'s hash tag and what precedes
    it: `key` has a tag and `range_end` is no later than the end of that prefix."""
    if not range_end:
        return slot_of(key)
    open_at = key.find(b"{")
    close_at = key.find(b"}", open_at + 1) if open_at >= 0 else -1
    if open_at < 0 or close_at <= open_at + 1:
        return None
    # Every key from `key` up to the prefix's end starts with the prefix (ending in
    # `}`), and the first `{` and the first `}` after it are the prefix's own.
    prefix = key[: close_at + 1]
    prefix_end = prefix[:-1] + bytes([prefix[-1] + 1])
    return slot_of(key) if range_end <= prefix_end else None


@dataclass(frozen=True, slots=True, order=True)
class SlotRange:
    """Slots `start` up to, not including, `stop`."""

    start: int
    stop: int

    def __post_init__(self) -> None:
        invariant(
            0 <= self.start < self.stop <= SLOT_COUNT,
            f"slot range [{self.start}, {self.stop}) is not within [0, {SLOT_COUNT})",
        )

    def __len__(self) -> int:
        return self.stop - self.start

    def __contains__(self, slot: object) -> bool:
        return isinstance(slot, int) and self.start <= slot < self.stop

    def __str__(self) -> str:
        return f"{self.start}-{self.stop - 1}"


def even_ranges(count: int) -> tuple[SlotRange, ...]:
    """The ring cut into `count` contiguous ranges whose sizes differ by one at most."""
    invariant(1 <= count <= SLOT_COUNT, f"cannot cut {SLOT_COUNT} slots into {count} ranges")
    bounds = [i * SLOT_COUNT // count for i in range(count + 1)]
    return tuple(SlotRange(bounds[i], bounds[i + 1]) for i in range(count))


def coalesce(ranges: tuple[SlotRange, ...] | list[SlotRange]) -> tuple[SlotRange, ...]:
    """Sorted, with touching ranges joined; overlapping ranges are a programmer error."""
    out: list[SlotRange] = []
    for r in sorted(ranges):
        if out and out[-1].stop == r.start:
            out[-1] = SlotRange(out[-1].start, r.stop)
        else:
            invariant(not out or out[-1].stop < r.start, f"slot ranges overlap at {r}")
            out.append(r)
    return tuple(out)
