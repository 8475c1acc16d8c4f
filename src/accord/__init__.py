"""Accord: a fault-tolerant, Raft-replicated, strongly consistent data system."""

from accord.errors import AccordError, DeadlineExceeded, NotLeader, ProposalDropped

__all__ = ["AccordError", "DeadlineExceeded", "NotLeader", "ProposalDropped", "__version__"]

__version__ = "0.1.0"
