"""Deadlines of the runtime's waits, on a real `Node` (one voter, in this event loop)
whose disk can be held back: a write that cannot become durable in time fails with
DeadlineExceeded within about a tick of its deadline, is still applied once the disk
lets go, and neither the expired nor a cancelled wait disturbs later requests. A
request that names no deadline gets the node's `request_timeout_s`, and a read past
`pending_reads_max` waiting ones is refused at once."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest
import pytest_asyncio

from accord.api.wire import error_answer
from accord.client.errors import TooManyPendingReads as ClientTooManyPendingReads
from accord.client.errors import error_from_answer
from accord.client.policy import is_retryable
from accord.errors import DeadlineExceeded, TooManyPendingReads
from accord.kv import Envelope, KVStateMachine, Put, encode_command
from accord.node.address import Member
from accord.node.members import NodeState
from accord.node.runtime import Node
from accord.node.service import KVService
from accord.raft import Message, RaftConfig
from accord.storage import GroupWrite, MemoryHostStorage

TICK_MS = 10
pytestmark = pytest.mark.asyncio


class HeldDisk(MemoryHostStorage):
    """MemoryHostStorage whose synced saves wait while `held` is clear."""

    def __init__(self) -> None:
        super().__init__()
        self.held = threading.Event()
        self.held.set()

    def save(self, writes: Sequence[GroupWrite], *, sync: bool = True) -> None:
        if sync:
            self.held.wait(timeout=30)
        super().save(writes, sync=sync)


class NoPeers:
    def __init__(self, on_message: Callable[[Message], None]) -> None:
        pass

    async def start(self) -> None:
        pass

    def send(self, message: Message) -> object:
        return None

    async def stop(self) -> None:
        pass


@contextlib.asynccontextmanager
async def leading_node(**settings: Any) -> AsyncIterator[tuple[Node, HeldDisk, KVStateMachine]]:
    """A single voter that leads, with `settings` as `Node` keyword arguments."""
    disk, machine = HeldDisk(), KVStateMachine()
    state = NodeState(machine, {1: Member(1, "n1", ("127.0.0.1", 1), ("127.0.0.1", 2))})
    config = RaftConfig(id=1, bootstrap_voters=frozenset({1}), election_ticks=5)
    node = Node(config, disk, NoPeers, state, tick_ms=TICK_MS, snapshot_entries=10**9, **settings)
    await node.start()
    deadline = time.monotonic() + 10
    while not node.is_leader:
        assert time.monotonic() < deadline, "the single voter did not become leader"
        await asyncio.sleep(TICK_MS / 1000)
    try:
        yield node, disk, machine
    finally:
        disk.held.set()
        await node.stop(transfer_leadership=False)


@pytest_asyncio.fixture
async def node() -> AsyncIterator[tuple[Node, HeldDisk, KVStateMachine]]:
    async with leading_node() as started:
        yield started


def put(key: bytes, value: bytes) -> bytes:
    return encode_command(Envelope(0, 0, Put(key, value, 0), 0))


async def wait_until(predicate: Callable[[], Any], what: str) -> None:
    deadline = time.monotonic() + 10
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(TICK_MS / 1000)


async def test_a_write_past_its_deadline_fails_then_still_applies(
    node: tuple[Node, HeldDisk, KVStateMachine],
) -> None:
    runtime, disk, machine = node
    await runtime.propose(put(b"before", b"1"))
    disk.held.clear()
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded, match=r"the write did not finish within 0\.2s"):
        await asyncio.wait_for(runtime.propose(put(b"late", b"2"), timeout_s=0.2), 5)
    waited = time.monotonic() - started
    # Never before its deadline; soon after it (the ticker checks every tick; the
    # bound is loose so a busy machine cannot fail it).
    assert 0.2 <= waited < 0.2 + 2.0, waited
    assert machine.get(b"late").kv is None
    disk.held.set()
    await wait_until(lambda: machine.get(b"late").kv is not None, "the late write to apply")
    assert runtime.pending_proposals == 0
    await runtime.propose(put(b"after", b"3"), timeout_s=1.0)
    assert machine.get(b"after").kv is not None


async def test_a_cancelled_write_is_applied_and_later_writes_answer(
    node: tuple[Node, HeldDisk, KVStateMachine],
) -> None:
    runtime, disk, machine = node
    disk.held.clear()
    task = asyncio.create_task(runtime.propose(put(b"gone", b"1"), timeout_s=0.1))
    await wait_until(lambda: runtime.pending_proposals == 1, "the proposal")
    task.cancel()  # the caller went away before its deadline
    with pytest.raises(asyncio.CancelledError):
        await task
    # The cancelled wait's deadline passes (the ticker pops it): nothing to fail now.
    await wait_until(lambda: not runtime._deadlines, "the cancelled wait's deadline")
    disk.held.set()
    await wait_until(lambda: machine.get(b"gone").kv is not None, "the cancelled write")
    results = await asyncio.gather(
        *(runtime.propose(put(b"k%d" % i, b"v"), timeout_s=2.0) for i in range(20))
    )
    assert len(results) == 20
    assert all(machine.get(b"k%d" % i).kv is not None for i in range(20))


async def test_a_read_barrier_past_its_deadline_fails(
    node: tuple[Node, HeldDisk, KVStateMachine],
) -> None:
    runtime, disk, _ = node
    await runtime.propose(put(b"x", b"1"))
    disk.held.clear()
    pending = asyncio.create_task(runtime.propose(put(b"y", b"2"), timeout_s=5.0))
    await wait_until(lambda: runtime.pending_proposals == 1, "the proposal")
    # The Ready loop is stuck in the held fsync, so no read index comes back.
    with pytest.raises(DeadlineExceeded, match="the linearizable read did not finish"):
        await asyncio.wait_for(runtime.read_barrier(timeout_s=0.2), 5)
    disk.held.set()
    await pending
    assert await runtime.read_barrier(timeout_s=2.0) >= 1


async def test_finished_waits_do_not_pile_up_until_their_deadlines(
    node: tuple[Node, HeldDisk, KVStateMachine],
) -> None:
    runtime, _, _ = node
    for _ in range(5):
        await asyncio.gather(
            *(runtime.propose(put(b"p%d" % i, b"v"), timeout_s=60.0) for i in range(100))
        )
        await runtime.read_barrier(timeout_s=60.0)
    # 505 waits ended long before their deadline a minute from now; within a couple of
    # ticks the heap holds about as many entries as are pending (none), not 505.
    await wait_until(lambda: len(runtime._deadlines) <= 64, "the finished waits to go")


async def test_requests_that_name_no_deadline_get_the_nodes_request_timeout() -> None:
    async with leading_node(request_timeout_s=0.3) as (runtime, disk, machine):
        service = KVService(runtime, machine)
        await service.execute(Put(b"before", b"1"))
        disk.held.clear()
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded, match=r"the write did not finish within 0\.3s"):
            await asyncio.wait_for(service.execute(Put(b"late", b"2")), 5)
        assert 0.3 <= time.monotonic() - started < 0.3 + 2.0
        with pytest.raises(DeadlineExceeded, match=r"the linearizable read .* within 0\.3s"):
            await asyncio.wait_for(service.get(b"before"), 5)
        # A deadline named by the caller still wins over the node's.
        with pytest.raises(DeadlineExceeded, match=r"within 0\.1s"):
            await asyncio.wait_for(runtime.read_barrier(timeout_s=0.1), 5)


async def test_a_read_past_pending_reads_max_is_refused_at_once() -> None:
    async with leading_node(pending_reads_max=3) as (runtime, disk, machine):
        service = KVService(runtime, machine)
        await service.execute(Put(b"k", b"v"))
        disk.held.clear()  # the Ready loop stops in the fsync: no read index comes back
        write = asyncio.create_task(service.execute(Put(b"k", b"w")))
        reads = [asyncio.create_task(service.get(b"k")) for _ in range(3)]
        await wait_until(lambda: runtime.replica.pending_reads == 3, "three reads waiting")
        started = time.monotonic()
        with pytest.raises(TooManyPendingReads) as refused:
            await asyncio.wait_for(service.get(b"k"), 5)
        assert time.monotonic() - started < 0.5  # at once, not after a deadline
        error = refused.value
        assert (error.code, error.pending, error.limit) == ("too_many_pending_reads", 4, 3)
        assert "pending_reads_max" in str(error)
        with pytest.raises(TooManyPendingReads):  # a keepalive takes a barrier too
            await asyncio.wait_for(service.lease_keepalive(1), 5)
        assert not any(read.done() for read in reads)  # the waiting ones are untouched
        disk.held.set()
        await write
        answers = await asyncio.gather(*reads)
        assert all(answer.kv is not None for answer in answers)
        assert (await service.get(b"k")).kv is not None  # room again


async def test_the_pending_reads_refusal_is_a_503_the_client_raises_and_does_not_retry() -> None:
    error = TooManyPendingReads(4, 3)
    status, doc = error_answer(error)
    assert status == 503 and doc["error"]["code"] == "too_many_pending_reads"
    raised = error_from_answer(status, doc["error"])
    assert isinstance(raised, ClientTooManyPendingReads)
    assert (raised.code, raised.status) == ("too_many_pending_reads", 503)
    assert not is_retryable(raised)
