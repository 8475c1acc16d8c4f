"""`ShardedKV`: the key-value service of a sharded node, routing each request to the
shard that owns its keys.

Theory of operation
-------------------
The HTTP and native APIs call one service. On a cluster of one group it is the
primary group's `KVService`; on a sharded one it is this class, which has the same
calls and answers each from the services of the shard groups hosted here
(`ShardHost.services`):

- A command (put, delete, transaction) names keys; all of them must live on one
  shard (`accord.shard.slots.range_slot`: a range lies on one shard only within one
  hash tag), else it is refused with `cross_shard` — atomic commits across shards
  are a later step. The owning shard's service proposes it; on a follower that
  raises `NotLeader` naming that shard's leader, and the API forwards the request
  there.
- A key this node holds no replica of raises `NotLeader` naming one of the shard's
  voters, so the request is forwarded to a node that can serve it.
- A range that may span shards is read from every shard (each after its own
  ReadIndex round when linearizable, concurrently; a shard without a replica here
  through `RemoteShards.range_part`, on a node that has one) and merged in key order: the
  first `limit` keys of the union are among the first `limit` of each shard.
  `count` is the sum. Revisions are per shard and not comparable: the answer's
  `revision` is the highest of them and `ShardedRange.revisions` has each one.
  The merged range is linearizable shard by shard, not one snapshot of all.
- A watch that may span shards opens one watch per shard and merges their streams:
  each shard's events arrive in its revision order, tagged with the shard; a
  client resumes each shard from its own revision (`start_revisions`). A shard
  this node holds no replica of is watched on a node that does
  (`RemoteShards.open_watch`, pinned to that shard, with the watcher's own
  credentials); `connect_watch` opens those before the watcher is told the watch
  is open, so nothing it writes afterwards can be missed. If such a stream breaks,
  the merged watch ends with `not_leader` and the client resumes every shard from
  its own revision.
- A lease lives on every shard, with the same id: a put attaches a key to the
  lease of the key's own shard, and each shard's leader expires its part. Grant,
  keepalive and revoke go to every shard's leader, concurrently: here when this
  node leads the shard, else through `RemoteShards` (the API layer's call to that
  leader, pinned to the shard), trying again on `not_leader` up to
  `FANOUT_ATTEMPTS` times. The answer is a success only when every shard's was: a
  grant that failed on some shard leaves parts that expire by themselves, and a
  retried grant or revoke that finds its own earlier effect (`lease_exists`,
  `lease_not_found` on a retry) counts it as done. Each shard's part expires on its
  own leader's clock, so the keys of one lease on different shards go within
  `LEASE_EXPIRY_SLACK_MS` plus a keepalive's travel of each other.
- Compaction is refused with `unsupported_on_shards` (revisions are per shard).
- A lease's time left and keys (`lease_info`) are read from this node's replicas
  of every shard: the keys of all, the least time left.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import heapq
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from accord.errors import AccordError, NotLeader, ProposalDropped
from accord.kv import Command, DeleteRange, KVStateMachine, LeaseGrant, LeaseRevoke, Put, Txn
from accord.kv.commands import Compare, Get, Range
from accord.kv.errors import InvalidRequest, LeaseExists, LeaseNotFound, ResponseTooLarge
from accord.kv.limits import response_kv_bytes
from accord.kv.results import (
    GetResult,
    LeaseGrantResult,
    LeaseInfo,
    LeaseRevokeResult,
    RangeResult,
)
from accord.kv.types import Event, KeyValue
from accord.node.service import KVService
from accord.node.shardhost import ShardHost
from accord.shard import ShardMap
from accord.shard.slots import range_slot


class CrossShard(AccordError):
    """The keys of one request live on several shards."""

    code = "cross_shard"


class UnsupportedOnShards(AccordError):
    """A request a sharded cluster does not serve yet."""

    code = "unsupported_on_shards"


class RemoteShards(Protocol):
    """Calls a shard's leader on another node, pinned to that shard (implemented by
    the API layer); raises the typed error the leader answered."""

    async def call(self, shard: int, leader: int, op: str, lease_id: int, ttl_s: int) -> int:
        """`op` is `lease_grant`, `lease_keepalive` or `lease_revoke`; returns the
        lease's TTL in ms (grant, keepalive) or the keys the revoke deleted."""
        ...

    async def range_part(
        self,
        shard: int,
        node: int,
        key: bytes,
        range_end: bytes,
        *,
        limit: int,
        count_only: bool,
        linearizable: bool,
    ) -> RangeResult:
        """`[key, range_end)` of `shard` alone, read by `node` (which holds a replica)."""
        ...

    async def open_watch(
        self, shard: int, node: int, key: bytes, range_end: bytes, start_revision: int
    ) -> AsyncGenerator[list[Event], None]:
        """Watch `[key, range_end)` on `shard` alone, on `node` (which holds a replica
        of it), from `start_revision` (0: from now). Returns once that node has
        opened the watch; its batches follow, and the stream raises when it ends."""
        ...


