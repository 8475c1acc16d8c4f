"""What every workload provides, and what the runner gives it.

A workload sets up its keys, runs a number of concurrent clients until the run's
stop event, reads the final state once the cluster is healed, and checks the
recorded history. Clients record every operation in the shared `Recorder`; they
never decide an unknown outcome either way.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from accord.chaos.clients import ChaosClient
from accord.chaos.record import Recorder
from accord.errors import AccordError

T = TypeVar("T")

FINAL_READ_TIMEOUT_S = 30.0
THINK_S = 0.01
"""A client's pause between two operations, so faults, not a busy loop, set the pace."""


@dataclass(slots=True)
class Verdict:
    valid: bool
    summary: str
    """One line: `valid` or what is wrong."""
    details: list[str] = field(default_factory=list)
    """The checker's explanation (the offending operations) on failure."""
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Context:
    recorder: Recorder
    rng: random.Random
    stop: asyncio.Event


class Workload(Protocol):
    name: str
    clients: int

    async def setup(self, client: ChaosClient) -> None: ...

    async def run_client(self, ctx: Context, index: int, client: ChaosClient) -> None: ...

    async def finish(self, ctx: Context, client: ChaosClient) -> None: ...

    def check(self, recorder: Recorder) -> Verdict: ...


async def until_ok(
    call: Callable[[], Awaitable[T]], what: str, timeout_s: float = FINAL_READ_TIMEOUT_S
) -> T:
    """Retry `call` (after healing the cluster must answer) until it succeeds."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return await call()
        except (AccordError, OSError, TimeoutError) as e:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{what} did not succeed within {timeout_s:g}s: {e}") from e
            await asyncio.sleep(0.2)


async def think(ctx: Context) -> None:
    await asyncio.sleep(THINK_S * (0.5 + ctx.rng.random()))


OP_ERRORS = (AccordError, OSError, TimeoutError)
"""What a client operation may raise under faults (anything else is a harness bug)."""
