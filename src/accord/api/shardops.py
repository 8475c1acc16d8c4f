"""Changing the shard map over HTTP, and the calls a node's shard executor makes to
other nodes (`accord.node.executor.RemoteMetadata`).

    POST /v1/cluster/shards/{id}/move   {"target": ID, "source": ID}  move a replica
                                        (no "source": add one) → {"version", "move"}
    POST /v1/cluster/shards/metadata    {"op", "args"}  one metadata command, as the
                                        executors send it → {"ok", "version", "error",
                                        "detail"}; internal: the nodes' channel to
                                        their metadata leader, not an operator's tool

Both are root-only (the guard's default for a route it has no rule for) and are
answered by the metadata group's leader: a follower forwards them there. A move is
recorded in the metadata against the leader's current map; the shard's leader then
carries it out (learner, catch-up, joint swap) and `GET /v1/cluster/shards` shows the
new members once it is done. A refusal is 409 `shard_change_refused`, with the
metadata group's reason.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import web

from accord.api.wire import BadRequest, int_field, only_fields, parse_json, parse_uint
from accord.errors import NotLeader, ShardChangeRefused
from accord.node.members import NodeState
from accord.node.registry import ShardCommand, encode
from accord.node.runtime import Node
from accord.shard.metadata import MetadataResult, encode_metadata_command
from accord.shard.shardmap import GROUP_ID_MAX

METADATA_PATH = "/v1/cluster/shards/metadata"
EXECUTOR_OPS = frozenset({"node", "move", "moved", "members"})
"""The metadata commands a node's executor sends another node. Not `bootstrap`: only
the metadata leader itself proposes the first map, so no call can turn a cluster of
one group into a sharded one."""
PROBE_PATH = "/health"


class ShardOperations:
    def __init__(
        self,
        node: Node,
        state: NodeState,
        peer_client: Callable[[], aiohttp.ClientSession],
        forwarded_header: str,
    ) -> None:
        self.node = node
        self.state = state
        self._peer_client = peer_client
        self._forwarded = forwarded_header
        self.authorization: Callable[[], str] = lambda: ""
        """This node's credentials for its own calls (set by the security layer)."""

    # --- routes ---------------------------------------------------------------------------
    async def move(self, request: web.Request) -> web.Response:
        shard = parse_uint(request.match_info["id"], "id", minimum=1)
        body = only_fields(parse_json(await request.read() or b"{}"), {"source", "target"}, "body")
        target = int_field(body, "target", minimum=1, maximum=GROUP_ID_MAX)
        source = int_field(body, "source", minimum=0, maximum=GROUP_ID_MAX)
        if not self.node.is_leader:  # decided against the current map: the leader's
            raise NotLeader(self.node.leader_id)
        await self.node.read_barrier()  # and all it has committed applied first
        unknown = [n for n in (source, target) if n and n not in self.state.members]
        if unknown:
            raise ShardChangeRefused(f"no member of the cluster has id {unknown[0]}")
        result = await self._propose("move", self.state.shards.version, shard, source, target)
        if not result.ok:
            raise ShardChangeRefused(
                f"{result.error}: {result.detail} (map version {result.version})"
            )
        move = {"shard": shard, "source": source or None, "target": target}
        return web.json_response({"version": result.version, "move": move})

    async def metadata(self, request: web.Request) -> web.Response:
        body = only_fields(parse_json(await request.read() or b"{}"), {"op", "args"}, "body")
        if not isinstance(body.get("op"), str) or not isinstance(body.get("args"), list):
            raise BadRequest('the body is {"op": string, "args": [...]}')
        if body["op"] not in EXECUTOR_OPS:
            raise BadRequest(f"op must be one of {', '.join(sorted(EXECUTOR_OPS))}")
        # The metadata state machine checks the command in full (and refuses a bad
        # one as `bad_command`, alike on every replica): nothing to check twice here.
        result = await self._propose(body["op"], *body["args"])
        return web.json_response(_result_doc(result))

    async def _propose(self, op: str, *args: Any) -> MetadataResult:
        command = ShardCommand(encode_metadata_command(op, *args))
        result: MetadataResult = await self.node.propose(encode(command))
        return result

    # --- calls to other nodes (RemoteMetadata) --------------------------------------------
    async def propose_metadata(self, leader: int, op: str, args: list[Any]) -> MetadataResult:
        headers = {self._forwarded: "1", "Content-Type": "application/json"}
        authorization = self.authorization()
        if authorization:
            headers["Authorization"] = authorization
        url = self._url(leader) + METADATA_PATH
        body = json.dumps({"op": op, "args": args}).encode()
        try:
            async with self._peer_client().post(url, data=body, headers=headers) as answer:
                doc = json.loads(await answer.read())
        except (aiohttp.ClientError, TimeoutError, ValueError) as e:
            raise NotLeader(0, f"metadata leader {leader} not answering: {e}") from e
        try:
            if answer.status != 200:
                raise ValueError(f"status {answer.status}")
            error = doc.get("error")
            return MetadataResult(
                doc["ok"] is True,
                int(doc["version"]),
                str(error) if error else None,
                str(doc.get("detail", "")),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise NotLeader(0, f"metadata leader {leader} answered {doc!r:.200}: {e}") from e

    async def probe(self, node: int) -> bool:
        try:
            async with self._peer_client().get(self._url(node) + PROBE_PATH) as answer:
                return answer.status == 200
        except (aiohttp.ClientError, TimeoutError, NotLeader):
            return False

    def _url(self, node: int) -> str:
        member = self.state.members.get(node)
        if member is None:
            raise NotLeader(0, f"no address for node {node}")
        return member.client_url


def _result_doc(result: MetadataResult) -> dict[str, Any]:
    return {
        "ok": result.ok,
        "version": result.version,
        "error": result.error,
        "detail": result.detail,
    }
