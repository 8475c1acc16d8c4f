"""The documents both client protocols carry: request bodies (transactions, compares,
ops) parsed into KV commands, and results turned into plain dicts.

HTTP/JSON carries keys and values as UTF-8 strings (`key`) or base64 (`key_b64`); the
native msgpack protocol carries them as raw bytes under the plain name. The parsers
accept all three forms (JSON cannot hold bytes, so HTTP never sees the third); the
encoders take `binary=True` for the native form.

Error answers are one document in both protocols, `{"error": {"code", "message",
...}}`, with the status the error-code table (`accord.errorcodes`) gives the code
(`error_doc`, `error_answer`).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_to_bytes

from accord.errorcodes import status_of
from accord.errors import AccordError
from accord.kv import Compare, CompareOp, CompareTarget, DeleteRange, Get, Put, Range, Txn
from accord.kv import errors as kv_errors
from accord.kv.limits import LEASE_ID_MAX, LEASE_TTL_MS_MAX
from accord.kv.results import DeleteResult, GetResult, PutResult, RangeResult, TxnResult
from accord.kv.types import Event, KeyValue
from accord.node.members import NodeState, member_roles
from accord.node.router import ShardedKV, ShardedRange
from accord.node.service import KVService, now_ms
from accord.shard.limits import SHARDS_PER_CLUSTER_MAX, SLOT_COUNT
from accord.shard.placement import Move, MoveReplica


class BadRequest(AccordError):
    code = "bad_request"


def error_doc(code: str, message: str, **extra: Any) -> tuple[int, dict[str, Any]]:
    """`(status, {"error": {"code", "message", ...extra}})`: an error answer in both
    protocols, its status from the error-code table (`accord.errorcodes`)."""
    return status_of(code), {"error": {"code": code, "message": message, **extra}}


class RemoteError(AccordError):
    """An error another node answered a call with, passed on with its code."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


def error_answer(error: AccordError) -> tuple[int, dict[str, Any]]:
    """`error_doc` of a typed error, with the fields its code carries (`error_extra`)."""
    return error_doc(error.code, str(error), **error_extra(error))


def error_extra(error: AccordError) -> dict[str, Any]:
    """Fields an error answer carries beside code and message: for
    `response_too_large`, how to continue (`keys`: how many key-values of op `op` fit,
    so that range asked with that `limit` would have been answered)."""
    if isinstance(error, kv_errors.ResponseTooLarge):
        return {"limit_bytes": error.limit_bytes, "op": error.op, "keys": error.keys}
    return {}


# --- results ---------------------------------------------------------------------------
def text_or_b64(name: str, data: bytes) -> dict[str, str]:
    try:
        return {name: data.decode("utf-8")}
    except UnicodeDecodeError:
        return {f"{name}_b64": base64.b64encode(data).decode()}


def kv_doc(kv: KeyValue, binary: bool = False) -> dict[str, Any]:
    if binary:
        fields: dict[str, Any] = {"key": kv.key, "value": kv.value}
    else:
        fields = {**text_or_b64("key", kv.key), **text_or_b64("value", kv.value)}
    fields.update(
        create_revision=kv.create_revision,
        mod_revision=kv.mod_revision,
        version=kv.version,
        lease=kv.lease,
    )
    return fields


def key_value_from_doc(doc: dict[str, Any]) -> KeyValue:
    """`kv_doc`'s JSON form read back (another node's answer); raises KeyError,
    ValueError or TypeError for anything else."""
    return KeyValue(
        _doc_bytes(doc, "key"),
        _doc_bytes(doc, "value"),
        int(doc["create_revision"]),
        int(doc["mod_revision"]),
        int(doc["version"]),
        int(doc.get("lease", 0)),
    )


def _doc_bytes(doc: dict[str, Any], name: str) -> bytes:
    if f"{name}_b64" in doc:
        return base64.b64decode(doc[f"{name}_b64"], validate=True)
    return str(doc[name]).encode()


def result_doc(result: Any, binary: bool = False) -> dict[str, Any]:
    """The answer to a KV command or read as a dict (JSON-ready unless `binary`)."""
    if isinstance(result, PutResult):
        return {"revision": result.revision}
    if isinstance(result, DeleteResult):
        return {"revision": result.revision, "deleted": result.deleted}
    if isinstance(result, GetResult):
        kv = kv_doc(result.kv, binary) if result.kv else None
        return {"revision": result.revision, "kv": kv}
    if isinstance(result, RangeResult):
        doc = {
            "revision": result.revision,
            "count": result.count,
            "more": result.more,
            "kvs": [kv_doc(kv, binary) for kv in result.kvs],
        }
        if isinstance(result, ShardedRange):  # revisions are per shard
            doc["revisions"] = {str(shard): rev for shard, rev in result.revisions.items()}
        return doc
    if isinstance(result, TxnResult):
        return {
            "succeeded": result.succeeded,
            "revision": result.revision,
            "responses": [result_doc(r, binary) for r in result.responses],
        }
    raise TypeError(f"no document form for {type(result).__name__}")


