"""The client through failures: the leader killed (SIGKILL) under writes and under a
watch, and an endpoint that is dead and then comes back."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Awaitable, Callable

import pytest

from accord import AsyncClient, BreakerState, Event, Watch
from accord.testing.cluster import LocalCluster

from .helpers import Recorder, dead_url, url, urls

pytestmark = pytest.mark.asyncio

DEADLINE_S = 20.0


async def until(predicate: Callable[[], bool | Awaitable[bool]], what: str) -> None:
    """Wait for `predicate` with a deadline (polling, never a fixed sleep)."""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        value = predicate()
        if value if isinstance(value, bool) else await value:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def kill_leader(cluster: LocalCluster) -> int:
    leader = await asyncio.to_thread(cluster.leader)
    os.kill(cluster.pids()[leader], signal.SIGKILL)
    return leader


async def test_writes_and_reads_go_on_when_the_leader_is_killed(
    fresh_cluster: LocalCluster, protocol: str
) -> None:
    async with AsyncClient(urls(fresh_cluster, protocol), timeout_s=DEADLINE_S) as client:
        recorder = Recorder(client)
        acknowledged = 0
        stop = asyncio.Event()

        async def writer() -> None:
            # One key, one put after another: its version counts the puts applied.
            nonlocal acknowledged
            while not stop.is_set():
                await client.put("inflight", str(acknowledged))
                acknowledged += 1

        task = asyncio.create_task(writer())
        await until(lambda: acknowledged >= 20, "writes before the kill")
        killed = await kill_leader(fresh_cluster)  # a put is in flight at this moment
        at_kill = acknowledged
        await until(lambda: acknowledged >= at_kill + 20 or task.done(), "writes after it")
        stop.set()
        await task  # raises if any write failed
        assert client.leader_url not in (None, url(fresh_cluster, killed, protocol))
        kv = await client.get("inflight")
        assert kv is not None and kv.value == str(acknowledged - 1).encode()
        assert kv.version == acknowledged  # every put once: none lost, none applied twice
        seqs = [w.headers["X-Accord-Seq"] for w in recorder.writes()]
        assert len(seqs) > len(set(seqs))  # the put cut off by the kill was sent again
        survivor = await client.get("inflight", serializable=True)
        assert survivor is not None and survivor.version <= acknowledged


async def test_a_watch_resumes_across_the_leader_kill(
    fresh_cluster: LocalCluster, protocol: str
) -> None:
    leader = await asyncio.to_thread(fresh_cluster.leader)
    leader_url = url(fresh_cluster, leader, protocol)
    async with AsyncClient(urls(fresh_cluster, protocol), timeout_s=DEADLINE_S) as client:
        await client.status()
        received: list[Event] = []
        # Endpoints take turns; open watches until one reads from the leader.
        for _ in range(len(urls(fresh_cluster))):
            watch = client.watch(prefix="w/")
            reader = asyncio.create_task(_collect(watch, received))
            await until(lambda w=watch: w.endpoint is not None, "the watch to connect")
            if watch.endpoint == leader_url:
                break
            await _stop(reader, watch)
        assert watch.endpoint == leader_url
        for i in range(10):
            await client.put(f"w/{i:02}", "before")
        await client.delete("w/00")
        await kill_leader(fresh_cluster)
        for i in range(10, 20):
            await client.put(f"w/{i:02}", "after")
        await until(lambda: len(received) >= 21, "21 events")
        assert watch.endpoint not in (None, leader_url)  # it moved to a survivor
        await _stop(reader, watch)
    keys = [e.kv.key.decode() for e in received]
    assert keys == [f"w/{i:02}" for i in range(10)] + ["w/00"] + [f"w/{i}" for i in range(10, 20)]
    revisions = [e.revision for e in received]
    assert revisions == sorted(set(revisions))  # each event once, in order


async def _collect(watch: Watch, into: list[Event]) -> None:
    async for event in watch:
        into.append(event)


async def _stop(reader: asyncio.Task[None], watch: Watch) -> None:
    reader.cancel()  # ends the iteration; then closing the watch closes its stream
    with contextlib.suppress(asyncio.CancelledError):
        await reader
    await watch.aclose()


class Proxy:
    """A TCP forwarder on a fixed port: the 'dead' endpoint coming back to life."""

    def __init__(self, port: int, target_port: int) -> None:
        self.port = port
        self.target_port = target_port
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except OSError:
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()


async def test_the_breaker_opens_on_a_dead_endpoint_and_recovers(cluster: LocalCluster) -> None:
    dead = dead_url()
    offset_s = [0.0]  # the client's clock: real time plus a jump the test makes

    def clock() -> float:
        return time.monotonic() + offset_s[0]

    async with AsyncClient(
        [dead, cluster.url(1)],
        breaker_failures_max=2,
        breaker_cooldown_s=60.0,
        clock=clock,
    ) as client:
        recorder = Recorder(client)
        for _ in range(12):  # serializable reads go round robin, so some try `dead`
            await client.get("breaker/k", serializable=True)
        assert client.endpoint_states()[dead] == BreakerState.OPEN
        tried = len([s for s in recorder.sent if s.url == dead])
        assert tried == 2
        for _ in range(12):
            await client.get("breaker/k", serializable=True)
        assert len([s for s in recorder.sent if s.url == dead]) == tried  # skipped while open

        proxy = Proxy(int(dead.rsplit(":", 1)[1]), int(cluster.url(2).rsplit(":", 1)[1]))
        await proxy.start()
        try:
            offset_s[0] += 60.0  # the cooldown is over: the next pick is the trial

            async def recovered() -> bool:
                await client.get("breaker/k", serializable=True)
                return client.endpoint_states()[dead] == BreakerState.CLOSED

            await until(recovered, "the breaker to close")
            assert [s.url for s in recorder.sent if s.url == dead][tried:]  # it served again
        finally:
            await proxy.close()
