"""Tests for the history recorder and the register linearizability checker."""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Hashable, Sequence
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.chaos.history import History, Operation, OpKind
from accord.chaos.linearizability import check_register
from accord.invariant import InvariantError

READ, WRITE, CAS = OpKind.READ, OpKind.WRITE, OpKind.CAS
NEVER_WRITTEN = "never-written"


class Ops:
    """Builds a hand-written history; ids are assigned in the order ops are added.

    `ret=None` means an unknown outcome (and then the output is ignored).
    """

    def __init__(self) -> None:
        self.ops: list[Operation] = []

    def _add(
        self, kind: OpKind, input: Hashable, output: Hashable, call: int, ret: int | None, key: str
    ) -> Ops:
        if ret is None:
            output = None
        op_id = len(self.ops)
        self.ops.append(Operation(op_id, op_id, key, kind, input, call, ret, output))
        return self

    def write(self, value: Hashable, call: int, ret: int | None, key: str = "x") -> Ops:
        return self._add(WRITE, value, None, call, ret, key)

    def read(self, output: Hashable, call: int, ret: int | None, key: str = "x") -> Ops:
        return self._add(READ, None, output, call, ret, key)

    def cas(
        self, expected: Hashable, new: Hashable, output: bool | None, call: int, ret: int | None
    ) -> Ops:
        return self._add(CAS, (expected, new), output, call, ret, "x")

    def copy(self) -> Ops:
        """A copy that can be extended without changing this one."""
        copy = Ops()
        copy.ops = list(self.ops)
        return copy

    def check(self, initial: Hashable = None) -> bool:
        result = check_register(self.ops, initial)
        assert not result.exhausted, result.message
        return result.ok


# --- hand-written histories ------------------------------------------------------


def test_empty_history_is_linearizable() -> None:
    result = check_register([])
    assert result.ok
    assert result.key is None
    assert result.ops_checked == 0


def test_sequential_history_is_linearizable() -> None:
    ops = Ops().read(None, 0, 1).write(1, 2, 3).read(1, 4, 5).cas(1, 2, True, 6, 7)
    assert ops.cas(1, 3, False, 8, 9).read(2, 10, 11).check()


def test_stale_read_after_completed_write_is_not_linearizable() -> None:
    assert not Ops().write(1, 0, 1).read(None, 2, 3).check()
    assert not Ops().write(1, 0, 1).write(2, 2, 3).read(1, 4, 5).check()


def test_read_of_a_value_never_written_is_not_linearizable() -> None:
    assert not Ops().write(1, 0, 1).read(7, 2, 3).check()
    assert not Ops().read(7, 0, 10).write(1, 2, 3).check()


def test_two_cas_from_the_same_expected_value_cannot_both_succeed() -> None:
    ops = Ops().write(0, 0, 1).cas(0, 1, True, 2, 6).cas(0, 2, True, 3, 7)
    assert not ops.check()
    # One of them failing is fine, whichever it is.
    assert Ops().write(0, 0, 1).cas(0, 1, True, 2, 6).cas(0, 2, False, 3, 7).check()
    assert Ops().write(0, 0, 1).cas(0, 1, False, 2, 6).cas(0, 2, True, 3, 7).check()


def test_cas_outputs_must_match_the_register() -> None:
    assert not Ops().write(0, 0, 1).cas(0, 1, False, 2, 3).check()
    assert not Ops().write(0, 0, 1).cas(5, 1, True, 2, 3).check()
    assert Ops().write(0, 0, 1).cas(5, 1, False, 2, 3).read(0, 4, 5).check()
    assert not Ops().write(0, 0, 1).cas(5, 1, False, 2, 3).read(1, 4, 5).check()


def test_lost_acknowledged_write_is_not_linearizable() -> None:
    # Both writes were acknowledged; the later one vanishes from every later read.
    ops = Ops().write(1, 0, 1).write(2, 2, 3).read(1, 4, 5).read(1, 6, 7)
    assert not ops.check()


def test_unknown_write_assumed_applied_to_explain_a_later_read() -> None:
    assert Ops().write(1, 0, None).read(1, 5, 6).check()
    # ... even long after the client gave up on it, and after other writes.
    assert Ops().write(1, 0, None).write(2, 3, 4).read(2, 5, 6).read(1, 7, 8).check()


