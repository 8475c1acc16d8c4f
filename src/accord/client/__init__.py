"""The Python client of Accord: `Client` (blocking) and `AsyncClient` (asyncio).

    from accord import Client, Compare, Op

    with Client(["http://127.0.0.1:7001", "http://127.0.0.1:7002"]) as client:
        client.put("greeting", "hello")
        print(client.get("greeting").value)            # b'hello'
        client.txn([Compare.value("greeting") == "hello"], [Op.put("greeting", "bye")])
        for event in client.watch(prefix="gr"):         # resumes across node failures
            ...

Module map: `aio` (`AsyncClient`, the API), `sync` (`Client`, the same API on a
private event loop), `_connection` (routing, retries, sessions, discovery), `policy`
(retry rules and circuit breakers, pure), `endpoints` (the endpoint list and
routing), `watch` (resuming watches), `txn` (transaction builders), `results` and
`errors` (typed results and exceptions), `limits` (defaults, units last).
"""

from accord.client.aio import AsyncClient
from accord.client.errors import (
    Compacted,
    FutureRevision,
    InvalidRequest,
    LeaseExists,
    LeaseNotFound,
    LimitExceeded,
    QuotaExceeded,
    ResponseTooLarge,
    ServerError,
    SessionExpired,
    StaleRequest,
    TooManyLeases,
    TooManyPendingReads,
    TooManySessions,
    TooManyWatches,
    Unavailable,
)
from accord.client.policy import BreakerState
from accord.client.results import (
    ClusterStatus,
    DeleteResult,
    Event,
    EventType,
    GetResult,
    KeyValue,
    Lease,
    LeaseRevoked,
    LeaseTTL,
    Member,
    PutResult,
    RangeResult,
    TxnResult,
)
from accord.client.sync import Client
from accord.client.txn import Compare, Op
from accord.client.watch import Watch

__all__ = [
    "AsyncClient",
    "BreakerState",
    "Client",
    "ClusterStatus",
    "Compacted",
    "Compare",
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
    "Op",
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
]
