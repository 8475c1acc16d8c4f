"""A real `Node` on virtual time: it elects itself, ticks and expires deadlines only as
the test moves the clock, so long timeouts are tested without waiting for them."""

from __future__ import annotations

import asyncio
import threading

import pytest

from accord.errors import DeadlineExceeded
from accord.kv import Envelope, KVStateMachine, Put, encode_command
from accord.node.address import Member
from accord.node.members import NodeState
from accord.node.runtime import Node
from accord.raft import Message, RaftConfig, Role
from accord.storage import MemoryHostStorage
from accord.testing.clock import VirtualClock

TICK_MS = 100
pytestmark = pytest.mark.asyncio


class NoPeers:
    def __init__(self, on_message: object) -> None:
        pass

    async def start(self) -> None:
        pass

    def send(self, message: Message) -> object:
        return None

    async def stop(self) -> None:
        pass


def _node(clock: VirtualClock, disk: MemoryHostStorage) -> tuple[Node, KVStateMachine]:
    machine = KVStateMachine()
    state = NodeState(machine, {1: Member(1, "n1", ("127.0.0.1", 1), ("127.0.0.1", 2))})
    config = RaftConfig(id=1, bootstrap_voters=frozenset({1}), election_ticks=10)
    node = Node(config, disk, NoPeers, state, tick_ms=TICK_MS, snapshot_entries=10**9, clock=clock)
    return node, machine


def put(key: bytes) -> bytes:
    return encode_command(Envelope(0, 0, Put(key, b"v", 0), 0))


async def _run_until(clock: VirtualClock, done: object, limit_s: float) -> None:
    """Advance a tick at a time until `done()` or `limit_s` of virtual time."""
    spent = 0.0
    while not done() and spent < limit_s:  # type: ignore[operator]
        await clock.advance(TICK_MS / 1000)
        await asyncio.sleep(0.001)  # the disk thread's fsync is real
        spent += TICK_MS / 1000


async def test_elections_wait_for_virtual_time() -> None:
    clock = VirtualClock()
    node, _ = _node(clock, MemoryHostStorage())
    await node.start()
    try:
        for _ in range(50):
            await asyncio.sleep(0.001)  # real time passes; virtual time does not
        assert node.core.role != Role.LEADER
        await _run_until(clock, lambda: node.is_leader, limit_s=10.0)
        assert node.is_leader
        # The election timeout is randomised in [10, 20) ticks of 100 ms.
        assert 0.99 <= clock.monotonic() <= 2.1  # ticks of 0.1 s add up inexactly
    finally:
        await node.stop(transfer_leadership=False)


class HeldDisk(MemoryHostStorage):
    """Synced saves wait while `held` is clear (a disk that does not answer)."""

    def __init__(self) -> None:
        super().__init__()
        self.held = threading.Event()
        self.held.set()

    def save(self, writes, *, sync=True):  # type: ignore[no-untyped-def]
        if sync:
            self.held.wait(timeout=30)
        super().save(writes, sync=sync)


async def test_a_write_fails_at_its_deadline_in_virtual_time() -> None:
    clock, disk = VirtualClock(), HeldDisk()
    node, machine = _node(clock, disk)
    await node.start()
    try:
        await _run_until(clock, lambda: node.is_leader, limit_s=10.0)
        disk.held.clear()
        write = asyncio.create_task(node.propose(put(b"k"), timeout_s=30.0))
        await asyncio.sleep(0)  # the write starts its wait at this virtual moment
        await clock.advance(29.0)
        assert not write.done()  # 29 s of virtual time, a few ms of real time
        await clock.advance(1.0 + 2 * TICK_MS / 1000)  # the ticker checks once a tick
        with pytest.raises(DeadlineExceeded, match=r"within 30s"):
            await write
        disk.held.set()
        await _run_until(clock, lambda: machine.get(b"k").kv is not None, limit_s=5.0)
        assert machine.get(b"k").kv is not None  # still applied once the disk answers
    finally:
        disk.held.set()
        await node.stop(transfer_leadership=False)