def test_unknown_write_never_seen_is_linearizable() -> None:
    assert Ops().write(1, 0, None).read(None, 5, 6).read(None, 7, 8).check()


def test_unknown_write_cannot_take_effect_before_it_was_called() -> None:
    assert not Ops().read(1, 0, 1).write(1, 2, None).check()


def test_unknown_cas_may_have_succeeded_or_failed() -> None:
    base = Ops().write(0, 0, 1).cas(0, 1, None, 2, None)
    assert base.copy().read(0, 5, 6).check()
    assert base.copy().read(1, 5, 6).check()
    assert base.copy().read(0, 5, 6).read(1, 7, 8).check()
    # Once its effect was seen it cannot be undone.
    assert not base.copy().read(1, 5, 6).read(0, 7, 8).check()


def test_each_unknown_write_takes_effect_at_most_once() -> None:
    # Value 1 shows up on both sides of the acknowledged write of 2: that takes two
    # writes of 1, and there are two unknown ones.
    base = Ops().write(1, 0, None).write(1, 1, None).read(1, 5, 6).write(2, 7, 8)
    assert base.copy().read(2, 9, 10).read(1, 11, 12).check()
    once = Ops().write(1, 0, None).read(1, 5, 6).write(2, 7, 8)
    assert not once.read(2, 9, 10).read(1, 11, 12).check()


def test_chain_of_unknown_operations() -> None:
    # Reading 7 needs the unknown write of 5 and then the unknown CAS 5 -> 7.
    base = Ops().write(0, 0, 1).write(5, 2, None).cas(5, 7, None, 3, None)
    assert base.copy().read(7, 10, 11).check()
    assert base.copy().read(5, 10, 11).read(7, 12, 13).check()
    assert not base.copy().read(7, 10, 11).read(5, 12, 13).check()
    assert not base.copy().read(7, 10, 11).read(0, 12, 13).check()


def test_unknown_read_is_dropped() -> None:
    result = check_register(Ops().write(1, 0, 1).read(None, 2, None).read(1, 3, 4).ops)
    assert result.ok
    assert result.ops_checked == 2


def test_concurrent_overlapping_ops_may_be_ordered_either_way() -> None:
    assert Ops().write(1, 0, 10).read(1, 2, 3).check()
    assert Ops().write(1, 0, 10).read(None, 2, 3).check()
    assert Ops().write(1, 0, 10).write(2, 1, 9).read(1, 11, 12).check()
    assert Ops().write(1, 0, 10).write(2, 1, 9).read(2, 11, 12).check()
    # But once a read has returned the new value, a later read cannot see the old one.
    assert not Ops().write(1, 0, 10).read(1, 2, 3).read(None, 4, 5).check()


def test_call_at_the_instant_of_another_return_counts_as_concurrent() -> None:
    assert Ops().write(1, 0, 5).read(None, 5, 6).check()
    assert Ops().read(1, 0, 5).write(1, 5, 6).check()
    assert not Ops().write(1, 0, 5).read(None, 6, 7).check()


def test_float_times_and_mixed_clocks() -> None:
    ops = [
        Operation(0, 0, "x", WRITE, "v", 0.5, 1.25, None),
        Operation(1, 1, "x", READ, None, 1.25, 2, None),  # concurrent at the instant 1.25
        Operation(2, 1, "x", READ, None, 2.5, 3.0, "v"),
    ]
    assert check_register(ops).ok
    assert not check_register([*ops, Operation(3, 2, "x", READ, None, 3.5, 4, None)]).ok


def test_initial_value() -> None:
    assert Ops().read(0, 0, 1).check(initial=0)
    assert not Ops().read(None, 0, 1).check(initial=0)


def test_keys_are_independent_registers() -> None:
    ops = Ops().write(1, 0, 1, key="a").read(None, 2, 3, key="b").read(1, 2, 3, key="a")
    assert ops.check()
    bad = Ops().write(1, 0, 1, key="a").read(1, 2, 3, key="b").read(None, 2, 3, key="c")
    result = check_register(bad.ops)
    assert not result.ok
    assert not result.exhausted
    assert result.key == "b"


