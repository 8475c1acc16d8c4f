"""Lock workload: a lease-based lock with fencing tokens, and a fenced resource.

A client grants itself a lease and keeps it alive, then acquires the lock with a
transaction: if `lock/x` does not exist (create_revision 0), put it attached to the
lease. Its fencing token is the key's create revision (the transaction's revision).
Holding the lock, it acts on the protected resource with the token, twice, then
releases (deletes the key if its create revision is still the token) and revokes
the lease. A lease that expires (the client cut off by a partition, or stalled on
purpose now and then for longer than the TTL) frees the lock for someone else; the
old holder's later actions must then be fenced off.

The resource, in the harness, accepts an action iff its token is at least the
highest token it has accepted: it rejects stale tokens.

Checked:
- every successful acquisition has its own token;
- tokens grow in real time: an acquisition that completed before another began
  has the smaller token;
- mutual exclusion: a holder's *certain* window runs from its acquisition's answer
  to the earlier of its release and the last moment its lease is known alive (the
  call of its last successful grant or keepalive plus the TTL: the leader starts
  the TTL no earlier). Two certain windows of different tokens never overlap, and
  the resource never rejects an action made within its holder's certain window.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from accord.chaos.clients import ChaosClient
from accord.chaos.record import Recorder
from accord.chaos.workloads.base import OP_ERRORS, Context, Verdict, think
from accord.client.txn import Compare, Op

LOCK = "lock/x"
TTL_S = 2
KEEPALIVE_S = 0.4
STALL_P = 0.15
"""How often a holder stalls for longer than its lease's TTL."""
SHOWN_MAX = 10


@dataclass(slots=True)
class Hold:
    client: int
    token: int
    acquired_s: float
    released_s: float | None = None
    lease_alive_until_s: float = 0.0
    actions: list[tuple[float, bool]] = field(default_factory=list)
    """(time, accepted) of each action on the resource."""

    @property
    def certain_end_s(self) -> float:
        end = self.lease_alive_until_s
        return end if self.released_s is None else min(end, self.released_s)


class FencedResource:
    """Accepts an action only with a token at least as high as any accepted before."""

    def __init__(self) -> None:
        self.highest = 0
        self.accepted = 0
        self.rejected = 0

    def act(self, token: int) -> bool:
        if token < self.highest:
            self.rejected += 1
            return False
        self.highest = token
        self.accepted += 1
        return True