def event_doc(event: Event, binary: bool = False) -> dict[str, Any]:
    return {
        "type": event.type.name.lower(),
        "kv": kv_doc(event.kv, binary),
        "prev_kv": kv_doc(event.prev_kv, binary) if event.prev_kv else None,
    }


# --- requests ----------------------------------------------------------------------------
def bytes_field(obj: dict[str, Any], name: str, required: bool = True) -> bytes:
    if f"{name}_b64" in obj:
        try:
            return base64.b64decode(str(obj[f"{name}_b64"]), validate=True)
        except ValueError as e:
            raise BadRequest(f"{name}_b64 is not valid base64") from e
    if name in obj:
        value = obj[name]
        if isinstance(value, bytes):  # the native protocol's form
            return value
        if not isinstance(value, str):
            raise BadRequest(f"{name} must be a string (use {name}_b64 for binary)")
        return value.encode()
    if required:
        raise BadRequest(f"missing {name!r} (or {name}_b64)")
    return b""


def only_fields(obj: Any, allowed: set[str], what: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise BadRequest(f"{what} must be a JSON object")
    if not all(isinstance(name, str) for name in obj):  # msgpack maps may have others
        raise BadRequest(f"field names in {what} must be strings")
    unknown = set(obj) - allowed
    if unknown:
        raise BadRequest(f"unknown field(s) in {what}: {', '.join(sorted(unknown))}")
    return obj


def bool_field(obj: dict[str, Any], name: str) -> bool:
    """A boolean field, False when absent; anything but true or false is refused
    (not read as false)."""
    value = obj.get(name, False)
    if not isinstance(value, bool):
        raise BadRequest(f"{name} must be true or false")
    return value


_KEY_FIELDS = {"key", "key_b64", "range_end", "range_end_b64"}


def parse_txn_op(raw: Any) -> Put | Get | Range | DeleteRange:
    op = only_fields(raw, {"put", "get", "delete", "range"}, "txn op")
    if len(op) != 1:
        raise BadRequest("a txn op has exactly one of put, get, delete, range")
    kind, body = next(iter(op.items()))
    if kind == "put":
        body = only_fields(body, {"key", "key_b64", "value", "value_b64", "lease"}, "put")
        return Put(bytes_field(body, "key"), bytes_field(body, "value"), int_field(body, "lease"))
    if kind == "get":
        body = only_fields(body, {"key", "key_b64", "revision"}, "get")
        return Get(bytes_field(body, "key"), int_field(body, "revision"))
    fields = _KEY_FIELDS if kind == "delete" else _KEY_FIELDS | {"revision", "limit"}
    body = only_fields(body, fields, kind)
    key, end = bytes_field(body, "key"), bytes_field(body, "range_end", required=False)
    if kind == "delete":
        return DeleteRange(key, end)
    return Range(key, end, int_field(body, "revision"), int_field(body, "limit"))


INT_MAX = (1 << 63) - 1
"""Every integer a request carries is in 0..INT_MAX (narrower where a field says so)."""
DIGITS_MAX = 19
"""Digits of INT_MAX: a longer number is refused before it is converted."""
LEASE_TTL_S_MAX = LEASE_TTL_MS_MAX // 1000
MEMBER_ID_MAX = INT_MAX


def int_field(obj: dict[str, Any], name: str, minimum: int = 0, maximum: int = INT_MAX) -> int:
    """An integer field in minimum..maximum (0 when absent, if 0 is allowed)."""
    value = obj.get(name, 0)
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
        raise BadRequest(f"{name} must be an integer in {minimum}..{maximum}")
    return value


def parse_uint(raw: str, name: str, minimum: int = 0) -> int:
    """A decimal integer in minimum..INT_MAX from a query string, header or path."""
    digits = raw.isascii() and raw.isdigit() and len(raw) <= DIGITS_MAX
    if not digits or not minimum <= int(raw) <= INT_MAX:
        raise BadRequest(f"{name} must be an integer in {minimum}..{INT_MAX}")
    return int(raw)


def parse_start_revisions(raw: str) -> dict[int, int]:
    """`start_revisions` of a watch over shards: `SHARD:REVISION,...` (each shard's
    revisions are its own), at most `SHARDS_PER_CLUSTER_MAX` pairs."""
    if not raw:
        return {}
    pairs = raw.split(",", SHARDS_PER_CLUSTER_MAX)
    if len(pairs) > SHARDS_PER_CLUSTER_MAX:
        raise BadRequest(f"start_revisions: at most {SHARDS_PER_CLUSTER_MAX} shards")
    starts: dict[int, int] = {}
    for pair in pairs:
        shard, colon, revision = pair.partition(":")
        if not colon:
            raise BadRequest("start_revisions: pairs SHARD:REVISION, separated by commas")
        shard_id = parse_uint(shard, "start_revisions shard", minimum=1)
        if shard_id in starts:
            raise BadRequest(f"start_revisions: shard {shard_id} is named twice")
        starts[shard_id] = parse_uint(revision, "start_revisions revision")
    return starts


def start_revisions_field(obj: dict[str, Any]) -> dict[int, int]:
    """`start_revisions` of a native watch: a map shard id (a decimal string, as map
    keys are strings) -> first revision."""
    raw = obj.get("start_revisions", {})
    if not isinstance(raw, dict) or len(raw) > SHARDS_PER_CLUSTER_MAX:
        raise BadRequest(f"start_revisions must be a map of at most {SHARDS_PER_CLUSTER_MAX}")
    starts: dict[int, int] = {}
    for shard, revision in raw.items():
        if not isinstance(shard, str):
            raise BadRequest("start_revisions: a shard id is a decimal string")
        starts[parse_uint(shard, "start_revisions shard", minimum=1)] = int_field(
            {"revision": revision}, "revision"
        )
    return starts


def lease_id_field(obj: dict[str, Any], name: str = "id") -> int:
    """A lease id: 1..LEASE_ID_MAX (0 means "no lease" and names none)."""
    return int_field(obj, name, minimum=1, maximum=LEASE_ID_MAX)


def parse_lease_id(raw: str) -> int:
    return parse_uint(raw, "lease id", minimum=1)


def _json_int(text: str) -> int:
    # Called by the JSON decoder before it converts: a 5000-digit number never becomes
    # an int (Python refuses those with a ValueError, and slowly).
    if len(text.lstrip("-")) > DIGITS_MAX:
        raise BadRequest(f"integer {text[:24]}... is out of range (at most {INT_MAX})")
    return int(text)


def _json_constant(name: str) -> Any:
    raise BadRequest(f"{name} is not JSON")


def parse_json(data: bytes) -> Any:
    """A request body as JSON, integers bounded before conversion; BadRequest if not."""
    try:
        return json.loads(data, parse_int=_json_int, parse_constant=_json_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:  # JSONDecodeError too
        raise BadRequest(f"body is not valid JSON: {e}") from e


def path_bytes(raw: str) -> bytes:
    """A key from the raw (still percent-encoded) URL path or query: escapes decode to
    raw bytes, so `%FF` is the byte 0xff and not text (the query's keys follow the
    same rule, see `query_bytes`)."""
    return unquote_to_bytes(raw)


def query_bytes(raw_query: str) -> dict[str, bytes]:
    """The raw query string's parameters, values decoded to bytes (`+` is a space, as
    in any query); the first of repeated names wins, as in aiohttp's `request.query`."""
    params: dict[str, bytes] = {}
    for part in raw_query.split("&"):
        name, _, value = part.partition("=")
        if not part:
            continue
        params.setdefault(
            unquote_to_bytes(name.replace("+", " ")).decode("utf-8", "replace"),
            unquote_to_bytes(value.replace("+", " ")),
        )
    return params


_TARGETS = {t.name.lower(): t for t in CompareTarget}
_OPS = {
    "==": CompareOp.EQUAL,
    "!=": CompareOp.NOT_EQUAL,
    "<": CompareOp.LESS,
    ">": CompareOp.GREATER,
}


def parse_compare(raw: Any) -> Compare:
    c = only_fields(raw, {"key", "key_b64", "target", "op", "value", "value_b64"}, "compare")
    target = _TARGETS.get(str(c.get("target")))
    op = _OPS.get(str(c.get("op")))
    if target is None:
        raise BadRequest(f"compare target must be one of {sorted(_TARGETS)}")
    if op is None:
        raise BadRequest(f"compare op must be one of {sorted(_OPS)}")
    if target == CompareTarget.VALUE:
        value: bytes | int = bytes_field(c, "value")
    else:
        value = int_field(c, "value")
    return Compare(bytes_field(c, "key"), target, op, value)


def parse_txn(raw: Any) -> Txn:
    body = only_fields(raw, {"compare", "success", "failure"}, "txn")
    for name in ("compare", "success", "failure"):
        if not isinstance(body.get(name, []), list):
            raise BadRequest(f"{name} must be a list")
    return Txn(
        tuple(parse_compare(c) for c in body.get("compare", [])),
        tuple(parse_txn_op(o) for o in body.get("success", [])),
        tuple(parse_txn_op(o) for o in body.get("failure", [])),
    )


# --- node views ------------------------------------------------------------------------------
def status_doc(service: KVService, state: NodeState) -> dict[str, Any]:
    """This node's view of the cluster (`GET /v1/cluster/status`)."""
    node = service.node
    st = node.core.status()
    members = member_roles(node, state)
    for row in members:
        progress = st.progress.get(row["id"])
        row["voter"] = row["role"] == "voter"
        row["match"] = progress.match if progress else None  # known on the leader
    return {
        "id": st.id,
        "role": st.role.name.lower(),
        "leader": st.leader,
        "term": st.term,
        "commit": st.commit,
        "applied": node.applied_index,
        "revision": service.machine.revision,
        "members": members,
    }


def shards_doc(service: KVService, state: NodeState) -> dict[str, Any]:
    """The shard map as this node knows it (`GET /v1/cluster/shards`), node ids as
    names. A cluster without a map is one shard, group 0, owning every slot: its
    replicas are the voters, its leader this node's leader, its keys the store's."""
    node = service.node
    metadata = state.shards

    def name(node_id: int) -> str:
        member = state.members.get(node_id)
        return member.name if member is not None else str(node_id)

    if metadata.map is None:
        conf = node.core.conf
        leader = node.leader_id
        return {
            "version": 0,
            "shards": [
                {
                    "id": 0,
                    "slots": [[0, SLOT_COUNT]],
                    "replicas": [name(n) for n in sorted(conf.all_voters())],
                    "learners": [name(n) for n in sorted(conf.learners)],
                    "leader": name(leader) if leader else None,
                    "keys": service.machine.keys_count,
                }
            ],
        }
    hosted = service.shards.services if isinstance(service, ShardedKV) else {}
    rows = []
    for shard in metadata.map:
        # A shard this node holds no replica of: its leader and size are not known here.
        here = hosted.get(shard.id)
        leader = here.group.leader_id if here is not None else 0
        rows.append(
            {
                "id": shard.id,
                "slots": [[r.start, r.stop] for r in shard.ranges],
                "replicas": [name(n) for n in shard.replicas],
                "learners": [name(n) for n in shard.learners],
                "leader": name(leader) if leader else None,
                "keys": here.machine.keys_count if here is not None else None,
                "revision": here.machine.revision if here is not None else None,
                "move": _move_doc(metadata.moves.get(shard.id), name),
            }
        )
    nodes = [
        {"id": n.id, "name": name(n.id), "state": n.state, "labels": dict(n.labels)}
        for n in sorted(metadata.nodes.values(), key=lambda n: n.id)
    ]
    return {"version": metadata.map.version, "shards": rows, "nodes": nodes}


def _move_doc(move: Move | None, name: Callable[[int], str]) -> dict[str, Any] | None:
    """The move under way on a shard: from `source` (null: a replica is added) to
    `target`."""
    if move is None:
        return None
    source = move.source if isinstance(move, MoveReplica) else 0
    return {"source": name(source) if source else None, "target": name(move.target)}


async def lease_ttl_doc(service: ShardedKV, lease_id: int, binary: bool = False) -> dict[str, Any]:
    """A lease's remaining time and keys (of every shard), after a read barrier on
    each; LeaseNotFound if gone."""
    info, deadline_ms = await service.lease_info(lease_id)
    keys = [{"key": k} if binary else text_or_b64("key", k) for k in info.keys]
    # The state machine's clock moves only with commands; an idle cluster's would make
    # the lease look younger than it is. This node's clock tells the time left, from
    # the leader's exact deadline or a follower's lower bound of it.
    remaining_ms = min(info.ttl_ms, max(0, deadline_ms - now_ms()))
    return {
        "id": lease_id,
        "ttl": remaining_ms // 1000,
        "granted_ttl": info.ttl_ms // 1000,
        "keys": keys,
    }
