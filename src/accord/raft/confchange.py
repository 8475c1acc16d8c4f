"""Membership changes: their encoding and their effect on a configuration.

Theory of operation: a change that alters the voters always goes through joint
consensus. The leader proposes a `ConfChange`; once it commits, every member moves
to the joint configuration (old voters as `voters_outgoing`, new ones as `voters`);
the leader then proposes an empty `ConfChange` ("leave joint"), and once that commits
the new voters rule alone. A change that only adds or removes learners takes effect
directly. Only one change may be in progress at a time; a change that is invalid
for the configuration in force when it commits is ignored by every member alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import msgpack

from accord.errors import AccordError
from accord.raft.types import ConfState, NodeId


class ConfChangeError(AccordError):
    """A membership change that cannot be applied to the current configuration."""

    code = "invalid_membership_change"


class ConfChangeOp(IntEnum):
    ADD_VOTER = 1
    """Add a voter, or promote a learner to voter."""
    ADD_LEARNER = 2
    REMOVE = 3


@dataclass(frozen=True, slots=True)
class ConfChange:
    """Changes applied together; no changes at all means "leave the joint config".

    `context` is opaque to Raft and replicated with the change: the node runtime puts
    the new members' addresses there, so every member learns them at the same index.
    """

    changes: tuple[tuple[ConfChangeOp, NodeId], ...] = ()
    context: bytes = b""

    def encode(self) -> bytes:
        changes = [[int(op), node] for op, node in self.changes]
        return bytes(msgpack.packb([changes, self.context]))

    @staticmethod
    def decode(data: bytes) -> ConfChange:
        changes, context = msgpack.unpackb(data)
        return ConfChange(
            tuple((ConfChangeOp(op), int(node)) for op, node in changes), bytes(context)
        )


def apply_conf_change(conf: ConfState, change: ConfChange) -> ConfState:
    """The configuration that results from `change`; raises ConfChangeError."""
    if not change.changes:
        if not conf.joint:
            raise ConfChangeError("not in a joint configuration; nothing to leave")
        return ConfState(voters=conf.voters, learners=conf.learners)
    if conf.joint:
        raise ConfChangeError("a membership change is already in progress")
    voters = set(conf.voters)
    learners = set(conf.learners)
    for op, node in change.changes:
        if node <= 0:
            raise ConfChangeError(f"invalid node id {node}")
        if op == ConfChangeOp.ADD_VOTER:
            learners.discard(node)
            voters.add(node)
        elif op == ConfChangeOp.ADD_LEARNER:
            if node in voters:
                raise ConfChangeError(f"node {node} is a voter; demotion is not supported")
            learners.add(node)
        else:
            voters.discard(node)
            learners.discard(node)
    if not voters:
        raise ConfChangeError("a configuration needs at least one voter")
    new_voters = frozenset(voters)
    if new_voters == conf.voters or not conf.voters:
        # Learners only, or the bootstrap configuration: no joint step needed.
        return ConfState(voters=new_voters, learners=frozenset(learners))
    return ConfState(voters=new_voters, voters_outgoing=conf.voters, learners=frozenset(learners))