def test_failure_message_shows_prefix_and_blocked_ops() -> None:
    ops = Ops().write(1, 0, 1).write(2, 2, 3).read(1, 4, 5).ops
    result = check_register(ops)
    assert not result.ok
    assert result.key == "x"
    assert "key 'x' is not linearizable" in result.message
    assert "#1 client 1 key 'x' WRITE 2 [t=2..3]" in result.message
    assert "#2 client 2 key 'x' READ -> 1 [t=4..5]: it read 1, but the register holds 2" in (
        result.message
    )


def test_exceeding_max_states_is_undecided_not_ok() -> None:
    ops = Ops().write(1, 0, 1).write(2, 2, 3).write(3, 4, 5).read(3, 6, 7).ops
    result = check_register(ops, max_states=2)
    assert not result.ok
    assert result.exhausted
    assert result.key == "x"
    assert "undecided" in result.message
    assert check_register(ops, max_states=4).ok


def test_a_violation_outranks_an_undecided_key() -> None:
    ops = Ops().write(1, 0, 1, key="a").write(2, 2, 3, key="a").write(3, 4, 5, key="a")
    ops.read(5, 0, 1, key="b")
    result = check_register(ops.ops, max_states=2)
    assert (result.ok, result.exhausted, result.key) == (False, False, "b")


def test_malformed_histories_are_rejected() -> None:
    with pytest.raises(InvariantError):
        Operation(0, 0, "x", READ, None, 5, 4, None)  # returned before called
    with pytest.raises(InvariantError):
        Operation(0, 0, "x", CAS, 1, 0, 1, True)  # CAS input is not a pair
    with pytest.raises(InvariantError):
        Operation(0, 0, "x", WRITE, 1, 0, None, 1)  # unknown outcome with an output
    duplicate = Ops().write(1, 0, 1).write(2, 2, 3).ops
    with pytest.raises(InvariantError):
        check_register([duplicate[0], replace(duplicate[1], id=0)])


# --- the recorder ----------------------------------------------------------------


def test_history_records_outcomes() -> None:
    history = History()
    w = history.invoke(1, "x", WRITE, b"v", time=10)
    r = history.invoke(2, "x", READ, None, time=11)
    c = history.invoke(3, "x", CAS, (b"v", b"w"), time=12)
    f = history.invoke(4, "x", WRITE, b"z", time=13)
    u = history.invoke(5, "x", WRITE, b"u", time=14)
    p = history.invoke(6, "y", READ, None, time=15)  # still in flight at the end
    history.complete(w, None, time=20)
    history.complete(r, b"v", time=21)
    history.complete(c, True, time=22)
    history.fail(f, time=23)
    history.unknown(u)
    assert history.operations() == [
        Operation(w, 1, "x", WRITE, b"v", 10, 20, None),
        Operation(r, 2, "x", READ, None, 11, 21, b"v"),
        Operation(c, 3, "x", CAS, (b"v", b"w"), 12, 22, True),
        Operation(u, 5, "x", WRITE, b"u", 14, None, None),
        Operation(p, 6, "y", READ, None, 15, None, None),
    ]
    assert check_register(history.operations()).ok


def test_history_rejects_misuse() -> None:
    history = History()
    op = history.invoke(1, "x", WRITE, 1, time=10)
    with pytest.raises(InvariantError):
        history.complete(op, None, time=9)  # before its invocation
    with pytest.raises(InvariantError):
        history.complete(op, 5, time=11)  # a WRITE has no output
    history.complete(op, None, time=11)
    with pytest.raises(InvariantError):
        history.fail(op, time=12)  # a second outcome
    with pytest.raises(InvariantError):
        history.unknown(99)  # no such operation
    with pytest.raises(InvariantError):
        history.invoke(1, "x", CAS, 1, time=13)
    cas = history.invoke(1, "x", CAS, (1, 2), time=13)
    with pytest.raises(InvariantError):
        history.complete(cas, None, time=14)  # a known CAS outcome is a bool


# --- property tests: histories of a real register --------------------------------

