"""The metadata state machine: versioned edits, refusals that change nothing."""

from __future__ import annotations

import msgpack
import pytest

from accord.shard import ShardMap
from accord.shard.metadata import ShardMetadata, encode_metadata_command
from accord.shard.placement import AddReplica, MoveReplica, NodeInfo


def bootstrapped(shards: int = 3) -> ShardMetadata:
    meta = ShardMetadata()
    initial = ShardMap.initial(shards, {i: (1, 2, 3) for i in range(1, shards + 1)})
    result = meta.apply(encode_metadata_command("bootstrap", initial.to_doc()))
    assert result.ok and result.version == 1
    return meta


def test_edits_apply_against_the_current_version_only() -> None:
    meta = bootstrapped()
    assert meta.map is not None
    at = meta.map.shard(2).ranges[0].start + 100
    assert meta.apply(encode_metadata_command("split", 1, 2, at, 4)).ok
    assert meta.version == 2 and meta.map.shard_for_slot(at).id == 4
    # A second driver's decision taken from version 1 is refused and changes nothing.
    stale = meta.apply(encode_metadata_command("members", 1, 1, [3, 2, 1], []))
    assert (stale.ok, stale.error, stale.version) == (False, "stale_map", 2)
    assert meta.map.shard(1).replicas == (1, 2, 3)
    fresh = meta.apply(encode_metadata_command("members", 2, 1, [3, 2, 1], []))
    assert fresh.ok and meta.map.shard(1).replicas == (3, 2, 1)
    again = meta.apply(encode_metadata_command("bootstrap", meta.map.to_doc()))
    assert again.error == "already_bootstrapped"


def test_moves_are_recorded_one_per_shard() -> None:
    meta = bootstrapped()
    assert meta.apply(encode_metadata_command("move", 1, 1, 3, 5)).ok
    assert meta.moves == {1: MoveReplica(1, 3, 5, "recorded")}
    busy = meta.apply(encode_metadata_command("move", 1, 1, 2, 6))
    assert busy.error == "rejected" and "under way" in busy.detail
    assert meta.apply(encode_metadata_command("move", 1, 2, 0, 7)).ok  # an add
    assert meta.moves[2] == AddReplica(2, 7, "recorded")
    assert not meta.apply(encode_metadata_command("move", 1, 3, 9, 8)).ok  # 9 holds none
    assert not meta.apply(encode_metadata_command("move", 1, 3, 1, 2)).ok  # 2 holds it
    # A shard with a move under way is not split under it.
    assert meta.map is not None
    at = meta.map.shard(1).ranges[0].start + 1
    assert meta.apply(encode_metadata_command("split", 1, 1, at, 9)).error == "rejected"
    # Its end names it, and only once the map shows it done (or it was given up).
    assert not meta.apply(encode_metadata_command("moved", 1, 3, 6)).ok
    assert not meta.apply(encode_metadata_command("moved", 1, 3, 5)).ok  # not done
    assert meta.apply(encode_metadata_command("members", 1, 1, [1, 2, 5], [])).ok
    assert meta.apply(encode_metadata_command("moved", 1, 3, 5)).ok and 1 not in meta.moves
    assert not meta.apply(encode_metadata_command("moved", 1, 3, 5)).ok  # said twice


def test_nodes_carry_labels_and_states() -> None:
    meta = bootstrapped()
    assert meta.apply(encode_metadata_command("node", 4, [["zone", "a"]], "up")).ok
    assert meta.apply(encode_metadata_command("node", 4, [["zone", "b"]], "leaving")).ok
    assert meta.nodes[4] == NodeInfo(4, (("zone", "b"),), "leaving")
    for bad in (
        ["node", 0, [], "up"],
        ["node", 5, [], "asleep"],
        ["node", 5, [["zone", "a"], ["zone", "b"]], "up"],
        ["node", 5, [["zone", "x" * 129]], "up"],
        ["node", 5, [["zone"]], "up"],
        ["node", 5, [[f"l{i}", "v"] for i in range(17)], "up"],
    ):
        result = meta.apply(encode_metadata_command(*bad))
        assert result.error == "bad_command", bad
    assert 5 not in meta.nodes


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\xc1",
        msgpack.packb({"op": "split"}),
        msgpack.packb(["explode"]),
        msgpack.packb(["split", 1, 1]),
        msgpack.packb(["split", True, 1, 5, 9]),
        msgpack.packb(["split", 1, -1, 5, 9]),
        msgpack.packb(["members", 1, 1, [1] * 8, []]),
        msgpack.packb(["bootstrap", {"version": 1, "shards": []}]),
    ],
)
def test_hostile_commands_are_refused_alike_and_change_nothing(payload: bytes) -> None:
    meta = bootstrapped()
    before = meta.snapshot()
    result = meta.apply(payload)
    assert not result.ok and result.error in ("bad_command", "rejected", "already_bootstrapped")
    assert meta.snapshot() == before


