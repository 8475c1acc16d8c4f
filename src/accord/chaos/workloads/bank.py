"""Bank workload: transfers between accounts in transactions; every read of all the
accounts (one linearizable range read, a single snapshot) must see the same total
and no negative balance.

A transfer reads both accounts, then commits a transaction that compares both
accounts' `mod_revision` with what it read and, if neither changed, puts both new
balances; otherwise nothing happens (the transfer is refused, not retried).
"""

from __future__ import annotations

from accord.chaos.clients import ChaosClient
from accord.chaos.record import Recorder
from accord.chaos.workloads.base import OP_ERRORS, Context, Verdict, think, until_ok
from accord.client.txn import Compare, Op

PREFIX = "bank/"
ACCOUNTS = 5
INITIAL = 100
SHOWN_MAX = 10


def account(i: int) -> str:
    return f"{PREFIX}{i}"


class BankWorkload:
    name = "bank"

    def __init__(self, clients: int = 6) -> None:
        self.clients = clients
        self.total = ACCOUNTS * INITIAL

    async def setup(self, client: ChaosClient) -> None:
        # One transaction creates every account, so no read ever sees some of them.
        puts = [Op.put(account(i), str(INITIAL)) for i in range(ACCOUNTS)]
        await until_ok(lambda: client.txn([], puts), "creating the accounts")

    async def run_client(self, ctx: Context, index: int, client: ChaosClient) -> None:
        while not ctx.stop.is_set():
            if ctx.rng.random() < 0.4:
                await self._read(ctx, index, client)
            else:
                await self._transfer(ctx, index, client)
            await think(ctx)

    async def _read(self, ctx: Context, index: int, client: ChaosClient) -> None:
        op = ctx.recorder.invoke(index, "read", PREFIX, None)
        try:
            result = await client.range_prefix(PREFIX)
        except OP_ERRORS as e:
            ctx.recorder.failed(op, e, has_effect=False)
            return
        balances = {kv.key.decode(): int(kv.value) for kv in result.kvs}
        ctx.recorder.ok(op, balances)

    async def _transfer(self, ctx: Context, index: int, client: ChaosClient) -> None:
        src, dst = ctx.rng.sample(range(ACCOUNTS), 2)
        try:
            got = await client.range_prefix(PREFIX)
        except OP_ERRORS:
            return  # nothing was attempted yet: not an operation
        kvs = {kv.key.decode(): kv for kv in got.kvs}
        a, b = kvs.get(account(src)), kvs.get(account(dst))
        if a is None or b is None:
            return
        amount = ctx.rng.randint(1, 20)
        from_balance, to_balance = int(a.value), int(b.value)
        if from_balance < amount:
            return
        op = ctx.recorder.invoke(
            index, "transfer", f"{account(src)}->{account(dst)}", [src, dst, amount]
        )
        compare = [
            Compare.mod_revision(account(src)) == a.mod_revision,
            Compare.mod_revision(account(dst)) == b.mod_revision,
        ]
        success = [
            Op.put(account(src), str(from_balance - amount)),
            Op.put(account(dst), str(to_balance + amount)),
        ]
        try:
            result = await client.txn(compare, success)
        except OP_ERRORS as e:
            ctx.recorder.failed(op, e, has_effect=True)
            return
        ctx.recorder.ok(op, result.succeeded)

    async def finish(self, ctx: Context, client: ChaosClient) -> None:
        op = ctx.recorder.invoke(-1, "read", PREFIX, None)
        result = await until_ok(lambda: client.range_prefix(PREFIX), "the final read")
        ctx.recorder.ok(op, {kv.key.decode(): int(kv.value) for kv in result.kvs})

    def check(self, recorder: Recorder) -> Verdict:
        reads = [op for op in recorder.ops if op.f == "read" and op.status == "ok"]
        bad = []
        for op in reads:
            balances: dict[str, int] = op.output
            total = sum(balances.values())
            negative = {k: v for k, v in balances.items() if v < 0}
            if len(balances) != ACCOUNTS or total != self.total or negative:
                bad.append((op, total, negative))
        transfers = [op for op in recorder.ops if op.f == "transfer"]
        stats = {
            "reads": len(reads),
            "transfers_ok": sum(op.status == "ok" and op.output is True for op in transfers),
            "transfers_refused": sum(op.status == "ok" and op.output is False for op in transfers),
            "transfers_unknown": sum(op.status == "unknown" for op in transfers),
            "bad_reads": len(bad),
        }
        if not bad:
            return Verdict(True, "valid", [], stats)
        details = [f"{len(bad)} of {len(reads)} reads broke the invariant (total {self.total}):"]
        for op, total, negative in bad[:SHOWN_MAX]:
            what = f"total {total}" + (f", negative {negative}" if negative else "")
            details.append(
                f"  read #{op.id} client {op.client} at t={op.call_s:.3f}s: {what}: {op.output}"
            )
        return Verdict(
            False,
            f"INVALID: {len(bad)} reads with a wrong total or a negative balance",
            details,
            stats,
        )
