"""`KVStateMachine`: the replicated state of one Raft group's key-value store.

Theory of operation
-------------------
The node runtime hands every committed log entry to `apply(index, data)`, in log
order, and gets back the command's result (to resolve the waiting request) and the
watch events it produced (to feed the `WatchHub`). Nothing in here reads a clock,
draws randomness or does I/O: time is the `now_ms` the leader stamped on each
command, so every replica that applies the same log computes the same state,
results and events, byte for byte.

`apply()` never raises for a command that is well-formed but fails: a missing lease,
a compacted revision or an exceeded limit becomes an `ErrorResult`, recorded like any
other result. Undecodable bytes become an `ErrorResult` with `BadCommand` too (every
replica sees the same bytes, so they agree), and an empty entry (a new leader's
no-op) yields `NoopResult`. Only a broken invariant (a bug, or the runtime applying
an index twice) raises.

The order of work for one entry:

1. decode the envelope; advance the clock to `max(clock, now_ms)` (leaders' clocks
   may disagree, and the replicated clock must never run backwards);
2. if it carries a client id, consult the session: a retry is answered from the
   record, a stale or unknown-session request is refused (`sessions.py`);
3. check the command's static limits (`validate.py`), then run it. Handlers check
   everything that can fail *before* they change anything, so a failure leaves no
   trace but the error result;
4. record the result in the client's session.

What reads return is bounded as it is built (`budget.py`): response bytes
(`response_bytes_max`) and keys visited (`read_keys_scanned_max`) per request, the
sum over every op of a transaction; going over fails the whole command.

Writes (a put, a delete, a transaction's branch, a lease revocation, lease expiry)
happen at revision `revision + 1`, which becomes the store's revision only if
something was written. All results a transaction returns carry the revision it ended
at. The events of one revision are sorted by key.

Reads for the runtime (`get`, `range`, `lease_ttl`, `leases`, `history`) serve the
applied state directly; the runtime calls them after ReadIndex for linearizable
reads, or at once for serializable ones. They raise the typed errors.

`snapshot()` encodes the whole state (store history, leases, sessions, counters,
clock and applied index) as one versioned msgpack array; `restore()` replaces the
state with a decoded snapshot, or raises `BadSnapshot` and changes nothing.
`snapshot_job()` produces the same bytes in steps, so the runtime can go on applying
entries while a large store is encoded (the result is the state when it started).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import replace
from typing import Any, TypeAlias

from accord.invariant import invariant
from accord.kv import _wire
from accord.kv.budget import ReadBudget
from accord.kv.commands import (
    Command,
    Compact,
    Compare,
    CompareOp,
    CompareTarget,
    DeleteRange,
    Envelope,
    ExpireLeaseIds,
    ExpireLeases,
    ExpireSessions,
    Get,
    LeaseCheckpoint,
    LeaseGrant,
    LeaseKeepAlive,
    LeaseRevoke,
    Put,
    Range,
    RenewAllLeases,
    Txn,
    TxnOp,
    decode_command,
)
from accord.kv.errors import (
    BadCommand,
    BadSnapshot,
    Compacted,
    FutureRevision,
    KVError,
    LeaseExists,
    LeaseNotFound,
    QuotaExceeded,
    TooManyLeases,
)
from accord.kv.leases import Lease, LeaseTable
from accord.kv.limits import RESTORE_BYTES_MAX, UINT64_MAX, KVLimits, version_bytes
from accord.kv.mvcc import MVCCStore, SnapshotReader
from accord.kv.results import (
    CompactResult,
    DeleteResult,
    ErrorResult,
    ExpireLeasesResult,
    ExpireSessionsResult,
    GetResult,
    LeaseGrantResult,
    LeaseInfo,
    LeaseKeepAliveResult,
    LeaseRevokeResult,
    LeasesRenewedResult,
    NoopResult,
    OpResult,
    PutResult,
    RangeResult,
    Result,
    TxnResult,
)
from accord.kv.sessions import SessionTable
from accord.kv.types import Event, KeyValue, in_range
from accord.kv.validate import check_command, check_request_id

SNAPSHOT_FORMAT = 1
SNAPSHOT_KEYS_PER_STEP = 256
"""Keys a snapshot job encodes per step (a millisecond or two of work)."""

SnapshotJob: TypeAlias = Generator[None, None, bytes]
"""A snapshot encoded in steps: `next()` does one, the bytes are the return value."""

Outcome = tuple[Result, list[Event]]


class KVStateMachine:
    """The KV store's replicated state; see the module docstring."""

    def __init__(self, limits: KVLimits | None = None) -> None:
        self._limits = limits if limits is not None else KVLimits()
        self._store = MVCCStore()
        self._leases = LeaseTable()
        self._sessions = SessionTable(self._limits.sessions_max, self._limits.sessions_per_user_max)
        self._applied_index = 0
        self._clock_ms = 0
        self._handlers: dict[type[Any], Callable[[Any], Outcome]] = {
            Put: self._single_op,
            Get: self._single_op,
            Range: self._single_op,
            DeleteRange: self._single_op,
            Txn: self._txn,
            Compact: self._compact,
            LeaseRevoke: self._lease_revoke,
            LeaseKeepAlive: self._lease_keepalive,
            ExpireLeases: self._expire_leases,
            ExpireSessions: self._expire_sessions,
            RenewAllLeases: self._renew_all_leases,
            LeaseCheckpoint: self._lease_checkpoint,
            ExpireLeaseIds: self._expire_lease_ids,
        }

    # --- state the runtime reads -----------------------------------------------------
    @property
    def applied_index(self) -> int:
        """The Raft index of the last entry applied (or of the restored snapshot)."""
        return self._applied_index

    @property
    def revision(self) -> int:
        return self._store.revision

    @property
    def compact_revision(self) -> int:
        return self._store.compact_revision

    @property
    def clock_ms(self) -> int:
        """The replicated clock: the largest `now_ms` applied so far."""
        return self._clock_ms

    @property
    def limits(self) -> KVLimits:
        return self._limits

    @property
    def size_bytes(self) -> int:
        """The store's history as charged against `limits.store_bytes_max`."""
        return self._store.size_bytes

    @property
    def keys_count(self) -> int:
        """Live keys (not deleted) at the latest revision."""
        return self._store.live_keys

    @property
    def leases_count(self) -> int:
        return len(self._leases)

    @property
    def sessions_count(self) -> int:
        return len(self._sessions)

    # --- apply -----------------------------------------------------------------------
    def apply(self, index: int, data: bytes) -> tuple[Result, list[Event]]:
        """Apply the committed entry at Raft index `index`; see the module docstring."""
        self._advance(index)
        if not data:
            return NoopResult(), []
        try:
            envelope = decode_command(data)
        except BadCommand as exc:
            return ErrorResult.of(exc), []
        self._clock_ms = max(self._clock_ms, envelope.now_ms)
        return self._apply_envelope(envelope)

    def refuse(self, index: int, error: BadCommand) -> tuple[Result, list[Event]]:
        """Record the entry at `index` as one that holds no command this machine can
        apply (a command kind this node does not know): as for undecodable bytes, the
        index advances, nothing else changes, and the result is `error`."""
        self._advance(index)
        return ErrorResult.of(error), []

    def _advance(self, index: int) -> None:
        invariant(index > self._applied_index, f"entry {index} applied after {self._applied_index}")
        self._applied_index = index

    def _apply_envelope(self, envelope: Envelope) -> Outcome:
        client_id, seq = envelope.client_id, envelope.seq
        try:
            check_request_id(client_id, seq)
        except KVError as exc:
            return ErrorResult.of(exc), []
        owner = envelope.owner
        if client_id:
            answer = self._sessions.answer(client_id, seq, self._clock_ms, owner)
            if answer is not None:
                return answer, []
        try:
            check_command(envelope.command, self._limits)
            result, events = self._execute(envelope.command, owner)
        except KVError as exc:
            result, events = ErrorResult.of(exc), []
        if client_id:
            self._sessions.record(client_id, seq, result, self._clock_ms, owner)
        return result, events

    def _execute(self, command: Command, owner: str) -> Outcome:
        if isinstance(command, LeaseGrant):  # the one command that records its owner
            return self._lease_grant(command, owner)
        return self._handlers[type(command)](command)

    # --- puts, deletes, reads and transactions -------------------------------------------
    def _single_op(self, op: TxnOp) -> Outcome:
        responses, events = self._run_ops((op,))
        return responses[0], events

    def _txn(self, txn: Txn) -> Outcome:
        succeeded = all(self._compare(c) for c in txn.compares)
        responses, events = self._run_ops(txn.success if succeeded else txn.failure)
        return TxnResult(self._store.revision, succeeded, tuple(responses)), events

    def _compare(self, compare: Compare) -> bool:
        kv = self._store.latest(compare.key)
        actual: bytes | int
        if compare.target is CompareTarget.VALUE:
            if kv is None:
                return False  # etcd: a value compare on a missing key always fails
            actual = kv.value
        elif kv is None:
            actual = 0
        elif compare.target is CompareTarget.VERSION:
            actual = kv.version
        elif compare.target is CompareTarget.CREATE_REVISION:
            actual = kv.create_revision
        else:
            actual = kv.mod_revision
        expected = compare.value
        invariant(isinstance(actual, bytes) == isinstance(expected, bytes), "compare operand type")
        if compare.op is CompareOp.EQUAL:
            return actual == expected
        if compare.op is CompareOp.NOT_EQUAL:
            return actual != expected
        if compare.op is CompareOp.LESS:
            return actual < expected  # type: ignore[operator]  # same type, checked above
        return actual > expected  # type: ignore[operator]

    def _run_ops(self, ops: Sequence[TxnOp]) -> tuple[list[OpResult], list[Event]]:
        """Run `ops` at one revision, each seeing the writes before it; all-or-nothing.

        The response is charged to a `ReadBudget` as it is built. Ops that only read
        are charged while they run (a refusal then leaves nothing to undo); a branch
        that writes has its reads charged by `_charge_reads` before anything runs."""
        budget = ReadBudget.of(self._limits)
        if any(isinstance(op, Put | DeleteRange) for op in ops):
            self._charge_reads(ops, budget)
            budget = ReadBudget.unbounded()
        self._check_ops(ops)
        revision = self._store.revision + 1
        events: list[Event] = []
        responses: list[OpResult] = []
        for index, op in enumerate(ops):
            budget.start_op(index)
            if isinstance(op, Put):
                responses.append(self._put(op, revision, events))
            elif isinstance(op, DeleteRange):
                prev = self._delete(op.key, op.range_end, revision, events)
                responses.append(
                    DeleteResult(revision, len(prev), tuple(prev) if op.prev_kv else ())
                )
            else:
                responses.append(self._read(op, revision, budget))
        final = self._finish(revision, events)
        return [r if r.revision == final else replace(r, revision=final) for r in responses], events

    def _charge_reads(self, ops: Sequence[TxnOp], budget: ReadBudget) -> None:
        """Charge what the ops of a writing branch will return, before any runs, as
        reads of the committed store plus, for a read at the latest revision, every
        key an earlier op of the branch puts in its range (an upper bound: a put may
        replace a key the read counted, or a delete remove one)."""
        puts: list[Put] = []
        for index, op in enumerate(ops):
            budget.start_op(index)
            if isinstance(op, Put):
                puts.append(op)
            elif isinstance(op, Get | Range):
                self._read(op, self._store.revision, budget)
                if op.revision == 0 and not (isinstance(op, Range) and op.count_only):
                    end = op.range_end if isinstance(op, Range) else b""
                    for put in puts:
                        if in_range(put.key, op.key, end):
                            budget.take(put.key, put.value, 0)

    def _check_ops(self, ops: Sequence[TxnOp]) -> None:
        """Raise whatever would make `ops` fail, before any of them runs."""
        needed_bytes = 0
        for op in ops:
            if isinstance(op, Get | Range):
                self._store.resolve(op.revision)
            elif isinstance(op, Put):
                if op.lease and self._leases.alive(op.lease, self._clock_ms) is None:
                    raise LeaseNotFound(op.lease)
                needed_bytes += version_bytes(op.key, op.value)
        size_bytes = self._store.size_bytes + needed_bytes
        if needed_bytes and size_bytes > self._limits.store_bytes_max:
            raise QuotaExceeded(size_bytes, self._limits.store_bytes_max)

    def _put(self, op: Put, revision: int, events: list[Event]) -> PutResult:
        event = self._store.put(op.key, op.value, op.lease, revision)
        prev = event.prev_kv
        if prev is not None and prev.lease:
            self._leases.detach(event.kv.key, prev.lease)
        if op.lease:
            self._leases.attach(event.kv.key, op.lease)
        events.append(event)
        return PutResult(revision, prev if op.prev_kv else None)

    def _delete(
        self, key: bytes, range_end: bytes, revision: int, events: list[Event]
    ) -> list[KeyValue]:
        """Delete the live keys in the range; returns the versions deleted."""
        deleted = self._store.delete(key, range_end, revision)
        prev_kvs = []
        for event in deleted:
            prev = event.prev_kv
            assert prev is not None  # a delete event always replaces a live version
            if prev.lease:
                self._leases.detach(prev.key, prev.lease)
            prev_kvs.append(prev)
        events += deleted
        return prev_kvs

    def _read(self, op: Get | Range, latest: int, budget: ReadBudget) -> OpResult:
        """Serve a read, charging it to `budget`; the revision 0 means `latest` (which
        includes the writes of the open transaction). Results carry `latest` as their
        revision."""
        at = latest if op.revision == 0 else self._store.resolve(op.revision)
        if isinstance(op, Get):
            budget.scan()
            kv = self._store.get(op.key, at)
            if kv is not None:
                budget.take(kv.key, kv.value, 0)
            return GetResult(latest, kv)
        store = self._store
        kvs, count = store.range(op.key, op.range_end, at, op.limit, op.count_only, budget)
        return RangeResult(latest, tuple(kvs), count, not op.count_only and count > len(kvs))

    def _finish(self, revision: int, events: list[Event]) -> int:
        """Close the write transaction at `revision`; returns the store's revision."""
        if events:
            self._store.commit(revision)
            events.sort(key=_event_key)
        return self._store.revision

    # --- compaction and leases -----------------------------------------------------------
    def _compact(self, command: Compact) -> Outcome:
        store = self._store
        if command.revision <= store.compact_revision:
            raise Compacted(command.revision, store.compact_revision)
        if command.revision > store.revision:
            raise FutureRevision(command.revision, store.revision)
        store.compact(command.revision)
        return CompactResult(store.revision, store.compact_revision), []

    def _lease_grant(self, command: LeaseGrant, owner: str) -> Outcome:
        if self._leases.get(command.lease_id) is not None:
            raise LeaseExists(command.lease_id)
        limits = self._limits
        if len(self._leases) >= limits.leases_max:
            raise TooManyLeases("leases", len(self._leases) + 1, limits.leases_max)
        owned = self._leases.owned_by(owner)
        if owned >= limits.leases_per_user_max:
            what = f"leases of user {owner!r}"
            raise TooManyLeases(what, owned + 1, limits.leases_per_user_max)
        lease = self._leases.grant(command.lease_id, command.ttl_ms, self._clock_ms, owner)
        return LeaseGrantResult(lease.lease_id, lease.ttl_ms, lease.deadline_ms), []

    def _lease_keepalive(self, command: LeaseKeepAlive) -> Outcome:
        lease = self._leases.alive(command.lease_id, self._clock_ms)
        if lease is None:
            raise LeaseNotFound(command.lease_id)
        self._leases.refresh(lease, self._clock_ms)
        return LeaseKeepAliveResult(lease.lease_id, lease.ttl_ms, lease.deadline_ms), []

    def _lease_revoke(self, command: LeaseRevoke) -> Outcome:
        lease = self._leases.get(command.lease_id)
        if lease is None:
            raise LeaseNotFound(command.lease_id)
        revision = self._store.revision + 1
        events: list[Event] = []
        self._revoke(lease, revision, events)
        return LeaseRevokeResult(self._finish(revision, events), len(events)), events

    def _expire_leases(self, _: ExpireLeases) -> Outcome:
        return self._revoke_expired(self._leases.expired(self._clock_ms))

    def _renew_all_leases(self, _: RenewAllLeases) -> Outcome:
        return LeasesRenewedResult(self._leases.renew_all(self._clock_ms)), []

    def _lease_checkpoint(self, command: LeaseCheckpoint) -> Outcome:
        return LeasesRenewedResult(self._leases.checkpoint(command.leases, self._clock_ms)), []

    def _expire_lease_ids(self, command: ExpireLeaseIds) -> Outcome:
        expired = []
        for lease_id in sorted(set(command.lease_ids)):
            lease = self._leases.get(lease_id)
            if lease is not None and lease.deadline_ms <= self._clock_ms:
                expired.append(lease_id)
        return self._revoke_expired(expired)

    def _revoke_expired(self, expired: list[int]) -> Outcome:
        """Revoke the leases `expired` (ascending ids) at one revision."""
        revision = self._store.revision + 1
        events: list[Event] = []
        for lease_id in expired:
            lease = self._leases.get(lease_id)
            assert lease is not None
            self._revoke(lease, revision, events)
        final = self._finish(revision, events)
        return ExpireLeasesResult(final, tuple(expired), len(events)), events

    def _revoke(self, lease: Lease, revision: int, events: list[Event]) -> None:
        for key in sorted(lease.keys):
            self._delete(key, b"", revision, events)
        invariant(not lease.keys, "a revoked lease still holds keys")
        self._leases.remove(lease.lease_id)

    def _expire_sessions(self, command: ExpireSessions) -> Outcome:
        return ExpireSessionsResult(self._sessions.expire(self._clock_ms, command.idle_ms)), []

    # --- reads for the runtime -----------------------------------------------------------
    def _budget(self) -> ReadBudget:
        budget = ReadBudget.of(self._limits)
        budget.start_op(0)
        return budget

    def get(self, key: bytes, revision: int = 0) -> GetResult:
        """The key's version at `revision` (0: latest). Raises `Compacted`,
        `FutureRevision`, `InvalidRequest` or `LimitExceeded`."""
        op = Get(key, revision)
        check_command(op, self._limits)
        result = self._read(op, self._store.revision, self._budget())
        assert isinstance(result, GetResult)
        return result

    def range(
        self,
        key: bytes,
        range_end: bytes = b"",
        revision: int = 0,
        limit: int = 0,
        count_only: bool = False,
    ) -> RangeResult:
        """Live keys in the range at `revision` (0: latest); see `types` for ranges."""
        op = Range(key, range_end, revision, limit, count_only)
        check_command(op, self._limits)
        result = self._read(op, self._store.revision, self._budget())
        assert isinstance(result, RangeResult)
        return result

    def history(
        self, key: bytes, range_end: bytes, start_revision: int, events_max: int
    ) -> tuple[list[Event], int]:
        """Events in the range from `start_revision` on, at most `events_max` of them
        and `limits.response_bytes_max` worth (see `MVCCStore.history`); raises
        `Compacted` when `start_revision <= compact_revision`, `ResponseTooLarge` when
        its first revision alone is over the byte bound."""
        bytes_max = self._limits.response_bytes_max
        return self._store.history(key, range_end, start_revision, events_max, bytes_max)

    def lease_ttl(self, lease_id: int, *, keys: bool = False) -> LeaseInfo | None:
        """The lease (with its keys if asked), or `None` if there is no such lease."""
        lease = self._leases.get(lease_id)
        return None if lease is None else self._leases.info(lease, self._clock_ms, keys=keys)

    def leases_due(self, now_ms: int) -> list[int]:
        """Ids of the leases whose replicated deadline is `<= now_ms`, ascending: the
        leader's expiry candidates, found without scanning the table."""
        return self._leases.due(now_ms)

    def lease_deadline(self, lease_id: int) -> tuple[int, int] | None:
        """`(ttl_ms, deadline_ms)` of the lease, or `None` if there is none."""
        lease = self._leases.get(lease_id)
        return None if lease is None else (lease.ttl_ms, lease.deadline_ms)

    def lease_deadlines(self) -> Iterator[tuple[int, int, int]]:
        """`(lease_id, ttl_ms, deadline_ms)` of every lease, unordered."""
        return self._leases.deadlines()

    def leases(self) -> list[LeaseInfo]:
        """Every lease, by id (without their keys)."""
        infos = []
        for lease_id in self._leases.ids():
            lease = self._leases.get(lease_id)
            assert lease is not None
            infos.append(self._leases.info(lease, self._clock_ms, keys=False))
        return infos

    # --- snapshots -----------------------------------------------------------------------
    def snapshot(self) -> bytes:
        """The whole state: `[FORMAT, applied index, revision, compact revision, clock,
        store, leases, sessions]`."""
        return run_job(self.snapshot_job())

    def snapshot_job(self, keys_per_step: int = SNAPSHOT_KEYS_PER_STEP) -> SnapshotJob:
        """`snapshot()` of the state as it is now, encoded in steps of
        `keys_per_step` keys: each `next()` does one step, and the bytes are the
        generator's return value. The caller may apply entries between steps (they do
        not show in the result). Everything but the key store is encoded at once."""
        store = self._store
        reader = store.reader()
        head = _wire.pack_array_head(8) + b"".join(
            _wire.pack(field)
            for field in (
                SNAPSHOT_FORMAT,
                self._applied_index,
                store.revision,
                store.compact_revision,
                self._clock_ms,
            )
        )
        tail = _wire.pack(self._leases.encode()) + _wire.pack(self._sessions.encode())
        return _encode_store(reader, head, tail, keys_per_step)

    def restore(self, data: bytes) -> None:
        """Replace the whole state with `snapshot()`'s output; raises `BadSnapshot`
        (leaving the state as it was) for anything else."""
        if len(data) > RESTORE_BYTES_MAX:
            raise BadSnapshot(f"{len(data)} bytes, over the limit of {RESTORE_BYTES_MAX}")
        try:
            fields = _wire.array(_wire.unpack(data), "snapshot", 8)
            version, applied, revision, compact, clock, keys, leases, sessions = fields
            if type(version) is not int or version != SNAPSHOT_FORMAT:
                raise _wire.WireError(f"unknown snapshot format {version!r:.20}")
            store = MVCCStore.decode(
                keys, _wire.uint(revision, "revision"), _wire.uint(compact, "compact revision")
            )
            lease_table = LeaseTable.decode(leases, store.live_leased_keys())
            session_table = SessionTable.decode(
                sessions, self._limits.sessions_max, self._limits.sessions_per_user_max
            )
            applied_index = _wire.uint(applied, "applied index", UINT64_MAX)
            clock_ms = _wire.uint(clock, "clock")
        except _wire.WireError as exc:
            raise BadSnapshot(str(exc)) from None
        self._store = store
        self._leases = lease_table
        self._sessions = session_table
        self._applied_index = applied_index
        self._clock_ms = clock_ms


def _encode_store(
    reader: SnapshotReader, head: bytes, tail: bytes, keys_per_step: int
) -> SnapshotJob:
    try:
        parts = [head, _wire.pack_array_head(len(reader.keys))]
        for start in range(0, len(reader.keys), keys_per_step):
            yield
            parts.append(_wire.pack_items(reader.encode(start, start + keys_per_step)))
        parts.append(tail)
        return b"".join(parts)
    finally:
        reader.close()


def run_job(job: SnapshotJob) -> bytes:
    """Run a snapshot job to the end at once."""
    while True:
        try:
            next(job)
        except StopIteration as done:
            data: bytes = done.value
            return data


def _event_key(event: Event) -> bytes:
    return event.kv.key
