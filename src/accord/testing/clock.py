"""`VirtualClock`: time that moves only when a test says so, for a `Node` under test.

`monotonic()` reads the virtual time; `sleep(s)` waits until the test has advanced it
by `s`; `await advance(s)` moves it forward and lets every sleeper due by then run, in
the order of their wake-up times, each at its own moment. A node on this clock ticks,
times out elections and expires request deadlines only as the test advances it, so a
test of a 5 s deadline takes no 5 s and cannot race the machine's load.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools


class VirtualClock:
    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def monotonic(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + max(0.0, seconds), next(self._order), future))
        await future

    async def advance(self, seconds: float) -> None:
        """Move time forward by `seconds`, waking sleepers one wake-up time at a time
        and letting the event loop run what they start before going on."""
        until = self._now + seconds
        while self._sleepers and self._sleepers[0][0] <= until:
            wake_at, _, future = heapq.heappop(self._sleepers)
            self._now = max(self._now, wake_at)
            if not future.done():
                future.set_result(None)
            await _settle()
        self._now = until
        await _settle()


async def _settle() -> None:
    """Let the tasks woken so far run until they wait again (a few loop turns; work
    on other threads, such as a disk thread, is not waited for)."""
    for _ in range(5):
        await asyncio.sleep(0)
