"""Majority arithmetic for simple and joint configurations.

In joint consensus (`ConfState.voters_outgoing` non-empty) every decision needs a
majority of the incoming voters *and* a majority of the outgoing voters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import IntEnum

from accord.raft.types import ConfState, NodeId


class VoteResult(IntEnum):
    PENDING = 0
    WON = 1
    LOST = 2


def _majority_index(voters: frozenset[NodeId], acked: Callable[[NodeId], int]) -> int:
    if not voters:
        # An empty half of a configuration agrees to everything; `min` over the
        # halves then lets the other half decide.
        return 1 << 62
    indexes = sorted((acked(v) for v in voters), reverse=True)
    return indexes[len(voters) // 2]


def committed_index(conf: ConfState, acked: Callable[[NodeId], int]) -> int:
    """The highest index acknowledged by a quorum of `conf`."""
    return min(_majority_index(conf.voters, acked), _majority_index(conf.voters_outgoing, acked))


def _vote_result(voters: frozenset[NodeId], votes: Mapping[NodeId, bool]) -> VoteResult:
    if not voters:
        return VoteResult.WON
    granted = sum(1 for v in voters if votes.get(v) is True)
    rejected = sum(1 for v in voters if votes.get(v) is False)
    need = len(voters) // 2 + 1
    if granted >= need:
        return VoteResult.WON
    if len(voters) - rejected < need:
        return VoteResult.LOST
    return VoteResult.PENDING


def vote_result(conf: ConfState, votes: Mapping[NodeId, bool]) -> VoteResult:
    incoming = _vote_result(conf.voters, votes)
    outgoing = _vote_result(conf.voters_outgoing, votes)
    if VoteResult.LOST in (incoming, outgoing):
        return VoteResult.LOST
    if incoming == outgoing == VoteResult.WON:
        return VoteResult.WON
    return VoteResult.PENDING


def has_quorum(conf: ConfState, members: frozenset[NodeId] | set[NodeId]) -> bool:
    """Do `members` include a quorum of `conf`?"""
    votes = {member: True for member in members}
    return vote_result(conf, votes) == VoteResult.WON