FANOUT_ATTEMPTS = 3
"""Tries per shard of one lease operation over shards (a leader change in between
answers `not_leader` naming the new one)."""

FANOUT_PAUSE_S = 0.05
"""Pause before a try again, times the tries so far (an election takes ~0.5 s)."""


@dataclass(frozen=True, slots=True)
class ShardedRange(RangeResult):
    revisions: Mapping[int, int] = field(default_factory=dict)
    """Shard id -> the revision its part was read at."""


@dataclass(frozen=True, slots=True)
class ShardEvents:
    """A batch of one shard's events, from a watch spanning shards."""

    shard: int
    events: list[Event]


class ShardedKV(KVService):
    """A `KVService` over this node's shard groups (see the module docstring); the
    primary group's calls (`node`, `group`) stay those of the metadata group."""

    def __init__(self, primary: KVService, shards: ShardHost) -> None:
        super().__init__(primary.node, primary.machine, tracing=primary.tracing)
        self.primary = primary
        self.shards = shards
        self.remote: RemoteShards | None = None
        """Set by the API layer: how lease operations reach other nodes' shards."""
        self._watches: dict[int, dict[int, int]] = {}
        """Merged watch id -> {shard: that shard's watch id here}."""
        self._remote_parts: dict[int, dict[int, tuple[int, int]]] = {}
        """Merged watch id -> {shard: (node watched on, first revision)}: the shards
        it spans that have no replica here, until `connect_watch` opens them."""
        self._remote_streams: dict[int, dict[int, AsyncGenerator[list[Event], None]]] = {}
        """Merged watch id -> {shard: the open stream of that shard on another node}."""
        self._watch_ranges: dict[int, tuple[bytes, bytes]] = {}
        self._closers: set[asyncio.Task[None]] = set()
        self._next_watch = 0

    def start(self) -> None:
        self.primary.start()
        self.shards.start()

    async def stop(self) -> None:
        await self.shards.stop()
        await self.primary.stop()

    def machines(self) -> list[KVStateMachine]:
        """The key-value stores this node holds: the primary group's, or on a sharded
        cluster each hosted shard's."""
        return self.shards.lease_tables()

    # --- routing ----------------------------------------------------------------------
    @property
    def map(self) -> ShardMap:
        shard_map = self.shards.state.shards.map
        if shard_map is None:
            raise NotLeader(0, "the shard map is not bootstrapped yet")
        return shard_map

    @property
    def sharded(self) -> bool:
        """Whether the keys live in shards (else in the primary group: a cluster of
        one group). Until a cluster started with shards has its map, nothing can be
        served: `NotLeader`, which clients retry."""
        if self.shards.state.shards.map is not None:
            return True
        if self.shards.shards > 1:
            raise NotLeader(0, "the shard map is not bootstrapped yet")
        return False

    def shard_ids(self, key: bytes, range_end: bytes = b"") -> list[int]:
        """The shards `[key, range_end)` may have keys on: one, or every shard."""
        shard_map = self.map
        slot = range_slot(key, range_end)
        if slot is None:
            return [shard.id for shard in shard_map]
        return [shard_map.shard_for_slot(slot).id]

    def service(self, shard_id: int) -> KVService:
        """The service of `shard_id` here (0: the primary group's); `NotLeader`
        naming a voter of the shard if this node holds no replica of it."""
        if shard_id == 0:
            return self.primary
        service = self.shards.services.get(shard_id)
        if service is None:
            shard = self.map.shard(shard_id)
            raise NotLeader(shard.replicas[0], f"shard {shard_id} has no replica on this node")
        return service

    def shard_of_command(self, command: Command) -> int:
        """The one shard every key of `command` lives on."""
        owners = {s for key, end in command_ranges(command) for s in self.shard_ids(key, end)}
        if len(owners) != 1:
            raise CrossShard(
                "the request's keys live on several shards; give keys that must change "
                "together one {hash tag}, or send one request per shard"
            )
        return owners.pop()

    # --- writes -----------------------------------------------------------------------
    async def execute(
        self, command: Command, client_id: int = 0, seq: int = 0, timeout_s: float | None = None
    ) -> Any:
        if not self.sharded:
            return await self.primary.execute(command, client_id, seq, timeout_s)
        unsupported = unsupported_on_shards(command)
        if unsupported:
            raise UnsupportedOnShards(f"{unsupported} is not served on a sharded cluster yet")
        if isinstance(command, LeaseRevoke):
            return await self.lease_revoke(command.lease_id)
        service = self.service(self.shard_of_command(command))
        return await service.execute(command, client_id, seq, timeout_s)

    async def lease_grant(
        self, ttl_s: int, client_id: int = 0, seq: int = 0, *, lease_id: int = 0, shard: int = 0
    ) -> Any:
        """Grant a lease on every shard (see the module docstring); `shard` pins the
        call to that shard alone, with the `lease_id` the caller chose."""
        if not self.sharded:
            return await self.primary.lease_grant(ttl_s, client_id, seq)
        if shard:
            command = LeaseGrant(lease_id or self._new_lease_id(), ttl_s * 1000)
            return await self._leader_of(shard).execute(command, client_id, seq)
        grant = LeaseGrant(self._new_lease_id(), ttl_s * 1000)

        async def local(service: KVService) -> int:
            result = await service.execute(grant)
            return int(result.ttl_ms)

        await self._each_shard(local, "lease_grant", grant.lease_id, ttl_s, LeaseExists)
        return LeaseGrantResult(grant.lease_id, grant.ttl_ms, 0)

    async def lease_keepalive(self, lease_id: int, *, shard: int = 0) -> LeaseInfo:
        if not self.sharded:
            return await self.primary.lease_keepalive(lease_id)
        if shard:
            return await self._leader_of(shard).lease_keepalive(lease_id)

        async def local(service: KVService) -> int:
            return (await service.lease_keepalive(lease_id)).ttl_ms

        ttls = await self._each_shard(local, "lease_keepalive", lease_id)
        ttl_ms = min(ttls.values())
        return LeaseInfo(lease_id, ttl_ms, 0, ttl_ms)

    async def lease_revoke(
        self, lease_id: int, client_id: int = 0, seq: int = 0, *, shard: int = 0
    ) -> Any:
        """Revoke a lease on every shard; its answer's revision is 0 on a sharded
        cluster (each shard deleted the keys at a revision of its own)."""
        command = LeaseRevoke(lease_id)
        if not self.sharded:
            return await self.primary.execute(command, client_id, seq)
        if shard:
            return await self._leader_of(shard).execute(command, client_id, seq)

        async def local(service: KVService) -> int:
            return int((await service.execute(command)).deleted)

        deleted = await self._each_shard(local, "lease_revoke", lease_id, 0, LeaseNotFound)
        return LeaseRevokeResult(0, sum(deleted.values()))

    async def lease_info(self, lease_id: int) -> tuple[LeaseInfo, int]:
        """The lease after a read barrier on every shard: (its info, with every
        shard's keys and the least time left of any, its deadline as this node knows
        it); LeaseNotFound unless every shard has it."""
        services = [self.primary] if not self.sharded else [self.service(s.id) for s in self.map]
        await asyncio.gather(*(service.group.read_barrier() for service in services))
        parts = [(service, service.machine.lease_ttl(lease_id, keys=True)) for service in services]
        found = [(service, info) for service, info in parts if info is not None]
        if len(found) < len(parts) or not found:
            raise LeaseNotFound(lease_id)
        service, info = min(found, key=lambda p: p[0].lease_deadline_ms(p[1]))
        keys = tuple(sorted(key for _, part in found for key in part.keys))
        return dataclasses.replace(info, keys=keys), service.lease_deadline_ms(info)

    def _leader_of(self, shard: int) -> KVService:
        service = self.service(shard)
        if not service.group.is_leader:
            raise NotLeader(service.group.leader_id, f"not the leader of shard {shard}")
        return service

    async def _each_shard(
        self,
        local: Callable[[KVService], Awaitable[int]],
        op: str,
        lease_id: int,
        ttl_s: int = 0,
        done_before: type[AccordError] | None = None,
    ) -> dict[int, int]:
        """`local(service)` on every shard's leader, concurrently: here, or through
        `remote` on the node that leads it; each answers a count (a TTL in ms, keys
        deleted). `done_before`: the error a retry meets when an earlier try took
        effect (that shard is then done, counted 0)."""
        shard_map = self.map

        async def one(shard: int) -> int:
            hint = 0
            for attempt in range(FANOUT_ATTEMPTS):
                here = self.shards.services.get(shard)
                try:
                    if here is not None and here.group.is_leader:
                        return await local(here)
                    leader = hint or (here.group.leader_id if here is not None else 0)
                    leader = leader or shard_map.shard(shard).replicas[0]
                    if self.remote is None:
                        raise NotLeader(leader, f"shard {shard} is led by node {leader}")
                    return await self.remote.call(shard, leader, op, lease_id, ttl_s)
                except (NotLeader, ProposalDropped) as exc:  # nothing applied: try again
                    if attempt == FANOUT_ATTEMPTS - 1:
                        raise
                    hint = exc.leader_hint if isinstance(exc, NotLeader) else 0
                    await asyncio.sleep(FANOUT_PAUSE_S * (attempt + 1))
                except AccordError as exc:
                    if attempt > 0 and done_before is not None and exc.code == done_before.code:
                        return 0
                    raise
            raise NotLeader(hint)  # not reached: the last attempt returns or raises

        shards = [shard.id for shard in shard_map]
        results = await asyncio.gather(*(one(shard) for shard in shards))
        return dict(zip(shards, results, strict=True))

    # --- reads ------------------------------------------------------------------------
    async def get(self, key: bytes, revision: int = 0, linearizable: bool = True) -> GetResult:
        if not self.sharded:
            return await self.primary.get(key, revision, linearizable)
        (shard,) = self.shard_ids(key)
        return await self.service(shard).get(key, revision, linearizable)

    async def range(
        self,
        key: bytes,
        range_end: bytes,
        *,
        revision: int = 0,
        limit: int = 0,
        count_only: bool = False,
        linearizable: bool = True,
        shard: int = 0,
    ) -> RangeResult:
        """A range over every shard it may span (`shard`: that shard's part alone, for
        another node's range over shards)."""
        shards = [shard] if shard else self.shard_ids(key, range_end) if self.sharded else [0]
        if len(shards) == 1:
            service = self.service(shards[0]) if shards[0] else self.primary
            return await service.range(
                key,
                range_end,
                revision=revision,
                limit=limit,
                count_only=count_only,
                linearizable=linearizable,
            )
        if revision:
            raise InvalidRequest("revision: revisions are per shard; a range over shards reads now")
        options = {"limit": limit, "count_only": count_only, "linearizable": linearizable}

        async def part(shard_id: int) -> RangeResult:
            service = self.shards.services.get(shard_id)
            if service is not None:
                return await service.range(key, range_end, **options)  # type: ignore[arg-type]
            if self.remote is None:
                self.service(shard_id)  # raises NotLeader naming one that has it
            assert self.remote is not None
            node = self._replica_elsewhere(shard_id)
            return await self.remote.range_part(shard_id, node, key, range_end, **options)  # type: ignore[arg-type]

        parts = await asyncio.gather(*(part(shard_id) for shard_id in shards))
        return self._merge(dict(zip(shards, parts, strict=True)), limit)

    def _merge(self, parts: dict[int, RangeResult], limit: int) -> ShardedRange:
        merged = heapq.merge(*(part.kvs for part in parts.values()), key=lambda kv: kv.key)
        kvs: list[KeyValue] = []
        size = 0
        bound = self.machine.limits.response_bytes_max
        for kv in merged:
            if limit and len(kvs) == limit:
                break
            size += response_kv_bytes(kv.key, kv.value)
            if size > bound:
                raise ResponseTooLarge(size, bound, 0, len(kvs))
            kvs.append(kv)
        returned = sum(len(part.kvs) for part in parts.values())
        return ShardedRange(
            revision=max(part.revision for part in parts.values()),
            kvs=tuple(kvs),
            count=sum(part.count for part in parts.values()),
            more=len(kvs) < returned or any(part.more for part in parts.values()),
            revisions={shard: part.revision for shard, part in parts.items()},
        )

    # --- watches ----------------------------------------------------------------------
    def open_watch(
        self,
        key: bytes,
        range_end: bytes = b"",
        start_revision: int = 0,
        start_revisions: Mapping[int, int] | None = None,
        pinned: int = 0,
    ) -> int:
        """A watch over every shard the range may span (or the `pinned` shard alone,
        for another node's merged watch); `start_revisions` gives each shard's first
        revision (one shard: `start_revision` will do). Call `connect_watch` next."""
        if not self.sharded:
            if start_revisions:
                raise InvalidRequest(
                    "start_revisions: the cluster has one group; give start_revision"
                )
            return self.primary.open_watch(key, range_end, start_revision)
        shards = [pinned] if pinned else self.shard_ids(key, range_end)
        starts = dict(start_revisions or {})
        if len(shards) == 1 and start_revision:
            starts.setdefault(shards[0], start_revision)
        elif start_revision:
            raise InvalidRequest(
                "start_revision: revisions are per shard; name each with start_revisions"
            )
        unknown = set(starts) - set(shards)
        if unknown:
            raise InvalidRequest(f"start_revisions: shard(s) {sorted(unknown)} hold no such keys")
        hosted = self.shards.services
        remote = {
            s: (self._replica_elsewhere(s), starts.get(s, 0)) for s in shards if s not in hosted
        }
        if remote and (self.remote is None or pinned):
            # A pinned watch comes from a node that chose this one for its replica.
            raise NotLeader(self.map.shard(min(remote)).replicas[0], "no replica here")
        opened: dict[int, int] = {}
        try:
            for shard in shards:
                if shard in hosted:
                    opened[shard] = hosted[shard].open_watch(key, range_end, starts.get(shard, 0))
        except AccordError:
            self._close_shard_watches(opened)
            raise
        self._next_watch -= 1  # below 0: never one of the primary service's ids
        self._watches[self._next_watch] = opened
        if remote:
            self._remote_parts[self._next_watch] = remote
            self._watch_ranges[self._next_watch] = (key, range_end)
        return self._next_watch

    def _replica_elsewhere(self, shard_id: int) -> int:
        """A node holding a replica of `shard_id` to watch it on: its preferred leader
        (the map's first voter), or the next voter if that is this node."""
        me = self.shards.node.host.node_id
        return next(n for n in self.map.shard(shard_id).replicas if n != me)

    async def connect_watch(self, watch_id: int) -> None:
        """Open the parts of a merged watch on other nodes (none: nothing to do);
        raises, closing the watch, if one cannot be opened."""
        parts = self._remote_parts.pop(watch_id, None)
        if not parts:
            return
        assert self.remote is not None
        key, range_end = self._watch_ranges.pop(watch_id)
        streams = self._remote_streams.setdefault(watch_id, {})
        try:
            for shard, (node, start) in parts.items():
                streams[shard] = await self.remote.open_watch(shard, node, key, range_end, start)
        except AccordError:
            await self._close_remote(watch_id)  # the caller closes the watch
            raise

    async def stream(self, watch_id: int) -> AsyncGenerator[list[Event], None]:
        async for batch in self.stream_shards(watch_id):
            yield batch.events

    async def stream_shards(self, watch_id: int) -> AsyncGenerator[ShardEvents, None]:
        """The merged stream: each shard's batches in its revision order; raises the
        reason a shard's watch was cancelled. Closing it closes every shard's watch."""
        if watch_id not in self._watches:  # the primary group's own
            async for batch in self.primary.stream(watch_id):
                yield ShardEvents(0, batch)
            return
        opened = self._watches[watch_id]
        streams = {s: self.service(s).stream(w) for s, w in opened.items()}
        streams.update(self._remote_streams.get(watch_id, {}))
        queue: asyncio.Queue[tuple[int, list[Event] | None, AccordError | None]]
        queue = asyncio.Queue(maxsize=2 * len(streams))

        async def pump(shard: int, stream: AsyncGenerator[list[Event], None]) -> None:
            try:
                async for events in stream:
                    await queue.put((shard, events, None))
            except AccordError as exc:
                await queue.put((shard, None, exc))
            else:
                await queue.put((shard, None, None))  # the node is closing

        pumps = [asyncio.create_task(pump(s, stream)) for s, stream in streams.items()]
        try:
            while True:
                shard, events, error = await queue.get()
                if error is not None:
                    raise error
                if events is None:
                    return
                yield ShardEvents(shard, events)
        finally:
            for task in pumps:
                task.cancel()
            for task in pumps:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self._close_remote(watch_id)
            self.close_watch(watch_id)

    async def _close_remote(self, watch_id: int) -> None:
        for stream in self._remote_streams.pop(watch_id, {}).values():
            await stream.aclose()

    def close_watch(self, watch_id: int) -> None:
        """Close a watch here (a merged watch's parts elsewhere are closed by its
        stream's end, or, if it was never streamed, in the background)."""
        self._remote_parts.pop(watch_id, None)
        self._watch_ranges.pop(watch_id, None)
        if watch_id in self._remote_streams:
            task = asyncio.get_running_loop().create_task(self._close_remote(watch_id))
            self._closers.add(task)
            task.add_done_callback(self._closers.discard)
        if watch_id in self._watches:
            self._close_shard_watches(self._watches.pop(watch_id))
        else:
            self.primary.close_watch(watch_id)

    def _close_shard_watches(self, opened: Mapping[int, int]) -> None:
        for shard, shard_watch in opened.items():
            service = self.shards.services.get(shard)
            if service is not None:
                service.close_watch(shard_watch)

    def resync_watches(self) -> None:
        """Each shard's service resyncs its own after its group's restore."""


def command_ranges(command: Command) -> Iterable[tuple[bytes, bytes]]:
    """Every key (range end empty) and key range `command` reads or writes."""
    if isinstance(command, Put | Get):
        yield command.key, b""
    elif isinstance(command, DeleteRange | Range):
        yield command.key, command.range_end
    elif isinstance(command, Compare):
        yield command.key, b""
    elif isinstance(command, Txn):
        for part in (*command.compares, *command.success, *command.failure):
            yield from command_ranges(part)  # type: ignore[arg-type]


def unsupported_on_shards(command: Command) -> str:
    """What of `command` a sharded cluster does not serve yet ("" if nothing): the
    commands without keys other than leases' (compaction, housekeeping)."""
    if isinstance(command, Put | DeleteRange | Txn | LeaseRevoke):
        return ""
    return type(command).__name__
