"""The metadata group's replicated state: the shard map, the nodes, the moves.

Theory of operation
-------------------
Placement is never decided by one node's memory: the shard map, every node's labels
and state, and the replica moves under way live in this state machine, replicated by
the metadata group's Raft log (group 0, beside the member registry and the auth store
in `NodeState`, command kind SHARD). The placement driver (`accord.shard.placement`)
reads it on the metadata leader and proposes its decisions back as commands; the
executor that carries a move out reports each step the same way.

Every command that edits the map names the map version it was decided against
(`expected`), and is refused with `stale_map` (and the current version) if the map
has changed since: two drivers (an old leader that has not yet heard it was deposed,
and the new one) can never both apply decisions taken from the same map. A refused
command changes nothing, on every replica alike.

Commands (a msgpack array, the op first):

    ["bootstrap", map_doc]                      the first map; only once
    ["split", expected, shard, at, new_id]      ShardMap.split
    ["members", expected, shard, replicas, learners]
    ["node", id, [[label, value], ...], state]  a node's labels and state (upsert)
    ["move", expected, shard, source, target]   a move begins (source 0: an add)
    ["abort", shard, source, target]            the move is being given up
    ["moved", shard, source, target]            a move ended (done or given up)

`members` is accepted only as a new order of the same members (the first is the
preferred leader) or as the outcome of the shard's recorded move (the source's
place taken by the target), and `moved` only once the map shows the move done or
it was marked given up (`abort`), each naming the move it is about: a map that
disagrees with the shard groups can decide what nodes delete, so no command, from
a late or repeated proposal or from an operator, may make one.

Each returns a `MetadataResult`; malformed or out-of-bounds payloads are refused
with `bad_command`, never raised, so every replica skips them alike.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgpack

from accord.shard.limits import (
    LABEL_BYTES_MAX,
    LABELS_MAX,
    METADATA_COMMAND_BYTES_MAX,
    METADATA_NODES_MAX,
    SHARD_REPLICAS_MAX,
    SHARDS_MAX,
)
from accord.shard.placement import DOWN, LEAVING, UP, AddReplica, Move, MoveReplica, NodeInfo
from accord.shard.shardmap import GROUP_ID_MAX, Shard, ShardMap, ShardMapError

SNAPSHOT_FORMAT = 1


@dataclass(frozen=True, slots=True)
class MetadataResult:
    ok: bool
    version: int
    """The map version after the command (0: no map yet)."""
    error: str | None = None
    """`stale_map`, `bad_command`, `already_bootstrapped`, `no_map`, `rejected`."""
    detail: str = ""


class ShardMetadata:
    def __init__(self) -> None:
        self.map: ShardMap | None = None
        self.nodes: dict[int, NodeInfo] = {}
        self.moves: dict[int, Move] = {}
        """Shard -> the move under way on it (one at a time per shard)."""
        self.aborting: set[int] = set()
        """Shards whose move is being given up: its learner is removed, never promoted."""
        self.founders: dict[int, tuple[int, ...]] = {}
        """Shard -> the voters its group began with (from the bootstrap map). Only
        they may create the group with that first configuration: a node that joins a
        shard later starts it empty and learns the log from its leader, so no two
        replicas can ever hold different entries at index 1."""
        self._ops: dict[str, Callable[[list[Any]], MetadataResult]] = {
            "bootstrap": self._bootstrap,
            "split": self._split,
            "members": self._members,
            "node": self._node,
            "move": self._move,
            "abort": self._abort,
            "moved": self._moved,
        }

    @property
    def version(self) -> int:
        return self.map.version if self.map is not None else 0

    # --- applying ----------------------------------------------------------------------
    def apply(self, payload: bytes) -> MetadataResult:
        if len(payload) > METADATA_COMMAND_BYTES_MAX:
            return self._refused("bad_command", f"over {METADATA_COMMAND_BYTES_MAX} bytes")
        try:
            command = msgpack.unpackb(payload, raw=False, strict_map_key=True)
        except (ValueError, TypeError, msgpack.ExtraData) as exc:
            return self._refused("bad_command", f"undecodable: {exc}")
        if not isinstance(command, list) or not command or command[0] not in self._ops:
            return self._refused("bad_command", "not a known metadata command")
        try:
            return self._ops[command[0]](command[1:])
        except (ShardMapError, _Malformed) as exc:
            return self._refused(
                "rejected" if isinstance(exc, ShardMapError) else "bad_command", str(exc)
            )

    def _refused(self, error: str, detail: str) -> MetadataResult:
        return MetadataResult(False, self.version, error, detail)

    def _done(self) -> MetadataResult:
        return MetadataResult(True, self.version)

    def _current(self, expected: object) -> ShardMap | MetadataResult:
        if not _is_int(expected):
            raise _Malformed(f"a map version is an integer, not {expected!r}")
        if self.map is None:
            return self._refused("no_map", "the cluster has no shard map yet")
        if expected != self.map.version:
            return self._refused("stale_map", f"decided against version {expected}")
        return self.map

    def _bootstrap(self, args: list[Any]) -> MetadataResult:
        _arity(args, 1)
        if self.map is not None:
            return self._refused("already_bootstrapped", "the cluster has a shard map")
        self.map = ShardMap.from_doc(args[0])
        self.founders = {shard.id: shard.replicas for shard in self.map}
        return self._done()

    def _split(self, args: list[Any]) -> MetadataResult:
        _arity(args, 4)
        current = self._current(args[0])
        if isinstance(current, MetadataResult):
            return current
        shard, at, new_id = (_int(a, GROUP_ID_MAX) for a in args[1:])
        if shard in self.moves:
            return self._refused("rejected", f"shard {shard} has a move under way")
        if len(current) >= SHARDS_MAX:
            return self._refused("rejected", f"the map has {SHARDS_MAX} shards")
        self.map = current.split(shard, at, new_id)
        return self._done()

    def _members(self, args: list[Any]) -> MetadataResult:
        _arity(args, 4)
        current = self._current(args[0])
        if isinstance(current, MetadataResult):
            return current
        shard = _int(args[1], GROUP_ID_MAX)
        replicas, learners = _ids(args[2]), _ids(args[3])
        old = current.shard(shard)
        reorder = set(replicas) == set(old.replicas) and set(learners) == set(old.learners)
        move = self.moves.get(shard)
        if not reorder and (move is None or (set(replicas), learners) != (_after(old, move), ())):
            return self._refused(
                "rejected", f"members of shard {shard} are a new order or its move's outcome"
            )
        self.map = current.with_members(shard, replicas, learners)
        # The group has changed members since its bootstrap: from now on every node
        # that joins it (a founder coming back included) starts empty.
        self.founders.pop(shard, None)
        return self._done()

    def _node(self, args: list[Any]) -> MetadataResult:
        _arity(args, 3)
        node = _int(args[0], GROUP_ID_MAX)
        if node == 0:
            raise _Malformed("node ids are positive")
        labels = _labels(args[1])
        if args[2] not in (UP, DOWN, LEAVING):
            raise _Malformed(f"a node's state is {UP}, {DOWN} or {LEAVING}")
        if node not in self.nodes and len(self.nodes) >= METADATA_NODES_MAX:
            return self._refused("rejected", f"the metadata knows {METADATA_NODES_MAX} nodes")
        self.nodes[node] = NodeInfo(node, labels, args[2])
        return self._done()

    def _move(self, args: list[Any]) -> MetadataResult:
        _arity(args, 4)
        current = self._current(args[0])
        if isinstance(current, MetadataResult):
            return current
        shard, source, target = (_int(a, GROUP_ID_MAX) for a in args[1:])
        members = current.shard(shard).members()
        if shard in self.moves:
            return self._refused("rejected", f"shard {shard} has a move under way")
        if target == 0 or target in members or (source and source not in members):
            return self._refused("rejected", f"no move of shard {shard} from {source} to {target}")
        reason = "recorded"
        move: Move = (
            MoveReplica(shard, source, target, reason)
            if source
            else AddReplica(shard, target, reason)
        )
        self.moves[shard] = move
        return self._done()

    def _recorded_move(self, args: list[Any]) -> tuple[int, Move] | MetadataResult:
        """The recorded move `[shard, source, target]` names; a refusal if none."""
        _arity(args, 3)
        shard, source, target = (_int(a, GROUP_ID_MAX) for a in args)
        move = self.moves.get(shard)
        if move is None or _move_doc(move) != [shard, source, target]:
            return self._refused("rejected", f"no move of shard {shard} from {source} to {target}")
        return shard, move

    def _abort(self, args: list[Any]) -> MetadataResult:
        found = self._recorded_move(args)
        if isinstance(found, MetadataResult):
            return found
        self.aborting.add(found[0])
        return self._done()

    def _moved(self, args: list[Any]) -> MetadataResult:
        found = self._recorded_move(args)
        if isinstance(found, MetadataResult):
            return found
        shard, move = found
        assert self.map is not None  # a move is recorded against a map
        members = self.map.shard(shard).members()
        done = move.target in members and (
            not isinstance(move, MoveReplica) or move.source not in members
        )
        given_up = shard in self.aborting and move.target not in members
        if not (done or given_up):
            return self._refused(
                "rejected", f"the move of shard {shard} is neither done nor given up"
            )
        del self.moves[shard]
        self.aborting.discard(shard)
        return self._done()

    # --- snapshots -------------------------------------------------------------------------
    def snapshot(self) -> list[Any]:
        return [
            SNAPSHOT_FORMAT,
            self.map.to_doc() if self.map is not None else None,
            [[n.id, [list(p) for p in n.labels], n.state] for n in self.nodes.values()],
            [[*_move_doc(m), m.shard in self.aborting] for m in self.moves.values()],
            [[shard, list(voters)] for shard, voters in self.founders.items()],
        ]

    def restore(self, data: list[Any]) -> None:
        version, map_doc, nodes, moves, *rest = data
        if version != SNAPSHOT_FORMAT:
            raise ValueError(f"unknown shard metadata snapshot format {version}")
        self.map = ShardMap.from_doc(map_doc) if map_doc is not None else None
        self.nodes = {n[0]: NodeInfo(n[0], tuple(tuple(p) for p in n[1]), n[2]) for n in nodes}
        self.moves, self.aborting = {}, set()
        for shard, source, target, *aborting in moves:  # (older snapshots: no flag)
            self.moves[shard] = (
                MoveReplica(shard, source, target, "recorded")
                if source
                else AddReplica(shard, target, "recorded")
            )
            if aborting and aborting[0]:
                self.aborting.add(shard)
        # Snapshots taken before founders were recorded end after the moves.
        self.founders = {shard: tuple(voters) for shard, voters in (rest[0] if rest else [])}


def encode_metadata_command(op: str, *args: Any) -> bytes:
    return bytes(msgpack.packb([op, *args]))


def _after(shard: Shard, move: Move) -> set[int]:
    """The voters `shard` has once `move` is done."""
    source = move.source if isinstance(move, MoveReplica) else None
    return {n for n in shard.replicas if n != source} | {move.target}


def _move_doc(move: Move) -> list[int]:
    source = move.source if isinstance(move, MoveReplica) else 0
    return [move.shard, source, move.target]


class _Malformed(ValueError):
    pass


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _arity(args: list[Any], count: int) -> None:
    if len(args) != count:
        raise _Malformed(f"expected {count} arguments, got {len(args)}")


def _int(value: object, maximum: int) -> int:
    if not _is_int(value) or not 0 <= value <= maximum:  # type: ignore[operator]
        raise _Malformed(f"{value!r} is not an integer in [0, {maximum}]")
    return value  # type: ignore[return-value]


def _ids(value: object) -> tuple[int, ...]:
    if not isinstance(value, list) or len(value) > SHARD_REPLICAS_MAX:
        raise _Malformed(f"node ids are a list of at most {SHARD_REPLICAS_MAX}")
    return tuple(_int(v, GROUP_ID_MAX) for v in value)


def _labels(value: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, list) or len(value) > LABELS_MAX:
        raise _Malformed(f"labels are a list of at most {LABELS_MAX} [name, value]")
    labels = []
    for pair in value:
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not all(isinstance(p, str) and 0 < len(p.encode()) <= LABEL_BYTES_MAX for p in pair)
        ):
            raise _Malformed(f"a label is [name, value], strings of 1 to {LABEL_BYTES_MAX} bytes")
        labels.append((pair[0], pair[1]))
    if len({name for name, _ in labels}) != len(labels):
        raise _Malformed("a label is named twice")
    return tuple(labels)
