"""The simulated clients' register operations, expressed as real KV commands, and the
leader's lease housekeeping as the node service does it.

The simulator runs the real `KVStateMachine`: a write is a `Put`, a compare-and-swap
is a `Txn` comparing the value (or, for "absent", the version 0) and putting the new
value on success, a read is a `get` after ReadIndex. Every write carries the client's
session (client id, write sequence number), so retries take effect once.
"""

from __future__ import annotations

from typing import Any

from accord.kv import (
    Command,
    Compare,
    CompareOp,
    CompareTarget,
    Envelope,
    ExpireLeaseIds,
    KVStateMachine,
    LeaseCheckpoint,
    LeaseGrant,
    Put,
    Txn,
    encode_command,
)
from accord.kv.results import (
    ErrorResult,
    ExpireLeasesResult,
    LeaseGrantResult,
    LeasesRenewedResult,
    PutResult,
    TxnResult,
)

LEASE_ROUND_TICKS = 20
"""A leader's lease housekeeping runs every this many of its ticks."""
SIM_LEASES_MAX = 6
"""Leases the simulated leaders keep in the table at most."""
LEASE_TTLS = (40, 150, 600)
"""TTLs (simulated time) of the leases granted, in turn."""


def _encode_value(value: int) -> bytes:
    return str(value).encode()


def encode_write(
    client: int, write_seq: int, op: str, key: str, arg1: Any, arg2: Any, now: int
) -> bytes:
    key_bytes = key.encode()
    if op == "w":
        command: Put | Txn = Put(key_bytes, _encode_value(arg1))
    elif op == "c":
        if arg1 is None:
            compare = Compare(key_bytes, CompareTarget.VERSION, CompareOp.EQUAL, 0)
        else:
            compare = Compare(key_bytes, CompareTarget.VALUE, CompareOp.EQUAL, _encode_value(arg1))
        command = Txn((compare,), (Put(key_bytes, _encode_value(arg2)),), ())
    else:
        raise ValueError(f"not a write: {op!r}")
    return encode_command(Envelope(client, write_seq, command, now))


SESSION_EXPIRED = "session_expired"
STALE_REQUEST = "stale_request"


def write_outcome(result: Any) -> tuple[bool, Any]:
    """(applied, what the client records): True for a write, whether a CAS succeeded;
    (False, "session_expired") when the client must open a new session; (False,
    "stale_request") for a delayed copy of a write its session has since moved past,
    which the caller must check the client no longer waits for."""
    if isinstance(result, PutResult):
        return True, True
    if isinstance(result, LeaseGrantResult | LeasesRenewedResult | ExpireLeasesResult):
        return True, None  # the leader's own lease commands (or a lost LeaseExists race)
    if isinstance(result, TxnResult):
        return True, result.succeeded
    if isinstance(result, ErrorResult) and result.code == SESSION_EXPIRED:
        # The client gave up on its first write (never applied) and moved on: its
        # session never opened. The request was refused, so a new session may retry it.
        return False, SESSION_EXPIRED
    if isinstance(result, ErrorResult) and result.code == STALE_REQUEST:
        # The network duplicates client requests: a late copy of an answered write can
        # reach a leader after the client's next write applied. Refused, never applied.
        return False, STALE_REQUEST
    # No other simulated request may fail in the state machine: that would be a bug
    # (e.g. a session that lost track of a retry).
    raise AssertionError(f"state machine refused a simulated write: {result!r}")


def read_value(machine: KVStateMachine, key: str) -> int | None:
    kv = machine.get(key.encode()).kv
    return int(kv.value) if kv is not None else None


def lease_round(machine: KVStateMachine, lease_id: int, now: int) -> list[Command]:
    """A leader's lease housekeeping: grant lease `lease_id` (unless the table is
    full), checkpoint the lowest
    lease a full TTL ahead (as a keepalive would), expire the leases past their
    deadline. The node service's lessor decides the same kinds of commands."""
    deadlines = sorted(machine.lease_deadlines())
    commands: list[Command] = []
    if len(deadlines) < SIM_LEASES_MAX:  # a small table keeps snapshots small
        commands.append(LeaseGrant(lease_id, LEASE_TTLS[lease_id % len(LEASE_TTLS)]))
    live = [(i, ttl) for i, ttl, deadline in deadlines if deadline > now]
    if live:
        commands.append(LeaseCheckpoint(((live[0][0], now + live[0][1]),)))
    expired = tuple(machine.leases_due(now))
    if expired:
        commands.append(ExpireLeaseIds(expired))
    return commands


def lease_digest(machine: KVStateMachine) -> tuple[tuple[int, int, int], ...]:
    """The lease table's state (ids, TTLs, deadlines): equal on every replica at one
    applied index."""
    return tuple(sorted(machine.lease_deadlines()))
