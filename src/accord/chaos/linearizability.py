"""Linearizability checker for per-key registers (READ / WRITE / CAS).

Theory of operation
-------------------
A history is linearizable when every operation can be given a single instant (its
*linearization point*) between its call and its return such that, replayed one at a
time in that order, a plain register produces exactly the outputs clients saw. Keys
are independent registers and linearizability is compositional (Herlihy & Wing), so
each key is checked on its own; the first key that fails is reported.

The search is Wing & Gong's with Lowe's memoization, as in Knossos and Porcupine
("WGL"):

1. Every operation becomes a call event and a return event; the events go into a
   doubly linked list in time order. At equal times calls come before returns, so an
   operation invoked at the very instant another returned counts as concurrent with
   it: the checker never assumes an order the clocks cannot prove.
2. The operation to linearize next must be one whose call comes before the first
   return event still in the list (an operation that returned before another was
   called must be linearized first). The search walks the list from its head and
   tries each such call in turn: if the register model accepts it (a READ must see
   the current value, a CAS must have swapped iff the value equalled `expected`),
   the operation's events are unlinked (dancing links, undone in O(1) on backtrack)
   and the walk restarts from the head.
3. Reaching a return event means nothing pending can go next: backtrack by popping
   the last linearized operation from an explicit stack (histories have thousands of
   operations, far beyond Python's recursion limit) and try the candidate after it.
4. Lowe's cache: what can still happen depends only on *which* operations are
   linearized (a bitmask, as a Python int) and on the register's value, not on the
   order that got there, so a (bitmask, value) state seen before is not explored again.

Refinements that keep the search small enough for Python:

- Forced moves. A candidate READ that matches the current value, or a refused CAS
  whose expected value differs from it, changes nothing; linearizing it now rather
  than later keeps every solution (it is a candidate, so nothing still pending
  returned before it was called). Such a move is taken alone, with no alternatives
  tried, and when it leads nowhere the state before it is a dead end too. Only
  writes and successful CASes make the search branch.
- Unknown outcomes. A READ whose outcome is unknown is dropped: it changed nothing
  and nobody saw its result. A WRITE or CAS whose outcome is unknown may take effect
  at any time after its call, or never (an unknown CAS swaps iff the register holds
  `expected` when it is linearized). It has no return event, so it never blocks
  anything: its call sits on a second list, and it is a candidate once called, tried
  after the known candidates. Three rules stop these from multiplying the states:
  (a) having linearized *fewer* unknown operations never hurts (the others can still
  go later, or never), so the cache maps (known bitmask, value) to the unknown sets
  explored with it, and a state whose unknown set contains one of those is pruned;
  (b) an unknown operation is tried only right before one that depends on it: if
  the next operation fits and ends the same without it, any solution can drop it,
  and if the two commute it can go later -- a state reached this way is explored
  only in part, so it is not cached; (c) unknown operations with identical effects
  are used in call order, since once called they are interchangeable. Once every
  operation with a known outcome is placed, the rest can be left out, so the search
  stops there.

Bounded work. WGL is exponential in the worst case (many concurrent or unknown
operations, few distinct values). `max_states` caps the states explored per key:
past it the checker gives up and returns `ok=False, exhausted=True` -- "undecided",
not "violation". Callers must tell the two apart; a simulator should treat
exhaustion as a failure to look at (shrink the history or raise the cap), never as
a pass. Histories split over many keys, with unique written values, stay cheap.
Memory grows with the cache: each state holds a bitmask of up to n bits (n=2,000
with 2,000,000 states is about 1 GB).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from accord.chaos.history import Operation, OpKind, Value
from accord.invariant import InvariantError, invariant

DEFAULT_MAX_STATES = 2_000_000
"""Default cap on the (linearized set, value) states explored per key."""

_PREFIX_SHOWN_MAX = 10
"""How many operations of the longest linearizable prefix a failure message shows."""


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The verdict on a history.

    - `ok=True`: every key is linearizable.
    - `ok=False, exhausted=False`: `key` is definitely not linearizable; `message`
      shows the longest linearizable prefix found and the operations that could not
      be placed after it.
    - `ok=False, exhausted=True`: undecided -- the search for `key` hit `max_states`
      (and no other key was found to be violated).

    `ops_checked` counts the operations fed to the search (unknown-outcome READs are
    dropped and not counted), summed over the keys checked before the verdict.
    """

    ok: bool
    key: str | None
    message: str
    ops_checked: int
    exhausted: bool = False


