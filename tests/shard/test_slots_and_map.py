"""Slots, hash tags and shard maps: the rules a router and the driver rely on."""

from __future__ import annotations

import zlib
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accord.invariant import InvariantError
from accord.shard import Shard, ShardMap, SlotRange, hash_part, slot_of
from accord.shard.limits import SLOT_COUNT
from accord.shard.shardmap import ShardMapError
from accord.shard.slots import coalesce, even_ranges, range_slot


def test_keys_with_one_hash_tag_share_a_slot_and_others_hash_whole() -> None:
    assert slot_of(b"user:{42}:name") == slot_of(b"user:{42}:email") == slot_of(b"42")
    assert hash_part(b"a{b}c{d}") == b"b"  # the first tag only
    assert hash_part(b"{}x") == b"{}x"  # empty tag: no tag
    assert hash_part(b"x{") == b"x{"  # unclosed: no tag
    assert hash_part(b"x}{y}") == b"y"  # a `}` before the `{` is ordinary
    # The slot is CRC-32 of the hash part, so any client computes the same one.
    assert slot_of(b"plain") == zlib.crc32(b"plain") % SLOT_COUNT


def test_a_range_within_one_hash_tag_has_one_slot() -> None:
    assert range_slot(b"{user1}:", b"{user1}:\xff") == slot_of(b"user1")
    assert range_slot(b"{user1}", b"{user1~") == slot_of(b"user1")  # the tag's prefix
    assert range_slot(b"k", b"") == slot_of(b"k")  # one key
    assert range_slot(b"{user1}", b"{user2}") is None  # past the tag
    assert range_slot(b"a", b"b") is None  # no tag
    assert range_slot(b"{user1}", b"{user1\x7f") is None  # just past the prefix


KEY_BYTES = st.binary(max_size=6).map(lambda b: bytes(b"{}ab"[x % 4] for x in b))


@given(KEY_BYTES, KEY_BYTES, st.lists(KEY_BYTES, max_size=40))
def test_range_slot_is_the_slot_of_every_key_in_the_range(
    key: bytes, end: bytes, keys: list[bytes]
) -> None:
    slot = range_slot(key, end)
    if slot is None:
        return
    inside = [k for k in [key, *keys] if key <= k < end] if end else [key]
    assert all(slot_of(k) == slot for k in inside)


