"""Register workload: reads, writes and compare-and-swaps on a few keys; every key
must be a linearizable register (`accord.chaos.linearizability`).

A third of the clients only read. They matter: a client that writes learns of a new
leader from the failed write and moves on, while a reader keeps asking the node it
believes is leader, which is how a stale read from a deposed leader shows up.

Written values are unique (client, sequence), which keeps the checker's search
small. A CAS is a transaction: compare the value (or, for "absent", version 0) and
put the new value on success. Unknown outcomes go to the checker as unknown.
"""

from __future__ import annotations

from typing import Any

from accord.chaos.clients import ChaosClient
from accord.chaos.history import History, OpKind
from accord.chaos.linearizability import check_register
from accord.chaos.record import Recorder
from accord.chaos.workloads.base import OP_ERRORS, Context, Verdict, think
from accord.client.txn import Compare, Op

PREFIX = "reg/"
MAX_STATES = 500_000


class RegisterWorkload:
    name = "register"

    def __init__(self, clients: int = 6, keys: int = 5) -> None:
        self.clients = clients
        self.keys = [f"{PREFIX}{i}" for i in range(keys)]

    async def setup(self, client: ChaosClient) -> None:
        pass  # every key starts absent

    async def run_client(self, ctx: Context, index: int, client: ChaosClient) -> None:
        seq = 0
        last_read: dict[str, int | None] = {}
        while not ctx.stop.is_set():
            seq += 1
            key = ctx.rng.choice(self.keys)
            roll = 0.0 if index < self.clients // 3 else ctx.rng.random()
            if roll < 0.5:
                await self._read(ctx, index, client, key, last_read)
            elif roll < 0.8:
                await self._write(ctx, index, client, key, index * 1_000_000 + seq)
            else:
                expected = last_read.get(key)
                await self._cas(ctx, index, client, key, expected, index * 1_000_000 + seq)
            await think(ctx)

    async def _read(
        self,
        ctx: Context,
        index: int,
        client: ChaosClient,
        key: str,
        last_read: dict[str, int | None],
    ) -> None:
        op = ctx.recorder.invoke(index, "read", key, None)
        try:
            kv = await client.get(key)
        except OP_ERRORS as e:
            ctx.recorder.failed(op, e, has_effect=False)
            return
        value = int(kv.value) if kv is not None else None
        last_read[key] = value
        ctx.recorder.ok(op, value)

    async def _write(
        self, ctx: Context, index: int, client: ChaosClient, key: str, value: int
    ) -> None:
        op = ctx.recorder.invoke(index, "write", key, value)
        try:
            await client.put(key, str(value))
        except OP_ERRORS as e:
            ctx.recorder.failed(op, e, has_effect=True)
            return
        ctx.recorder.ok(op)

    async def _cas(
        self,
        ctx: Context,
        index: int,
        client: ChaosClient,
        key: str,
        expected: int | None,
        new: int,
    ) -> None:
        op = ctx.recorder.invoke(index, "cas", key, [expected, new])
        if expected is None:
            compare = Compare.version(key) == 0
        else:
            compare = Compare.value(key) == str(expected)
        try:
            result = await client.txn([compare], [Op.put(key, str(new))])
        except OP_ERRORS as e:
            ctx.recorder.failed(op, e, has_effect=True)
            return
        ctx.recorder.ok(op, result.succeeded)

    async def finish(self, ctx: Context, client: ChaosClient) -> None:
        pass  # reads during the run are the observations; nothing more to read

    def check(self, recorder: Recorder) -> Verdict:
        history = to_history(recorder)
        result = check_register(history.operations(), max_states=MAX_STATES)
        stats = {"ops_checked": result.ops_checked, "keys": len(self.keys)}
        if result.ok:
            return Verdict(True, "valid", [result.message], stats)
        if result.exhausted:
            return Verdict(
                False,
                f"UNDECIDED: linearizability search exhausted on {result.key}",
                [result.message],
                stats,
            )
        return Verdict(
            False, f"INVALID: key {result.key} is not linearizable", [result.message], stats
        )


def to_history(recorder: Recorder) -> History:
    """The register operations as a `History` for the linearizability checker."""
    history = History()
    kinds = {"read": OpKind.READ, "write": OpKind.WRITE, "cas": OpKind.CAS}
    for op in recorder.ops:
        if op.f not in kinds or op.key is None:
            continue
        value: Any = tuple(op.value) if op.f == "cas" else op.value
        op_id = history.invoke(op.client, op.key, kinds[op.f], value, op.call_s)
        if op.status == "ok":
            assert op.ret_s is not None
            history.complete(op_id, op.output, op.ret_s)
        elif op.status == "fail":
            assert op.ret_s is not None
            history.fail(op_id, op.ret_s)
        else:
            history.unknown(op_id)
    return history
