"""The OpenAPI 3.1 description of the HTTP API, served at `/v1/openapi.json`.

Kept by hand next to the handlers (`accord.api.http`); a test checks that every route
the server registers is described here and the other way round. The error codes (and
their statuses) are generated from the error-code table (`accord.errorcodes`).
"""

from __future__ import annotations

from typing import Any

from accord.api.wire import INT_MAX, LEASE_TTL_S_MAX, MEMBER_ID_MAX
from accord.errorcodes import ERROR_CODES
from accord.kv.limits import (
    LEASE_ID_MAX,
    READ_KEYS_SCANNED_MAX,
    RESPONSE_BYTES_MAX,
    RESPONSE_KV_OVERHEAD_BYTES,
    RESPONSE_OP_OVERHEAD_BYTES,
    TXN_COMPARES_MAX,
    TXN_OPS_MAX,
    TXN_RANGE_OPS_MAX,
)
from accord.node.limits import PENDING_READS_MAX

_UINT = {"type": "integer", "minimum": 0, "maximum": INT_MAX}
"""Every integer the server reads is in 0..2^63-1 (narrower where a field says so)."""
_ERROR = {
    "description": "error",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
_UNAVAILABLE = {
    "description": "not_leader: no leader is known, or a write reached a follower that "
    "could not forward it (error.leader names the leader when known); proposal_dropped: "
    "the write was not applied, retry; too_many_pending_reads: a linearizable read (or a "
    "lease keepalive) found the node's pending_reads_max reads already waiting (default "
    f"{PENDING_READS_MAX:,}), refused at once with nothing read: retry later or read from "
    "another node",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
_KEY_PARAM = {
    "name": "key",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "the key, percent-encoded: escapes decode to raw bytes (%FF is the "
    "byte 0xff, not text), as in the key, range_end and prefix query parameters",
}
_CONSISTENCY = {
    "name": "consistency",
    "in": "query",
    "schema": {"type": "string", "enum": ["linearizable", "serializable"]},
    "description": "linearizable (default) confirms leadership first (503 "
    "too_many_pending_reads when the node's pending_reads_max reads already wait); "
    "serializable reads this node's local state at once, possibly stale",
}
_LEASE_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1, "maximum": LEASE_ID_MAX},
    "description": "a lease id (0 names no lease: 400)",
}
_MEMBER_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1, "maximum": MEMBER_ID_MAX},
}
_REVISION = {
    "name": "revision",
    "in": "query",
    "schema": _UINT,
    "description": "read the store as of this revision (0 or absent: the current one)",
}


_TOO_LARGE = {
    "description": "response_too_large: the answer would exceed the node's "
    f"response_bytes_max (default {RESPONSE_BYTES_MAX >> 20} MiB; key and value bytes "
    f"plus {RESPONSE_KV_OVERHEAD_BYTES} per key-value and {RESPONSE_OP_OVERHEAD_BYTES} "
    "per op); nothing was applied. error.keys key-values of op error.op fit: ask that "
    "range with a limit of at most that many and continue from the key after the last "
    "one returned while more is true. limit_exceeded: a request's reads visited more than "
    f"read_keys_scanned_max keys (default {READ_KEYS_SCANNED_MAX:,}), a transaction "
    f"branch has more than {TXN_RANGE_OPS_MAX} range ops, or another documented bound",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}


def error_code_schema(*, auth: bool) -> dict[str, Any]:
    """The `code` of an error answer: every code of the error-code table (those of auth
    only when `auth`), with its status and meaning."""
    rows = [row for row in ERROR_CODES.values() if auth or not row.auth]
    lines = [
        f"- {row.code} ({row.status}{', retryable' if row.retryable else ''}): {row.description}"
        for row in rows
    ]
    return {
        "type": "string",
        "enum": [row.code for row in rows],
        "description": "what went wrong (status, whether the same request may be sent "
        "again, meaning):\n" + "\n".join(lines),
    }


def _json(schema: str) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


_MEMBERSHIP_CHANGE = (
    "Membership changes go through Raft's joint consensus. A voter change answers once "
    "it is wholly in effect (the joint configuration left); one change runs at a time: "
    "another meanwhile gets 503 proposal_dropped."
)


