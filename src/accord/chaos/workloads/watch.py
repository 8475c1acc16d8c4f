"""Watch workload: writers put unique values under `watch/`; watchers opened at the
start follow the prefix through every fault. Each watcher must receive every change
exactly once and in revision order, and all watchers the same sequence.

Checked against the writes themselves: every acknowledged put appears, at the
revision it was acknowledged with; every event is a put some client attempted and
was not refused; and the final range's value of each key is among the events, at
its mod revision. Writes with unknown outcomes may appear or not (but once).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time

from accord.chaos.clients import ChaosClient
from accord.chaos.record import OpRecord, Recorder
from accord.chaos.workloads.base import (
    FINAL_READ_TIMEOUT_S,
    OP_ERRORS,
    Context,
    Verdict,
    think,
    until_ok,
)
from accord.client.errors import Compacted
from accord.kv.types import EventType

PREFIX = "watch/"
KEYS = 8
SHOWN_MAX = 10

Seen = tuple[int, str, str]
"""(revision, key, value) of one PUT event."""


class WatchWorkload:
    name = "watch"

    def __init__(self, clients: int = 6, watchers: int = 2) -> None:
        self.clients = clients
        self.watchers = min(watchers, clients - 1)
        self.start_revision = 0
        self.seen: dict[int, list[Seen]] = {}
        self.errors: dict[int, str] = {}
        self.restarts = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._ops: dict[int, OpRecord] = {}
        self.final: dict[str, tuple[int, str]] | None = None

    async def setup(self, client: ChaosClient) -> None:
        revision = await until_ok(lambda: client.put(f"{PREFIX}start", "0"), "the first put")
        self.start_revision = revision + 1

    async def run_client(self, ctx: Context, index: int, client: ChaosClient) -> None:
        if index < self.watchers:
            self.seen[index] = []
            self._ops[index] = ctx.recorder.invoke(index, "watch", PREFIX, self.start_revision)
            # The watcher outlives the run's stop: it must catch up after healing.
            self._tasks.append(asyncio.create_task(self._follow(index, client)))
            return
        seq = 0
        while not ctx.stop.is_set():
            seq += 1
            key = f"{PREFIX}{ctx.rng.randrange(KEYS)}"
            value = f"{index}-{seq}"
            op = ctx.recorder.invoke(index, "write", key, value)
            try:
                revision = await client.put(key, value)
            except OP_ERRORS as e:
                ctx.recorder.failed(op, e, has_effect=True)
            else:
                ctx.recorder.ok(op, revision)
            await think(ctx)

    async def _follow(self, index: int, client: ChaosClient) -> None:
        """Follow the prefix; if the watch itself gives up (no node reachable for its
        reconnect timeout), open a new one at the next revision, as a user would.
        A compacted cursor cannot resume: that ends the watcher with an error."""
        while True:
            events = self.seen[index]
            start = events[-1][0] + 1 if events else self.start_revision
            stream = client.watch_prefix(PREFIX, start)
            try:
                async for event in stream:
                    put = event.type == EventType.PUT
                    value = event.kv.value.decode() if put else "<deleted>"
                    events.append((event.kv.mod_revision, event.kv.key.decode(), value))
            except Compacted as e:
                self.errors[index] = f"{type(e).__name__}: {e}"
                return
            except OP_ERRORS:
                self.restarts += 1
            finally:
                with contextlib.suppress(Exception):
                    await stream.aclose()

    async def finish(self, ctx: Context, client: ChaosClient) -> None:
        result = await until_ok(lambda: client.range_prefix(PREFIX), "the final read")
        self.final = {kv.key.decode(): (kv.mod_revision, kv.value.decode()) for kv in result.kvs}
        last = max(rev for rev, _ in self.final.values())
        deadline = time.monotonic() + FINAL_READ_TIMEOUT_S
        while time.monotonic() < deadline and any(
            (events[-1][0] if events else 0) < last
            for index, events in self.seen.items()
            if index not in self.errors
        ):
            await asyncio.sleep(0.1)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for index, op in self._ops.items():
            ctx.recorder.ok(op, len(self.seen[index]))

    def check(self, recorder: Recorder) -> Verdict:
        if self.final is None:
            return Verdict(True, "valid (watchers still running)")
        writes = [op for op in recorder.ops if op.f == "write"]
        problems: list[str] = []
        problems += [f"watcher {i} ended with {error}" for i, error in self.errors.items()]
        attempted = {(op.key, op.value): op for op in writes if op.status != "fail"}
        acked = {(op.output, op.key, op.value) for op in writes if op.status == "ok"}
        horizon = max(rev for rev, _ in self.final.values())
        expected_final = {(rev, key, value) for key, (rev, value) in self.final.items()}
        expected_final.discard((self.start_revision - 1, f"{PREFIX}start", "0"))
        first: list[Seen] | None = None
        for index, events in sorted(self.seen.items()):
            events = [e for e in events if e[0] <= horizon]
            problems += _order_problems(index, events)
            got = set(events)
            for rev, key, value in sorted(acked - got)[:SHOWN_MAX]:
                problems.append(f"watcher {index} missed acknowledged put {key}={value} @{rev}")
            for rev, key, value in sorted(expected_final - got)[:SHOWN_MAX]:
                problems.append(f"watcher {index} missed the final {key}={value} @{rev}")
            for rev, key, value in events:
                write = attempted.get((key, value))
                if write is None:
                    problems.append(f"watcher {index} saw {key}={value} @{rev}, never written")
                elif write.status == "ok" and write.output != rev:
                    problems.append(
                        f"watcher {index} saw {key}={value} @{rev}, acknowledged @{write.output}"
                    )
            if first is None:
                first = events
            elif events != first:
                problems.append(f"watcher {index} saw a different sequence than watcher 0")
        stats = {
            "writes_ok": len(acked),
            "writes_unknown": sum(op.status == "unknown" for op in writes),
            "events_per_watcher": {i: len(e) for i, e in self.seen.items()},
            "watch_restarts": self.restarts,
        }
        if not problems:
            return Verdict(True, "valid", [], stats)
        return Verdict(False, f"INVALID: {problems[0]}", problems[:50], stats)


def _order_problems(index: int, events: list[Seen]) -> list[str]:
    problems = []
    for before, after in itertools.pairwise(events):
        if after[0] <= before[0]:
            what = "repeated" if after == before else "out of order"
            problems.append(f"watcher {index}: event {after} {what} after {before}")
    return problems[:SHOWN_MAX]
