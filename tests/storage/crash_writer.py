"""The writer for test_crash: appends and syncs forever, reporting each synced index.

`run()` writes "ready LAST" after recovery, then one line per save() that returned:
the last index it made durable. Every entry's data is derived from its index, so the
parent can check what it reads back. It is killed with SIGKILL. The test forks it (a
fresh interpreter per kill would spend most of the time importing); it also runs on
its own: crash_writer.py DIR SEED prints to stdout.
"""

from __future__ import annotations

import os
import random
import sys

from accord.raft.types import ConfState, Entry, HardState, Snapshot
from accord.storage import FileStorage

TERM = 1
CONF = ConfState(voters=frozenset({1}))
SEGMENT_BYTES = 256 * 1024


def data_for(index: int, size: int) -> bytes:
    seed = f"<{index}>".encode()
    return (seed * (size // len(seed) + 1))[:size]


def run(directory: str, seed: int, out_fd: int) -> None:
    rng = random.Random(seed)
    storage = FileStorage(directory, segment_bytes_max=SEGMENT_BYTES)
    state = storage.load()
    last = state.last_index
    os.write(out_fd, f"ready {last}\n".encode())
    while True:
        count = rng.randint(1, 40)
        # Now and then a large batch: a kill is more likely to cut a long write() short.
        size_max = 16_000 if rng.random() < 0.2 else 600
        batch = [
            Entry(TERM, i, data=data_for(i, rng.randint(0, size_max)))
            for i in range(last + 1, last + count + 1)
        ]
        last += count
        # Single node: everything written is committed at once.
        storage.save(HardState(TERM, 1, last), batch)
        if rng.random() < 0.05:
            storage.save_snapshot(Snapshot(last, TERM, CONF, f"snapshot@{last}".encode()))
            storage.compact(last - rng.randint(0, 100) if last > 100 else last)
        os.write(out_fd, f"{last}\n".encode())


if __name__ == "__main__":
    run(sys.argv[1], int(sys.argv[2]), sys.stdout.fileno())
