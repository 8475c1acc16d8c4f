"""One shard's part of a merged watch, read from another node's `GET /v1/watch`.

A node serving a watch over shards it holds no replica of opens the part of each
such shard on a node that does, pinned to that shard (`X-Accord-Shard` with
`X-Accord-Forwarded`) and with the watcher's own credentials, so that node's guard
checks them again. `open_remote_watch` returns once the other node has answered
200 (its watch is open then), and yields that shard's batches of events, decoded
back from the JSON lines. A line is bounded as the clients bound it
(`HTTP_WATCH_LINE_BYTES_MAX`: the largest batch a node may send). The stream's end,
a broken connection, an oversized or undecodable line all end it with `NotLeader`
(retryable: the watcher resumes each shard from its own revision), and an error
line with that error.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any
from urllib.parse import quote_from_bytes

import aiohttp
from yarl import URL

from accord.api.limits import HTTP_WATCH_LINE_BYTES_MAX
from accord.api.wire import RemoteError, key_value_from_doc
from accord.errors import AccordError, NotLeader
from accord.kv.types import Event, EventType

STREAM_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=None)
"""A watch stream lasts as long as the watcher's: only connecting is bounded."""


async def open_remote_watch(
    session: aiohttp.ClientSession,
    base_url: str,
    headers: dict[str, str],
    what: str,
    key: bytes,
    range_end: bytes,
    start_revision: int,
) -> AsyncGenerator[list[Event], None]:
    query = f"key={quote_from_bytes(key, safe='')}&start_revision={start_revision}"
    if range_end:
        query += f"&range_end={quote_from_bytes(range_end, safe='')}"
    url = URL(f"{base_url}/v1/watch?{query}", encoded=True)
    try:
        response = await session.get(url, headers=headers, timeout=STREAM_TIMEOUT)
    except (aiohttp.ClientError, TimeoutError) as e:
        raise NotLeader(0, f"cannot open the watch of {what}: {e}") from e
    if response.status != 200:
        try:
            doc = json.loads(await response.read())
        except (aiohttp.ClientError, ValueError):
            doc = {}
        finally:
            response.release()
        raise error_of_answer(doc, f"{what} answered {response.status}")
    return _batches(response, what)


async def _batches(
    response: aiohttp.ClientResponse, what: str
) -> AsyncGenerator[list[Event], None]:
    buffer = b""
    try:
        async for chunk in response.content.iter_any():
            *lines, buffer = (buffer + chunk).split(b"\n")
            for line in lines:
                yield _decode_line(line, what)
            if len(buffer) > HTTP_WATCH_LINE_BYTES_MAX:
                raise NotLeader(0, f"the watch of {what} sent a line over the limit")
    except (aiohttp.ClientError, TimeoutError) as e:
        raise NotLeader(0, f"the watch of {what} broke: {e}") from e
    finally:
        response.close()
    raise NotLeader(0, f"the watch of {what} ended")


def _decode_line(line: bytes, what: str) -> list[Event]:
    try:
        doc = json.loads(line)
        if "error" in doc:
            raise error_of_answer(doc, f"{what} ended the watch")
        return [_event(item) for item in doc["events"]]
    except (ValueError, KeyError, TypeError) as e:
        raise NotLeader(0, f"the watch of {what} sent an undecodable line: {e}") from e


def error_of_answer(doc: Any, fallback: str) -> AccordError:
    """The typed error another node's error answer names (`not_leader` with its hint)."""
    error = doc.get("error") if isinstance(doc, dict) else None
    if not isinstance(error, dict):
        return NotLeader(0, fallback)
    if error.get("code") == "not_leader":
        hint = (error.get("leader") or {}).get("id", 0)
        return NotLeader(hint if isinstance(hint, int) else 0, str(error.get("message")))
    return RemoteError(str(error.get("code")), str(error.get("message")))


def _event(doc: dict[str, Any]) -> Event:
    prev = doc.get("prev_kv")
    return Event(
        EventType[str(doc["type"]).upper()],
        key_value_from_doc(doc["kv"]),
        key_value_from_doc(prev) if prev else None,
    )
