"""Real crashes: a writer process is SIGKILLed at random moments; every index it
reported as synced must read back intact afterwards, and the storage must open.

The writer is a forked child of the test process (so it starts in microseconds, not
the fraction of a second a fresh interpreter spends importing) writing to a pipe.

The writer (`crash_writer.py`) reports an index only after `save()` returned, i.e.
after the fdatasync. SIGKILL does not lose the page cache, so this checks the
recovery path (torn final records from a write() cut short, a segment created but not
yet written, a snapshot half written), not the disk's honesty; power cuts are
modelled by the property and fuzz tests.
"""

from __future__ import annotations

import os
import random
import select
import signal
import time
from collections.abc import Callable
from pathlib import Path

from accord.storage import FileStorage

from .crash_writer import SEGMENT_BYTES, TERM, data_for, run

KILLS = 30
LINE_DEADLINE_S = 20.0


class LineReader:
    """Lines from a pipe, each awaited with a deadline (never a fixed sleep)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buffer = b""

    def readline(self, deadline_s: float) -> str:
        deadline = time.monotonic() + deadline_s
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            assert remaining > 0, "writer went silent"
            ready, _, _ = select.select([self._fd], [], [], remaining)
            if ready:
                chunk = os.read(self._fd, 65536)
                assert chunk, "writer exited unexpectedly"
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()


def check_durable(directory: Path, acknowledged: int) -> int:
    with FileStorage(directory, segment_bytes_max=SEGMENT_BYTES) as storage:
        state = storage.load()
    assert state.last_index >= acknowledged, f"lost acknowledged index {acknowledged}"
    assert state.hard_state.commit >= acknowledged
    snapshot_index = 0
    if state.snapshot is not None:
        snapshot_index = state.snapshot.index
        assert state.snapshot.data == f"snapshot@{snapshot_index}".encode()
    for offset, entry in enumerate(state.entries):
        assert entry.index == snapshot_index + 1 + offset
        assert entry.term == TERM
        assert entry.data == data_for(entry.index, len(entry.data))
    return state.last_index


def fork_writer(
    writer: Callable[[str, int, int], None], directory: Path, seed: int
) -> tuple[int, int]:
    """Fork a process running `writer(directory, seed, pipe)`; return its pid and the
    read end of its pipe."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: write until killed, never return into pytest
        try:
            os.close(read_fd)
            writer(str(directory), seed, write_fd)
        finally:
            os._exit(1)
    os.close(write_fd)
    return pid, read_fd


def start_writer(directory: Path, seed: int) -> tuple[int, int]:
    return fork_writer(run, directory, seed)


def test_sigkill_never_loses_a_synced_index(tmp_path: Path) -> None:
    rng = random.Random(20240601)
    directory = tmp_path / "node"
    acknowledged = 0
    for round_ in range(KILLS):
        pid, read_fd = start_writer(directory, rng.randrange(2**32))
        try:
            reader = LineReader(read_fd)
            ready = reader.readline(LINE_DEADLINE_S)
            assert ready.startswith("ready ")
            assert int(ready.split()[1]) >= acknowledged
            for _ in range(rng.randint(1, 60)):
                acknowledged = max(acknowledged, int(reader.readline(LINE_DEADLINE_S)))
            # Jitter (not synchronisation): move the kill to a random point of the
            # writer's next encode / write / fdatasync.
            time.sleep(rng.uniform(0, 0.002))
        finally:
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
            os.close(read_fd)
        assert os.WIFSIGNALED(status), f"round {round_}: writer died by itself"
        check_durable(directory, acknowledged)
    assert acknowledged > KILLS