# Register operations, compiled to a code and two arguments so the search does no
# attribute lookups or enum comparisons.
_READ = 0  # a: the value read
_WRITE = 1  # a: the value written
_CAS_SWAPPED = 2  # a: expected, b: new
_CAS_REFUSED = 3  # a: expected
_CAS_UNKNOWN = 4  # a: expected, b: new; swaps iff the value equals `expected`
_NO_CHANGE = (_READ, _CAS_REFUSED)


def _step(code: int, a: Value, b: Value, value: Value) -> tuple[bool, Value]:
    """Apply one operation to a register holding `value`: (consistent?, new value)."""
    if code == _READ:
        return value == a, value
    if code == _WRITE:
        return True, a
    if code == _CAS_SWAPPED:
        return value == a, b
    if code == _CAS_REFUSED:
        return value != a, value
    return True, (b if value == a else value)


def _compile(op: Operation) -> tuple[int, Value, Value]:
    if op.kind is OpKind.READ:
        return _READ, op.output, None
    if op.kind is OpKind.WRITE:
        return _WRITE, op.input, None
    match op.input:
        case (expected, new):
            pass
        case _:
            raise InvariantError(f"op {op.id}: a CAS input is (expected, new)")
    if op.ret is None:
        return _CAS_UNKNOWN, expected, new
    return (_CAS_SWAPPED if op.output else _CAS_REFUSED), expected, new


# List nodes: 0 is the head of the main list (calls and returns of operations with a
# known outcome), events are 1..E in time order, then come the main list's tail, and
# the head and tail of the unknown list (calls of operations with an unknown outcome).
# The unknown list's tail is the largest node, so "node < first return" stops a walk.
_HEAD = 0


@dataclass(slots=True)
class _Problem:
    """One key's history, compiled for the search."""

    ops: list[Operation]  # local op index -> operation
    code: list[int]
    arg_a: list[Value]
    arg_b: list[Value]
    known: list[int]  # 1 if the op's outcome is known (it must be linearized), else 0
    bit: list[int]  # the op's bit in the known or the unknown bitmask
    op_of: list[int]  # event node -> local op index (-1 for the sentinels)
    ret_of: list[int]  # call node -> its return node; -1 for returns, unknown calls, sentinels
    changes: list[bool]  # node -> is it the call of an op that may change the value
    twin_bit: list[int]  # unknown call node -> bit of the previous identical unknown op, or 0
    nxt: list[int]
    prv: list[int]
    unknown_head: int


def _compile_key(ops: Sequence[Operation]) -> _Problem:
    # An unknown READ changed nothing and its result was never seen: drop it.
    kept = [op for op in ops if not (op.kind is OpKind.READ and op.ret is None)]
    compiled = [_compile(op) for op in kept]
    known = [0 if op.ret is None else 1 for op in kept]
    counts = [0, 0]  # ops numbered so far among the unknown (0) and the known (1)
    bit = []
    for k in known:
        bit.append(1 << counts[k])
        counts[k] += 1
    op_of, ret_of, call_node, nxt, prv = _link_events(kept)
    changes = [False] * len(op_of)
    twin_bit = [0] * len(op_of)
    # Identical unknown ops (same code and arguments) are chained in call order.
    last_twin: dict[tuple[int, Value, Value], int] = {}
    for node in sorted(call_node):
        i = op_of[node]
        changes[node] = compiled[i][0] not in _NO_CHANGE
        if not known[i]:
            twin_bit[node] = last_twin.get(compiled[i], 0)
            last_twin[compiled[i]] = bit[i]
    return _Problem(
        ops=kept,
        code=[c for c, _, _ in compiled],
        arg_a=[a for _, a, _ in compiled],
        arg_b=[b for _, _, b in compiled],
        known=known,
        bit=bit,
        op_of=op_of,
        ret_of=ret_of,
        changes=changes,
        twin_bit=twin_bit,
        nxt=nxt,
        prv=prv,
        unknown_head=len(op_of) - 2,
    )


