"""The MVCC store against a model: a dict of every key's full history.

The model never forgets anything: compaction only moves the revision below which
reads must fail. So every read at or after the compact revision checks that
compaction kept exactly what it had to.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from accord.kv import (
    Compact,
    CompactResult,
    Compare,
    CompareOp,
    CompareTarget,
    DeleteRange,
    DeleteResult,
    ErrorResult,
    Get,
    GetResult,
    KeyValue,
    KVStateMachine,
    OpResult,
    Put,
    PutResult,
    Range,
    RangeResult,
    Result,
    Txn,
    TxnOp,
    TxnResult,
)
from accord.kv.types import in_range, tombstone

from .helpers import Driver
from .strategies import compares, deletes, gets, keys, puts, range_ends, ranges, txns


class ModelError(Exception):
    def __init__(self, code: str) -> None:
        self.code = code


class Model:
    def __init__(self) -> None:
        self.revision = 1
        self.compact_revision = 0
        self.versions: dict[bytes, list[KeyValue]] = {}

    def at(self, key: bytes, revision: int) -> KeyValue | None:
        found = None
        for kv in self.versions.get(key, []):
            if kv.mod_revision <= revision:
                found = kv
        return None if found is None or found.version == 0 else found

    def resolve(self, revision: int) -> int:
        if revision == 0:
            return self.revision
        if revision < self.compact_revision:
            raise ModelError("compacted")
        if revision > self.revision:
            raise ModelError("future_revision")
        return revision

    def read(self, op: Get | Range, latest: int) -> OpResult:
        at = latest if op.revision == 0 else self.resolve(op.revision)
        if isinstance(op, Get):
            return GetResult(latest, self.at(op.key, at))
        live = [
            kv
            for key in sorted(self.versions)
            if in_range(key, op.key, op.range_end) and (kv := self.at(key, at)) is not None
        ]
        shown = [] if op.count_only else live[: op.limit or None]
        return RangeResult(
            latest, tuple(shown), len(live), len(shown) < len(live) and not op.count_only
        )

    def run(self, ops: tuple[TxnOp, ...]) -> tuple[list[OpResult], int]:
        self.check_writes(ops)
        for op in ops:  # everything that can fail is checked first
            if isinstance(op, Get | Range):
                self.resolve(op.revision)
        new = self.revision + 1
        wrote = False
        responses: list[OpResult] = []
        for op in ops:
            if isinstance(op, Put):
                prev = self.at(op.key, new)
                create, version = (prev.create_revision, prev.version + 1) if prev else (new, 1)
                self.versions.setdefault(op.key, []).append(
                    KeyValue(op.key, op.value, create, new, version)
                )
                responses.append(PutResult(new, prev if op.prev_kv else None))
                wrote = True
            elif isinstance(op, DeleteRange):
                gone = [
                    kv
                    for k in sorted(self.versions)
                    if in_range(k, op.key, op.range_end) and (kv := self.at(k, new)) is not None
                ]
                for kv in gone:
                    self.versions[kv.key].append(tombstone(kv.key, new))
                wrote = wrote or bool(gone)
                responses.append(DeleteResult(new, len(gone), tuple(gone) if op.prev_kv else ()))
            else:
                responses.append(self.read(op, new))
        if wrote:
            self.revision = new
        fixed = [type(r)(self.revision, *_rest(r)) for r in responses]  # type: ignore[arg-type]
        return fixed, self.revision

    @staticmethod
    def check_writes(ops: tuple[TxnOp, ...]) -> None:
        """etcd's rule: no key put twice, nor put inside a range the branch deletes."""
        put_keys = [op.key for op in ops if isinstance(op, Put)]
        deleted = [op for op in ops if isinstance(op, DeleteRange)]
        if len(set(put_keys)) < len(put_keys) or any(
            in_range(k, d.key, d.range_end) for k in put_keys for d in deleted
        ):
            raise ModelError("duplicate_key")

    def holds(self, compare: Compare) -> bool:
        kv = self.at(compare.key, self.revision)
        if compare.target is CompareTarget.VALUE:
            if kv is None:
                return False
            actual: bytes | int = kv.value
        else:
            field = {
                CompareTarget.VERSION: "version",
                CompareTarget.CREATE_REVISION: "create_revision",
                CompareTarget.MOD_REVISION: "mod_revision",
            }[compare.target]
            actual = getattr(kv, field) if kv else 0
        ops = {
            CompareOp.EQUAL: lambda a, b: a == b,
            CompareOp.NOT_EQUAL: lambda a, b: a != b,
            CompareOp.LESS: lambda a, b: a < b,
            CompareOp.GREATER: lambda a, b: a > b,
        }
        return bool(ops[compare.op](actual, compare.value))


