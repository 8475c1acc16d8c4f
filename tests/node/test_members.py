"""The member registry that rides along Raft's membership changes."""

from __future__ import annotations

from pathlib import Path

import msgpack

from accord.kv import KVStateMachine
from accord.node.address import Member
from accord.node.members import NodeState, decode_members, encode_members
from accord.raft import ConfChange, ConfChangeOp

M = {i: Member(i, f"n{i}", ("127.0.0.1", 7100 + i), ("127.0.0.1", 7000 + i)) for i in range(1, 5)}


def state() -> NodeState:
    return NodeState(KVStateMachine(), {i: M[i] for i in (1, 2, 3)})


def test_members_round_trip_through_the_change_context() -> None:
    assert decode_members(encode_members([M[4], M[1]])) == [M[4], M[1]]
    assert decode_members(b"") == []


def test_a_native_address_rides_along_and_is_optional() -> None:
    with_native = Member(5, "n5", ("h", 1), ("h", 2), native=("h", 3))
    assert decode_members(encode_members([with_native, M[1]])) == [with_native, M[1]]
    assert with_native.native_url == "accord://h:3" and M[1].native_url is None
    older = msgpack.packb([[6, "n6", "h:1", "h:2"]])  # rows written before the field existed
    assert decode_members(older) == [Member(6, "n6", ("h", 1), ("h", 2))]


def test_an_added_member_is_known_at_once() -> None:
    s = state()
    s.apply_conf_change(ConfChange(((ConfChangeOp.ADD_LEARNER, 4),), encode_members([M[4]])))
    assert s.members[4] == M[4]


def test_a_removed_member_stays_reachable_until_the_joint_configuration_is_left() -> None:
    s = state()
    s.apply_conf_change(ConfChange(((ConfChangeOp.REMOVE, 1),)))
    assert 1 in s.members  # the outgoing majority may still need it
    s.apply_conf_change(ConfChange())  # leave joint
    assert set(s.members) == {2, 3}


def test_snapshot_restores_members_and_pending_removals() -> None:
    s = state()
    s.apply_conf_change(ConfChange(((ConfChangeOp.ADD_LEARNER, 4),), encode_members([M[4]])))
    s.apply_conf_change(ConfChange(((ConfChangeOp.REMOVE, 2),)))
    restored = NodeState(KVStateMachine(), {})
    restored.restore(s.snapshot())
    assert restored.members == s.members and restored.leaving == {2}
    restored.apply_conf_change(ConfChange())
    assert set(restored.members) == {1, 3, 4}


def test_dial_overrides_where_a_node_connects_but_not_the_registry(tmp_path: Path) -> None:
    from accord.security.config import SecurityConfig
    from accord.server.assembly import build_node
    from accord.server.config import NodeConfig

    members = {i: M[i] for i in (1, 2, 3)}
    config = NodeConfig(
        "n1",
        1,
        tmp_path,
        M[1].client,
        M[1].peer,
        members=members,
        dial={2: ("127.0.0.1", 9102)},
        security=SecurityConfig(insecure_peers=True),  # this test is about addresses
    )
    node, _, node_state = build_node(config)
    peers = node.transport.stats().peers  # type: ignore[attr-defined]
    assert peers[2].address == ("127.0.0.1", 9102)
    assert peers[3].address == M[3].peer  # no override: the registered address
    # A membership change re-reads the registry; the override still applies.
    node_state.apply_conf_change(
        ConfChange(((ConfChangeOp.ADD_LEARNER, 4),), encode_members([M[4]]))
    )
    node.on_members_changed()
    peers = node.transport.stats().peers  # type: ignore[attr-defined]
    assert peers[2].address == ("127.0.0.1", 9102) and peers[4].address == M[4].peer
    assert node_state.members[2].peer == M[2].peer
    node.storage.close()


def test_shard_commands_apply_through_the_registry_and_ride_in_the_snapshot() -> None:
    from accord.node.registry import Kind, tag
    from accord.shard import ShardMap
    from accord.shard.metadata import encode_metadata_command

    s = state()
    initial = ShardMap.initial(2, {1: (1, 2, 3), 2: (1, 2, 3)})
    result, events = s.apply(
        1, tag(Kind.SHARD) + encode_metadata_command("bootstrap", initial.to_doc())
    )
    assert result.ok and events == []
    s.apply(2, tag(Kind.SHARD) + encode_metadata_command("node", 4, [["zone", "a"]], "up"))
    restored = NodeState(KVStateMachine(), {})
    restored.restore(s.snapshot())
    assert restored.shards.map == initial and restored.shards.nodes == s.shards.nodes
    # A node state with neither users nor shards writes the four parts of old.
    bare = state()
    assert len(msgpack.unpackb(bare.snapshot())) == 4
    again = NodeState(KVStateMachine(), {})
    again.restore(bare.snapshot())
    assert again.shards.map is None and not again.auth.initialized
