"""`Watch`: an iterator of events that survives failures of the node it reads from.

Theory of operation
-------------------
`GET /v1/watch?...&start_revision=R` streams JSON lines, each a batch of events in
revision order (the native protocol's `watch` streams the same batches as frames); a
batch always holds whole revisions (the server's `WatchHub` never splits one). The
watch therefore keeps a single cursor, `next_revision`: every event below it has been
handed to the caller exactly once, none at or above it. As events are handed out, the
cursor moves past a revision with the last event of it.

When the stream breaks — the node died (connection reset or closed), the node
stopped (clean end of stream), the server cancelled the watcher because the reader
fell behind (`watch_cancelled`), or the stream was silent for
`WATCH_PROBE_INTERVAL_S` and the node then failed a `/ready` probe — the watch
opens a new stream at `start_revision=next_revision` on another endpoint (round
robin, skipping open breakers), after a backoff with full jitter. Events are only
produced from committed entries, so another node's history agrees with the old one,
and the caller sees every event once and in order across any number of failures.

A watch created without a start revision first makes a linearizable read of the
range to learn the current revision R and starts at R + 1, so it has a definite
cursor from the beginning.

On a sharded cluster revisions are per shard, and a watch over several shards
merges their streams: each batch comes from one shard and names it. The watch then
keeps a cursor per shard (`next_revisions`, started from the `revisions` the first
read reports) and resumes with `start_revisions=SHARD:REVISION,...`.

A watch that cannot reach any node for `reconnect_timeout_s` raises `Unavailable`;
`Compacted` (the cursor fell behind a compaction) and other final errors are raised
as they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, Awaitable, Callable
from types import TracebackType

import aiohttp

from accord.api.limits import HTTP_WATCH_LINE_BYTES_MAX
from accord.client._connection import READY_REQUEST, Connection, Request
from accord.client.errors import ServerError, Unavailable, error_from_answer
from accord.client.limits import DISCOVERY_TIMEOUT_S
from accord.client.policy import EndpointFailure, NoEndpoint
from accord.client.results import BadAnswer, decode_event
from accord.kv.types import Event

SILENT = "watch stream silent and node not ready"

ShardBatch = tuple[int, list[Event]]
"""A batch of a watch stream: the shard it is from (0: none named), its events."""


class _Resume(Exception):
    """The server ended the watcher but the watch can go on from its cursor."""


class Watch:
    """Async iterator of `Event`s; also an async context manager that closes it."""

    def __init__(
        self,
        connection: Connection,
        query: str,
        start_revision: int,
        *,
        key_range: tuple[bytes, bytes],
        current_revision: Callable[[], Awaitable[tuple[int, dict[int, int]]]],
        reconnect_timeout_s: float,
        probe_interval_s: float,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._conn = connection
        self._query = query
        self._key_range = key_range
        self.next_revision = start_revision
        """Every event below this revision has been handed out, none at or above it:
        the `start_revision` that would continue this watch exactly."""
        self.next_revisions: dict[int, int] = {}
        """The same cursor per shard, for a watch whose events name their shard."""
        self.endpoint: str | None = None
        """The endpoint the watch currently reads from."""
        self._current_revision = current_revision
        self._reconnect_timeout_s = reconnect_timeout_s
        self._probe_interval_s = probe_interval_s
        self._sleep = sleep
        self._events: AsyncGenerator[Event, None] | None = None
        self._ok_at = 0.0
        """When a stream last opened or delivered a batch."""
        self._closed = False

    def __aiter__(self) -> Watch:
        return self

    async def __anext__(self) -> Event:
        if self._closed:
            raise StopAsyncIteration
        if self._events is None:
            self._events = self._run()
        return await self._events.__anext__()

    async def aclose(self) -> None:
        self._closed = True
        if self._events is not None:
            await self._events.aclose()

    async def __aenter__(self) -> Watch:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # --- the resuming loop -------------------------------------------------------------
    async def _run(self) -> AsyncGenerator[Event, None]:
        await self._conn.ensure_discovered(DISCOVERY_TIMEOUT_S)  # to know where to resume
        if self.next_revision == 0:
            revision, per_shard = await self._current_revision()
            self.next_revision = revision + 1
            self.next_revisions = {shard: rev + 1 for shard, rev in per_shard.items()}
        clock = self._conn.clock
        self._ok_at = failed_at = clock()
        failures, avoid = 0, None
        cancelled_at: tuple[int, tuple[tuple[int, int], ...]] | None = None
        while True:
            wait_s = 0.0
            try:
                url = self._conn.endpoints.pick(leader=False, avoid=avoid)
                async with contextlib.aclosing(self._stream(url)) as batches:
                    async for shard, batch in batches:
                        for i, event in enumerate(batch):
                            # Whole revisions only: past R once R's last event is out.
                            last = i + 1 == len(batch) or batch[i + 1].revision > event.revision
                            cursor = event.revision + 1 if last else event.revision
                            if shard:
                                self.next_revisions[shard] = cursor
                            else:
                                self.next_revision = cursor
                            yield event
                avoid = url  # a clean end: the node is stopping
            except NoEndpoint as e:
                wait_s = max(e.retry_at - clock(), 0.0)
            except EndpointFailure as e:
                avoid = e.url
            except _Resume as e:
                if cancelled_at == self._cursor():  # no progress since the last one
                    raise ServerError(str(e), code="watch_cancelled") from e
                cancelled_at, avoid = self._cursor(), None
            self.endpoint = None
            if self._ok_at > failed_at:
                failures = 0  # a stream worked since the last failure
            failed_at = clock()
            if failed_at - self._ok_at > self._reconnect_timeout_s:
                raise Unavailable(
                    f"the watch found no endpoint to resume on for {self._reconnect_timeout_s:g}s"
                )
            await self._sleep(max(wait_s, self._conn.retrier.delay_s(failures)))
            failures += 1

    def _cursor(self) -> tuple[int, tuple[tuple[int, int], ...]]:
        return self.next_revision, tuple(sorted(self.next_revisions.items()))

    def _start(self) -> str:
        """Where a stream resumes: per shard once events named their shards."""
        if self.next_revisions:
            pairs = ",".join(f"{s}:{r}" for s, r in sorted(self.next_revisions.items()))
            return f"start_revisions={pairs}"
        return f"start_revision={self.next_revision}"

    async def _stream(self, url: str) -> AsyncGenerator[ShardBatch, None]:
        """The batches of one stream from `url`, from the cursor on, each with the
        shard it is from (0: a cluster of one group)."""
        if self._conn.native:
            async with contextlib.aclosing(self._native_stream(url)) as batches:
                async for batch in batches:
                    yield batch
            return
        target = f"/v1/watch?{self._query}&{self._start()}"
        timeout_s = self._conn.policy.attempt_timeout_s
        async with self._conn.stream(url, Request("GET", target), timeout_s) as response:
            self.endpoint = url
            self._ok_at = self._conn.clock()
            async with contextlib.aclosing(self._lines(url, response)) as lines:
                async for line in lines:
                    self._ok_at = self._conn.clock()
                    batch = _parse_line(url, line)
                    if batch[1]:
                        yield batch

    async def _lines(
        self, url: str, response: aiohttp.ClientResponse
    ) -> AsyncGenerator[bytes, None]:
        """The stream's complete lines; a partial last line is dropped (its events
        are read again on resumption)."""
        buffer = bytearray()
        while True:
            try:
                async with asyncio.timeout(self._probe_interval_s):
                    chunk = await response.content.readany()
            except TimeoutError:
                if await self._alive(url):
                    continue
                self._conn.endpoints.failed(url)
                raise EndpointFailure(url, SILENT) from None
            except (aiohttp.ClientError, OSError) as e:
                self._conn.endpoints.failed(url)
                raise EndpointFailure(url, f"watch stream broken: {e!r}") from e
            if not chunk:
                return
            buffer += chunk
            while (end := buffer.find(b"\n")) >= 0:
                line = bytes(buffer[:end])
                del buffer[: end + 1]
                yield line
            if len(buffer) > HTTP_WATCH_LINE_BYTES_MAX:
                raise BadAnswer(f"{url} sent a watch line over {HTTP_WATCH_LINE_BYTES_MAX} bytes")

    async def _native_stream(self, url: str) -> AsyncGenerator[ShardBatch, None]:
        key, range_end = self._key_range
        args: dict[str, object] = {"key": key, "range_end": range_end}
        if self.next_revisions:
            # Map keys are strings on the wire (the server decodes strictly).
            args["start_revisions"] = {str(s): r for s, r in self.next_revisions.items()}
        else:
            args["start_revision"] = self.next_revision
        request = Request("GET", "", native=("watch", args))
        timeout_s = self._conn.policy.attempt_timeout_s
        async with self._conn.native_stream(url, request, timeout_s) as answers:
            self.endpoint = url
            self._ok_at = self._conn.clock()
            while True:
                try:
                    async with asyncio.timeout(self._probe_interval_s):
                        status, body = await anext(answers)
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    if await self._alive(url):
                        continue
                    self._conn.endpoints.failed(url)
                    raise EndpointFailure(url, SILENT) from None
                except OSError as e:
                    self._conn.endpoints.failed(url)
                    raise EndpointFailure(url, f"watch stream broken: {e!r}") from e
                self._ok_at = self._conn.clock()
                batch = _parse_item(url, body)
                if batch[1]:
                    yield batch
                if status == 200:
                    return  # the node is stopping

    async def _alive(self, url: str) -> bool:
        try:
            # Ready, not merely alive: a live node that knows no leader (cut off from
            # the majority) would keep the stream open but never see another event.
            reply = await self._conn.exchange(url, READY_REQUEST, DISCOVERY_TIMEOUT_S)
        except EndpointFailure:
            return False
        return reply.status == 200


def _parse_line(url: str, line: bytes) -> ShardBatch:
    """The events of one line of a watch stream; raises the error a line reports."""
    try:
        item = json.loads(line)
    except ValueError as e:
        raise BadAnswer(f"{url} sent a watch line that is not JSON: {e}") from e
    return _parse_item(url, item)


def _parse_item(url: str, item: object) -> ShardBatch:
    """The events of one batch (a JSON line, or a native frame's document), and the
    shard they are from (every event of a batch names the same one; 0: none)."""
    if not isinstance(item, dict):
        raise BadAnswer(f"{url} sent a watch line that is not an object")
    if "error" in item:
        error = item["error"] if isinstance(item["error"], dict) else {}
        if error.get("code") == "watch_cancelled":
            raise _Resume(str(error.get("message")))
        raise error_from_answer(0, error)
    events = item.get("events", [])
    if not isinstance(events, list):
        raise BadAnswer(f"{url} sent a watch line without a list of events")
    shards = {e.get("shard", 0) if isinstance(e, dict) else 0 for e in events}
    shard = shards.pop() if len(shards) == 1 else -1
    if not isinstance(shard, int) or shard < 0:
        raise BadAnswer(f"{url} sent a watch batch without one shard")
    return shard, [decode_event(e) for e in events]
