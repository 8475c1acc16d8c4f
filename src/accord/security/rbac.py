"""Role-based access control on key prefixes: what a request needs, and whether a
user's grants cover it. Pure functions over the KV command types.

A grant is (prefix, read/write/readwrite). A request needs a permission on a key
range; it is allowed when one grant with that permission covers the whole range:

- a single key: the key starts with the prefix;
- `[key, range_end)`: `key` starts with the prefix and `range_end` is at most
  `prefix_end(prefix)`, the first key after every key with the prefix. A
  `range_end` of `b"\\0"` means "no upper bound" and is covered only by the empty
  prefix (every key). An empty range (`range_end <= key`) still needs `key` covered:
  no probing outside one's grants with requests that select nothing.

A transaction needs read on every compared key and on every get/range, write on every
put/delete, in both branches (whichever runs). The root user needs no grants.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from accord.kv.commands import Compare, DeleteRange, Get, Put, Range, Txn, TxnOp
from accord.kv.types import ALL_KEYS_END, prefix_end
from accord.node.authstore import READ, ROOT, WRITE

Need = tuple[int, bytes, bytes]
"""(permission bit, key, range_end) a request needs."""


def covers(prefix: bytes, key: bytes, range_end: bytes) -> bool:
    """Whether every key of the range lies inside `prefix`."""
    if not key.startswith(prefix):
        return False
    if not range_end:
        return True
    end = prefix_end(prefix)
    if end == ALL_KEYS_END:  # the empty prefix or only 0xff bytes: no upper bound
        return prefix == b"" or (range_end != ALL_KEYS_END and range_end.startswith(prefix))
    if range_end == ALL_KEYS_END:
        return False
    return range_end <= end


def txn_needs(txn: Txn) -> Iterator[Need]:
    for compare in txn.compares:
        yield from compare_needs(compare)
    for op in (*txn.success, *txn.failure):
        yield from op_needs(op)


def compare_needs(compare: Compare) -> Iterator[Need]:
    yield READ, compare.key, b""


def op_needs(op: TxnOp) -> Iterator[Need]:
    if isinstance(op, Put):
        yield WRITE, op.key, b""
    elif isinstance(op, DeleteRange):
        yield WRITE, op.key, op.range_end
    elif isinstance(op, Get):
        yield READ, op.key, b""
    elif isinstance(op, Range):
        yield READ, op.key, op.range_end
    else:  # a new op type must be classified here before anyone can use it
        raise TypeError(f"no permission rule for {type(op).__name__}")


def allowed(user: str, grants: Iterable[tuple[bytes, int]], needs: Iterable[Need]) -> bool:
    if user == ROOT:
        return True
    held = list(grants)
    return all(
        any(bits & need and covers(prefix, key, end) for prefix, bits in held)
        for need, key, end in needs
    )


def first_denied(
    user: str, grants: Iterable[tuple[bytes, int]], needs: Iterable[Need]
) -> Need | None:
    """The first need no grant covers (None: all allowed); for the error message."""
    if user == ROOT:
        return None
    held = list(grants)
    for need in needs:
        bit, key, end = need
        if not any(bits & bit and covers(prefix, key, end) for prefix, bits in held):
            return need
    return None