def _responses(ok: dict[str, Any], *errors: int) -> dict[str, Any]:
    """`ok` and the error statuses (default: every one an API call may answer: 400 bad
    input, unknown query parameter; 404; 405 with Allow; 408 body too slow; 413 a
    request over the size limit; 429 a rate limit or a full table, e.g.
    too_many_sessions for a new client id; 503 no leader or too many pending reads; 504
    outcome unknown)."""
    responses: dict[str, Any] = {"200": ok}
    for status in errors or (400, 404, 405, 408, 413, 429, 503, 504):
        responses[str(status)] = _UNAVAILABLE if status == 503 else _ERROR
    return responses


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


_KEY_FIELDS = {
    "key": {"type": "string"},
    "key_b64": {"type": "string", "contentEncoding": "base64"},
    "range_end": {"type": "string"},
    "range_end_b64": {"type": "string", "contentEncoding": "base64"},
}
_PUT_OP = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        **{k: v for k, v in _KEY_FIELDS.items() if k.startswith("key")},
        "value": {"type": "string"},
        "value_b64": {"type": "string", "contentEncoding": "base64"},
        "lease": _UINT,
    },
}
_GET_OP = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        **{k: v for k, v in _KEY_FIELDS.items() if k.startswith("key")},
        "revision": _UINT,
    },
}
_RANGE_OP = {
    "type": "object",
    "additionalProperties": False,
    "properties": {**_KEY_FIELDS, "revision": _UINT, "limit": _UINT},
}
_DELETE_OP = {"type": "object", "additionalProperties": False, "properties": _KEY_FIELDS}
_TXN_OP = {
    "type": "object",
    "description": "exactly one of put, get, delete, range",
    "minProperties": 1,
    "maxProperties": 1,
    "additionalProperties": False,
    "properties": {"put": _PUT_OP, "get": _GET_OP, "delete": _DELETE_OP, "range": _RANGE_OP},
}
_COMPARE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["target", "op"],
    "description": "value compares bytes (value or value_b64); the other targets an "
    "integer in 0..2^63-1",
    "properties": {
        "key": {"type": "string"},
        "key_b64": {"type": "string", "contentEncoding": "base64"},
        "target": {"enum": ["value", "version", "create_revision", "mod_revision"]},
        "op": {"enum": ["==", "!=", "<", ">"]},
        "value": {"oneOf": [{"type": "string"}, _UINT]},
        "value_b64": {"type": "string", "contentEncoding": "base64"},
    },
}