def _link_events(
    ops: list[Operation],
) -> tuple[list[int], list[int], list[int], list[int], list[int]]:
    """Number the events in time order and link them into the main and the unknown
    list (see `_HEAD`): returns op_of, ret_of, each op's call node, nxt and prv."""
    # Calls (0) sort before returns (1) at equal times: ties count as concurrent.
    events = sorted(
        [(op.call, 0, i) for i, op in enumerate(ops)]
        + [(op.ret, 1, i) for i, op in enumerate(ops) if op.ret is not None]
    )
    tail, unknown_head, unknown_tail = len(events) + 1, len(events) + 2, len(events) + 3
    op_of, ret_of = [-1] * (unknown_tail + 1), [-1] * (unknown_tail + 1)
    nxt, prv = [-1] * (unknown_tail + 1), [-1] * (unknown_tail + 1)
    last_main, last_unknown = _HEAD, unknown_head
    call_node = [0] * len(ops)
    for node, (_, is_return, i) in enumerate(events, start=1):
        op_of[node] = i
        if is_return:
            ret_of[call_node[i]] = node
        else:
            call_node[i] = node
        if ops[i].ret is None:
            nxt[last_unknown], prv[node], last_unknown = node, last_unknown, node
        else:
            nxt[last_main], prv[node], last_main = node, last_main, node
    nxt[last_main], prv[tail] = tail, last_main
    nxt[last_unknown], prv[unknown_tail] = unknown_tail, last_unknown
    return op_of, ret_of, call_node, nxt, prv


class _Exhausted(Exception):
    """The search hit `max_states`."""


_FRESH = -1
"""Scan position meaning "a state just reached: look for a forced move first"."""
_FAILED = -2
"""Scan position meaning "backtracked past the initial state: not linearizable"."""