Spec = tuple[OpKind, int, int, str, int, int, str]


@st.composite
def register_histories(draw: st.DrawFn, max_ops: int = 40) -> list[Operation]:
    """Random ops applied one at a time to real registers (op i at time 10*i), each
    given a random interval around that instant; some outcomes are then forgotten.

    "unknown-applied" ops took effect; "unknown-lost" ops never did (e.g. the request
    was lost before reaching the leader). Both are recorded with an unknown outcome.
    """
    specs: list[Spec] = draw(
        st.lists(
            st.tuples(
                st.sampled_from([READ, READ, WRITE, CAS]),
                st.integers(0, 3),
                st.integers(0, 3),
                st.sampled_from(["a", "b"]),
                st.integers(0, 25),
                st.integers(0, 25),
                st.sampled_from(["known"] * 8 + ["unknown-applied", "unknown-lost"]),
            ),
            max_size=max_ops,
        )
    )
    registers: dict[str, Hashable] = {}
    ops = []
    for i, (kind, x, y, key, before, after, outcome) in enumerate(specs):
        value = registers.get(key)
        input: Hashable = None if kind is READ else x if kind is WRITE else (x, y)
        output: Hashable = None
        if outcome != "unknown-lost":
            if kind is READ:
                output = value
            elif kind is WRITE:
                registers[key] = x
            else:
                output = value == x
                if output:
                    registers[key] = y
        at = 10 * i
        ret = at + after if outcome == "known" else None
        known_output = output if ret is not None else None
        ops.append(Operation(i, i % 7, key, kind, input, at - before, ret, known_output))
    return ops


@settings(max_examples=300, deadline=None)
@given(register_histories())
def test_histories_of_a_real_register_are_linearizable(ops: list[Operation]) -> None:
    result = check_register(ops)
    assert result.ok, result.message


@settings(max_examples=300, deadline=None)
@given(register_histories(), st.data())
def test_a_read_of_a_value_never_written_is_caught(
    ops: list[Operation], data: st.DataObject
) -> None:
    reads = [i for i, op in enumerate(ops) if op.kind is READ and op.ret is not None]
    if not reads:
        at = 10 * len(ops)
        ops.append(Operation(len(ops), 0, "a", READ, None, at, at + 1, None))
        reads = [len(ops) - 1]
    victim = data.draw(st.sampled_from(reads))
    ops[victim] = replace(ops[victim], output=NEVER_WRITTEN)
    result = check_register(ops)
    assert not result.ok
    assert not result.exhausted
    assert result.key == ops[victim].key


# --- property test: agreement with a brute-force oracle on tiny histories ---------


def brute_force_linearizable(ops: Sequence[Operation], initial: Hashable = None) -> bool:
    """Straight from the definition: some subset of the unknown-outcome ops took
    effect, and the known ops plus that subset have an order that respects real time
    and that a register replays with the outputs seen."""
    for key in {op.key for op in ops}:
        known = [op for op in ops if op.key == key and op.ret is not None]
        maybe = [op for op in ops if op.key == key and op.ret is None]
        subsets = itertools.chain.from_iterable(
            itertools.combinations(maybe, n) for n in range(len(maybe) + 1)
        )
        if not any(_some_order_replays(known + list(subset), initial) for subset in subsets):
            return False
    return True


def _some_order_replays(pending: list[Operation], value: Hashable) -> bool:
    if not pending:
        return True
    for op in pending:
        others = [other for other in pending if other is not op]
        # `op` may go next unless something still pending returned before it was called.
        if any(other.ret is not None and other.ret < op.call for other in others):
            continue
        ok, new_value = _apply(op, value)
        if ok and _some_order_replays(others, new_value):
            return True
    return False


def _apply(op: Operation, value: Hashable) -> tuple[bool, Hashable]:
    if op.kind is WRITE:
        return True, op.input
    if op.kind is READ:
        return op.ret is None or op.output == value, value
    assert isinstance(op.input, tuple)
    expected, new = op.input
    swapped = value == expected
    return op.ret is None or op.output == swapped, new if swapped else value