_KV = {
    "type": "object",
    "properties": {
        "key": {"type": "string"},
        "key_b64": {"type": "string"},
        "value": {"type": "string"},
        "value_b64": {"type": "string"},
        "create_revision": {"type": "integer"},
        "mod_revision": {"type": "integer"},
        "version": {"type": "integer"},
        "lease": {"type": "integer"},
    },
}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": error_code_schema(auth=False),
                    "message": {"type": "string"},
                    "leader": {"type": "object", "description": "present with code not_leader"},
                    "op": {
                        "type": "integer",
                        "description": "response_too_large: the op (0-based) where counting "
                        "stopped; 0 for a range",
                    },
                    "keys": {
                        "type": "integer",
                        "description": "response_too_large: key-values of that op that fit",
                    },
                    "limit_bytes": {
                        "type": "integer",
                        "description": "response_too_large: the node's response_bytes_max",
                    },
                },
            }
        },
    },
    "KeyValue": _KV,
    "PutResult": {"type": "object", "properties": {"revision": {"type": "integer"}}},
    "DeleteResult": {
        "type": "object",
        "properties": {"revision": {"type": "integer"}, "deleted": {"type": "integer"}},
    },
    "RangeResult": {
        "type": "object",
        "properties": {
            "revision": {"type": "integer"},
            "count": {
                "type": "integer",
                "description": "every key in the range at this revision, whatever the limit",
            },
            "more": {
                "type": "boolean",
                "description": "the limit left keys out: continue from the key after the "
                "last one in kvs (and at this revision, for a consistent view)",
            },
            "kvs": {"type": "array", "items": _KV},
            "revisions": {
                "type": "object",
                "additionalProperties": {"type": "integer"},
                "description": "a sharded cluster's range over several shards: shard id "
                "-> the revision its part was read at (each shard counts its own)",
            },
        },
    },
    "Txn": {
        "type": "object",
        "description": "a JSON object (an empty body is 400; {} is an empty transaction)",
        "additionalProperties": False,
        "properties": {
            "compare": {"type": "array", "items": _COMPARE, "maxItems": TXN_COMPARES_MAX},
            "success": {"type": "array", "items": _TXN_OP, "maxItems": TXN_OPS_MAX},
            "failure": {"type": "array", "items": _TXN_OP, "maxItems": TXN_OPS_MAX},
        },
    },
    "TxnResult": {
        "type": "object",
        "properties": {
            "succeeded": {"type": "boolean"},
            "revision": {"type": "integer"},
            "responses": {"type": "array", "items": {"type": "object"}},
        },
    },
    "Lease": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "ttl": {"type": "integer"},
            "granted_ttl": {"type": "integer"},
            "keys": {"type": "array"},
        },
    },
    "Status": {
        "type": "object",
        "properties": {
            "leader": {"type": "integer"},
            "members": {"type": "array", "items": {"type": "object"}},
        },
    },
    "Shards": {
        "type": "object",
        "required": ["version", "shards"],
        "properties": {
            "version": {"type": "integer", "minimum": 0},
            "shards": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "slots", "replicas", "leader", "keys"],
                    "properties": {
                        "id": {"type": "integer", "minimum": 0},
                        "slots": {
                            "type": "array",
                            "items": {"type": "array", "items": {"type": "integer"}},
                        },
                        "replicas": {"type": "array", "items": {"type": "string"}},
                        "learners": {"type": "array", "items": {"type": "string"}},
                        "leader": {"type": ["string", "null"]},
                        "keys": {"type": ["integer", "null"]},
                        "revision": {"type": ["integer", "null"]},
                        "move": {
                            "type": ["object", "null"],
                            "description": "the replica move under way (source null: a "
                            "replica is added)",
                            "properties": {
                                "source": {"type": ["string", "null"]},
                                "target": {"type": "string"},
                            },
                        },
                    },
                },
            },
            "nodes": {
                "type": "array",
                "description": "every node the shard metadata knows: its state (up, down: "
                "not answering for node_down_after_s, leaving: no longer a member) and labels",
                "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "integer"},
                        "name": {"type": "string"},
                        "state": {"enum": ["up", "down", "leaving"]},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    },
                },
            },
        },
    },
    "MetadataResult": {
        "type": "object",
        "properties": {
            "ok": {"type": "boolean"},
            "version": {"type": "integer", "description": "the map version after it"},
            "error": {
                "type": ["string", "null"],
                "enum": [
                    None,
                    "stale_map",
                    "bad_command",
                    "already_bootstrapped",
                    "no_map",
                    "rejected",
                ],
            },
            "detail": {"type": "string"},
        },
    },
}

_SHARD_HEADER = {
    "X-Accord-Shard": {
        "description": "a sharded cluster: the shard that answered (absent when a range "
        "or watch spans several shards, and on a cluster of one group)",
        "schema": {"type": "string"},
    }
}
_PINNED = (
    "A node's call over shards pins the request to one shard with the headers "
    "X-Accord-Shard: ID and X-Accord-Forwarded: 1 (and, for a grant, X-Accord-Lease-Id: "
    "the lease's id, the same on every shard); the caller's credentials go with it and "
    "are checked again."
)


