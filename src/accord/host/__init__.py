"""The multi-group host: every Raft group of a node and the one Ready executor that
the asyncio runtime and the simulator share (see `accord.host.host`)."""

from accord.host.host import Batch, GroupHandler, Host
from accord.host.plan import (
    AWAIT_DURABLE,
    Advance,
    Apply,
    AwaitDurable,
    Persist,
    Send,
    Step,
    plan,
)
from accord.storage.protocol import GroupWrite

__all__ = [
    "AWAIT_DURABLE",
    "Advance",
    "Apply",
    "AwaitDurable",
    "Batch",
    "GroupHandler",
    "GroupWrite",
    "Host",
    "Persist",
    "Send",
    "Step",
    "plan",
]
