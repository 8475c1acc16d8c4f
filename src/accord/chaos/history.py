"""Client histories: what each client asked for, when, and what it was told.

A history is the raw material of every checker in `accord.chaos`. Both the
deterministic simulator and the real-process harness record one through `History`:

    op = history.invoke(client=3, key="x", kind=OpKind.WRITE, input=5, time=now)
    ...                                   # the request travels, faults happen
    history.complete(op, None, time=now)  # the client got an answer
    history.fail(op, time=now)            # ... or a definite "not applied" error
    history.unknown(op)                   # ... or a timeout / lost connection

Times come from any monotone clock (simulated ticks, `time.monotonic_ns()`); only
their order matters. An operation's outcome is one of three things, and the
difference is what makes a checker sound:

- *completed*: it took effect exactly once, somewhere between `call` and `ret`;
- *failed*: it definitely did not take effect (e.g. `NotLeader` before proposing), so
  it is dropped from the history altogether;
- *unknown*: a timeout or a broken connection; it may take effect at any moment after
  `call`, even long after the client gave up, or never. Such an operation keeps
  `ret=None` and `output=None`.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from dataclasses import dataclass
from enum import Enum

from accord.invariant import invariant

Value = Hashable
"""A register value: any hashable Python value (int, str, bytes, tuple, ...)."""

Time = int | float
"""A point on the recorder's clock; only comparisons between times are meaningful."""


class OpKind(Enum):
    READ = "read"
    """`input` is None; `output` is the value read, or None when the key was absent."""
    WRITE = "write"
    """`input` is the value written; `output` is None."""
    CAS = "cas"
    """`input` is `(expected, new)`; `output` is True if the swap happened, else False."""


@dataclass(frozen=True, slots=True)
class Operation:
    """One client request and what its client observed.

    `ret is None` means the outcome is unknown (and then `output` is None too).
    """

    id: int
    client: int
    key: str
    kind: OpKind
    input: Value
    call: Time
    ret: Time | None
    output: Value

    def __post_init__(self) -> None:
        # A malformed operation is a bug in whoever recorded it; catching it here keeps
        # the checker from reporting a bogus violation far from the cause.
        if self.kind is OpKind.READ:
            invariant(self.input is None, f"op {self.id}: a READ takes no input")
        elif self.kind is OpKind.CAS:
            invariant(
                isinstance(self.input, tuple) and len(self.input) == 2,
                f"op {self.id}: a CAS input is (expected, new), got {self.input!r}",
            )
        if self.ret is None:
            invariant(self.output is None, f"op {self.id}: unknown outcome with an output")
            return
        invariant(self.ret >= self.call, f"op {self.id}: returned before it was called")
        if self.kind is OpKind.WRITE:
            invariant(self.output is None, f"op {self.id}: a WRITE has no output")
        elif self.kind is OpKind.CAS:
            invariant(isinstance(self.output, bool), f"op {self.id}: a CAS outputs a bool")

    def describe(self) -> str:
        """One line for humans, e.g. `#7 client 2 key 'x' CAS (1, 2) -> True [t=10..14]`."""
        action = "READ" if self.kind is OpKind.READ else f"{self.kind.name} {self.input!r}"
        if self.ret is None:
            return (
                f"#{self.id} client {self.client} key {self.key!r} {action} -> ? [t={self.call}..?]"
            )
        result = "" if self.kind is OpKind.WRITE else f" -> {self.output!r}"
        span = f"{self.call}..{self.ret}"
        return f"#{self.id} client {self.client} key {self.key!r} {action}{result} [t={span}]"


@dataclass(slots=True)
class _Invocation:
    client: int
    key: str
    kind: OpKind
    input: Value
    call: Time


class History:
    """Records operations as clients invoke them and learn their outcomes.

    Operation ids are assigned in invocation order, starting at 0. Operations neither
    completed nor failed when `operations()` is called are reported with an unknown
    outcome: a request still in flight at the end of a test may yet take effect.
    Safe to use from several threads.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._invocations: list[_Invocation] = []
        # op id -> (ret, output) once completed; failed ops are only remembered so a
        # second outcome for the same op is caught.
        self._completed: dict[int, tuple[Time, Value]] = {}
        self._failed: set[int] = set()
        self._unknown: set[int] = set()

    def invoke(self, client: int, key: str, kind: OpKind, input: Value, time: Time) -> int:
        """Record that `client` sent a request; returns the new operation's id."""
        if kind is OpKind.READ:
            invariant(input is None, "a READ takes no input")
        elif kind is OpKind.CAS:
            invariant(isinstance(input, tuple) and len(input) == 2, "CAS input is (old, new)")
        with self._lock:
            self._invocations.append(_Invocation(client, key, kind, input, time))
            return len(self._invocations) - 1

    def complete(self, op_id: int, output: Value, time: Time) -> None:
        """The client got an answer: READ -> value (None if absent), WRITE -> None,
        CAS -> whether it swapped."""
        with self._lock:
            invocation = self._open(op_id)
            invariant(time >= invocation.call, f"op {op_id} completed before it was invoked")
            if invocation.kind is OpKind.WRITE:
                invariant(output is None, f"op {op_id}: a WRITE has no output")
            elif invocation.kind is OpKind.CAS:
                invariant(isinstance(output, bool), f"op {op_id}: a CAS outputs a bool")
            self._completed[op_id] = (time, output)

    def fail(self, op_id: int, time: Time) -> None:
        """The operation definitely did not take effect; it is left out of the history.

        Only call this when the system guarantees it (e.g. rejected before it was
        proposed). When in doubt, call `unknown()`: a wrong `fail()` makes the checker
        report violations that are not there, and hides ones that are.
        """
        with self._lock:
            invocation = self._open(op_id)
            invariant(time >= invocation.call, f"op {op_id} failed before it was invoked")
            self._failed.add(op_id)

    def unknown(self, op_id: int) -> None:
        """The outcome is unknown (timeout, lost connection): it may or may not apply."""
        with self._lock:
            self._open(op_id)
            self._unknown.add(op_id)

    def operations(self) -> list[Operation]:
        """Every operation not known to have failed, in id (invocation) order."""
        with self._lock:
            ops = []
            for op_id, inv in enumerate(self._invocations):
                if op_id in self._failed:
                    continue
                ret, output = self._completed.get(op_id, (None, None))
                ops.append(
                    Operation(
                        op_id, inv.client, inv.key, inv.kind, inv.input, inv.call, ret, output
                    )
                )
            return ops

    def _open(self, op_id: int) -> _Invocation:
        """The invocation of `op_id`, which must not have an outcome yet."""
        invariant(0 <= op_id < len(self._invocations), f"no such operation: {op_id}")
        invariant(
            op_id not in self._completed and op_id not in self._failed,
            f"op {op_id} already has an outcome",
        )
        invariant(op_id not in self._unknown, f"op {op_id} was already declared unknown")
        return self._invocations[op_id]