def _rest(result: OpResult) -> list[object]:
    return [getattr(result, name) for name in result.__slots__[1:]]


class StoreVersusModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.driver = Driver()
        self.model = Model()

    def expect(self, command: object, produce: object) -> None:
        try:
            expected: Result | str = produce()  # type: ignore[operator]
        except ModelError as exc:
            expected = exc.code
        actual = self.driver(command)  # type: ignore[arg-type]
        if isinstance(actual, ErrorResult):
            assert actual.code == expected, (command, actual, expected)
        else:
            assert actual == expected, (command, actual, expected)

    def _single(self, op: TxnOp) -> OpResult:
        return self.model.run((op,))[0][0]

    @rule(op=st.one_of(puts(), deletes))
    def write(self, op: TxnOp) -> None:
        self.expect(op, lambda: self._single(op))

    @rule(op=st.one_of(gets, ranges))
    def read_through_the_log(self, op: Get | Range) -> None:
        self.expect(op, lambda: self._single(op))

    @rule(op=st.one_of(gets, ranges))
    def read_locally(self, op: Get | Range) -> None:
        try:
            expected: object = self.model.read(op, self.model.revision)
        except ModelError as exc:
            expected = exc.code
        machine = self.driver.machine
        try:
            if isinstance(op, Get):
                actual: object = machine.get(op.key, op.revision)
            else:
                actual = machine.range(op.key, op.range_end, op.revision, op.limit, op.count_only)
        except Exception as exc:  # the typed error
            actual = exc.code  # type: ignore[attr-defined]
        assert actual == expected

    @rule(txn=txns)
    def transaction(self, txn: Txn) -> None:
        def produce() -> TxnResult:
            self.model.check_writes(txn.success)  # both branches, before the compares
            self.model.check_writes(txn.failure)
            succeeded = all(self.model.holds(c) for c in txn.compares)
            responses, revision = self.model.run(txn.success if succeeded else txn.failure)
            return TxnResult(revision, succeeded, tuple(responses))

        self.expect(txn, produce)

    @rule(compare=compares(), key=keys, value=st.binary(max_size=2))
    def guarded_put(self, compare: Compare, key: bytes, value: bytes) -> None:
        self.transaction(Txn((compare,), (Put(key, value),), (Get(key),)))

    @rule(back=st.integers(0, 6))
    def compact(self, back: int) -> None:
        revision = max(1, self.model.revision - back)

        def produce() -> CompactResult:
            if revision <= self.model.compact_revision:
                raise ModelError("compacted")
            self.model.compact_revision = revision
            return CompactResult(self.model.revision, revision)

        self.expect(Compact(revision), produce)

    @rule(key=keys, end=range_ends)
    def every_revision_still_readable_reads_as_the_model(self, key: bytes, end: bytes) -> None:
        machine = self.driver.machine
        for revision in range(max(1, self.model.compact_revision), self.model.revision + 1):
            expected = self.model.read(Range(key, end or b"\x00", revision), machine.revision)
            assert machine.range(key, end or b"\x00", revision) == expected

    @rule()
    def snapshot_and_restore(self) -> None:
        restored = KVStateMachine()
        restored.restore(self.driver.machine.snapshot())
        assert restored.snapshot() == self.driver.machine.snapshot()
        self.driver.machine = restored

    @invariant()
    def counters_agree(self) -> None:
        assert self.driver.machine.revision == self.model.revision
        assert self.driver.machine.compact_revision == self.model.compact_revision


StoreVersusModel.TestCase.settings = settings(
    max_examples=120, stateful_step_count=40, deadline=None
)
test_store_versus_model = StoreVersusModel.TestCase
