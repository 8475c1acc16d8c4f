"""Real crashes across groups: a writer process saving batches that span many groups
is SIGKILLed at random moments; every batch it reported as saved must be there, in
every group, after recovery, and the storage must open.

As in test_crash (whose line reader this reuses), the writer is a forked child
reporting each save only after `save()` returned, i.e. after its one fdatasync.
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

from accord.storage import FileHostStorage

from .crash_writer_groups import GROUPS, SEGMENT_BYTES, TERM, data_for, run
from .test_crash import LINE_DEADLINE_S, LineReader, fork_writer

KILLS = 25


def check_durable(directory: Path, acknowledged: list[int]) -> list[int]:
    lasts = []
    with FileHostStorage(directory, segment_bytes_max=SEGMENT_BYTES) as host:
        assert host.groups() == set(range(GROUPS))
        for group in range(GROUPS):
            state = host.load(group)
            assert state.last_index >= acknowledged[group], f"group {group} lost an index"
            assert state.hard_state.commit >= acknowledged[group]
            base = 0
            if state.snapshot is not None:
                base = state.snapshot.index
                assert state.snapshot.data == f"{group}@{base}".encode()
            for offset, entry in enumerate(state.entries):
                assert (entry.index, entry.term) == (base + 1 + offset, TERM)
                assert entry.data == data_for(group, entry.index, len(entry.data))
            lasts.append(state.last_index)
    return lasts


def start_writer(directory: Path, seed: int) -> tuple[int, int]:
    return fork_writer(run, directory, seed)


def test_sigkill_never_loses_a_synced_batch_in_any_group(tmp_path: Path) -> None:
    rng = random.Random(20240917)
    directory = tmp_path / "node"
    acknowledged = [0] * GROUPS
    saves = 0
    for round_ in range(KILLS):
        pid, read_fd = start_writer(directory, rng.randrange(2**32))
        try:
            reader = LineReader(read_fd)
            ready = reader.readline(LINE_DEADLINE_S).split()
            assert ready[0] == "ready"
            assert all(int(v) >= a for v, a in zip(ready[1:], acknowledged, strict=True))
            for _ in range(rng.randint(1, 40)):
                line = [int(v) for v in reader.readline(LINE_DEADLINE_S).split()]
                acknowledged = [max(a, v) for a, v in zip(acknowledged, line, strict=True)]
                saves += 1
            # Jitter (not synchronisation): move the kill to a random point of the
            # writer's next encode / write / fdatasync.
            time.sleep(rng.uniform(0, 0.002))
        finally:
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
            os.close(read_fd)
        assert os.WIFSIGNALED(status), f"round {round_}: writer died by itself"
        check_durable(directory, acknowledged)
    assert saves > KILLS