class _Search:
    """One WGL search over one key's compiled history (see the module docstring).

    The scan position is (entry, limit): with limit 0 the walk is over the main
    list's calls; otherwise over the unknown list's calls that precede node `limit`,
    the first return in the main list.
    """

    __slots__ = (
        "best_blocked",
        "best_depth",
        "best_prefix",
        "best_value",
        "cache",
        "known_done",
        "max_states",
        "p",
        "path",
        "path_forced",
        "path_limit",
        "path_value",
        "remaining",
        "states",
        "unknown_done",
        "value",
    )

    def __init__(self, p: _Problem, initial: Value, max_states: int) -> None:
        self.p = p
        self.max_states = max_states
        # (known bitmask, value) -> the unknown bitmasks explored with it.
        self.cache: dict[tuple[int, Value], list[int]] = {}
        self.states = 0
        self.known_done = 0
        self.unknown_done = 0
        self.value = initial
        self.remaining = sum(p.known)  # known-outcome operations not yet linearized
        self.path: list[int] = []  # call nodes linearized so far, in order
        self.path_value: list[Value] = []  # the register's value before each of them
        self.path_forced: list[bool] = []
        self.path_limit: list[int] = []  # the scan limit each was found with
        self.best_depth = -1
        self.best_prefix: list[int] = []
        self.best_value: Value = initial
        self.best_blocked: list[int] = []

    def run(self) -> bool:
        """True if linearizable; raises `_Exhausted` past `max_states`."""
        nxt, ret_of, changes, twin_bit = self.p.nxt, self.p.ret_of, self.p.changes, self.p.twin_bit
        entry, limit = _FRESH, 0
        while self.remaining:
            if entry == _FRESH:
                forced = self._forced_move()
                if forced < 0:
                    entry, limit = nxt[_HEAD], 0
                elif not self._push(forced, True, 0):
                    entry, limit = self._backtrack()
                continue
            if entry == _FAILED:
                return False
            if limit == 0 and ret_of[entry] < 0:
                # First return in the main list: the known candidates are exhausted,
                # try the unknown operations called before it.
                entry, limit = nxt[self.p.unknown_head], entry
            elif limit and entry > limit:
                entry, limit = self._backtrack()
            elif not changes[entry]:
                # A READ or refused CAS: had it fit, it would have been a forced move.
                entry = nxt[entry]
            elif limit and twin_bit[entry] and not self.unknown_done & twin_bit[entry]:
                # An identical unknown operation called earlier is still open: using
                # this one instead could only reach an equivalent state.
                entry = nxt[entry]
            elif self._push(entry, False, limit):
                entry = _FRESH
            else:
                entry = nxt[entry]
        return True

    def _forced_move(self) -> int:
        """A candidate that cannot change the value and fits it (see the module
        docstring), or -1."""
        p, value = self.p, self.value
        node = p.nxt[_HEAD]
        while p.ret_of[node] >= 0:
            op = p.op_of[node]
            code = p.code[op]
            if code == _READ and p.arg_a[op] == value:
                return node
            if code == _CAS_REFUSED and p.arg_a[op] != value:
                return node
            node = p.nxt[node]
        return -1

    def _push(self, node: int, forced: bool, limit: int) -> bool:
        """Linearize the call at `node` next, unless the model or the cache rejects it."""
        p = self.p
        op = p.op_of[node]
        ok, value = _step(p.code[op], p.arg_a[op], p.arg_b[op], self.value)
        if not ok:
            return False
        after_unknown = not forced and len(self.path) > 0 and not p.known[p.op_of[self.path[-1]]]
        if after_unknown and not self._needs_last_unknown(op, value):
            return False
        known, unknown = self.known_done, self.unknown_done
        if p.known[op]:
            known |= p.bit[op]
        else:
            unknown |= p.bit[op]
        # After an unknown op only some moves are tried, so that state is not
        # explored in full and must not be cached as a dead end.
        if not self._remember(known, unknown, value, cache=bool(p.known[op])):
            return False
        self.path.append(node)
        self.path_value.append(self.value)
        self.path_forced.append(forced)
        self.path_limit.append(limit)
        self.known_done, self.unknown_done, self.value = known, unknown, value
        self.remaining -= p.known[op]
        # Unlink the call (and return); their own links stay, for `_backtrack`.
        nxt, prv = p.nxt, p.prv
        nxt[prv[node]], prv[nxt[node]] = nxt[node], prv[node]
        ret = p.ret_of[node]
        if ret >= 0:
            nxt[prv[ret]], prv[nxt[ret]] = nxt[ret], prv[ret]
        return True

    def _needs_last_unknown(self, op: int, value: Value) -> bool:
        """Whether `op` (taking the register to `value`) may directly follow the unknown
        op just linearized: only if it depends on that op having happened.

        Otherwise any solution can be rewritten without the pair: if `op` fits and
        ends the same without the unknown op, the unknown op can be dropped (moved
        past the end); if the two commute, it can go after `op`. So unknown ops are
        tried only right before an operation that observes them.
        """
        p = self.p
        last = p.op_of[self.path[-1]]
        ok, value_without = _step(p.code[op], p.arg_a[op], p.arg_b[op], self.path_value[-1])
        if not ok:
            return True  # `op` fits only because the unknown op happened
        if value_without == value:
            return False  # `op` erases the unknown op's effect: drop that op instead
        _, value_swapped = _step(p.code[last], p.arg_a[last], p.arg_b[last], value_without)
        return value_swapped != value  # if equal they commute: the unknown op can go after

    def _remember(self, known: int, unknown: int, value: Value, cache: bool) -> bool:
        """Count a new state and, if `cache`, add it to the cache; False if it, or a
        state dominating it, is cached already."""
        explored = self.cache.get((known, value))
        if explored is not None and any(seen & unknown == seen for seen in explored):
            return False
        if cache:
            if explored is None:
                self.cache[known, value] = [unknown]
            else:
                explored.append(unknown)
        self.states += 1
        if self.states > self.max_states:
            raise _Exhausted
        return True

    def _backtrack(self) -> tuple[int, int]:
        """Undo linearizations back to the last one that was a choice; the scan
        position after it, or (_FAILED, 0) if there is none."""
        self._note_dead_end()
        p = self.p
        nxt, prv = p.nxt, p.prv
        while self.path:
            node = self.path.pop()
            self.value = self.path_value.pop()
            forced = self.path_forced.pop()
            limit = self.path_limit.pop()
            op = p.op_of[node]
            if p.known[op]:
                self.known_done ^= p.bit[op]
            else:
                self.unknown_done ^= p.bit[op]
            self.remaining += p.known[op]
            # Relink in the reverse order of unlinking (dancing links).
            ret = p.ret_of[node]
            if ret >= 0:
                nxt[prv[ret]] = prv[nxt[ret]] = ret
            nxt[prv[node]] = prv[nxt[node]] = node
            if not forced:
                return nxt[node], limit
            # A forced move led nowhere, so the state before it is a dead end too.
        return _FAILED, 0

    def _note_dead_end(self) -> None:
        """Keep the deepest dead end as the evidence for a failure message."""
        if len(self.path) <= self.best_depth:
            return
        p = self.p
        self.best_depth = len(self.path)
        self.best_prefix = [p.op_of[node] for node in self.path]
        self.best_value = self.value
        self.best_blocked = []
        node = p.nxt[_HEAD]
        while p.ret_of[node] >= 0:
            self.best_blocked.append(p.op_of[node])
            node = p.nxt[node]


