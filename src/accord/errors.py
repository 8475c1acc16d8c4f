"""Typed errors for operating conditions that reach callers.

Programmer errors (misuse of an internal API, a broken invariant) are `InvariantError`
from `accord.invariant`; everything here is an expected condition a caller handles.
"""

from __future__ import annotations


class AccordError(Exception):
    """Base class of every error Accord reports to its callers."""

    code = "internal"


class NotLeader(AccordError):
    """This node is not the leader; `leader_hint` is the leader's id if known (else 0)."""

    code = "not_leader"

    def __init__(self, leader_hint: int = 0, message: str = "") -> None:
        self.leader_hint = leader_hint
        super().__init__(message or f"not the leader (leader hint: {leader_hint or 'unknown'})")


class ProposalDropped(AccordError):
    """A proposal was refused or lost (leadership transfer, overload, superseded entry)."""

    code = "proposal_dropped"


class DeadlineExceeded(AccordError):
    """The operation did not finish before its deadline; its outcome is unknown."""

    code = "deadline_exceeded"


class TooManyPendingReads(AccordError):
    """A linearizable read (or lease keepalive) found `pending_reads_max` others already
    waiting in this node for their read index: refused at once, nothing waited for.
    Retry later, or read from another node; the HTTP status is 503."""

    code = "too_many_pending_reads"

    def __init__(self, pending: int, limit: int) -> None:
        self.pending = pending
        self.limit = limit
        super().__init__(
            f"{pending} linearizable reads would be waiting in this node; "
            f"the limit (pending_reads_max) is {limit}"
        )


class ShardChangeRefused(AccordError):
    """The metadata group refused a change of the shard map (a move or split): the
    map has changed since it was decided (`stale_map`), the shard has a move under
    way, the target already holds a replica, ... The message says which."""

    code = "shard_change_refused"