class _Lease:
    """A lease kept alive in the background; `alive_until_s` is a safe lower bound."""

    def __init__(self, client: ChaosClient, recorder: Recorder) -> None:
        self.client = client
        self.recorder = recorder
        self.id = 0
        self.alive_until_s = 0.0
        self._task: asyncio.Task[None] | None = None

    async def grant(self) -> bool:
        called = self.recorder.now()
        try:
            self.id = await self.client.lease_grant(TTL_S)
        except OP_ERRORS:
            return False
        self.alive_until_s = called + TTL_S
        self._task = asyncio.create_task(self._keep())
        return True

    async def _keep(self) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE_S)
            called = self.recorder.now()
            with contextlib.suppress(*OP_ERRORS):
                await self.client.lease_keepalive(self.id)
                self.alive_until_s = max(self.alive_until_s, called + TTL_S)

    def stop_keepalive(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def revoke(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(*OP_ERRORS):
            await self.client.lease_revoke(self.id)


class LockWorkload:
    name = "lock"

    def __init__(self, clients: int = 5) -> None:
        self.clients = clients
        self.resource = FencedResource()
        self.holds: list[Hold] = []

    async def setup(self, client: ChaosClient) -> None:
        pass

    async def run_client(self, ctx: Context, index: int, client: ChaosClient) -> None:
        while not ctx.stop.is_set():
            lease = _Lease(client, ctx.recorder)
            if not await lease.grant():
                await think(ctx)
                continue
            try:
                # Try for the lock with this lease until it is won, or the lease
                # may have expired (then start over with a new one).
                while not ctx.stop.is_set() and lease.alive_until_s > ctx.recorder.now():
                    hold = await self._acquire(ctx, index, client, lease)
                    if hold is not None:
                        await self._use_and_release(ctx, index, client, hold, lease)
                        break
                    await asyncio.sleep(ctx.rng.uniform(0.02, 0.1))
            finally:
                await lease.revoke()

    async def _acquire(
        self, ctx: Context, index: int, client: ChaosClient, lease: _Lease
    ) -> Hold | None:
        op = ctx.recorder.invoke(index, "acquire", LOCK, lease.id)
        compare = [Compare.create_revision(LOCK) == 0]
        try:
            result = await client.txn(compare, [Op.put(LOCK, str(index), lease=lease.id)])
        except OP_ERRORS as e:
            ctx.recorder.failed(op, e, has_effect=True)
            return None
        token = result.revision if result.succeeded else None
        ctx.recorder.ok(op, token)
        if token is None:
            return None
        hold = Hold(index, token, ctx.recorder.now())
        self.holds.append(hold)
        return hold

    async def _use_and_release(
        self, ctx: Context, index: int, client: ChaosClient, hold: Hold, lease: _Lease
    ) -> None:
        if ctx.rng.random() < STALL_P:
            # A holder that stalls (a long GC pause, a swapped-out process): its lease
            # runs out, someone else may take the lock, and the actions it makes when
            # it wakes up must be fenced off by the resource.
            lease.stop_keepalive()
            await asyncio.sleep(TTL_S + 0.5)
        for _ in range(2):
            await asyncio.sleep(ctx.rng.uniform(0.02, 0.2))
            hold.lease_alive_until_s = lease.alive_until_s
            op = ctx.recorder.invoke(index, "act", "resource", hold.token)
            accepted = self.resource.act(hold.token)
            ctx.recorder.ok(op, accepted)
            hold.actions.append((ctx.recorder.now(), accepted))
        op = ctx.recorder.invoke(index, "release", LOCK, hold.token)
        hold.released_s = op.call_s
        hold.lease_alive_until_s = lease.alive_until_s
        compare = [Compare.create_revision(LOCK) == hold.token]
        try:
            result = await client.txn(compare, [Op.delete(LOCK)])
        except OP_ERRORS as e:
            ctx.recorder.failed(op, e, has_effect=True)
            return
        ctx.recorder.ok(op, result.succeeded)

    async def finish(self, ctx: Context, client: ChaosClient) -> None:
        pass

    def check(self, recorder: Recorder) -> Verdict:
        problems: list[str] = []
        acquisitions = [
            op for op in recorder.ops if op.f == "acquire" and op.status == "ok" and op.output
        ]
        by_token: dict[int, int] = {}
        for op in acquisitions:
            if op.output in by_token:
                first = by_token[op.output]
                problems.append(f"token {op.output} granted twice: clients {first}, {op.client}")
            by_token[op.output] = op.client
        for a in acquisitions:
            for b in acquisitions:
                if a.ret_s is not None and a.ret_s < b.call_s and a.output >= b.output:
                    problems.append(
                        f"client {b.client} acquired token {b.output} at t={b.call_s:.3f}s, "
                        f"after client {a.client} had token {a.output}"
                    )
        problems += _overlaps(self.holds)
        for hold in self.holds:
            for at, accepted in hold.actions:
                if not accepted and at <= hold.certain_end_s:
                    problems.append(
                        f"client {hold.client}'s action with token {hold.token} at t={at:.3f}s "
                        "was fenced off while its lock was certainly held"
                    )
        stats = {
            "acquired": len(acquisitions),
            "actions_accepted": self.resource.accepted,
            "actions_fenced": self.resource.rejected,
        }
        if not problems:
            return Verdict(True, "valid", [], stats)
        return Verdict(False, f"INVALID: {problems[0]}", problems[:50], stats)


def _overlaps(holds: list[Hold]) -> list[str]:
    problems = []
    ordered = sorted(holds, key=lambda h: h.acquired_s)
    for i, a in enumerate(ordered):
        for b in ordered[i + 1 :]:
            if b.acquired_s >= a.certain_end_s:
                break
            if a.token != b.token and b.acquired_s < min(a.certain_end_s, b.certain_end_s):
                problems.append(
                    f"clients {a.client} (token {a.token}) and {b.client} (token {b.token}) "
                    f"both certainly held the lock at t={b.acquired_s:.3f}s"
                )
    return problems[:SHOWN_MAX]
