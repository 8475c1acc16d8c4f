"""The writer for test_host_crash: batches across groups, one `save()` each, forever.

`run()` writes "ready L0 L1 ..." after recovery (every group's last index), then one
line per `save()` that returned: the last index of every group, all durable. A save
touches a random subset of the groups; every entry's data is derived from its group
and index, so the parent can check what it reads back. It is killed with SIGKILL;
the test forks it, as test_crash forks crash_writer.
"""

from __future__ import annotations

import os
import random

from accord.raft.types import ConfState, Entry, HardState, Snapshot
from accord.storage import FileHostStorage, GroupWrite

TERM = 1
GROUPS = 8
CONF = ConfState(voters=frozenset({1}))
SEGMENT_BYTES = 64 * 1024


def data_for(group: int, index: int, size: int) -> bytes:
    seed = f"<{group}:{index}>".encode()
    return (seed * (size // len(seed) + 1))[:size]


def run(directory: str, seed: int, out_fd: int) -> None:
    rng = random.Random(seed)
    host = FileHostStorage(directory, segment_bytes_max=SEGMENT_BYTES)
    for group in range(GROUPS):
        if group not in host.groups():
            host.create_group(group)
    last = [host.load(group).last_index for group in range(GROUPS)]
    os.write(out_fd, ("ready " + " ".join(map(str, last)) + "\n").encode())
    while True:
        writes = []
        for group in rng.sample(range(GROUPS), rng.randint(1, GROUPS)):
            count = rng.randint(1, 12)
            size_max = 8_000 if rng.random() < 0.1 else 300
            batch = tuple(
                Entry(TERM, i, data=data_for(group, i, rng.randint(0, size_max)))
                for i in range(last[group] + 1, last[group] + count + 1)
            )
            last[group] += count
            # Single node: everything written is committed at once.
            writes.append(GroupWrite(group, HardState(TERM, 1, last[group]), batch))
        host.save(writes)
        if rng.random() < 0.05:
            group = rng.randrange(GROUPS)
            index = last[group]
            host.save_snapshot(group, Snapshot(index, TERM, CONF, f"{group}@{index}".encode()))
            host.compact(group, max(0, index - rng.randint(0, 30)))
        os.write(out_fd, (" ".join(map(str, last)) + "\n").encode())
