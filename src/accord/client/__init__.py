"""The Python client of Accord (in progress): typed errors and results, transaction
builders, and the failure policy (retries, backoff, circuit breakers)."""

from accord.client.errors import (
    Compacted,
    FutureRevision,
    InvalidRequest,
    LeaseExists,
    LeaseNotFound,
    LimitExceeded,
    QuotaExceeded,
    ServerError,
    SessionExpired,
    StaleRequest,
    Unavailable,
)
from accord.client.policy import BreakerState
from accord.client.txn import Compare, Op

__all__ = [
    "BreakerState",
    "Compacted",
    "Compare",
    "FutureRevision",
    "InvalidRequest",
    "LeaseExists",
    "LeaseNotFound",
    "LimitExceeded",
    "Op",
    "QuotaExceeded",
    "ServerError",
    "SessionExpired",
    "StaleRequest",
    "Unavailable",
]
