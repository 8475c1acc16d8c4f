"""The harness's operation log: every client operation with its invocation time,
completion time and outcome, written out as JSON lines and drawn in the report.

An outcome is one of three, as in `accord.chaos.history`:

- `ok`: the client got an answer (`output` holds it);
- `fail`: the operation definitely had no effect (a read that failed, or a request a
  node refused with a final error before applying it);
- `unknown`: a timeout, a lost connection, or an error after which the request may
  still take effect. Never guessed either way: checkers treat it as "maybe".

Times are seconds since the run started, on the harness's monotonic clock.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from accord.client.errors import ServerError, SessionExpired, StaleRequest

Status = Literal["ok", "fail", "unknown"]


@dataclass(slots=True)
class OpRecord:
    id: int
    client: int
    f: str
    """What the client did: read, write, cas, add, transfer, acquire, ..."""
    key: str | None
    value: Any
    """The invocation's input (JSON-able)."""
    call_s: float
    ret_s: float | None = None
    """When the client got its answer or gave up (None while in flight). For an
    unknown outcome this is not a bound on when the operation took effect."""
    status: Status | None = None
    """None while the operation is in flight."""
    output: Any = None
    error: str | None = None


def definitely_not_applied(error: BaseException) -> bool:
    """Whether a failed write is known to have had no effect.

    A `ServerError` with a 4xx status (or none: refused by the client before
    sending) is a final refusal of the request as such (bad input, limits, a missing
    lease...), decided instead of applying it. Everything else -- deadlines,
    `NotLeader`/`ProposalDropped` after retries, `Unavailable`, broken connections,
    5xx answers -- may hide an attempt that did apply. Two 4xx answers are unknown
    too: after `SessionExpired` or `StaleRequest` the client cannot tell whether an
    earlier attempt of the same write applied.
    """
    if not isinstance(error, ServerError) or isinstance(error, SessionExpired | StaleRequest):
        return False
    return error.status == 0 or 400 <= error.status < 500


class Recorder:
    """Collects `OpRecord`s; one per run, shared by every client task."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self.started = clock()
        self.ops: list[OpRecord] = []

    def now(self) -> float:
        return float(self._clock() - self.started)

    def invoke(self, client: int, f: str, key: str | None, value: Any) -> OpRecord:
        op = OpRecord(len(self.ops), client, f, key, value, self.now())
        self.ops.append(op)
        return op

    def ok(self, op: OpRecord, output: Any = None) -> None:
        self._end(op, "ok", output, None)

    def fail(self, op: OpRecord, error: BaseException | str) -> None:
        self._end(op, "fail", None, _describe(error))

    def unknown(self, op: OpRecord, error: BaseException | str) -> None:
        self._end(op, "unknown", None, _describe(error))

    def failed(self, op: OpRecord, error: BaseException, *, has_effect: bool) -> None:
        """Record an exception: `fail` for a read (`has_effect=False`) or a write
        known not to have applied, else `unknown`."""
        if not has_effect or definitely_not_applied(error):
            self.fail(op, error)
        else:
            self.unknown(op, error)

    def close_open(self) -> None:
        """Operations still in flight at the end keep an unknown outcome."""
        for op in self.ops:
            if op.status is None:
                op.status = "unknown"
                op.error = "still in flight when the run ended"

    def _end(self, op: OpRecord, status: Status, output: Any, error: str | None) -> None:
        if op.status is not None:
            return  # a cancelled task may report twice; the first outcome stands
        op.ret_s = self.now()  # for an unknown outcome: when the client gave up
        op.status, op.output, op.error = status, output, error

    def write_jsonl(self, path: Path) -> None:
        with path.open("w") as f:
            for op in self.ops:
                f.write(json.dumps(asdict(op), default=repr) + "\n")

    def counts(self) -> dict[str, int]:
        result = {"ok": 0, "fail": 0, "unknown": 0}
        for op in self.ops:
            result[op.status or "unknown"] += 1
        return result


def _describe(error: BaseException | str) -> str:
    if isinstance(error, str):
        return error
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
