"""Cluster membership as the node runtime sees it: who the members are and where they
listen, replicated with the Raft membership changes themselves.

Raft's configuration holds only node ids. The addresses of a member travel in the
`context` of the `ConfChange` that adds it, so every node learns them at the same log
index, and the registry is part of the node's snapshot. `NodeState` is the state
machine the runtime drives: the KV store, the auth store and this registry; a normal
log entry reaches the one its tag names through the command registry
(`accord.node.registry`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

import msgpack

from accord.kv import KVStateMachine, SnapshotJob, run_job
from accord.kv.results import LeaseInfo
from accord.kv.types import Event
from accord.node.address import Member, parse_address
from accord.node.authstore import AuthStore
from accord.node.registry import Kind, Outcome, Registry
from accord.node.runtime import Node
from accord.raft import ConfChange, ConfChangeError, ConfChangeOp
from accord.shard.metadata import ShardMetadata

SNAPSHOT_FORMAT = 1


def _address(address: tuple[str, int] | None) -> str:
    return f"{address[0]}:{address[1]}" if address else ""


def encode_members(members: Iterable[Member]) -> bytes:
    rows = [
        [m.id, m.name, _address(m.peer), _address(m.client), _address(m.native)] for m in members
    ]
    return bytes(msgpack.packb(rows))


def decode_members(data: bytes) -> list[Member]:
    if not data:
        return []
    return [
        Member(
            int(i),
            str(name),
            parse_address(peer, "member peer"),
            parse_address(client, "member client"),
            parse_address(native[0], "member native") if native and native[0] else None,
        )
        for i, name, peer, client, *native in msgpack.unpackb(data)
    ]


async def add_member(node: Node, member: Member, voter: bool = False) -> None:
    """Add `member` (a learner unless `voter`); raises ConfChangeError, NotLeader,
    ProposalDropped (another change in progress) or DeadlineExceeded."""
    op = ConfChangeOp.ADD_VOTER if voter else ConfChangeOp.ADD_LEARNER
    await node.propose_conf_change(ConfChange(((op, member.id),), encode_members([member])))


async def promote_member(node: Node, member_id: int) -> None:
    # Only the leader's configuration is current; a follower's may lag, so it lets
    # the proposal fail with NotLeader (and the request go to the leader) instead.
    if node.is_leader and member_id not in node.core.conf.learners:
        raise ConfChangeError(f"member {member_id} is not a learner")
    await node.propose_conf_change(ConfChange(((ConfChangeOp.ADD_VOTER, member_id),)))


async def remove_member(node: Node, member_id: int) -> None:
    if node.is_leader and member_id not in node.core.conf.members():
        raise ConfChangeError(f"no member {member_id}")
    await node.propose_conf_change(ConfChange(((ConfChangeOp.REMOVE, member_id),)))


def member_roles(node: Node, state: NodeState) -> list[dict[str, Any]]:
    """Every member known to Raft or to the registry, with its role."""
    conf = node.core.conf
    rows = []
    for member_id in sorted(conf.members() | set(state.members)):
        member = state.members.get(member_id)
        if member_id in conf.all_voters():
            role = "voter"
        elif member_id in conf.learners:
            role = "learner"
        else:
            role = "removed"
        rows.append(
            {
                "id": member_id,
                "name": member.name if member else None,
                "peer": f"{member.peer[0]}:{member.peer[1]}" if member else None,
                "url": member.client_url if member else None,
                "native_url": member.native_url if member else None,
                "role": role,
            }
        )
    return rows


class NodeState:
    """KV state machine + auth store + member registry, snapshotted together."""

    def __init__(self, kv: KVStateMachine, initial_members: dict[int, Member]) -> None:
        self.kv = kv
        self.members = dict(initial_members)
        # Addresses in the log carry no scheme; TLS is a property of the whole cluster.
        self.tls = any(m.tls for m in initial_members.values())
        self.auth = AuthStore()
        # Removed members stay reachable until the joint configuration is left: until
        # then the old voters' majority still decides, and may need them.
        self.leaving: set[int] = set()
        # Undecodable KV bytes and unknown kinds alike are recorded by the KV machine.
        # The shard map and placement state (the metadata group's; empty on one shard).
        self.shards = ShardMetadata()
        self.lease_tables: Callable[[], list[KVStateMachine]] = lambda: [self.kv]
        """The state machines holding leases here: the store's, or on a sharded
        cluster each hosted shard's (a lease lives on every shard)."""
        self.on_shards_changed: Callable[[], None] = lambda: None
        """Called after the shard metadata changed (a command applied, a restore)."""
        self.commands = Registry(
            {Kind.KV: kv.apply, Kind.AUTH: self._apply_auth, Kind.SHARD: self._apply_shard},
            kv.refuse,
        )

    def apply(self, index: int, data: bytes) -> tuple[Any, list[Event]]:
        return self.commands.apply(index, data)

    def lease_ttl(self, lease_id: int, *, keys: bool = False) -> LeaseInfo | None:
        """The lease as this node's replicas hold it (the keys of every shard's part),
        or None if none has it; for the guards' ownership and permission checks."""
        parts = [info for kv in self.lease_tables() if (info := kv.lease_ttl(lease_id, keys=keys))]
        if not parts:
            return None
        return dataclasses.replace(parts[0], keys=tuple(k for part in parts for k in part.keys))

    def _apply_auth(self, index: int, payload: bytes) -> Outcome:
        # Users, roles, grants: replicated beside the KV state. Looked up per call,
        # since `restore()` replaces the store.
        return self.auth.apply(payload), []

    def _apply_shard(self, index: int, payload: bytes) -> Outcome:
        result = self.shards.apply(payload)
        if result.ok:
            self.on_shards_changed()
        return result, []

    def apply_conf_change(self, change: ConfChange) -> None:
        if not change.changes:  # leaving the joint configuration
            for node in self.leaving:
                self.members.pop(node, None)
            self.leaving.clear()
            return
        announced = {m.id: m for m in self._decode(change.context)}
        for op, node in change.changes:
            if op == ConfChangeOp.REMOVE:
                self.leaving.add(node)
            else:
                self.leaving.discard(node)
                if node in announced:
                    self.members[node] = announced[node]

    def _decode(self, data: bytes) -> list[Member]:
        return [dataclasses.replace(m, tls=self.tls) for m in decode_members(data)]

    def snapshot(self) -> bytes:
        return run_job(self.snapshot_job())

    def snapshot_job(self) -> SnapshotJob:
        """`snapshot()` in steps (see `KVStateMachine.snapshot_job`): membership and
        users are taken now, with the key-value state."""
        members = encode_members(self.members.values())
        leaving = sorted(self.leaving)
        auth = self.auth.snapshot() if self.auth.initialized else None
        shards = (
            self.shards.snapshot() if self.shards.map is not None or self.shards.nodes else None
        )
        # Optional parts after the fourth: the users (None: none), then the shard
        # metadata; older snapshots end early, and a part that is empty is left out.
        optional = [auth, shards] if shards is not None else [auth] if auth is not None else []
        kv = self.kv.snapshot_job()

        def job() -> SnapshotJob:
            parts = [SNAPSHOT_FORMAT, (yield from kv), members, leaving, *optional]
            return bytes(msgpack.packb(parts))

        return job()

    def restore(self, data: bytes) -> None:
        version, kv_data, members, leaving, *rest = msgpack.unpackb(data)
        if version != SNAPSHOT_FORMAT or len(rest) > 2:
            raise ValueError(f"unknown node snapshot format {version}")
        auth, shards = [*rest, None, None][:2]
        self.auth = AuthStore()
        if auth is not None:
            self.auth.restore(auth)
        self.shards = ShardMetadata()
        if shards is not None:
            self.shards.restore(shards)
        self.on_shards_changed()
        self.kv.restore(kv_data)
        self.members = {m.id: m for m in self._decode(members)}
        self.leaving = set(leaving)
