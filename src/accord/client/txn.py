"""Transactions: typed builders for comparisons and operations, and their JSON form.

    client.txn(
        compare=[Compare.value("config") == b"v1", Compare.version("lock") == 0],
        success=[Op.put("config", "v2"), Op.get("config")],
        failure=[Op.get("config")],
    )

`Compare.value(key)`, `.version(key)`, `.create_revision(key)` and
`.mod_revision(key)` name what to compare; `==`, `!=`, `<` and `>` against a value
(`str | bytes` for values, `int` for the others) make the `Compare`. `Op.put`,
`Op.get`, `Op.delete` and `Op.range` make the operations of each branch. A
`TxnResult` has one response per operation of the branch that ran, in order:
`PutResult`, `GetResult`, `DeleteResult` or `RangeResult`.

`compare_from_json` and `op_from_json` read the HTTP API's JSON form (used by
`accord txn FILE`), so a file written for curl works unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from accord.client.errors import InvalidRequest
from accord.client.results import (
    BadAnswer,
    bytes_field,
    decode_delete,
    decode_get,
    decode_put,
    decode_range,
    text_or_b64,
)
from accord.kv.results import OpResult, TxnResult
from accord.kv.types import prefix_end

Target = Literal["value", "version", "create_revision", "mod_revision"]
Operator = Literal["==", "!=", "<", ">"]
OpKind = Literal["put", "get", "delete", "range"]

_TARGETS: tuple[Target, ...] = ("value", "version", "create_revision", "mod_revision")
_OPERATORS: tuple[Operator, ...] = ("==", "!=", "<", ">")


def to_bytes(data: str | bytes) -> bytes:
    """Keys and values: `str` is encoded as UTF-8, `bytes` taken as they are."""
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    raise TypeError(f"expected str or bytes, got {type(data).__name__}")


@dataclass(frozen=True, slots=True)
class Compare:
    """One comparison of a transaction: `target` of `key` `operator` `operand`."""

    key: bytes
    target: Target
    operator: Operator
    operand: bytes | int

    @staticmethod
    def value(key: str | bytes) -> CompareTarget:
        return CompareTarget(to_bytes(key), "value")

    @staticmethod
    def version(key: str | bytes) -> CompareTarget:
        return CompareTarget(to_bytes(key), "version")

    @staticmethod
    def create_revision(key: str | bytes) -> CompareTarget:
        return CompareTarget(to_bytes(key), "create_revision")

    @staticmethod
    def mod_revision(key: str | bytes) -> CompareTarget:
        return CompareTarget(to_bytes(key), "mod_revision")

    def to_json(self, binary: bool = False) -> dict[str, Any]:
        """The API's form; `binary`: the native protocol's (raw bytes)."""
        operand = (
            _bytes_doc("value", self.operand, binary)
            if isinstance(self.operand, bytes)
            else {"value": self.operand}
        )
        return {
            **_bytes_doc("key", self.key, binary),
            "target": self.target,
            "op": self.operator,
            **operand,
        }


class CompareTarget:
    """What a comparison looks at; an operator with a value makes the `Compare`."""

    __slots__ = ("key", "target")
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, key: bytes, target: Target) -> None:
        self.key = key
        self.target = target

    def _compare(self, operator: Operator, operand: object) -> Compare:
        if self.target == "value":
            if not isinstance(operand, str | bytes):
                raise TypeError(f"a value compares with str or bytes, not {operand!r}")
            return Compare(self.key, self.target, operator, to_bytes(operand))
        if not isinstance(operand, int) or isinstance(operand, bool) or operand < 0:
            raise TypeError(f"{self.target} compares with a non-negative int, not {operand!r}")
        return Compare(self.key, self.target, operator, operand)

    def __eq__(self, operand: object) -> Compare:  # type: ignore[override]
        return self._compare("==", operand)

    def __ne__(self, operand: object) -> Compare:  # type: ignore[override]
        return self._compare("!=", operand)

    def __lt__(self, operand: object) -> Compare:
        return self._compare("<", operand)

    def __gt__(self, operand: object) -> Compare:
        return self._compare(">", operand)


@dataclass(frozen=True, slots=True)
class Op:
    """One operation of a transaction branch; build it with `Op.put/get/delete/range`."""

    kind: OpKind
    key: bytes
    data: bytes = b""
    """The value of a put."""
    range_end: bytes = b""
    lease: int = 0
    revision: int = 0
    limit: int = 0

    @staticmethod
    def put(key: str | bytes, value: str | bytes, *, lease: int = 0) -> Op:
        return Op("put", to_bytes(key), to_bytes(value), lease=lease)

    @staticmethod
    def get(key: str | bytes, *, revision: int = 0) -> Op:
        return Op("get", to_bytes(key), revision=revision)

    @staticmethod
    def delete(
        key: str | bytes | None = None,
        range_end: str | bytes | None = None,
        *,
        prefix: str | bytes | None = None,
    ) -> Op:
        start, end = key_range(key, range_end, prefix)
        return Op("delete", start, range_end=end)

    @staticmethod
    def range(
        key: str | bytes | None = None,
        range_end: str | bytes | None = None,
        *,
        prefix: str | bytes | None = None,
        limit: int = 0,
        revision: int = 0,
    ) -> Op:
        start, end = key_range(key, range_end, prefix)
        return Op("range", start, range_end=end, limit=limit, revision=revision)

    def to_json(self, binary: bool = False) -> dict[str, Any]:
        """The API's form; `binary`: the native protocol's (raw bytes)."""
        body: dict[str, Any] = _bytes_doc("key", self.key, binary)
        if self.kind == "put":
            body.update(_bytes_doc("value", self.data, binary))
        if self.range_end:
            body.update(_bytes_doc("range_end", self.range_end, binary))
        for name in ("lease", "revision", "limit"):
            if getattr(self, name):
                body[name] = getattr(self, name)
        return {self.kind: body}


def key_range(
    key: str | bytes | None, range_end: str | bytes | None, prefix: str | bytes | None
) -> tuple[bytes, bytes]:
    """`(key, range_end)` in the store's convention (see `accord.kv.types`): one key,
    `[key, range_end)`, every key with `prefix`, or (no argument at all) every key."""
    if prefix is not None:
        if key is not None or range_end is not None:
            raise TypeError("give either prefix or key (and range_end), not both")
        start = to_bytes(prefix)
        return start, prefix_end(start)
    if key is None:
        if range_end is not None:
            raise TypeError("range_end needs a key")
        return b"", prefix_end(b"")  # every key
    return to_bytes(key), to_bytes(range_end) if range_end is not None else b""


def txn_doc(
    compare: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op], binary: bool = False
) -> dict[str, Any]:
    return {
        "compare": [c.to_json(binary) for c in compare],
        "success": [op.to_json(binary) for op in success],
        "failure": [op.to_json(binary) for op in failure],
    }


def txn_body(compare: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op]) -> bytes:
    return json.dumps(txn_doc(compare, success, failure)).encode()


def _bytes_doc(name: str, data: bytes, binary: bool) -> dict[str, Any]:
    return {name: data} if binary else text_or_b64(name, data)


_KINDS: dict[str, OpKind] = {"put": "put", "get": "get", "delete": "delete", "range": "range"}
_DECODERS: dict[str, Callable[[Mapping[str, Any]], OpResult]] = {
    "put": decode_put,
    "get": decode_get,
    "delete": decode_delete,
    "range": decode_range,
}


def decode_txn(obj: Mapping[str, Any], success: Sequence[Op], failure: Sequence[Op]) -> TxnResult:
    """A `TxnResult` from the JSON answer; the ops of the branch that ran say how to
    read each response."""
    succeeded = obj.get("succeeded")
    responses = obj.get("responses")
    revision = obj.get("revision")
    if not isinstance(succeeded, bool) or not isinstance(responses, list):
        raise BadAnswer(f"not a transaction result: {obj!r}")
    if not isinstance(revision, int):
        raise BadAnswer(f"not a transaction result: {obj!r}")
    ops = success if succeeded else failure
    if len(ops) != len(responses):
        raise BadAnswer(f"{len(responses)} responses for {len(ops)} operations")
    decoded: list[OpResult] = [
        _DECODERS[op.kind](response) for op, response in zip(ops, responses, strict=True)
    ]
    return TxnResult(revision, succeeded, tuple(decoded))


# --- the HTTP API's JSON form, read back ---------------------------------------------
def _object(raw: Any, what: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise InvalidRequest(f"{what} must be a JSON object", code="bad_request")
    return raw


def _field_bytes(obj: Mapping[str, Any], name: str) -> bytes:
    try:
        return bytes_field(obj, name)
    except (BadAnswer, ValueError) as e:
        raise InvalidRequest(f"bad {name}: {e}", code="bad_request") from e


def compare_from_json(raw: Any) -> Compare:
    c = _object(raw, "a compare")
    target, operator = c.get("target"), c.get("op")
    if target not in _TARGETS:
        raise InvalidRequest(f"compare target must be one of {_TARGETS}", code="bad_request")
    if operator not in _OPERATORS:
        raise InvalidRequest(f"compare op must be one of {_OPERATORS}", code="bad_request")
    operand: bytes | int = _field_bytes(c, "value") if target == "value" else c.get("value", 0)
    if not isinstance(operand, bytes | int) or isinstance(operand, bool):
        raise InvalidRequest(f"{target} compares with an integer", code="bad_request")
    return Compare(_field_bytes(c, "key"), target, operator, operand)


def op_from_json(raw: Any) -> Op:
    op = _object(raw, "a txn op")
    if len(op) != 1 or next(iter(op)) not in _DECODERS:
        raise InvalidRequest(
            "a txn op has exactly one of put, get, delete, range", code="bad_request"
        )
    kind = _KINDS[next(iter(op))]
    body = _object(op[kind], kind)
    numbers = {name: body.get(name, 0) for name in ("lease", "revision", "limit")}
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in numbers.values()):
        raise InvalidRequest("lease, revision and limit must be integers", code="bad_request")
    return Op(
        kind,
        _field_bytes(body, "key"),
        _field_bytes(body, "value") if kind == "put" else b"",
        _field_bytes(body, "range_end"),
        **numbers,
    )
