"""Accord: a fault-tolerant, Raft-replicated, strongly consistent data system.

The public API is re-exported here: the client (`Client`, `AsyncClient`, their results
and exceptions) and the typed errors of `accord.errors`. The client's names are loaded
on first use (PEP 562 `__getattr__`), so that importing a pure package such as
`accord.raft`, `accord.kv` or `accord.storage` loads no event loop, HTTP library or
socket (`tests/test_layering.py` checks it).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from accord.errors import AccordError, DeadlineExceeded, NotLeader, ProposalDropped

if TYPE_CHECKING:
    from accord.client import (
        AsyncClient,
        BreakerState,
        Client,
        ClusterStatus,
        Compacted,
        Compare,
        DeleteResult,
        Event,
        EventType,
        FutureRevision,
        GetResult,
        InvalidRequest,
        KeyValue,
        Lease,
        LeaseExists,
        LeaseNotFound,
        LeaseRevoked,
        LeaseTTL,
        LimitExceeded,
        Member,
        Op,
        PutResult,
        QuotaExceeded,
        RangeResult,
        ResponseTooLarge,
        ServerError,
        SessionExpired,
        StaleRequest,
        TooManyLeases,
        TooManyPendingReads,
        TooManySessions,
        TooManyWatches,
        TxnResult,
        Unavailable,
        Watch,
    )

__all__ = [
    "AccordError",
    "AsyncClient",
    "BreakerState",
    "Client",
    "ClusterStatus",
    "Compacted",
    "Compare",
    "DeadlineExceeded",
    "DeleteResult",
    "Event",
    "EventType",
    "FutureRevision",
    "GetResult",
    "InvalidRequest",
    "KeyValue",
    "Lease",
    "LeaseExists",
    "LeaseNotFound",
    "LeaseRevoked",
    "LeaseTTL",
    "LimitExceeded",
    "Member",
    "NotLeader",
    "Op",
    "ProposalDropped",
    "PutResult",
    "QuotaExceeded",
    "RangeResult",
    "ResponseTooLarge",
    "ServerError",
    "SessionExpired",
    "StaleRequest",
    "TooManyLeases",
    "TooManyPendingReads",
    "TooManySessions",
    "TooManyWatches",
    "TxnResult",
    "Unavailable",
    "Watch",
    "__version__",
]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """A client name of `__all__`, imported on first use (the others are eager)."""
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module("accord.client"), name)
    globals()[name] = value  # later uses skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