@st.composite
def near_miss_histories(draw: st.DrawFn) -> list[Operation]:
    """Tiny histories of a real register with tie-prone times, a share of unknown
    outcomes, and some outputs replaced at random (so many are not linearizable)."""
    value: dict[str, Hashable] = {}
    ops = []
    for i in range(draw(st.integers(0, 7))):
        kind = draw(st.sampled_from([READ, WRITE, CAS]))
        x, y = draw(st.integers(0, 2)), draw(st.integers(0, 2))
        key = draw(st.sampled_from(["a", "a", "a", "b"]))
        at = 3 * i
        call, ret = at - draw(st.integers(0, 6)), at + draw(st.integers(0, 6))
        outcome = draw(st.sampled_from(["known", "known", "unknown-applied", "unknown-lost"]))
        input: Hashable = None if kind is READ else x if kind is WRITE else (x, y)
        output: Hashable = None
        if outcome != "unknown-lost":
            if kind is READ:
                output = value.get(key)
            elif kind is WRITE:
                value[key] = x
            else:
                output = value.get(key) == x
                value[key] = y if output else value.get(key)
        if outcome != "known":
            ops.append(Operation(i, i, key, kind, input, call, None, None))
            continue
        if kind is not WRITE and draw(st.integers(0, 3)) == 0:
            output = draw(st.sampled_from([None, 0, 1, 2])) if kind is READ else not output
        ops.append(Operation(i, i, key, kind, input, call, ret, output))
    return ops


@settings(max_examples=2000, deadline=None)
@given(near_miss_histories())
def test_agrees_with_brute_force(ops: list[Operation]) -> None:
    result = check_register(ops)
    assert not result.exhausted
    assert result.ok == brute_force_linearizable(ops), result.message


# --- a large history -------------------------------------------------------------


def concurrent_history(
    seed: int, n_ops: int, n_clients: int, unknown_share: float = 0.003
) -> list[Operation]:
    """Clients issue ops back to back; each takes effect at a random instant inside
    its interval, in the order of those instants. `unknown_share` of the outcomes are
    unknown (half of those took effect)."""
    rng = random.Random(seed)
    free_at = [(0, client) for client in range(n_clients)]  # when each client is idle
    planned = []
    for op_id in range(n_ops):
        start, client = heapq.heappop(free_at)
        call = start + rng.randint(0, 3)
        at = call + rng.randint(0, 10)
        ret = at + rng.randint(0, 10)
        heapq.heappush(free_at, (ret, client))
        planned.append((at, op_id, client, call, ret))
    value: Hashable = None
    ops = []
    for _at, op_id, client, call, ret in sorted(planned):
        kind = rng.choice([READ, READ, WRITE, CAS])
        input: Hashable = None if kind is READ else rng.randint(0, 9)
        if kind is CAS:
            input = (rng.randint(0, 9) if rng.random() < 0.5 else value, rng.randint(0, 9))
        unknown = rng.random() < unknown_share
        output: Hashable = None
        if not unknown or rng.random() < 0.5:
            if kind is READ:
                output = value
            elif kind is WRITE:
                value = input
            else:
                assert isinstance(input, tuple)
                expected, new = input
                output = value == expected
                value = new if output else value
        final_ret, final_output = (None, None) if unknown else (ret, output)
        ops.append(Operation(op_id, client, "x", kind, input, call, final_ret, final_output))
    return sorted(ops, key=lambda op: op.id)


def test_large_history_is_checked() -> None:
    ops = concurrent_history(seed=1, n_ops=2_000, n_clients=10)
    assert any(op.ret is None for op in ops)
    result = check_register(ops)
    assert result.ok, result.message
    assert result.ops_checked == len(
        [op for op in ops if op.kind is not READ or op.ret is not None]
    )


def test_large_history_with_one_bad_read_is_caught() -> None:
    ops = concurrent_history(seed=2, n_ops=2_000, n_clients=10)
    middle = next(
        i for i, op in enumerate(ops) if i > 1_000 and op.kind is READ and op.ret is not None
    )
    ops[middle] = replace(ops[middle], output=NEVER_WRITTEN)
    result = check_register(ops)
    assert not result.ok
    assert not result.exhausted
    assert f"#{middle} " in result.message