def check_register(
    ops: Sequence[Operation],
    initial: Value = None,
    *,
    max_states: int = DEFAULT_MAX_STATES,
) -> CheckResult:
    """Check that `ops` is linearizable, each key being a register starting at `initial`.

    `initial=None` means the key starts absent (a READ of it returns None). Keys are
    checked in sorted order; the first one found not linearizable is reported. If no
    key is violated but some search hit `max_states`, the result is undecided
    (`ok=False, exhausted=True`) for the first such key.
    """
    invariant(max_states > 0, "max_states must be positive")
    invariant(len({op.id for op in ops}) == len(ops), "operation ids must be unique")
    by_key: dict[str, list[Operation]] = {}
    for op in ops:
        by_key.setdefault(op.key, []).append(op)
    checked = 0
    undecided: tuple[str, str] | None = None  # (key, message) of the first exhausted key
    for key in sorted(by_key):
        search = _Search(_compile_key(by_key[key]), initial, max_states)
        checked += len(search.p.ops)
        try:
            if search.run():
                continue
        except _Exhausted:
            if undecided is None:
                undecided = key, _exhausted_message(key, search)
            continue
        return CheckResult(False, key, _violation_message(key, search), checked)
    if undecided is not None:
        return CheckResult(False, undecided[0], undecided[1], checked, exhausted=True)
    keys = f"{len(by_key)} key" + ("" if len(by_key) == 1 else "s")
    return CheckResult(True, None, f"linearizable: {checked} operations on {keys}", checked)


def _violation_message(key: str, search: _Search) -> str:
    p, value = search.p, search.best_value
    lines = [
        f"key {key!r} is not linearizable ({len(p.ops)} operations on this key).",
        f"The longest linearizable prefix found has {len(search.best_prefix)} operations "
        f"and leaves the register at {value!r}:",
        *_prefix_lines(p, search.best_prefix),
        "None of the operations that could come next can be linearized there:",
    ]
    for op in search.best_blocked:
        ok, _ = _step(p.code[op], p.arg_a[op], p.arg_b[op], value)
        why = _contradiction(p.ops[op], value) if not ok else "every way on from it fails"
        lines.append(f"  {p.ops[op].describe()}: {why}")
    return "\n".join(lines)


def _exhausted_message(key: str, search: _Search) -> str:
    return (
        f"key {key!r} is undecided: gave up after exploring more than "
        f"max_states={search.max_states} states. The longest linearizable prefix found "
        f"so far has {len(search.best_prefix)} of {len(search.p.ops)} operations. Raise "
        f"max_states or check a shorter history."
    )


def _prefix_lines(p: _Problem, prefix: list[int]) -> list[str]:
    lines = []
    if len(prefix) > _PREFIX_SHOWN_MAX:
        lines.append(f"  ... {len(prefix) - _PREFIX_SHOWN_MAX} earlier operations")
    lines.extend(f"  {p.ops[op].describe()}" for op in prefix[-_PREFIX_SHOWN_MAX:])
    if not prefix:
        lines.append("  (none: the register still holds its initial value)")
    return lines


def _contradiction(op: Operation, value: Value) -> str:
    """Why `op` cannot be linearized when the register holds `value`."""
    if op.kind is OpKind.READ:
        return f"it read {op.output!r}, but the register holds {value!r}"
    if op.output:
        return f"it swapped, but the register holds {value!r}, not the expected value"
    return f"it refused to swap, but the register holds {value!r}, the expected value"