def test_slots_spread_keys_evenly() -> None:
    counts = [0] * 16
    for i in range(64_000):
        counts[slot_of(b"key-%d" % i) * 16 // SLOT_COUNT] += 1
    assert max(counts) < 1.1 * 4_000 and min(counts) > 0.9 * 4_000


def test_even_ranges_cover_the_ring_and_differ_by_at_most_one() -> None:
    for count in (1, 3, 7, 1000, SLOT_COUNT):
        ranges = even_ranges(count)
        assert ranges[0].start == 0 and ranges[-1].stop == SLOT_COUNT
        assert all(a.stop == b.start for a, b in pairwise(ranges))
        assert max(map(len, ranges)) - min(map(len, ranges)) <= 1
    with pytest.raises(InvariantError):
        even_ranges(SLOT_COUNT + 1)


def test_coalesce_joins_touching_ranges_and_refuses_overlaps() -> None:
    assert coalesce([SlotRange(5, 9), SlotRange(0, 5), SlotRange(10, 12)]) == (
        SlotRange(0, 9),
        SlotRange(10, 12),
    )
    with pytest.raises(InvariantError):
        coalesce([SlotRange(0, 5), SlotRange(4, 8)])


def _map(shards: int = 4) -> ShardMap:
    return ShardMap.initial(shards, {i: (1, 2, 3) for i in range(1, shards + 1)})


def _probe_slots(m: ShardMap) -> list[int]:
    """Every range's first and last slot, and the slots beside them: where an
    ownership error would show."""
    probes = {0, SLOT_COUNT - 1}
    for shard in m:
        for r in shard.ranges:
            probes.update(
                s for s in (r.start - 1, r.start, r.stop - 1, r.stop) if 0 <= s < SLOT_COUNT
            )
    return sorted(probes)


def _owner_by_ranges(m: ShardMap, slot: int) -> list[int]:
    return [s.id for s in m if s.owns(slot)]


def test_every_slot_has_exactly_one_owner() -> None:
    m = _map(5)
    for slot in _probe_slots(m) + list(range(0, SLOT_COUNT, 997)):
        assert _owner_by_ranges(m, slot) == [m.shard_for_slot(slot).id]
    assert {m.shard_for_slot(slot).id for slot in _probe_slots(m)} == {1, 2, 3, 4, 5}
    with pytest.raises(ShardMapError):
        m.shard_for_slot(SLOT_COUNT)


@given(st.lists(st.integers(1, SLOT_COUNT - 1), min_size=1, max_size=30))
def test_splits_move_only_the_split_slots(points: list[int]) -> None:
    m = _map(1)
    for at in points:
        shard = m.shard_for_slot(at)
        if at == shard.ranges[0].start:
            with pytest.raises(ShardMapError):
                m.split(shard.id, at, m.next_shard_id())
            continue
        new_id = m.next_shard_id()
        split = m.split(shard.id, at, new_id)
        assert split.version == m.version + 1
        for slot in sorted({*_probe_slots(m), *_probe_slots(split), *points}):
            before, after = m.shard_for_slot(slot).id, split.shard_for_slot(slot).id
            assert _owner_by_ranges(split, slot) == [after]
            if before != shard.id:
                assert after == before  # other shards keep every slot
            else:
                assert after == (new_id if slot >= at else shard.id)
        assert split.shard(new_id).replicas == shard.replicas
        rebuilt = ShardMap(split.version, split.shards)  # the index built from scratch
        for slot in _probe_slots(split):
            assert rebuilt.shard_for_slot(slot) == split.shard_for_slot(slot)
        m = split


def test_a_split_of_a_shard_with_two_ranges_keeps_the_low_slots() -> None:
    m = ShardMap(
        3,
        (
            Shard(1, (SlotRange(0, 100), SlotRange(200, SLOT_COUNT)), (1,)),
            Shard(2, (SlotRange(100, 200),), (2,)),
        ),
    )
    split = m.split(1, 200, 9)  # at the start of its second range
    assert split.shard_for_slot(199).id == 2 and split.shard_for_slot(200).id == 9
    touching = ShardMap(1, (Shard(1, (SlotRange(0, 50), SlotRange(50, SLOT_COUNT)), (1,)),))
    halves = touching.split(1, 20, 2)  # its ranges touch: the new shard's are joined
    assert halves.shard(2).ranges == (SlotRange(20, SLOT_COUNT),)
    assert [halves.shard_for_slot(s).id for s in (19, 20, 49, 50, SLOT_COUNT - 1)] == [
        1,
        2,
        2,
        2,
        2,
    ]
    assert split.shard(1).ranges == (SlotRange(0, 100),)
    assert split.shard(9).ranges == (SlotRange(200, SLOT_COUNT),)
    with pytest.raises(ShardMapError, match="does not split"):
        m.split(1, 150, 9)  # not its slot


def test_maps_that_break_a_rule_are_refused() -> None:
    full = (SlotRange(0, SLOT_COUNT),)
    with pytest.raises(ShardMapError, match="own 100 of"):
        ShardMap(1, (Shard(1, (SlotRange(0, 100),), (1,)),))
    with pytest.raises(ShardMapError, match="overlap"):
        ShardMap(1, (Shard(1, full, (1,)), Shard(2, (SlotRange(0, 1),), (1,))))
    with pytest.raises(ShardMapError, match="twice"):
        ShardMap(1, (Shard(1, full, (1, 1)),))
    with pytest.raises(ShardMapError, match="members"):
        ShardMap(1, (Shard(1, full, ()),))
    with pytest.raises(ShardMapError, match="sorted"):
        ShardMap(1, (Shard(0, full, (1,)),))  # 0 is the metadata group
    with pytest.raises(ShardMapError, match="version"):
        ShardMap(0, (Shard(1, full, (1,)),))
    with pytest.raises(ShardMapError, match="twice"):
        _map().with_members(1, (1, 2), (2,))


def test_documents_round_trip_and_hostile_ones_get_a_clear_error() -> None:
    m = _map(3)
    m = m.split(2, m.shard(2).ranges[0].start + 7, 4).with_members(4, (1, 2), (5,))
    assert ShardMap.from_doc(m.to_doc()) == m
    bad: list[object] = [
        None,
        {"version": 1},
        {"version": "1", "shards": m.to_doc()["shards"]},
        {"version": 1, "shards": [{"id": 1, "slots": [[0, SLOT_COUNT + 1]], "replicas": [1]}]},
        {"version": 1, "shards": [{"id": 1, "slots": [[0, SLOT_COUNT]], "replicas": [True]}]},
        {"version": 1, "shards": [{"id": 1, "slots": [[0, SLOT_COUNT]], "replicas": [1] * 8}]},
        {"version": 1, "shards": [{"id": 1, "slots": [[5, 5]], "replicas": [1]}]},
        {"version": 1, "shards": [{"id": 1, "slots": [[0, 1]] * 65, "replicas": [1]}]},
    ]
    for doc in bad:
        with pytest.raises(ShardMapError):
            ShardMap.from_doc(doc)
