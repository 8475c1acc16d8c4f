"""Set workload: clients add unique elements; after healing, one linearizable read
of the whole set must hold every acknowledged add (none lost) and nothing that was
never added or definitely refused (none unexpected). Adds with an unknown outcome
may be present or not.

An add of element E is a put of key `set/E`; the final read is a range over `set/`.
"""

from __future__ import annotations

from accord.chaos.clients import ChaosClient
from accord.chaos.record import Recorder
from accord.chaos.workloads.base import OP_ERRORS, Context, Verdict, think, until_ok

PREFIX = "set/"
SHOWN_MAX = 20


class SetWorkload:
    name = "set"

    def __init__(self, clients: int = 6) -> None:
        self.clients = clients
        self.final: set[str] | None = None

    async def setup(self, client: ChaosClient) -> None:
        pass

    async def run_client(self, ctx: Context, index: int, client: ChaosClient) -> None:
        seq = 0
        while not ctx.stop.is_set():
            seq += 1
            element = f"{index}-{seq}"
            op = ctx.recorder.invoke(index, "add", PREFIX + element, element)
            try:
                await client.put(PREFIX + element, element)
            except OP_ERRORS as e:
                ctx.recorder.failed(op, e, has_effect=True)
            else:
                ctx.recorder.ok(op)
            await think(ctx)

    async def finish(self, ctx: Context, client: ChaosClient) -> None:
        op = ctx.recorder.invoke(-1, "read-all", PREFIX, None)
        result = await until_ok(lambda: client.range_prefix(PREFIX), "the final read")
        self.final = {kv.value.decode() for kv in result.kvs}
        ctx.recorder.ok(op, len(self.final))

    def check(self, recorder: Recorder) -> Verdict:
        if self.final is None:
            return Verdict(True, "valid (no final read yet)")
        adds = [op for op in recorder.ops if op.f == "add"]
        acknowledged = {op.value for op in adds if op.status == "ok"}
        possible = {op.value for op in adds if op.status != "fail"}
        lost = sorted(acknowledged - self.final)
        unexpected = sorted(self.final - possible)
        stats = {
            "acknowledged": len(acknowledged),
            "unknown": sum(op.status == "unknown" for op in adds),
            "unknown_present": len((possible - acknowledged) & self.final),
            "final_size": len(self.final),
            "lost": len(lost),
            "unexpected": len(unexpected),
        }
        if not lost and not unexpected:
            return Verdict(True, "valid", [], stats)
        details = []
        if lost:
            details.append(f"{len(lost)} acknowledged adds missing from the final read: ")
            details.append(
                "  " + ", ".join(lost[:SHOWN_MAX]) + (" ..." if len(lost) > SHOWN_MAX else "")
            )
            by_value = {op.value: op for op in adds}
            for element in lost[:5]:
                op = by_value[element]
                details.append(f"  add {element}: acknowledged at t={op.ret_s:.3f}s")
        if unexpected:
            details.append(f"{len(unexpected)} elements present that were never added: ")
            details.append("  " + ", ".join(unexpected[:SHOWN_MAX]))
        what = f"{len(lost)} lost" + (f", {len(unexpected)} unexpected" if unexpected else "")
        return Verdict(False, f"INVALID: {what}", details, stats)