def test_a_snapshot_restores_the_same_state() -> None:
    meta = bootstrapped()
    meta.apply(encode_metadata_command("node", 2, [["zone", "a"], ["host", "h2"]], "down"))
    meta.apply(encode_metadata_command("move", 1, 3, 2, 7))
    copy = ShardMetadata()
    copy.restore(msgpack.unpackb(msgpack.packb(meta.snapshot())))
    assert copy.map == meta.map and copy.nodes == meta.nodes and copy.moves == meta.moves
    assert copy.founders == meta.founders == {1: (1, 2, 3), 2: (1, 2, 3), 3: (1, 2, 3)}
    older = meta.snapshot()[:4]  # before founders were recorded
    copy.restore(msgpack.unpackb(msgpack.packb(older)))
    assert copy.map == meta.map and copy.founders == {}
    with pytest.raises(ValueError, match="format"):
        ShardMetadata().restore([99, None, [], []])


def test_founders_are_forgotten_once_a_shard_changes_members() -> None:
    """A founder removed and later given the shard again must start empty: with its
    bootstrap configuration it could elect a leader of its own among other such
    founders and commit entries the real group never had."""
    meta = bootstrapped()
    assert meta.apply(encode_metadata_command("move", 1, 2, 3, 4)).ok
    assert meta.apply(encode_metadata_command("members", 1, 2, [1, 2, 4], [])).ok
    assert meta.map is not None and meta.map.shard(2).replicas == (1, 2, 4)
    assert 2 not in meta.founders
    assert meta.founders[1] == meta.founders[3] == (1, 2, 3)  # other shards keep theirs


def test_members_are_a_new_order_or_the_moves_outcome_and_nothing_else() -> None:
    """A map that disagrees with the shard groups decides what nodes delete: no
    command may make one."""
    meta = bootstrapped()
    for replicas in ([9], [1, 2], [1, 2, 3, 4], [1, 2, 9]):
        refused = meta.apply(encode_metadata_command("members", 1, 1, replicas, []))
        assert refused.error == "rejected", replicas
    assert meta.apply(encode_metadata_command("move", 1, 1, 2, 9)).ok
    assert not meta.apply(encode_metadata_command("members", 1, 1, [1, 3, 8], [])).ok
    assert meta.apply(encode_metadata_command("members", 1, 1, [9, 1, 3], [])).ok
    assert meta.map is not None and meta.map.shard(1).replicas == (9, 1, 3)


def test_a_move_given_up_ends_only_once_it_is_marked_so() -> None:
    meta = bootstrapped()
    assert meta.apply(encode_metadata_command("move", 1, 1, 2, 9)).ok
    assert not meta.apply(encode_metadata_command("abort", 1, 2, 8)).ok  # another move
    assert not meta.apply(encode_metadata_command("moved", 1, 2, 9)).ok
    assert meta.apply(encode_metadata_command("abort", 1, 2, 9)).ok and 1 in meta.aborting
    copy = ShardMetadata()
    copy.restore(msgpack.unpackb(msgpack.packb(meta.snapshot())))
    assert copy.aborting == {1} and copy.moves == meta.moves
    assert meta.apply(encode_metadata_command("moved", 1, 2, 9)).ok
    assert meta.moves == {} and meta.aborting == set()
