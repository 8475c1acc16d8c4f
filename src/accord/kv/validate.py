"""Checks on a decoded command that do not depend on the store's state.

`check_envelope()` raises the typed error (`InvalidRequest`, `LimitExceeded`,
`DuplicateKey`) that `apply()` would record for the envelope, or returns. The API
layer calls it before proposing, so a bad request is refused without touching the
log; `apply()` calls it again because a replica must never trust the proposer.
Checks that need the store (revisions, leases, quota) happen inside `apply()`.
"""

from __future__ import annotations

from collections.abc import Sequence

from accord.kv.commands import (
    Command,
    Compact,
    Compare,
    CompareTarget,
    DeleteRange,
    Envelope,
    ExpireLeaseIds,
    ExpireSessions,
    Get,
    LeaseCheckpoint,
    LeaseGrant,
    LeaseKeepAlive,
    LeaseRevoke,
    Put,
    Range,
    Txn,
    TxnOp,
)
from accord.kv.errors import DuplicateKey, InvalidRequest, LimitExceeded
from accord.kv.limits import LEASE_ID_MAX, LEASE_IDS_PER_COMMAND_MAX, KVLimits
from accord.kv.types import in_range


def check_envelope(envelope: Envelope, limits: KVLimits) -> None:
    check_request_id(envelope.client_id, envelope.seq)
    check_command(envelope.command, limits)


def check_request_id(client_id: int, seq: int) -> None:
    if client_id == 0 and seq != 0:
        raise InvalidRequest("a request without a client id (0) must have seq 0")
    if client_id != 0 and seq == 0:
        raise InvalidRequest("sequence numbers start at 1")


def check_command(command: Command, limits: KVLimits) -> None:
    if isinstance(command, Put | Get | Range | DeleteRange):
        _check_op(command, limits)
    elif isinstance(command, Txn):
        _check_txn(command, limits)
    elif isinstance(command, Compact):
        if command.revision < 1:
            raise InvalidRequest("compact revision must be at least 1")
    elif isinstance(command, LeaseGrant):
        _check_lease_id(command.lease_id)
        if not limits.lease_ttl_ms_min <= command.ttl_ms <= limits.lease_ttl_ms_max:
            raise InvalidRequest(
                f"lease TTL {command.ttl_ms} ms is outside "
                f"[{limits.lease_ttl_ms_min}, {limits.lease_ttl_ms_max}] ms"
            )
    elif isinstance(command, LeaseRevoke | LeaseKeepAlive):
        _check_lease_id(command.lease_id)
    elif isinstance(command, LeaseCheckpoint | ExpireLeaseIds):
        _check_lease_list(command)
    elif isinstance(command, ExpireSessions) and command.idle_ms < limits.session_idle_ms_min:
        raise InvalidRequest(
            f"session idle time {command.idle_ms} ms is below the minimum of "
            f"{limits.session_idle_ms_min} ms"
        )


def _check_lease_list(command: LeaseCheckpoint | ExpireLeaseIds) -> None:
    if isinstance(command, LeaseCheckpoint):
        ids = [lease_id for lease_id, _ in command.leases]
    else:
        ids = list(command.lease_ids)
    if len(ids) > LEASE_IDS_PER_COMMAND_MAX:
        raise LimitExceeded("leases in one command", len(ids), LEASE_IDS_PER_COMMAND_MAX)
    for lease_id in ids:
        _check_lease_id(lease_id)


def _check_lease_id(lease_id: int) -> None:
    if not 1 <= lease_id <= LEASE_ID_MAX:
        raise InvalidRequest(f"lease id {lease_id} is outside [1, {LEASE_ID_MAX}]")


def _check_key(key: bytes, limits: KVLimits, *, what: str = "key") -> None:
    if len(key) > limits.key_bytes_max:
        raise LimitExceeded(f"{what} bytes", len(key), limits.key_bytes_max)


def _check_op(op: TxnOp, limits: KVLimits) -> None:
    _check_key(op.key, limits)
    if isinstance(op, Get | Range) and op.revision < 0:
        raise InvalidRequest(f"revision {op.revision} is negative")
    if isinstance(op, Range) and op.limit < 0:
        raise InvalidRequest(f"range limit {op.limit} is negative")
    if isinstance(op, Put | Get):
        if not op.key:
            raise InvalidRequest("the key is empty")
        if isinstance(op, Put):
            if len(op.value) > limits.value_bytes_max:
                raise LimitExceeded("value bytes", len(op.value), limits.value_bytes_max)
            if not 0 <= op.lease <= LEASE_ID_MAX:
                raise InvalidRequest(f"lease id {op.lease} is outside [0, {LEASE_ID_MAX}]")
        return
    _check_key(op.range_end, limits, what="range end")
    if not op.key and not op.range_end:
        raise InvalidRequest("the key is empty")


def _check_txn(txn: Txn, limits: KVLimits) -> None:
    if len(txn.compares) > limits.txn_compares_max:
        raise LimitExceeded("transaction compares", len(txn.compares), limits.txn_compares_max)
    for compare in txn.compares:
        _check_compare(compare, limits)
    for branch in (txn.success, txn.failure):
        if len(branch) > limits.txn_ops_max:
            raise LimitExceeded("transaction ops", len(branch), limits.txn_ops_max)
        ranges = sum(isinstance(op, Range) for op in branch)
        if ranges > limits.txn_range_ops_max:
            raise LimitExceeded("transaction range ops", ranges, limits.txn_range_ops_max)
        for op in branch:
            _check_op(op, limits)
        _check_disjoint_writes(branch)


def _check_compare(compare: Compare, limits: KVLimits) -> None:
    if not compare.key:
        raise InvalidRequest("the key of a compare is empty")
    _check_key(compare.key, limits)
    if compare.target is CompareTarget.VALUE:
        if not isinstance(compare.value, bytes):
            raise InvalidRequest("a value compare needs a bytes operand")
        if len(compare.value) > limits.value_bytes_max:
            raise LimitExceeded("value bytes", len(compare.value), limits.value_bytes_max)
    elif not isinstance(compare.value, int) or isinstance(compare.value, bool):
        raise InvalidRequest(f"a {compare.target.name.lower()} compare needs an integer operand")


def _check_disjoint_writes(branch: Sequence[TxnOp]) -> None:
    """Each key is written at most once per revision: no two puts of one key, and no
    put inside a range the same branch deletes (two deletes may overlap)."""
    put_keys: set[bytes] = set()
    for op in branch:
        if isinstance(op, Put):
            if op.key in put_keys:
                raise DuplicateKey(op.key)
            put_keys.add(op.key)
    deletes = [op for op in branch if isinstance(op, DeleteRange)]
    for key in sorted(put_keys):
        for delete in deletes:
            if in_range(key, delete.key, delete.range_end):
                raise DuplicateKey(key)
