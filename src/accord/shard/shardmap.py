"""`ShardMap`: which shard owns each slot, and which nodes hold each shard.

Theory of operation
-------------------
A shard is a Raft group (its id is the group id; group 0 is the metadata group and
never a shard) that owns one or more slot ranges and has voters (`replicas`) and
possibly `learners` (replicas catching up before they are promoted). A map is
*complete*: every slot of the ring is owned by exactly one shard. It is immutable and
*versioned*: every edit returns a new map whose version is one higher, so two maps of
one cluster are ordered, and a request routed with an older map can be told so.

The edits are the ones the placement driver and the operators ask for:

- `split(shard, at, new_id)`: the slots of `shard` from `at` on go to a new shard
  with the same replicas; no key outside those slots changes owner;
- `with_members(shard, replicas, learners)`: a replica change (a move is a learner
  added, promoted, and an old voter removed, each step a new map).

`to_doc()` / `from_doc()` are the JSON/msgpack form; `from_doc` checks everything
(it reads what a peer or an operator sent) and raises `ShardMapError`.

Pure: no I/O.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from itertools import pairwise
from typing import Any

from accord.shard.limits import (
    SHARD_RANGES_MAX,
    SHARD_REPLICAS_MAX,
    SHARDS_MAX,
    SLOT_COUNT,
)
from accord.shard.slots import SlotRange, coalesce, even_ranges, slot_of

GROUP_ID_MAX = 2**62
"""Largest shard id (a Raft group id, bounded as on the wire)."""


class ShardMapError(ValueError):
    """A shard map (or an edit of one) that breaks the rules above."""


@dataclass(frozen=True, slots=True)
class Shard:
    id: int
    ranges: tuple[SlotRange, ...]
    replicas: tuple[int, ...]
    """Voters, node ids."""
    learners: tuple[int, ...] = ()

    @property
    def slot_count(self) -> int:
        return sum(len(r) for r in self.ranges)

    def members(self) -> tuple[int, ...]:
        return self.replicas + self.learners

    def owns(self, slot: int) -> bool:
        return any(slot in r for r in self.ranges)


@dataclass(frozen=True)
class ShardMap:
    version: int
    shards: tuple[Shard, ...]
    """Sorted by id."""
    _starts: list[int] = field(init=False, repr=False, compare=False)
    """The first slot of every range of every shard, sorted."""
    _owners: list[int] = field(init=False, repr=False, compare=False)
    """The position in `shards` of the shard owning the range at the same index."""
    _by_id: dict[int, Shard] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check(self.version, self.shards)
        ranges = sorted((r.start, index) for index, s in enumerate(self.shards) for r in s.ranges)
        object.__setattr__(self, "_starts", [start for start, _ in ranges])
        object.__setattr__(self, "_owners", [index for _, index in ranges])
        object.__setattr__(self, "_by_id", {s.id: s for s in self.shards})

    # --- building ------------------------------------------------------------------
    @classmethod
    def initial(
        cls, shard_count: int, replicas: Mapping[int, tuple[int, ...]], first_id: int = 1
    ) -> ShardMap:
        """Version 1: the ring cut evenly into `shard_count` shards with ids from
        `first_id`; `replicas[id]` are each one's voters."""
        ranges = even_ranges(shard_count)
        shards = tuple(
            Shard(first_id + i, (ranges[i],), tuple(replicas[first_id + i]))
            for i in range(shard_count)
        )
        return cls(1, shards)

    # --- lookup --------------------------------------------------------------------
    def shard(self, shard_id: int) -> Shard:
        try:
            return self._by_id[shard_id]
        except KeyError:
            raise ShardMapError(f"no shard {shard_id} in map version {self.version}") from None

    def __contains__(self, shard_id: object) -> bool:
        return shard_id in self._by_id

    def __iter__(self) -> Iterator[Shard]:
        return iter(self.shards)

    def __len__(self) -> int:
        return len(self.shards)

    def shard_for_slot(self, slot: int) -> Shard:
        if not 0 <= slot < SLOT_COUNT:
            raise ShardMapError(f"slot {slot} is not within [0, {SLOT_COUNT})")
        return self.shards[self._owners[bisect_right(self._starts, slot) - 1]]

    def shard_for_key(self, key: bytes) -> Shard:
        return self.shard_for_slot(slot_of(key))

    def next_shard_id(self) -> int:
        return max(s.id for s in self.shards) + 1

    # --- edits (each a new version) ---------------------------------------------------
    def split(self, shard_id: int, at: int, new_id: int) -> ShardMap:
        """Give the slots of `shard_id` from `at` (one of its slots) on to a new shard
        `new_id` with the same members. Both sides must keep at least one slot."""
        old = self.shard(shard_id)
        if new_id in self._by_id:
            raise ShardMapError(f"shard {new_id} already exists")
        low = [r for r in old.ranges if r.stop <= at]
        high = [r for r in old.ranges if r.start >= at]
        for r in old.ranges:
            if r.start < at < r.stop:
                low.append(SlotRange(r.start, at))
                high.append(SlotRange(at, r.stop))
        if not low or not high or not old.owns(at):
            raise ShardMapError(f"slot {at} does not split shard {shard_id} ({_ranges(old)})")
        kept = replace(old, ranges=coalesce(low))
        born = Shard(new_id, coalesce(high), old.replicas, old.learners)
        if new_id < self.shards[-1].id:  # rare: the new shard goes in between
            between = sorted([*(s for s in self.shards if s.id != shard_id), kept, born], key=_id)
            return ShardMap(self.version + 1, tuple(between))
        # The usual case, a new highest id: edit the range index in place of a rebuild
        # (a split is applied by the metadata group, and must not cost O(shards)).
        born_at = len(self.shards)
        starts, owners = list(self._starts), list(self._owners)
        for r in old.ranges:
            i = bisect_right(starts, r.start) - 1
            if r.start >= at:
                owners[i] = born_at
            elif at < r.stop:  # the range `at` cuts in two
                starts.insert(i + 1, at)
                owners.insert(i + 1, born_at)
        shards = (*(kept if s.id == shard_id else s for s in self.shards), born)
        return self._edited(shards, {**self._by_id, shard_id: kept, new_id: born}, starts, owners)

    def _edited(
        self,
        shards: tuple[Shard, ...],
        by_id: dict[int, Shard],
        starts: list[int],
        owners: list[int],
    ) -> ShardMap:
        """The next version, from an edit that kept every rule (checked by the edit)."""
        edited = object.__new__(ShardMap)
        object.__setattr__(edited, "version", self.version + 1)
        object.__setattr__(edited, "shards", shards)
        object.__setattr__(edited, "_starts", starts)
        object.__setattr__(edited, "_owners", owners)
        object.__setattr__(edited, "_by_id", by_id)
        return edited

    def with_members(
        self, shard_id: int, replicas: Iterable[int], learners: Iterable[int] = ()
    ) -> ShardMap:
        old = self.shard(shard_id)
        new = replace(old, replicas=tuple(replicas), learners=tuple(learners))
        _check_members(new)
        shards = tuple(new if s.id == shard_id else s for s in self.shards)
        # The slots did not change: the range index (by position) is the same one.
        return self._edited(shards, {**self._by_id, shard_id: new}, self._starts, self._owners)

    # --- documents -----------------------------------------------------------------------
    def to_doc(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "shards": [
                {
                    "id": s.id,
                    "slots": [[r.start, r.stop] for r in s.ranges],
                    "replicas": list(s.replicas),
                    "learners": list(s.learners),
                }
                for s in self.shards
            ],
        }

    @classmethod
    def from_doc(cls, doc: object) -> ShardMap:
        if not isinstance(doc, dict):
            raise ShardMapError("a shard map is an object")
        version, shards = doc.get("version"), doc.get("shards")
        if not isinstance(shards, list) or len(shards) > SHARDS_MAX:
            raise ShardMapError(f"shards must be a list of at most {SHARDS_MAX}")
        parsed = tuple(_shard_from_doc(s) for s in shards)
        if not _is_int(version):
            raise ShardMapError("version must be an integer")
        return cls(version, parsed)  # type: ignore[arg-type]


