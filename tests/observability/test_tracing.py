"""Spans of a request: HTTP handler -> raft.propose -> raft.commit -> raft.apply, in
the caller's trace (traceparent), across a follower's forward to the leader."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from opentelemetry.sdk.trace import ReadableSpan

from .inproc import inproc_cluster, wait_for_leader

pytestmark = pytest.mark.asyncio

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    return {s.name: s for s in spans}


def trace_id(span: ReadableSpan) -> str:
    assert span.context is not None
    return format(span.context.trace_id, "032x")


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


async def test_a_write_yields_handler_propose_commit_apply_spans(tmp_path: Path) -> None:
    async with inproc_cluster(tmp_path, 1) as nodes:
        await wait_for_leader(nodes)
        nodes[0].spans.clear()
        async with aiohttp.ClientSession() as http:
            url = f"{nodes[0].url}/v1/kv/traced"
            async with http.put(url, data=b"v", headers={"traceparent": TRACEPARENT}) as r:
                assert r.status == 200
        spans = by_name(nodes[0].spans.get_finished_spans())
        assert {"PUT kv_put", "raft.propose", "raft.commit", "raft.apply"} <= set(spans)
        handler, propose = spans["PUT kv_put"], spans["raft.propose"]
        assert {trace_id(s) for s in spans.values()} == {TRACE_ID}
        assert handler.parent is not None and handler.parent.span_id == 0x00F067AA0BA902B7
        assert propose.parent is not None and propose.parent.span_id == span_id(handler)
        for name in ("raft.commit", "raft.apply"):
            parent = spans[name].parent
            assert parent is not None and parent.span_id == span_id(propose)
        commit, apply = spans["raft.commit"], spans["raft.apply"]
        assert commit.end_time is not None and apply.start_time is not None
        assert commit.end_time <= apply.start_time
        assert handler.attributes is not None
        assert handler.attributes["http.response.status_code"] == 200


async def test_a_forwarded_write_continues_the_trace_on_the_leader(tmp_path: Path) -> None:
    async with inproc_cluster(tmp_path, 3) as nodes:
        leader = await wait_for_leader(nodes)
        follower = next(n for n in nodes if n is not leader)
        for n in nodes:
            n.spans.clear()
        async with aiohttp.ClientSession() as http:
            url = f"{follower.url}/v1/kv/forwarded"
            async with http.put(url, data=b"v", headers={"traceparent": TRACEPARENT}) as r:
                assert r.status == 200, await r.text()
        on_follower = by_name(follower.spans.get_finished_spans())["PUT kv_put"]
        on_leader = by_name(leader.spans.get_finished_spans())
        assert trace_id(on_follower) == TRACE_ID
        assert trace_id(on_leader["PUT kv_put"]) == TRACE_ID
        parent = on_leader["PUT kv_put"].parent
        assert parent is not None and parent.span_id == span_id(on_follower)
        assert trace_id(on_leader["raft.apply"]) == TRACE_ID