def spec() -> dict[str, Any]:
    kv_item = {
        "put": {
            "summary": "Write a value (the raw request body)",
            "parameters": [
                _KEY_PARAM,
                {
                    "name": "lease",
                    "in": "query",
                    "schema": _UINT,
                    "description": "attach the key to this lease (0 or absent: none)",
                },
            ],
            "requestBody": {
                "content": {
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
                }
            },
            "responses": _responses(
                {"description": "written", **_json("PutResult"), "headers": _SHARD_HEADER}
            ),
        },
        "get": {
            "summary": "Read a value: the raw body; metadata in X-Accord-* headers",
            "parameters": [_KEY_PARAM, _CONSISTENCY, _REVISION],
            "responses": _responses(
                {
                    "description": "the value",
                    "headers": _SHARD_HEADER,
                    "content": {
                        "application/octet-stream": {
                            "schema": {"type": "string", "format": "binary"}
                        }
                    },
                }
            ),
        },
        "delete": {
            "summary": "Delete a key",
            "parameters": [_KEY_PARAM],
            "responses": _responses(
                {"description": "deleted", **_json("DeleteResult"), "headers": _SHARD_HEADER}
            ),
        },
    }
    range_params = [
        {"name": "key", "in": "query", "schema": {"type": "string"}},
        {"name": "range_end", "in": "query", "schema": {"type": "string"}},
        {"name": "prefix", "in": "query", "schema": {"type": "string"}},
        {"name": "limit", "in": "query", "schema": _UINT},
        {"name": "count_only", "in": "query", "schema": {"type": "boolean"}},
        _CONSISTENCY,
        _REVISION,
    ]
    start_revision = {"name": "start_revision", "in": "query", "schema": _UINT}
    start_revisions = {
        "name": "start_revisions",
        "in": "query",
        "schema": {"type": "string", "pattern": "^[0-9]+:[0-9]+(,[0-9]+:[0-9]+)*$"},
        "description": "a sharded cluster: SHARD:REVISION,... resumes each shard's part "
        "of the watch from its own revision (events carry their shard)",
    }
    watch_params = [*range_params[:3], start_revision, start_revisions]
    return {
        "openapi": "3.1.0",
        "info": {"title": "Accord HTTP API", "version": "1"},
        "paths": {
            "/v1/kv/{key}": kv_item,
            "/v1/range": {
                "get": {
                    "summary": "Read a range or prefix of keys",
                    "parameters": range_params,
                    "responses": {
                        **_responses(
                            {
                                "description": "keys",
                                **_json("RangeResult"),
                                "headers": _SHARD_HEADER,
                            }
                        ),
                        "413": _TOO_LARGE,
                    },
                }
            },
            "/v1/txn": {
                "post": {
                    "summary": "Compare, then apply success or failure ops",
                    "requestBody": {"required": True, **_json("Txn")},
                    "responses": {
                        **_responses(
                            {
                                "description": "outcome",
                                **_json("TxnResult"),
                                "headers": _SHARD_HEADER,
                            }
                        ),
                        "413": _TOO_LARGE,
                    },
                }
            },
            "/v1/watch": {
                "get": {
                    "summary": "Stream of events (JSON lines) on a key, range or prefix",
                    "description": "Each line holds whole revisions, at most "
                    "response_bytes_max of events. A watcher that falls that far behind is "
                    "ended with a watch_cancelled line naming the revision to resume from; "
                    "a revision whose events alone are over the bound (live or in a catch-up "
                    "from start_revision) ends it with a response_too_large line. On a "
                    "sharded cluster a watch over several shards merges their streams: "
                    "each event has a shard field, and its revisions are that shard's.",
                    "parameters": watch_params,
                    "responses": _responses(
                        {"description": "application/x-ndjson stream"}, 400, 403, 410, 429
                    ),
                }
            },
            "/v1/lease/grant": {
                "post": {
                    "summary": 'Grant a lease: body {"ttl": seconds}; 429 too_many_leases '
                    "beyond leases_max or the user's leases_per_user_max",
                    "description": "On a sharded cluster a lease lives on every shard, with "
                    "the same id. " + _PINNED,
                    "requestBody": _body(
                        {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["ttl"],
                            "properties": {
                                "ttl": {
                                    "type": "integer",
                                    "minimum": 1,
                                    "maximum": LEASE_TTL_S_MAX,
                                }
                            },
                        }
                    ),
                    "responses": _responses(
                        {"description": "granted", **_json("Lease")},
                        400,
                        404,
                        405,
                        408,
                        413,
                        429,
                        503,
                        504,
                    ),
                }
            },
            "/v1/lease/{id}": {
                "get": {
                    "summary": "Time to live and keys of a lease",
                    "parameters": [_LEASE_ID],
                    "responses": _responses({"description": "lease", **_json("Lease")}),
                },
                "delete": {
                    "summary": "Revoke a lease and delete its keys: "
                    '{"revision", "deleted": keys deleted}',
                    "description": _PINNED,
                    "parameters": [_LEASE_ID],
                    "responses": _responses({"description": "revoked", **_json("DeleteResult")}),
                },
            },
            "/v1/lease/{id}/keepalive": {
                "post": {
                    "summary": "Refresh a lease",
                    "description": "Answered by the leader from memory, without a log "
                    "entry (a follower forwards it); session headers are ignored. 404 once "
                    "the lease's deadline has passed, or for another user's lease.",
                    "parameters": [_LEASE_ID],
                    "responses": _responses({"description": "refreshed", **_json("Lease")}),
                }
            },
            "/v1/members": {
                "get": {
                    "summary": "Members with their role (voter, learner) and addresses",
                    "responses": _responses({"description": "members"}),
                },
                "post": {
                    "summary": "Add a member (a learner unless voter is true): body "
                    "{id, name, peer, client, native (optional), voter}",
                    "description": _MEMBERSHIP_CHANGE,
                    "requestBody": _body(
                        {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["id", "name", "peer", "client"],
                            "properties": {
                                "id": {"type": "integer", "minimum": 1, "maximum": MEMBER_ID_MAX},
                                "name": {"type": "string"},
                                "peer": {"type": "string", "description": "host:port"},
                                "client": {"type": "string", "description": "host:port"},
                                "native": {"type": "string", "description": "host:port"},
                                "voter": {"type": "boolean"},
                            },
                        }
                    ),
                    "responses": _responses({"description": "members"}),
                },
            },
            "/v1/members/{id}": {
                "delete": {
                    "summary": "Remove a member (the leader too)",
                    "description": _MEMBERSHIP_CHANGE,
                    "parameters": [_MEMBER_ID],
                    "responses": _responses({"description": "members"}),
                }
            },
            "/v1/members/{id}/promote": {
                "post": {
                    "summary": "Promote a learner to voter",
                    "description": _MEMBERSHIP_CHANGE,
                    "parameters": [_MEMBER_ID],
                    "responses": _responses({"description": "members"}),
                }
            },
            "/v1/cluster/status": {
                "get": {
                    "summary": "Members, roles, terms, indexes",
                    "responses": _responses({"description": "status", **_json("Status")}, 503),
                }
            },
            "/v1/cluster/shards": {
                "get": {
                    "summary": "The shard map: each shard's slot ranges [start, stop), "
                    "replicas and leader (node names) and keys; version 0 and one shard, "
                    "id 0, owning every slot, while the cluster is one Raft group",
                    "responses": _responses({"description": "shards", **_json("Shards")}),
                }
            },
            "/v1/cluster/shards/{id}/move": {
                "post": {
                    "summary": "Move a replica of a shard (root): body {target: node id, "
                    "source: node id (absent: add a replica)}",
                    "description": "Recorded by the metadata group's leader against its "
                    "current map (a follower forwards it); the shard's leader carries it "
                    "out: the target joins as a learner, catches up, and one joint change "
                    "promotes it and removes the source. GET /v1/cluster/shards shows the "
                    "move under way, then the new replicas. 409 shard_change_refused: a "
                    "move of the shard is under way, the target holds a replica already, "
                    "the source holds none, no such shard, or the map changed meanwhile.",
                    "parameters": [
                        {
                            "name": "id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "integer", "minimum": 1},
                        }
                    ],
                    "requestBody": _body(
                        {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["target"],
                            "properties": {
                                "target": {"type": "integer", "minimum": 1},
                                "source": {"type": "integer", "minimum": 0},
                            },
                        }
                    ),
                    "responses": {
                        **_responses({"description": "the move is recorded"}),
                        "409": _ERROR,
                    },
                }
            },
            "/v1/cluster/shards/metadata": {
                "post": {
                    "summary": "One shard metadata command (root; what the nodes' shard "
                    "executors send the metadata leader): body {op, args}",
                    "description": "Internal: the nodes' channel to their metadata "
                    "leader. op is node, move, moved or members (docs/sharding.md has "
                    "their arguments; anything else is 400); the metadata state machine "
                    "checks each in full and answers a refusal in the result, applied alike "
                    "on every replica.",
                    "requestBody": _body(
                        {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["op", "args"],
                            "properties": {"op": {"type": "string"}, "args": {"type": "array"}},
                        }
                    ),
                    "responses": _responses({"description": "result", **_json("MetadataResult")}),
                }
            },
            "/health": {
                "get": {
                    "summary": "Liveness: 200 while the process and its event loop answer",
                    "responses": _responses({"description": "alive"}, 503),
                }
            },
            "/ready": {
                "get": {
                    "summary": "Readiness: 200 when this member knows a leader and has applied "
                    "nearly all it knows committed; else 503 with the reason as the error code "
                    "(no_leader, catching_up, failed)",
                    "responses": _responses({"description": "ready"}, 503),
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics of this node (text exposition format)",
                    "responses": {
                        "200": {
                            "description": "metrics",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/": {
                "get": {
                    "summary": "The dashboard: a self-contained HTML page polling every member",
                    "responses": {
                        "200": {
                            "description": "dashboard",
                            "content": {"text/html": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/v1/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {"200": {"description": "OpenAPI"}},
                }
            },
        },
        "components": {"schemas": SCHEMAS},
    }