def _id(shard: Shard) -> int:
    return shard.id


def _ranges(shard: Shard) -> str:
    return ", ".join(str(r) for r in shard.ranges)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _node_ids(value: object, what: str) -> tuple[int, ...]:
    if not isinstance(value, list) or len(value) > SHARD_REPLICAS_MAX:
        raise ShardMapError(f"{what} must be a list of at most {SHARD_REPLICAS_MAX} node ids")
    if not all(_is_int(n) and 0 < n <= GROUP_ID_MAX for n in value):
        raise ShardMapError(f"{what} must be positive node ids")
    return tuple(value)


def _shard_from_doc(doc: object) -> Shard:
    if not isinstance(doc, dict):
        raise ShardMapError("a shard is an object")
    slots = doc.get("slots")
    if not isinstance(slots, list) or not 0 < len(slots) <= SHARD_RANGES_MAX:
        raise ShardMapError(f"slots must be a list of 1 to {SHARD_RANGES_MAX} [start, stop]")
    ranges = []
    for pair in slots:
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not all(_is_int(x) for x in pair)
            or not 0 <= pair[0] < pair[1] <= SLOT_COUNT
        ):
            raise ShardMapError(f"a slot range is [start, stop] within [0, {SLOT_COUNT}]")
        ranges.append(SlotRange(pair[0], pair[1]))
    shard_id = doc.get("id")
    if not _is_int(shard_id):
        raise ShardMapError("a shard id is an integer")
    return Shard(
        shard_id,  # type: ignore[arg-type]
        tuple(ranges),
        _node_ids(doc.get("replicas"), "replicas"),
        _node_ids(doc.get("learners", []), "learners"),
    )


def _check(version: int, shards: tuple[Shard, ...]) -> None:
    """Every rule of a map; ShardMapError names the first one broken."""
    if not 1 <= version <= GROUP_ID_MAX:
        raise ShardMapError(f"map version {version} is not positive")
    if not 0 < len(shards) <= SHARDS_MAX:
        raise ShardMapError(f"a map has 1 to {SHARDS_MAX} shards, not {len(shards)}")
    covered = 0
    previous_id = 0
    every: list[SlotRange] = []
    for shard in shards:
        if not previous_id < shard.id <= GROUP_ID_MAX:
            raise ShardMapError("shard ids are positive, unique and sorted")
        previous_id = shard.id
        if not 0 < len(shard.ranges) <= SHARD_RANGES_MAX:
            raise ShardMapError(f"shard {shard.id} owns 1 to {SHARD_RANGES_MAX} slot ranges")
        _check_members(shard)
        covered += sum(r.stop - r.start for r in shard.ranges)
        every.extend(shard.ranges)
    every.sort()
    for a, b in pairwise(every):
        if b.start < a.stop:
            raise ShardMapError(f"slot ranges {a} and {b} overlap")
    if covered != SLOT_COUNT:
        raise ShardMapError(f"the shards own {covered} of the {SLOT_COUNT} slots, not all")


def _check_members(shard: Shard) -> None:
    members = shard.replicas + shard.learners
    if not shard.replicas or len(members) > SHARD_REPLICAS_MAX:
        raise ShardMapError(f"shard {shard.id} has 1 to {SHARD_REPLICAS_MAX} members")
    if len(set(members)) != len(members):
        raise ShardMapError(f"shard {shard.id} names a node twice")
